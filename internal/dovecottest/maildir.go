package dovecottest

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

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
	maildir, err := s.maildir(user)
	if err != nil {
		return err
	}
	if err := s.makeMaildir(maildir); err != nil {
		return fmt.Errorf("dovecottest: %w", err)
	}
	// Dovecot gives new files UIDs in the order of the time and then the
	// microseconds in their names (<secs>.M<usecs>P<pid>...); a counter in
	// place of the microseconds keeps the order of mails.
	secs := time.Now().Unix()
	for raw, date := range mails {
		base := fmt.Sprintf("%d.M%dP%d.dovecottest,S=%d", secs, s.seq.Add(1), os.Getpid(), len(raw))
		if err := s.deliver(maildir, base, raw, date); err != nil {
			return fmt.Errorf("dovecottest: load %s: %w", user, err)
		}
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

// deliver writes one message into the Maildir at dir (see maildir.Deliver).
func (s *Server) deliver(dir, base string, raw []byte, date time.Time) error {
	return maildir.Deliver(dir, base, raw, date, s.mailUID, s.mailGID)
}

// Maildir returns the path of a user's Maildir. Benchmarks replace its files
// with a fresh copy between runs, after ResetMailbox, to meet Dovecot cold.
func (s *Server) Maildir(user string) (string, error) { return s.maildir(user) }
