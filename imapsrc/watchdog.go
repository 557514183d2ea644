package imapsrc

import (
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// defaultSilence is how long a server may send nothing while an answer is
// due before the connection counts as dead.
const defaultSilence = 60 * time.Second

// watchdogConn fails a read when the server stays silent for too long while
// a command is outstanding. go-imap waits for the start of every response
// with no deadline and allows five minutes per literal, so a stalled server
// would otherwise hold a run for minutes or for ever; a read timeout is a
// transient error, and the caller reconnects and resumes.
type watchdogConn struct {
	net.Conn
	silence time.Duration
	busy    atomic.Bool // a command is outstanding
	// readFailed is set once a read from the socket fails: it tells a
	// network failure from go-imap closing a healthy connection on a
	// response it could not parse.
	readFailed atomic.Bool

	mu      sync.Mutex
	libDead time.Time // the read deadline go-imap asked for, zero for none
	readErr error     // the first failed read's error, returned from then on
}

func (c *watchdogConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	c.libDead = t
	c.mu.Unlock()
	return c.Conn.SetReadDeadline(t)
}

func (c *watchdogConn) SetDeadline(t time.Time) error {
	if err := c.SetReadDeadline(t); err != nil {
		return err
	}
	return c.Conn.SetWriteDeadline(t)
}

// Read fails for good once a read has failed. bufio hands a read error out
// only once, and go-imap's decoder then reads again, up to four times in one
// response: a silent server would otherwise hold a command for four times
// the silence (each read waits it anew), and a timed-out read could be
// followed by bytes from the middle of a response.
func (c *watchdogConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	failed := c.readErr
	c.mu.Unlock()
	if failed != nil {
		return 0, failed
	}
	if err := c.Conn.SetReadDeadline(c.deadline()); err != nil {
		return 0, err
	}
	n, err := c.Conn.Read(p)
	if err != nil {
		c.mu.Lock()
		if c.readErr == nil {
			c.readErr = err
		}
		c.mu.Unlock()
		c.readFailed.Store(true)
	}
	return n, err
}

// failed reports whether a read from the socket has failed.
func (c *watchdogConn) failed() bool { return c.readFailed.Load() }

// arm starts or stops watching. Setting the deadline here, not only in
// Read, matters: go-imap's reader is usually already blocked in a Read begun
// while the connection was idle, and a new deadline applies to it too.
func (c *watchdogConn) arm(on bool) {
	c.busy.Store(on)
	_ = c.Conn.SetReadDeadline(c.deadline()) // a closed conn fails its next read anyway
}

// deadline is go-imap's own deadline, tightened to now+silence while a
// command is outstanding.
func (c *watchdogConn) deadline() time.Time {
	c.mu.Lock()
	deadline := c.libDead
	c.mu.Unlock()
	if c.busy.Load() {
		if limit := time.Now().Add(c.silence); deadline.IsZero() || limit.Before(deadline) {
			deadline = limit
		}
	}
	return deadline
}
