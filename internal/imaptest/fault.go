package imaptest

import (
	"crypto/tls"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
)

// FetchHook runs before the server answers each FETCH or UID FETCH command.
// n counts those commands over all connections, from 1. Returning nil answers
// normally; ErrDropConnection cuts the connection part-way through the answer,
// as a network failure or a restarting server does; any other error answers
// NO with its text (an *imap.Error is sent as it is). The hook may sleep to
// make the server slow.
type FetchHook func(n int) error

// ErrDropConnection makes a FetchHook cut the connection.
var ErrDropConnection = errors.New("imaptest: drop connection")

// dropAfter is how many bytes of the answer reach the client before the cut:
// past the first literal's opening for any real message, so the client is
// left holding a truncated body rather than a clean error.
const dropAfter = 1024

// WithFetchHook calls h before every FETCH; see FetchHook.
func WithFetchHook(h FetchHook) Option {
	return func(c *config) { c.fetchHook = h }
}

// FailFetch cuts the connection during the nth FETCH or UID FETCH command the
// server receives (counted over all connections, from 1), once. A client
// that reconnects and asks again succeeds.
func FailFetch(n int) Option {
	return WithFetchHook(func(i int) error {
		if i == n {
			return ErrDropConnection
		}
		return nil
	})
}

// LoginHook runs before the server checks each LOGIN. n counts LOGIN
// commands over all connections, from 1; active is how many sessions are
// logged in and still open, this one not included. Returning nil goes on
// with the login; an error answers NO with its text (an *imap.Error is sent
// as it is), as a server at its connection limit or throttling does.
type LoginHook func(n, active int) error

// WithLoginHook calls h before every LOGIN; see LoginHook.
func WithLoginHook(h LoginHook) Option {
	return func(c *config) { c.loginHook = h }
}

// GreetingHook runs as each connection is accepted, before the greeting.
// open is how many connections are open, this one not included. Returning
// nil greets normally; an *imap.Error of type BYE is sent as the greeting
// and the connection closed, as a server at its connection limit does.
type GreetingHook func(open int) error

// WithGreetingHook calls h for every new connection; see GreetingHook.
func WithGreetingHook(h GreetingHook) Option {
	return func(c *config) { c.greetingHook = h }
}

// session is imapmemserver's session with the fault hooks in front. It embeds
// SessionIMAP4rev2, not Session: the server checks for the wider interface
// when it advertises IMAP4rev2 and panics without it.
type session struct {
	imapserver.SessionIMAP4rev2
	srv      *Server
	conn     *imapserver.Conn
	loggedIn bool
}

// List answers from the test's own record of mailboxes once one has a
// special use, which imapmemserver would not show (see
// CreateSpecialMailbox); otherwise as imapmemserver does.
func (s *session) List(w *imapserver.ListWriter, ref string, patterns []string, options *imap.ListOptions) error {
	s.srv.namesMu.Lock()
	names, uses := slices.Clone(s.srv.names), maps.Clone(s.srv.uses)
	s.srv.namesMu.Unlock()
	if len(uses) == 0 {
		return s.SessionIMAP4rev2.List(w, ref, patterns, options)
	}
	if options == nil {
		options = &imap.ListOptions{}
	}
	slices.Sort(names)
	for _, name := range names {
		if !slices.ContainsFunc(patterns, func(p string) bool { return imapserver.MatchList(name, mailboxDelim, ref, p) }) {
			continue
		}
		data := &imap.ListData{Mailbox: name, Delim: mailboxDelim}
		use, ok := uses[name]
		if options.SelectSpecialUse && !ok {
			continue
		}
		if ok && (options.ReturnSpecialUse || options.SelectSpecialUse) {
			data.Attrs = append(data.Attrs, use)
		}
		if err := w.WriteList(data); err != nil {
			return err
		}
	}
	return nil
}

// mailboxDelim is imapmemserver's hierarchy separator.
const mailboxDelim = '/'

