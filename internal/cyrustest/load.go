package cyrustest

import (
	"bytes"
	"errors"
	"fmt"
	"iter"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// Refused is a message Cyrus would not APPEND, and why.
type Refused struct {
	Index int   // its position in the messages given to Load
	Err   error // the server's NO, such as "Message contains NUL characters"
}

// Load appends messages to the user's INBOX over IMAP, each with its date
// as INTERNALDATE (a zero date means now), pipelined on one connection: a
// few hundred messages take well under a second. Cyrus keeps its own spool
// and index, so files cannot simply be dropped in as with Maildir servers.
//
// Bare LF line ends are turned into CRLF first, as delivery over LMTP does;
// Cyrus refuses them otherwise. Messages that Cyrus still refuses are left
// out and listed, in order; UIDs follow the order of the messages stored.
func (s *Server) Load(mails iter.Seq2[[]byte, time.Time]) ([]Refused, error) {
	c, err := imapclient.DialInsecure(s.Addr(), nil)
	if err != nil {
		return nil, fmt.Errorf("cyrustest: %w", err)
	}
	defer c.Close()
	if err := c.Login(s.User, s.Password).Wait(); err != nil {
		return nil, fmt.Errorf("cyrustest: login: %w", err)
	}
	// Cyrus advertises LITERAL+, so appends need not wait for a
	// continuation; a window of unanswered ones keeps UIDs in order (each is
	// answered in turn) while the connection stays busy.
	const window = 64
	type pending struct {
		i   int
		cmd *imapclient.AppendCommand
	}
	var (
		queue   []pending
		refused []Refused
	)
	wait := func(p pending) error {
		_, err := p.cmd.Wait()
		var imapErr *imap.Error
		switch {
		case errors.As(err, &imapErr) && imapErr.Type == imap.StatusResponseTypeNo:
			refused = append(refused, Refused{Index: p.i, Err: err})
		case err != nil:
			return fmt.Errorf("cyrustest: APPEND message %d: %w", p.i, err)
		}
		return nil
	}
	i := 0
	for raw, date := range mails {
		raw = toCRLF(raw)
		cmd := c.Append("INBOX", int64(len(raw)), &imap.AppendOptions{Time: date})
		if _, err := cmd.Write(raw); err != nil {
			return refused, fmt.Errorf("cyrustest: APPEND message %d: %w", i, err)
		}
		if err := cmd.Close(); err != nil {
			return refused, fmt.Errorf("cyrustest: APPEND message %d: %w", i, err)
		}
		queue = append(queue, pending{i, cmd})
		if len(queue) == window {
			if err := wait(queue[0]); err != nil {
				return refused, err
			}
			queue = queue[1:]
		}
		i++
	}
	for _, p := range queue {
		if err := wait(p); err != nil {
			return refused, err
		}
	}
	if err := c.Logout().Wait(); err != nil {
		return refused, fmt.Errorf("cyrustest: LOGOUT: %w", err)
	}
	return refused, nil
}

// toCRLF turns every LF not preceded by CR into CRLF.
func toCRLF(b []byte) []byte {
	if bytes.Count(b, []byte("\n")) == bytes.Count(b, []byte("\r\n")) {
		return b
	}
	out := make([]byte, 0, len(b)+len(b)/32)
	for i, c := range b {
		if c == '\n' && (i == 0 || b[i-1] != '\r') {
			out = append(out, '\r')
		}
		out = append(out, c)
	}
	return out
}
