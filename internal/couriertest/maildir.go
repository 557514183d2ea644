package couriertest

import (
	"bytes"
	"fmt"
	"iter"
	"os"
	"time"

	"github.com/myhibachi/backfill/internal/maildir"
)

// LoadMaildir adds messages to the INBOX by writing them as files straight
// into the Maildir, as a delivery agent does: ten thousand small messages
// take about a second. Line ends are stored as LF, the Maildir convention
// that Courier's own deliverquota and maildrop follow; Courier turns them
// back into CRLF when it serves a message. Each file's mtime is the
// message's INTERNALDATE (a zero date means now). In a fresh mailbox, UIDs
// follow the order of mails from 1 once a session has opened the mailbox
// read-write (see Settle).
func (s *Server) LoadMaildir(mails iter.Seq2[[]byte, time.Time]) error {
	return s.load(mails, toLF)
}

// LoadMaildirRaw is LoadMaildir without the conversion to LF: files written
// with CRLF, as some migration tools and IMAP-to-Maildir copies leave them.
// Courier adds a CR before every LF when serving, so their lines arrive
// ending in CR CR LF.
func (s *Server) LoadMaildirRaw(mails iter.Seq2[[]byte, time.Time]) error {
	return s.load(mails, func(b []byte) []byte { return b })
}

func (s *Server) load(mails iter.Seq2[[]byte, time.Time], conv func([]byte) []byte) error {
	// Courier orders new files by name; a zero-padded counter after the
	// time keeps the order of mails.
	secs := time.Now().Unix()
	for raw, date := range mails {
		raw = conv(raw)
		base := fmt.Sprintf("%d.M%08dP%d.couriertest,S=%d", secs, s.seq.Add(1), os.Getpid(), len(raw))
		if date.IsZero() {
			date = time.Now()
		}
		if err := s.deliver(base, raw, date); err != nil {
			return fmt.Errorf("couriertest: load: %w", err)
		}
	}
	return nil
}

// toLF replaces each CRLF with LF.
func toLF(b []byte) []byte {
	return bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n"))
}

// deliver writes one message into the user's Maildir (see maildir.Deliver).
func (s *Server) deliver(base string, raw []byte, date time.Time) error {
	return maildir.Deliver(s.maildir, base, raw, date, s.mailUID, s.mailGID)
}
