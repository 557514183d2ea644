package faultproxy

import (
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// conn is one proxied connection: a client and the proxy's own connection
// to the target.
type conn struct {
	p              *Proxy
	client, server *net.TCPConn

	done chan struct{} // closed by abort: every goroutine of the connection returns
	once sync.Once
}

// chunk is data read from one side, due to be written to the other.
type chunk struct {
	buf *[]byte
	n   int
	due time.Time
}

const (
	chunkSize = 32 << 10
	// queueLen bounds the chunks read ahead of the writer in one
	// direction (512 KiB): a stalled direction pushes its sender back
	// through TCP flow control instead of growing without limit.
	queueLen = 16
	// drainFor bounds how long a reset waits for the receiver to
	// acknowledge the bytes forwarded before it.
	drainFor = 2 * time.Second
)

var chunkPool = sync.Pool{New: func() any { b := make([]byte, chunkSize); return &b }}

// run forwards both directions, each through a reader and a writer so a
// delay or a stall holds the data without blocking the read side, and closes
// both sockets once both directions have ended.
func (c *conn) run(pl plan) {
	var wg sync.WaitGroup
	pipe := func(dst, src *net.TCPConn, dir Direction) {
		queue := make(chan chunk, queueLen)
		wg.Add(2)
		go func() { defer wg.Done(); c.read(src, queue, pl.delay) }()
		go func() { defer wg.Done(); c.write(dst, queue, pl.dirs[dir], &c.p.bytes[dir]) }()
	}
	pipe(c.client, c.server, ServerToClient)
	pipe(c.server, c.client, ClientToServer)
	wg.Wait()
	c.client.Close()
	c.server.Close()
}

// abort ends the connection. With reset, both sides get an RST instead of a
// FIN (SO_LINGER 0), so each peer sees ECONNRESET, as on a real network
// failure, rather than an orderly end of stream.
func (c *conn) abort(reset bool) {
	c.once.Do(func() {
		close(c.done)
		if reset {
			_ = c.client.SetLinger(0)
			_ = c.server.SetLinger(0)
		}
		c.client.Close()
		c.server.Close()
	})
}

// read queues what src sends, stamped with the time it is due.
func (c *conn) read(src *net.TCPConn, queue chan<- chunk, delay time.Duration) {
	defer close(queue)
	for {
		buf := chunkPool.Get().(*[]byte)
		n, err := src.Read(*buf)
		if n > 0 {
			select {
			case queue <- chunk{buf: buf, n: n, due: time.Now().Add(delay)}:
			case <-c.done:
				chunkPool.Put(buf)
				return
			}
		} else {
			chunkPool.Put(buf)
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				// A peer's reset (or our own abort): the other peer
				// sees a reset too.
				c.abort(true)
			}
			return
		}
	}
}

// write forwards the queue to dst, applying the direction's faults at their
// byte offsets. When the queue ends cleanly dst is half-closed, so its peer
// sees the end of stream the other peer sent.
func (c *conn) write(dst *net.TCPConn, queue <-chan chunk, dp dirPlan, total *atomic.Int64) {
	var sent int64
	var free time.Time // when a rate-limited link can carry the next byte
	for {
		var ck chunk
		var ok bool
		select {
		case ck, ok = <-queue:
		case <-c.done:
			return
		}
		if !ok {
			if err := dst.CloseWrite(); err != nil {
				c.abort(false)
			}
			return
		}
		before := sent
		alive := c.sleep(time.Until(ck.due)) && c.forward(dst, (*ck.buf)[:ck.n], &sent, &dp)
		total.Add(sent - before)
		chunkPool.Put(ck.buf)
		if alive && dp.rate > 0 {
			if now := time.Now(); free.Before(now) {
				free = now // idle time is not saved up for a burst
			}
			free = free.Add(time.Duration((sent - before) * int64(time.Second) / dp.rate))
			alive = c.sleep(time.Until(free))
		}
		if !alive {
			return
		}
	}
}

// forward writes data to dst, with sent bytes already forwarded before it,
// stopping at each fault's offset to apply it. It returns false once the
// connection has ended.
func (c *conn) forward(dst *net.TCPConn, data []byte, sent *int64, dp *dirPlan) bool {
	for {
		// A fault at offset n applies once exactly n bytes are through,
		// before any more data, even when data ends right there.
		for len(dp.resets) > 0 && dp.resets[0].at <= *sent {
			r := dp.resets[0]
			dp.resets = dp.resets[1:]
			if r.rule.take() {
				c.reset(dst)
				return false
			}
		}
		for len(dp.stalls) > 0 && dp.stalls[0].at <= *sent {
			st := dp.stalls[0]
			dp.stalls = dp.stalls[1:]
			if !st.rule.take() {
				continue
			}
			c.p.stalls.Add(1)
			if !c.sleep(st.d) {
				return false
			}
		}
		if len(data) == 0 {
			return true
		}
		n := int64(len(data))
		if len(dp.resets) > 0 {
			n = min(n, dp.resets[0].at-*sent)
		}
		if len(dp.stalls) > 0 {
			n = min(n, dp.stalls[0].at-*sent)
		}
		w, err := dst.Write(data[:n])
		*sent += int64(w)
		if err != nil {
			c.abort(true)
			return false
		}
		data = data[n:]
	}
}

// reset cuts the connection after waiting, briefly, until dst's peer has
// acknowledged every byte forwarded: an RST makes the kernel drop data still
// unsent, and the fault is meant to fall at its exact offset.
func (c *conn) reset(dst *net.TCPConn) {
	c.p.resets.Add(1)
	deadline := time.Now().Add(drainFor)
	for time.Now().Before(deadline) {
		n, err := unacked(dst)
		if err != nil || n == 0 {
			break
		}
		if !c.sleep(time.Millisecond) {
			return
		}
	}
	c.abort(true)
}

// sleep waits d; false if the connection ended meanwhile.
func (c *conn) sleep(d time.Duration) bool {
	if d <= 0 {
		select {
		case <-c.done:
			return false
		default:
			return true
		}
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-c.done:
		return false
	}
}
