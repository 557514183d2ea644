package pipeline

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/cenkalti/backoff/v4"
	"github.com/emersion/go-imap/v2"
	"github.com/myhibachi/backfill/errlog"
	"github.com/myhibachi/backfill/imapsrc"
)

// conns hands a run's workers their IMAP connections: it opens them,
// dials the other workers' while the first one lists (predial), lets a
// worker the server will not admit step aside (retire), and closes what no
// worker took.
type conns struct {
	cfg     imapsrc.Config // guarded by mu: Security is settled by the first connection
	workers int
	log     *errlog.Log
	// retry retries a connection attempt for --retry-for (runner.retryOp).
	retry func(ctx context.Context, what string, op func(*attempts) error) error

	mu sync.Mutex
	// working counts workers that have not retired; retired, those that did.
	working, retired int

	// spare receives the workers' connections dialled while the first one
	// lists the mailbox (see predial); nil when none were.
	spare       chan *imapsrc.Conn
	predialed   sync.Once
	stopPredial context.CancelFunc
}

// config is the configuration connections are made with, its Security
// settled once the first connection found whether STARTTLS is offered.
func (c *conns) config() imapsrc.Config {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cfg
}

// dial dials and logs in.
func (c *conns) dial(ctx context.Context) (*imapsrc.Conn, error) {
	cfg := c.config()
	conn, err := imapsrc.Dial(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if cfg.Security == imapsrc.StartTLSIfOffered {
		// What the first connection found holds for the rest: later ones
		// need not ask again.
		c.mu.Lock()
		c.cfg.Security = conn.Security()
		c.mu.Unlock()
	}
	return conn, nil
}

// open dials, logs in and selects the mailbox read-only: every connection
// of a run starts so.
func (c *conns) open(ctx context.Context) (*imapsrc.Conn, imapsrc.Mailbox, error) {
	conn, err := c.dial(ctx)
	if err != nil {
		return nil, imapsrc.Mailbox{}, err
	}
	mbox, err := conn.SelectReadOnly(ctx, c.config().Mailbox)
	if err != nil {
		conn.Close()
		return nil, mbox, err
	}
	return conn, mbox, nil
}

// openAt opens a connection for fetching by the UIDs listed under
// uidValidity. A mailbox found under another UIDVALIDITY has renumbered
// its messages: the UIDs this run holds now name other messages, or none,
// and fetching by them would store the wrong mail under the old
// numbering. It stops the run (see uidValidityChanged).
func (c *conns) openAt(ctx context.Context, uidValidity uint32) (*imapsrc.Conn, error) {
	conn, mbox, err := c.open(ctx)
	if err != nil {
		return nil, err
	}
	if mbox.UIDValidity != uidValidity {
		conn.Close()
		return nil, uidValidityChanged(mbox.Name, uidValidity, mbox.UIDValidity)
	}
	return conn, nil
}

// start sets how many workers the run begins with.
func (c *conns) start(workers int) {
	c.mu.Lock()
	c.working = workers
	c.mu.Unlock()
}

// retirements is how many workers gave up their place (see retire).
func (c *conns) retirements() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.retired
}

// retire lets a worker leave if another one is still working, so the run
// never stalls with nobody left to fetch.
func (c *conns) retire() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.working <= 1 {
		return false
	}
	c.working--
	c.retired++
	return true
}

// errRetired ends a worker that gave up its place: the run goes on with the
// connections the server did admit.
var errRetired = errors.New("worker retired")

// retireAfter is how many refused connection attempts make a worker step
// aside while others are still working. A refusal that names the
// account's connection limit (errlog.Throttle.TooManyConnections) makes it
// step aside at the first.
const retireAfter = 3

// join gets a worker a connection. Providers cap simultaneous connections
// per account (Gmail, Dovecot's mail_max_userip_connections) and refuse the
// extra ones with [LIMIT], [UNAVAILABLE], BYE or a NO saying "Too many
// simultaneous connections": a worker refused a few times, or once for
// too many connections, retires as long as another is still working; the last one retries
// for the whole --retry-for. A mailbox found under another UIDVALIDITY than
// uidValidity, the listing's, stops the run (uidValidityChanged).
func (c *conns) join(ctx context.Context, uidValidity uint32) (*imapsrc.Conn, error) {
	if conn := c.spareConn(ctx); conn != nil {
		return conn, nil
	}
	var conn *imapsrc.Conn
	err := c.retry(ctx, "IMAP connection", func(a *attempts) error {
		var err error
		conn, err = c.openAt(ctx, uidValidity)
		if err != nil && ctx.Err() == nil && errlog.Classify(err) == errlog.Transient &&
			(a.n >= retireAfter || tooManyConnections(err)) && c.retire() {
			c.log.Add(errlog.Entry{
				Severity: errlog.SeverityWarning, Category: errlog.Transient, ErrorType: "connection_refused",
				Message: refusal(err), Attempts: a.n,
			})
			return backoff.Permanent(errRetired)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return conn, nil
}

// refusal says why a worker stepped aside, the server's answer first: the
// closing block shows only the start of it.
func refusal(err error) string {
	var imapErr *imap.Error
	if errors.As(err, &imapErr) {
		return fmt.Sprintf("server refused another connection (%v); continuing with fewer: %v", imapErr, err)
	}
	return fmt.Sprintf("server refused another connection; continuing with fewer: %v", err)
}

// tooManyConnections reports a server refusing a connection for the
// account's connection limit.
func tooManyConnections(err error) bool {
	t, ok := errlog.Throttled(err)
	return ok && t.TooManyConnections
}

// predial dials other workers' connections as soon as the first one is
// logged in and has selected the mailbox, so that they are ready when
// listing ends: over a slow link each costs several round trips (TCP, TLS,
// greeting, LOGIN, SELECT). count, asked meanwhile, says how many are sure
// to be needed: none for a mailbox with nothing left to fetch. It runs
// once, and only after the first login worked, so a wrong password is
// never tried more than once. A connection it cannot make is left to the
// worker, which handles refusals (join), and so is one that finds the
// mailbox under another UIDVALIDITY than the first connection's, which
// would fetch by UIDs that name other messages (openAt).
func (c *conns) predial(ctx context.Context, uidValidity uint32, count func(context.Context) int) {
	if c.workers < 2 {
		return
	}
	c.predialed.Do(func() {
		c.spare = make(chan *imapsrc.Conn, c.workers-1)
		ctx, c.stopPredial = context.WithCancel(ctx)
		go func() {
			defer close(c.spare)
			var wg sync.WaitGroup
			for range min(count(ctx), c.workers-1) {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if conn, err := c.openAt(ctx, uidValidity); err == nil {
						c.spare <- conn
					}
				}()
			}
			wg.Wait()
		}()
	})
}

// spareConn waits for a pre-dialled connection; nil when there is none left.
func (c *conns) spareConn(ctx context.Context) *imapsrc.Conn {
	if c.spare == nil {
		return nil
	}
	select {
	case conn := <-c.spare:
		return conn
	case <-ctx.Done():
		return nil
	}
}

// closeSpares closes pre-dialled connections no worker took, cutting short
// a dial still under way rather than waiting out its timeout.
func (c *conns) closeSpares() {
	if c.spare == nil {
		return
	}
	c.stopPredial()
	for conn := range c.spare {
		conn.Close()
	}
}
