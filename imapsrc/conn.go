package imapsrc

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/myhibachi/backfill/errlog"
)

// Conn is one logged-in IMAP connection. It is not for concurrent use: one
// fetch worker owns one Conn, because a literal left unread blocks every
// other command on the connection.
type Conn struct {
	c   *imapclient.Client
	cfg Config
	wd  *watchdogConn
	// buf is reused for every body this connection reads, so a backfill
	// does not allocate (and zero, and collect) its whole mailbox.
	buf []byte
	// gmail: the server has Gmail's extensions (X-GM-EXT-1), so every
	// fetch also asks for its message id, thread id and labels.
	gmail bool
}

// maxReusedBuffer caps the body buffer a connection keeps between
// messages; a rare larger message gets a buffer of its own.
const maxReusedBuffer = 8 << 20

// Mailbox is what SELECT reports.
type Mailbox struct {
	Name        string
	UIDValidity uint32
	UIDNext     uint32
	Messages    uint32
	// HighestModSeq is the mailbox's mod-sequence when selected with
	// CONDSTORE (SelectFollow); 0 otherwise.
	HighestModSeq uint64
}

// Dial connects, upgrades to TLS as configured and logs in. Refused
// credentials are critical errors; refusals for load ([LIMIT],
// [UNAVAILABLE], BYE) stay transient so callers can back off.
func Dial(ctx context.Context, cfg Config) (*Conn, error) {
	for {
		if cfg.Token != nil {
			// The token command runs before connecting: a server waits
			// only so long for a login.
			cfg.tokenSince = time.Now()
			if _, _, err := cfg.Token.Token(ctx); err != nil {
				return nil, tokenError(ctx, err)
			}
		}
		conn, err := dial(ctx, cfg)
		if !errors.Is(err, errKeptTokenRefused) || cfg.lastToken {
			return conn, err
		}
		// The token kept from an earlier connection has expired: once
		// more, on a new connection, with a new token.
		cfg.lastToken = true
	}
}

func dial(ctx context.Context, cfg Config) (*Conn, error) {
	if cfg.Security == StartTLSIfOffered {
		return dialStartTLSIfOffered(ctx, cfg)
	}
	timeout := cfg.timeout()
	d := net.Dialer{Timeout: timeout}
	tcp, err := d.DialContext(ctx, "tcp", cfg.Addr())
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", cfg.Addr(), err)
	}
	wd := &watchdogConn{Conn: tcp, silence: cfg.silence()}
	wd.arm(true) // greeting and login are answers due
	var raw net.Conn = wd
	// go-imap takes no context: closing the socket is what unblocks it.
	stop := context.AfterFunc(ctx, func() { raw.Close() })
	defer stop()
	if cfg.ifOffered {
		if raw, cfg.Security, err = peekGreeting(raw); err != nil {
			raw.Close()
			return nil, fmt.Errorf("greeting from %s: %w", cfg.Addr(), ctxErr(ctx, err))
		}
	}

	tlsConfig := cfg.TLSConfig
	if tlsConfig == nil {
		tlsConfig = &tls.Config{ServerName: cfg.Host, MinVersion: tls.VersionTLS12, RootCAs: cfg.RootCAs}
	}
	opts := &imapclient.Options{TLSConfig: tlsConfig}
	if cfg.Changes != nil {
		opts.UnilateralDataHandler = cfg.Changes.handler()
	}
	var c *imapclient.Client
	switch cfg.Security {
	case ImplicitTLS:
		conn := tls.Client(raw, tlsConfig)
		if err := conn.HandshakeContext(ctx); err != nil {
			raw.Close()
			return nil, tlsError(fmt.Errorf("TLS handshake with %s: %w", cfg.Addr(), ctxErr(ctx, err)))
		}
		c = imapclient.New(conn, opts)
	case StartTLS:
		c, err = imapclient.NewStartTLS(raw, opts)
		if err != nil {
			raw.Close()
			return nil, tlsError(fmt.Errorf("STARTTLS with %s: %w", cfg.Addr(), ctxErr(ctx, err)))
		}
	default:
		c = imapclient.New(raw, opts)
	}
	if err := c.WaitGreeting(); err != nil {
		c.Close()
		return nil, fmt.Errorf("greeting from %s: %w", cfg.Addr(), ctxErr(ctx, err))
	}
	if err := login(ctx, c, cfg); err != nil {
		c.Close()
		return nil, err
	}
	// Capabilities change at login; most servers send the new ones with
	// its answer, the others are asked once.
	gmail := c.Caps().Has(imap.CapGmailExt1)
	wd.arm(false)
	return &Conn{c: c, cfg: cfg, wd: wd, gmail: gmail}, nil
}

