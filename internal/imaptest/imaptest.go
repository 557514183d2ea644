// Package imaptest runs a real IMAP server in-process, on loopback, for tests
// and the demo: go-imap v2's imapserver over its in-memory imapmemserver
// backend, with one user and an INBOX, plus hooks that inject faults.
package imaptest

import (
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"

	"github.com/myhibachi/backfill/internal/mailgen"
)

// DefaultUsername is the user Start creates unless WithUser says otherwise.
const DefaultUsername = "support@example.com"

// Inbox is the mailbox every server starts with.
const Inbox = "INBOX"

// Server is a running IMAP server with one user.
type Server struct {
	Username string
	Password string

	// namesMu guards names, the mailboxes made through CreateMailbox and
	// CreateSpecialMailbox (INBOX too), and uses, their special uses.
	namesMu sync.Mutex
	names   []string
	uses    map[string]imap.MailboxAttr

	cfg     config
	mem     *imapmemserver.Server
	user    *imapmemserver.User
	imap    *imapserver.Server
	ln      net.Listener
	served  chan struct{} // closed when Serve returns
	log     *gatedLogger
	fetches atomic.Int64
	logins  atomic.Int64
	// loginTries counts LOGIN commands; loggedIn, sessions logged in and
	// not yet closed (see LoginHook).
	loginTries, loggedIn atomic.Int64
	// loginMu makes a LoginHook's view of loggedIn exact: logins are
	// checked one at a time.
	loginMu sync.Mutex
	// open counts sessions greeted and not yet closed; openMu makes a
	// GreetingHook's view of it exact.
	open   int
	openMu sync.Mutex
	// tlsLogins counts accepted logins over TLS; plainAttempts, logins tried
	// (accepted or not) in plaintext.
	tlsLogins, plainAttempts atomic.Int64
	sent                     atomic.Int64 // bytes written to clients
	conns                    atomic.Int64 // connections accepted
	// wholeAsked and piecesAsked count the UIDs of UID FETCH commands that
	// asked for whole messages, and for body sections only.
	wholeAsked, piecesAsked atomic.Int64

	closeOnce sync.Once
	closeErr  error
}

// Option configures a Server.
type Option func(*config)

type config struct {
	username, password string
	caps               imap.CapSet
	fetchHook          FetchHook
	loginHook          LoginHook
	greetingHook       GreetingHook
	wrap               func(imapserver.SessionIMAP4rev2, *imapserver.Conn) imapserver.SessionIMAP4rev2
	debug              io.Writer
	tls                *tls.Config
}

// WithUser sets the user name and password instead of DefaultUsername and a
// random password.
func WithUser(username, password string) Option {
	return func(c *config) { c.username, c.password = username, password }
}

// WithCaps sets the advertised capabilities. The default is IMAP4rev1 and
// IMAP4rev2 with their extensions; imap.CapSet{imap.CapIMAP4rev1: {}} makes a
// bare IMAP4rev1 server without ESEARCH, like many older providers.
func WithCaps(caps imap.CapSet) Option {
	return func(c *config) { c.caps = caps }
}

// WithStartTLS offers STARTTLS with cfg's certificate. Plaintext login stays
// allowed, as on a server that leaves TLS to the client.
func WithStartTLS(cfg *tls.Config) Option {
	return func(c *config) { c.tls = cfg }
}

// WithDebug copies the raw protocol traffic, passwords included, to w.
func WithDebug(w io.Writer) Option {
	return func(c *config) { c.debug = w }
}

// WithSession wraps every new session, for faults FetchHook cannot express (a failing SELECT, a slow SEARCH). wrap must
// return a value that embeds the session it is given, so the server keeps
// seeing an IMAP4rev2 session; it may keep conn to close the connection.
func WithSession(wrap func(s imapserver.SessionIMAP4rev2, conn *imapserver.Conn) imapserver.SessionIMAP4rev2) Option {
	return func(c *config) { c.wrap = wrap }
}

// Start runs a server on 127.0.0.1 on a free port, with an empty INBOX, and
// closes it when the test ends. Plaintext only: it is for tests.
func Start(tb testing.TB, opts ...Option) *Server {
	tb.Helper()
	cfg := config{username: DefaultUsername, password: randomPassword()}
	for _, o := range opts {
		o(&cfg)
	}
	s, err := start("127.0.0.1:0", cfg, tb.Logf)
	if err != nil {
		tb.Fatalf("imaptest: %v", err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Errorf("imaptest: close: %v", err)
		}
	})
	return s
}

// NewStandalone runs a server outside a test, for the demo command. addr
// must be a loopback address (plaintext login is never offered elsewhere);
// port 0 picks a free port. The caller must Close it.
func NewStandalone(addr, username, password string, opts ...Option) (*Server, error) {
	if err := CheckLoopback(addr); err != nil {
		return nil, err
	}
	cfg := config{username: username, password: password}
	for _, o := range opts {
		o(&cfg)
	}
	return start(addr, cfg, log.Printf)
}

