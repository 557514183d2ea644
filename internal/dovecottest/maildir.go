package dovecottest

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"iter"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unicode/utf16"

	"github.com/myhibachi/backfill/internal/maildir"
)

// LoadMaildir adds messages to a user's INBOX by writing them as files
// straight into the Maildir, far faster than APPEND: ten thousand small
// messages take a second or two, and Dovecot indexes them on the next SELECT. Each message's INTERNALDATE is its date (a zero date means now).
// In a fresh mailbox, UIDs follow the order of mails, from 1.
//
// Dovecot keeps lines as they are: messages should use CRLF line ends, as
// IMAP does, if a test compares fetched bodies byte for byte.
func (s *Server) LoadMaildir(user string, mails iter.Seq2[[]byte, time.Time]) error {
	return s.LoadFolder(user, "INBOX", "", mails)
}

// LoadFolder is LoadMaildir for any folder: INBOX, or a Maildir++ folder
// named as users see it ("Projekte/Über", with WithFolders' separator /).
// flags are Maildir flag letters every message gets, in ASCII order: "S"
// is \Seen, "F" \Flagged, "FS" both; "" none.
func (s *Server) LoadFolder(user, folder, flags string, mails iter.Seq2[[]byte, time.Time]) error {
	root, err := s.maildir(user)
	if err != nil {
		return err
	}
	dir, err := s.folderDir(user, folder)
	if err != nil {
		return err
	}
	for _, d := range []string{root, dir} {
		if err := s.makeMaildir(d); err != nil {
			return fmt.Errorf("dovecottest: %w", err)
		}
	}
	// Dovecot gives new files UIDs in the order of the time and then the
	// microseconds in their names (<secs>.M<usecs>P<pid>...); a counter in
	// place of the microseconds keeps the order of mails.
	secs := time.Now().Unix()
	for raw, date := range mails {
		base := fmt.Sprintf("%d.M%dP%d.dovecottest,S=%d", secs, s.seq.Add(1), os.Getpid(), len(raw))
		if err := maildir.DeliverFlagged(dir, base, flags, raw, date, s.mailUID, s.mailGID); err != nil {
			return fmt.Errorf("dovecottest: load %s: %w", user, err)
		}
	}
	return nil
}

// folderDir is where a folder's Maildir is: the user's Maildir for
// INBOX, else Maildir++'s .Level1.Level2 beside it, in modified UTF-7.
func (s *Server) folderDir(user, folder string) (string, error) {
	root, err := s.maildir(user)
	if err != nil || strings.EqualFold(folder, "INBOX") {
		return root, err
	}
	return filepath.Join(root, "."+modifiedUTF7(strings.ReplaceAll(folder, "/", "."))), nil
}

// modifiedUTF7 encodes a mailbox name as IMAP and Dovecot's Maildir++
// store it (RFC 3501 5.1.3): printable ASCII as it is, & as &-, other
// characters as &, their UTF-16 in base64 with , for /, and -.
func modifiedUTF7(name string) string {
	var b strings.Builder
	var run []rune
	flush := func() {
		if len(run) == 0 {
			return
		}
		var buf []byte
		for _, u := range utf16.Encode(run) {
			buf = append(buf, byte(u>>8), byte(u))
		}
		b.WriteString("&" + strings.ReplaceAll(base64.RawStdEncoding.EncodeToString(buf), "/", ",") + "-")
		run = run[:0]
	}
	for _, r := range name {
		if r < 0x20 || r > 0x7e {
			run = append(run, r)
			continue
		}
		flush()
		if r == '&' {
			b.WriteString("&-")
		} else {
			b.WriteRune(r)
		}
	}
	flush()
	return b.String()
}

// SetUIDValidity gives a folder a new UIDVALIDITY (doveadm mailbox
// update), as a server does when it rebuilds a mailbox: clients must
// forget the UIDs they knew. The user's sessions are cut first, so none
// keeps the old one.
func (s *Server) SetUIDValidity(user, folder string, uidValidity uint32) error {
	if err := s.Kick(user); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := s.doveadm(ctx, "mailbox", "update", "-u", user, "--uid-validity", strconv.FormatUint(uint64(uidValidity), 10), folder)
	if err != nil {
		return fmt.Errorf("dovecottest: doveadm mailbox update %s %s: %w: %s", user, folder, err, out)
	}
	return nil
}

// ResetMailbox deletes all of a user's mail, Dovecot's index and UID list
// included, leaving an empty INBOX with a new UIDVALIDITY, as when a provider
// rebuilds a mailbox. The user's open sessions are disconnected first, so no
// process writes the old state back.
func (s *Server) ResetMailbox(user string) error {
	maildir, err := s.maildir(user)
	if err != nil {
		return err
	}
	if err := s.Kick(user); err != nil {
		return err
	}
	entries, err := os.ReadDir(maildir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("dovecottest: %w", err)
	}
	for _, e := range entries {
		// dovecot-uidvalidity* hold the last UIDVALIDITY handed out: keeping
		// them makes the next one larger even within the same second.
		if strings.HasPrefix(e.Name(), "dovecot-uidvalidity") {
			continue
		}
		if err := os.RemoveAll(filepath.Join(maildir, e.Name())); err != nil {
			return fmt.Errorf("dovecottest: %w", err)
		}
	}
	if err := s.makeMaildir(maildir); err != nil {
		return fmt.Errorf("dovecottest: %w", err)
	}
	return nil
}

// Kick disconnects all of a user's IMAP sessions and waits until they have
// ended. Clients see the connection close, as when a provider drops them.
func (s *Server) Kick(user string) error {
	if _, ok := s.homes[user]; !ok {
		return fmt.Errorf("dovecottest: no user %q", user)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return nil // a stopped server has no sessions
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := s.doveadm(ctx, "kick", user)
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) && exitErr.ExitCode() == exitNoUsersKicked {
		return nil
	}
	if err != nil {
		return fmt.Errorf("dovecottest: doveadm kick %s: %w: %s", user, err, out)
	}
	for {
		out, err := s.doveadm(ctx, "who", user)
		if err != nil {
			return fmt.Errorf("dovecottest: doveadm who %s: %w: %s", user, err, out)
		}
		if !whoLists(out, user) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("dovecottest: sessions of %s still open after kick: %w", user, ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// exitNoUsersKicked is doveadm kick's exit status when nobody was connected.
const exitNoUsersKicked = 68

// whoLists reports whether doveadm who's output has a session of user: a
// header line, then one line per user beginning with the name.
func whoLists(out, user string) bool {
	for _, line := range strings.Split(out, "\n") {
		if fields := strings.Fields(line); len(fields) > 0 && fields[0] == user {
			return true
		}
	}
	return false
}

func (s *Server) maildir(user string) (string, error) {
	home, ok := s.homes[user]
	if !ok {
		return "", fmt.Errorf("dovecottest: no user %q", user)
	}
	return filepath.Join(home, "Maildir"), nil
}

// makeMaildir creates the Maildir and its cur, new and tmp folders, owned by
// the mail user as Dovecot accesses them.
func (s *Server) makeMaildir(maildir string) error {
	for _, dir := range []string{maildir, filepath.Join(maildir, "cur"), filepath.Join(maildir, "new"), filepath.Join(maildir, "tmp")} {
		if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
			return err
		}
		if err := os.Chown(dir, s.mailUID, s.mailGID); err != nil {
			return err
		}
	}
	return nil
}

// Maildir returns the path of a user's Maildir. Benchmarks replace its files
// with a fresh copy between runs, after ResetMailbox, to meet Dovecot cold.
func (s *Server) Maildir(user string) (string, error) { return s.maildir(user) }