// login logs in with the password, or with an OAuth2 token when the
// configuration has a token source.
func login(ctx context.Context, c *imapclient.Client, cfg Config) error {
	if cfg.Token != nil {
		return authenticateBearer(ctx, c, cfg)
	}
	if err := c.Login(cfg.Username, cfg.Password).Wait(); err != nil {
		err = ctxErr(ctx, err)
		if refused(err) {
			return &errlog.CriticalError{Type: "login_failed", Err: fmt.Errorf("login to %s as %s refused: %w", cfg.Addr(), cfg.Username, err)}
		}
		return fmt.Errorf("login to %s as %s: %w", cfg.Addr(), cfg.Username, err)
	}
	return nil
}

// tlsError marks a failed TLS setup critical when retrying cannot help: a
// certificate that fails verification, a protocol either side refuses, or a
// server that refuses STARTTLS. A connection reset, an EOF or a timeout
// during the handshake is a network fault like any other and stays
// transient (errlog.TLSHandshake decides, by type).
func tlsError(err error) error {
	var imapErr *imap.Error
	if errors.As(err, &imapErr) {
		if imapErr.Type == imap.StatusResponseTypeBye {
			return err // a server too busy to talk: later, perhaps
		}
		return &errlog.CriticalError{Type: "tls_failed", Err: err}
	}
	if errlog.TLSHandshake(err) == errlog.Critical {
		return &errlog.CriticalError{Type: "tls_failed", Err: err}
	}
	return err
}

// refused reports a NO from the server about the request itself (bad
// password, no such mailbox), as opposed to one about its load ([LIMIT],
// [UNAVAILABLE], [INUSE]), which is worth retrying later.
func refused(err error) bool {
	var imapErr *imap.Error
	if !errors.As(err, &imapErr) || imapErr.Type != imap.StatusResponseTypeNo {
		return false
	}
	if _, ok := errlog.Throttled(err); ok {
		return false // [THROTTLED], too many connections: try again later
	}
	switch imapErr.Code {
	case imap.ResponseCodeLimit, imap.ResponseCodeUnavailable, imap.ResponseCodeInUse, imap.ResponseCodeServerBug:
		return false
	}
	return true
}

// Close logs out politely when it can and closes the connection.
func (c *Conn) Close() error {
	done := make(chan struct{})
	go func() {
		c.c.Logout().Wait() //nolint:errcheck // best effort before closing
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
	}
	return c.c.Close()
}