// CheckLoopback returns an error unless addr is host:port with a loopback IP
// address or "localhost" as host.
func CheckLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("address %q: %w", addr, err)
	}
	if host == "" {
		return fmt.Errorf("address %q listens on every interface; give a loopback address such as 127.0.0.1", addr)
	}
	if host == "localhost" { // loopback by definition (RFC 6761)
		return nil
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("address %q is not a loopback address", addr)
	}
	return nil
}

func start(addr string, cfg config, logf func(string, ...any)) (*Server, error) {
	if cfg.caps == nil {
		cfg.caps = imap.CapSet{imap.CapIMAP4rev1: {}, imap.CapIMAP4rev2: {}}
	}
	s := &Server{
		Username: cfg.username,
		Password: cfg.password,
		cfg:      cfg,
		mem:      imapmemserver.New(),
		user:     imapmemserver.NewUser(cfg.username, cfg.password),
		served:   make(chan struct{}),
		log:      &gatedLogger{printf: logf},
		names:    []string{Inbox},
	}
	if err := s.user.Create(Inbox, nil); err != nil {
		return nil, fmt.Errorf("create %s: %w", Inbox, err)
	}
	s.mem.AddUser(s.user)
	s.imap = imapserver.New(&imapserver.Options{
		NewSession:   s.newSession,
		Caps:         cfg.caps,
		Logger:       s.log,
		InsecureAuth: true, // loopback only: the tests and the demo have no certificates
		DebugWriter:  cfg.debug,
		TLSConfig:    cfg.tls,
	})
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	s.ln = cutListener{Listener: ln, sent: &s.sent, accepted: &s.conns}
	go func() {
		defer close(s.served)
		// Serve fails only when Close came first, and Close reports that.
		_ = s.imap.Serve(s.ln)
	}()
	return s, nil
}

// Addr returns host:port.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// URL returns the mailbox as backfill's inbox configuration spells it, such
// as imap://support%40example.com@127.0.0.1:1143/INBOX.
func (s *Server) URL(mailbox string) string {
	u := url.URL{Scheme: "imap", User: url.User(s.Username), Host: s.Addr(), Path: "/" + mailbox}
	return u.String()
}

// Close stops the server and drops every connection. It is safe to call more
// than once; Start calls it when the test ends.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.closeErr = s.imap.Close()
		// When Close wins the race with Serve's start, Serve never owned the
		// listener and returns at once: close it here.
		if err := s.ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) && s.closeErr == nil {
			s.closeErr = err
		}
		<-s.served
		// Connection goroutines can outlive Close by a moment; after a test
		// has ended, logging through it would panic.
		s.log.close()
	})
	return s.closeErr
}

// Fetches returns how many FETCH and UID FETCH commands the server has
// received, over all connections.
func (s *Server) Fetches() int { return int(s.fetches.Load()) }

// Logins returns how many logins the server has accepted, over all
// connections: how many connections a client really used.
func (s *Server) Logins() int { return int(s.logins.Load()) }

// LoginsOverTLS returns how many logins the server accepted over TLS, and
// how many were tried in plaintext, accepted or not.
func (s *Server) LoginsOverTLS() (tls, plainAttempts int) {
	return int(s.tlsLogins.Load()), int(s.plainAttempts.Load())
}

// Connections returns how many connections the server has accepted.
func (s *Server) Connections() int { return int(s.conns.Load()) }

// BytesSent returns how many bytes the server has written to its clients,
// over all connections: what a client downloaded, protocol included.
func (s *Server) BytesSent() int64 { return s.sent.Load() }

// BodiesAsked returns how many messages UID FETCH commands asked for whole
// (BODY[] or RFC822) and how many in pieces only (body sections), over all
// connections: what a client chose to download, counted by the server.
func (s *Server) BodiesAsked() (whole, pieces int) {
	return int(s.wholeAsked.Load()), int(s.piecesAsked.Load())
}

// AppendRaw stores one message in mailbox, as the APPEND command would, and
// returns its UID.
func (s *Server) AppendRaw(mailbox string, raw []byte, internalDate time.Time, flags ...imap.Flag) (imap.UID, error) {
	data, err := s.user.Append(mailbox, bytes.NewReader(raw), &imap.AppendOptions{Time: internalDate, Flags: flags})
	if err != nil {
		return 0, fmt.Errorf("append to %s: %w", mailbox, err)
	}
	return data.UID, nil
}

// AppendMail stores a generated message with its INTERNALDATE and flags.
func (s *Server) AppendMail(mailbox string, m mailgen.Mail) (imap.UID, error) {
	flags := make([]imap.Flag, len(m.Flags))
	for i, f := range m.Flags {
		flags[i] = imap.Flag(f)
	}
	return s.AppendRaw(mailbox, m.Raw, m.InternalDate, flags...)
}