func (s *session) Login(username, password string) error {
	_, overTLS := s.conn.NetConn().(*tls.Conn)
	if !overTLS {
		s.srv.plainAttempts.Add(1)
	}
	s.srv.loginMu.Lock()
	defer s.srv.loginMu.Unlock()
	n := int(s.srv.loginTries.Add(1))
	if h := s.srv.cfg.loginHook; h != nil {
		if err := h(n, int(s.srv.loggedIn.Load())); err != nil {
			var imapErr *imap.Error
			if errors.As(err, &imapErr) {
				return err
			}
			return &imap.Error{Type: imap.StatusResponseTypeNo, Text: err.Error()}
		}
	}
	if err := s.SessionIMAP4rev2.Login(username, password); err != nil {
		return err
	}
	s.loggedIn = true
	s.srv.loggedIn.Add(1)
	s.srv.logins.Add(1)
	if overTLS {
		s.srv.tlsLogins.Add(1)
	}
	return nil
}

func (s *session) Close() error {
	s.srv.openMu.Lock()
	s.srv.open--
	s.srv.openMu.Unlock()
	if s.loggedIn {
		s.loggedIn = false
		s.srv.loggedIn.Add(-1)
	}
	return s.SessionIMAP4rev2.Close()
}

func (s *session) Fetch(w *imapserver.FetchWriter, numSet imap.NumSet, options *imap.FetchOptions) error {
	n := int(s.srv.fetches.Add(1))
	s.countBodies(numSet, options)
	if h := s.srv.cfg.fetchHook; h != nil {
		err := h(n)
		var imapErr *imap.Error
		switch {
		case errors.Is(err, ErrDropConnection):
			return s.drop(w, numSet, options)
		case errors.As(err, &imapErr):
			return err
		case err != nil:
			return &imap.Error{Type: imap.StatusResponseTypeNo, Text: err.Error()}
		}
	}
	return s.SessionIMAP4rev2.Fetch(w, numSet, options)
}

// countBodies adds a UID FETCH's UIDs to those asked for whole or in pieces.
func (s *session) countBodies(numSet imap.NumSet, options *imap.FetchOptions) {
	uids, ok := numSet.(imap.UIDSet)
	if !ok || len(options.BodySection) == 0 {
		return
	}
	n := 0
	for _, r := range uids {
		if r.Stop >= r.Start {
			n += int(r.Stop-r.Start) + 1
		}
	}
	for _, sec := range options.BodySection {
		if sec.Specifier == imap.PartSpecifierNone && len(sec.Part) == 0 && sec.Partial == nil {
			s.srv.wholeAsked.Add(int64(n))
			return
		}
	}
	s.srv.piecesAsked.Add(int64(n))
}

// drop answers the FETCH until dropAfter bytes have gone out, then closes the
// connection, so the tagged completion never arrives.
func (s *session) drop(w *imapserver.FetchWriter, numSet imap.NumSet, options *imap.FetchOptions) error {
	nc := s.conn.NetConn()
	if cc, ok := nc.(*cutConn); ok {
		cc.cutAfter(dropAfter)
		_ = s.SessionIMAP4rev2.Fetch(w, numSet, options) // fails once the cut happens
	}
	nc.Close()
	// An *imap.Error keeps the server from logging this as its own fault;
	// the NO it tries to send goes nowhere.
	return &imap.Error{Type: imap.StatusResponseTypeNo, Text: "connection dropped by imaptest"}
}

// cutListener hands out connections that can be cut after a byte budget,
// counts them in accepted and the bytes they write in sent.
type cutListener struct {
	net.Listener
	sent, accepted *atomic.Int64
}

func (l cutListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.accepted.Add(1)
	return &cutConn{Conn: c, budget: -1, sent: l.sent}, nil
}

type cutConn struct {
	net.Conn
	mu     sync.Mutex
	budget int // bytes still allowed; -1 for no limit
	sent   *atomic.Int64
}

func (c *cutConn) cutAfter(n int) {
	c.mu.Lock()
	c.budget = n
	c.mu.Unlock()
}

func (c *cutConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.budget < 0 || len(p) <= c.budget {
		n, err := c.Conn.Write(p)
		c.sent.Add(int64(n))
		if c.budget >= 0 {
			c.budget -= n
		}
		return n, err
	}
	n, _ := c.Conn.Write(p[:c.budget])
	c.sent.Add(int64(n))
	c.budget = 0
	c.Conn.Close()
	// Wrapping net.ErrClosed keeps the server from logging the failed write
	// as a fault of its own.
	return n, fmt.Errorf("imaptest: connection cut: %w", net.ErrClosed)
}
