package imapsrc

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"slices"
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/myhibachi/backfill/errlog"
)

// dialStartTLSIfOffered upgrades with STARTTLS unless the server's greeting
// lists its capabilities without STARTTLS (Dovecot, Cyrus, Courier and
// go-imap's server all list them), so one connection suffices. A server
// whose greeting says nothing is sent STARTTLS, and dialled again in
// plaintext only when it answers that command with NO or BAD. A failed
// handshake (an untrusted certificate, say) or a refused login never falls
// back: a server that offers TLS is only spoken to over TLS, and a password
// is never sent twice.
func dialStartTLSIfOffered(ctx context.Context, cfg Config) (*Conn, error) {
	cfg.Security, cfg.ifOffered = StartTLS, true
	conn, err := dial(ctx, cfg)
	if err == nil || !startTLSRefused(err) {
		return conn, err
	}
	cfg.Security, cfg.ifOffered = Plaintext, false
	return dial(ctx, cfg)
}

// startTLSRefused reports Dial's error for a server that answered STARTTLS
// with NO or BAD, as opposed to a failed handshake or a later step.
func startTLSRefused(err error) bool {
	var ce *errlog.CriticalError
	var imapErr *imap.Error
	return errors.As(err, &ce) && ce.Type == "tls_failed" && errors.As(err, &imapErr)
}

// Security is how the connection is protected: never StartTLSIfOffered,
// but what that turned out to be.
func (c *Conn) Security() Security { return c.cfg.Security }

// maxGreeting bounds the greeting line peekGreeting reads.
const maxGreeting = 8 << 10

// peekGreeting reads the server's greeting line and returns a connection
// that hands it to the IMAP client again, with the security to use:
// Plaintext when the greeting's CAPABILITY code lacks STARTTLS, StartTLS
// otherwise (offered, or not said).
func peekGreeting(conn net.Conn) (net.Conn, Security, error) {
	var line []byte
	b := make([]byte, 1)
	// Byte by byte, so as not to read past the line: the TLS handshake
	// that follows STARTTLS must reach the client whole.
	for len(line) < maxGreeting && !bytes.HasSuffix(line, []byte("\n")) {
		if _, err := io.ReadFull(conn, b); err != nil {
			return conn, StartTLS, err
		}
		line = append(line, b[0])
	}
	replay := &replayConn{Conn: conn, r: io.MultiReader(bytes.NewReader(line), conn)}
	if caps, ok := greetingCaps(string(line)); ok && !slices.Contains(caps, "STARTTLS") {
		return replay, Plaintext, nil
	}
	return replay, StartTLS, nil
}

// greetingCaps returns the capabilities a greeting such as
// "* OK [CAPABILITY IMAP4rev1 STARTTLS] ready" lists, upper-cased, and
// whether it lists any.
func greetingCaps(line string) ([]string, bool) {
	upper := strings.ToUpper(line)
	if !strings.HasPrefix(upper, "* OK [CAPABILITY ") && !strings.HasPrefix(upper, "* PREAUTH [CAPABILITY ") {
		return nil, false
	}
	_, rest, _ := strings.Cut(upper, "[CAPABILITY ")
	list, _, ok := strings.Cut(rest, "]")
	if !ok {
		return nil, false
	}
	return strings.Fields(list), true
}

// replayConn reads from r, which starts with bytes already read off Conn.
type replayConn struct {
	net.Conn
	r io.Reader
}

func (c *replayConn) Read(p []byte) (int, error) { return c.r.Read(p) }