// SelectReadOnly examines the mailbox (EXAMINE), so that nothing, not even
// \Seen, changes on the server.
func (c *Conn) SelectReadOnly(ctx context.Context, name string) (Mailbox, error) {
	stop := c.closeOn(ctx)
	defer stop()
	data, err := c.c.Select(name, &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil {
		err = ctxErr(ctx, err)
		if refused(err) {
			return Mailbox{}, &errlog.CriticalError{Type: "mailbox_missing", Err: fmt.Errorf("select mailbox %q: %w", name, err)}
		}
		return Mailbox{}, fmt.Errorf("select mailbox %q: %w", name, err)
	}
	return Mailbox{Name: name, UIDValidity: data.UIDValidity, UIDNext: uint32(data.UIDNext), Messages: data.NumMessages}, nil
}

// ListUIDs returns every UID in the selected mailbox, ascending. Plain UID
// SEARCH ALL works on every server (ESEARCH is not assumed).
func (c *Conn) ListUIDs(ctx context.Context) ([]uint32, error) {
	return c.ListUIDsFrom(ctx, 0)
}

// ListUIDsFrom returns the UIDs from first up, ascending: UID SEARCH UID
// first:*, so that the answer is as long as what is new, not as the
// mailbox. first 0 or 1 lists every UID (SEARCH ALL).
func (c *Conn) ListUIDsFrom(ctx context.Context, first uint32) ([]uint32, error) {
	stop := c.closeOn(ctx)
	defer stop()
	criteria := &imap.SearchCriteria{}
	if first > 1 {
		var set imap.UIDSet
		set.AddRange(imap.UID(first), 0) // 0 is "*"
		criteria.UID = []imap.UIDSet{set}
	}
	data, err := c.c.UIDSearch(criteria, nil).Wait()
	if err != nil {
		return nil, fmt.Errorf("list UIDs: %w", ctxErr(ctx, err))
	}
	uids := data.AllUIDs()
	out := make([]uint32, 0, len(uids))
	for _, u := range uids {
		// "n:*" names the highest UID even when it is below n (RFC 3501
		// 6.4.8): a mailbox with nothing new answers with an old message.
		if uint32(u) >= first {
			out = append(out, uint32(u))
		}
	}
	slices.Sort(out)
	return out, nil
}

// fetchWhole fetches the given UIDs whole in one UID FETCH, calling fn for
// each message in server order. Bodies larger than maxSize are drained
// without being kept.
func (c *Conn) fetchWhole(uids []uint32, maxSize int64, fn func(Fetched) error) error {
	if len(uids) == 0 {
		return nil
	}
	set := uidSet(uids)
	cmd := c.c.Fetch(set, &imap.FetchOptions{
		UID:           true,
		InternalDate:  true,
		RFC822Size:    true,
		Flags:         true,
		BodySection:   []*imap.FetchItemBodySection{{Peek: true}},
		GmailMsgID:    c.gmail,
		GmailThreadID: c.gmail,
		GmailLabels:   c.gmail,
	})
	for {
		msg := cmd.Next()
		if msg == nil {
			break
		}
		f, err := c.readMessage(msg, maxSize)
		if err != nil {
			// go-imap lets its reader resume as soon as a literal read
			// fails, so draining the command now would race with it on the
			// socket. The connection is broken anyway: close it instead.
			c.c.Close()
			return fmt.Errorf("fetch UIDs %s: %w", set, err)
		}
		if f.UID == 0 || (f.Body == nil && !f.Oversized) {
			continue // not a body response for this command
		}
		if err := fn(f); err != nil {
			cmd.Close() //nolint:errcheck // fn's error is the one to report
			return err
		}
	}
	if err := cmd.Close(); err != nil {
		return fmt.Errorf("fetch UIDs %s: %w", set, err)
	}
	return nil
}

func (c *Conn) readMessage(msg *imapclient.FetchMessageData, maxSize int64) (Fetched, error) {
	var f Fetched
	for {
		item := msg.Next()
		if item == nil {
			return f, nil
		}
		switch item := item.(type) {
		case imapclient.FetchItemDataUID:
			f.UID = uint32(item.UID)
		case imapclient.FetchItemDataInternalDate:
			f.InternalDate = item.Time
		case imapclient.FetchItemDataRFC822Size:
			f.Size = item.Size
		case imapclient.FetchItemDataFlags:
			f.Flags = flagStrings(item.Flags)
		case imapclient.FetchItemDataGmailMsgID:
			f.GmailMsgID = item.MsgID
		case imapclient.FetchItemDataGmailThreadID:
			f.GmailThreadID = item.ThreadID
		case imapclient.FetchItemDataGmailLabels:
			f.GmailLabels = item.Labels
		case imapclient.FetchItemDataBodySection:
			if item.Literal == nil {
				continue
			}
			size := item.Literal.Size()
			f.Transferred += size
			if f.Size == 0 {
				f.Size = size
			}
			if maxSize > 0 && size > maxSize {
				// Drain the literal so the connection stays usable.
				if _, err := io.Copy(io.Discard, item.Literal); err != nil {
					return f, fmt.Errorf("skip oversized body: %w", err)
				}
				f.Oversized = true
				continue
			}
			body := c.body(size)
			if _, err := io.ReadFull(item.Literal, body); err != nil {
				return f, fmt.Errorf("read body: %w", err)
			}
			f.Body = body
		}
	}
}

// body returns a slice of n bytes, from the connection's reused buffer when
// it is not too large.
func (c *Conn) body(n int64) []byte {
	if n > maxReusedBuffer {
		return make([]byte, n)
	}
	if int64(cap(c.buf)) < n {
		c.buf = make([]byte, n, max(n, 2*int64(cap(c.buf))))
	}
	return c.buf[:n]
}

// FetchMessageIDs returns the Message-ID header of each UID, for dry runs
// that want to know what is new without downloading bodies. Messages with no
// Message-ID are absent from the map.
func (c *Conn) FetchMessageIDs(ctx context.Context, uids []uint32) (map[uint32]string, error) {
	stop := c.closeOn(ctx)
	defer stop()
	set := uidSet(uids)
	section := &imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader, HeaderFields: []string{"Message-ID"}, Peek: true}
	msgs, err := c.c.Fetch(set, &imap.FetchOptions{UID: true, BodySection: []*imap.FetchItemBodySection{section}}).Collect()
	if err != nil {
		return nil, fmt.Errorf("fetch Message-IDs: %w", ctxErr(ctx, err))
	}
	ids := make(map[uint32]string, len(msgs))
	for _, m := range msgs {
		if id := headerMessageID(m.FindBodySection(section)); id != "" {
			ids[uint32(m.UID)] = id
		}
	}
	return ids, nil
}

// closeOn starts a command: it arms the silence watchdog and closes the
// client when ctx is cancelled, which makes any pending command return. The
// returned func ends both.
func (c *Conn) closeOn(ctx context.Context) func() {
	c.wd.arm(true)
	stop := context.AfterFunc(ctx, func() { c.c.Close() })
	return func() {
		stop()
		c.wd.arm(false)
	}
}

func (c Config) timeout() time.Duration {
	if c.Timeout > 0 {
		return c.Timeout
	}
	return 30 * time.Second
}

func (c Config) silence() time.Duration {
	if c.Silence > 0 {
		return c.Silence
	}
	return defaultSilence
}

// ctxErr prefers the context's error: after a cancellation the client's own
// error ("use of closed connection") says nothing useful.
func ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%w (%v)", ctx.Err(), err)
	}
	return err
}