// Append stores one message in INBOX and returns its UID.
func (s *Server) Append(tb testing.TB, raw []byte, internalDate time.Time, flags ...imap.Flag) imap.UID {
	tb.Helper()
	uid, err := s.AppendRaw(Inbox, raw, internalDate, flags...)
	if err != nil {
		tb.Fatal(err)
	}
	return uid
}

// AppendMails stores generated messages in INBOX, in order, and returns their
// UIDs.
func (s *Server) AppendMails(tb testing.TB, mails []mailgen.Mail) []imap.UID {
	tb.Helper()
	uids := make([]imap.UID, len(mails))
	for i, m := range mails {
		uid, err := s.AppendMail(Inbox, m)
		if err != nil {
			tb.Fatal(err)
		}
		uids[i] = uid
	}
	return uids
}

// Appended is a generated message stored by AppendGenerated.
type Appended struct {
	UID imap.UID
	// Mail is the generated message with Raw set to nil: the server holds
	// the only copy, so tests of 50,000 messages need memory for one.
	Mail mailgen.Mail
}

// AppendGenerated streams n messages from mailgen.Each(seed, n) into INBOX.
func (s *Server) AppendGenerated(tb testing.TB, seed int64, n int) []Appended {
	tb.Helper()
	out := make([]Appended, 0, n)
	err := mailgen.Each(seed, n, func(m mailgen.Mail) error {
		uid, err := s.AppendMail(Inbox, m)
		if err != nil {
			return err
		}
		m.Raw = nil
		out = append(out, Appended{UID: uid, Mail: m})
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

// CreateMailbox adds an empty mailbox.
func (s *Server) CreateMailbox(tb testing.TB, name string) {
	tb.Helper()
	if err := s.user.Create(name, nil); err != nil {
		tb.Fatalf("imaptest: create %s: %v", name, err)
	}
	s.namesMu.Lock()
	defer s.namesMu.Unlock()
	if !slices.Contains(s.names, name) {
		s.names = append(s.names, name)
	}
}

// CreateSpecialMailbox adds an empty mailbox with an RFC 6154 special use
// (\Sent, \Trash, \All, ...). LIST shows the use to clients that ask for
// it (RETURN (SPECIAL-USE)), which needs imap.CapSpecialUse in WithCaps.
// imapmemserver drops the use given to CREATE, so once a test has made a
// special-use mailbox, LIST is answered from the mailboxes the test made
// with this package (see session.List).
func (s *Server) CreateSpecialMailbox(tb testing.TB, name string, use imap.MailboxAttr) {
	tb.Helper()
	s.CreateMailbox(tb, name)
	s.namesMu.Lock()
	defer s.namesMu.Unlock()
	if s.uses == nil {
		s.uses = map[string]imap.MailboxAttr{}
	}
	s.uses[name] = use
}

// RecreateMailbox deletes mailbox and creates it again, empty, which is the
// only way to change its UIDVALIDITY; it returns the new one. Append the
// messages again to model a server that rebuilt its index (mailgen output is
// deterministic, so the same calls give the same messages under new UIDs).
// Connections that had it selected keep seeing the old mailbox.
func (s *Server) RecreateMailbox(tb testing.TB, name string) uint32 {
	tb.Helper()
	if err := s.user.Delete(name); err != nil {
		tb.Fatalf("imaptest: delete %s: %v", name, err)
	}
	s.CreateMailbox(tb, name)
	return s.UIDValidity(tb, name)
}

// UIDValidity returns the mailbox's current UIDVALIDITY.
func (s *Server) UIDValidity(tb testing.TB, name string) uint32 {
	tb.Helper()
	data, err := s.user.Status(name, &imap.StatusOptions{UIDValidity: true})
	if err != nil {
		tb.Fatalf("imaptest: status %s: %v", name, err)
	}
	return data.UIDValidity
}

func (s *Server) newSession(conn *imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
	inner, ok := s.mem.NewSession().(imapserver.SessionIMAP4rev2)
	if !ok {
		// imapmemserver's sessions implement IMAP4rev2; this guards an upgrade.
		return nil, nil, errors.New("imaptest: imapmemserver session does not implement IMAP4rev2")
	}
	s.openMu.Lock()
	if h := s.cfg.greetingHook; h != nil {
		if err := h(s.open); err != nil {
			s.openMu.Unlock()
			return nil, nil, err
		}
	}
	s.open++
	s.openMu.Unlock()
	var sess imapserver.SessionIMAP4rev2 = &session{SessionIMAP4rev2: inner, srv: s, conn: conn}
	if s.cfg.wrap != nil {
		sess = s.cfg.wrap(sess, conn)
	}
	return sess, nil, nil
}

func randomPassword() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return hex.EncodeToString(b)
}

// gatedLogger forwards the IMAP server's log lines until closed.
type gatedLogger struct {
	mu     sync.Mutex
	printf func(string, ...any)
	closed bool
}

func (l *gatedLogger) Printf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.closed {
		l.printf(format, args...)
	}
}

func (l *gatedLogger) close() {
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
}
