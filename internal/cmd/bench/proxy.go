package main

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/semaphore"
)

// link is a bandwidth cap, in bytes per second; zero means none.
type link struct {
	perConn float64 // each direction of each connection
	total   float64 // each direction, all connections together
}

func (l link) capped() bool { return l.perConn > 0 || l.total > 0 }

// latencyProxy forwards TCP connections from a loopback port to a target and
// delays every byte by a fixed time in each direction, as a distant server
// would. Without a link it does not limit bandwidth: data read at t is
// written at t+delay, however much of it is in flight. A round trip through
// it takes 2×delay more than without it.
//
// With a link, each direction of each connection is also paced to the
// link's per-connection rate, and all connections together to its total
// rate, as on a provider's link: a chunk is written once both have had the
// time to carry it, plus the delay. It counts the bytes it carries.
type latencyProxy struct {
	ln     net.Listener
	target string
	delay  time.Duration
	link   link
	total  [2]*pacer // all connections, per direction; nil without a cap

	down, up atomic.Int64 // bytes carried towards the client, towards the server

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// maxInFlight bounds the chunks queued in one direction. At 64 KiB a chunk it
// allows 256 MiB in flight, ten times what a gigabyte per second puts into
// 25 ms: the queue never throttles, yet a stuck peer cannot eat all memory.
const maxInFlight = 4096

var chunkPool = sync.Pool{New: func() any { b := make([]byte, 64<<10); return &b }}

// cappedInFlight bounds the bytes queued in one direction of a capped link:
// the sender then feels the link's pace, as TCP's window makes it feel a
// real one, instead of handing the proxy the whole mailbox at once. It is
// several times what 5 MB/s puts into a 50 ms round trip, so the window is
// never what limits the rate.
const cappedInFlight = 1 << 20

// startProxy listens on a free port of 127.0.0.1 and forwards to target.
func startProxy(target string, delay time.Duration, l link) (*latencyProxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &latencyProxy{ln: ln, target: target, delay: delay, link: l, conns: make(map[net.Conn]struct{})}
	if l.total > 0 {
		p.total = [2]*pacer{{rate: l.total}, {rate: l.total}}
	}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr returns the proxy's host:port.
func (p *latencyProxy) Addr() string { return p.ln.Addr().String() }

// Carried returns the bytes carried so far towards the client (down) and
// towards the server (up).
func (p *latencyProxy) Carried() (down, up int64) { return p.down.Load(), p.up.Load() }

// Close stops accepting, cuts every connection and waits for its goroutines.
func (p *latencyProxy) Close() error {
	err := p.ln.Close()
	p.mu.Lock()
	p.closed = true
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
	return err
}

func (p *latencyProxy) accept() {
	defer p.wg.Done()
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return // closed
		}
		p.wg.Add(1)
		go p.serve(client)
	}
}

// track remembers a connection so Close can cut it; false once closed.
func (p *latencyProxy) track(conns ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	for _, c := range conns {
		p.conns[c] = struct{}{}
	}
	return true
}

func (p *latencyProxy) untrack(conns ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range conns {
		delete(p.conns, c)
	}
}

func (p *latencyProxy) serve(client net.Conn) {
	defer p.wg.Done()
	defer client.Close()
	server, err := net.DialTimeout("tcp", p.target, 10*time.Second)
	if err != nil {
		return // the client sees its connection close, as with a dead server
	}
	defer server.Close()
	if !p.track(client, server) {
		return
	}
	defer p.untrack(client, server)

	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); p.pipe(server, client, toServer) }()
	go func() { defer wg.Done(); p.pipe(client, server, toClient) }()
	wg.Wait()
}

// A connection's two directions.
const (
	toClient = 0
	toServer = 1
)

// chunk is data read from one side, due to be written to the other.
type chunk struct {
	buf *[]byte
	n   int
	due time.Time
}

// pipe copies src to dst, each chunk delay after it was read (after the link
// carried it, when capped). A reader stamps chunks and queues them; a writer
// sleeps until each is due. Order is kept, and the reader never waits for
// the writer, so bandwidth is not limited by the delay. When src ends, dst
// is half-closed, as the real peer would see.
func (p *latencyProxy) pipe(dst, src net.Conn, dir int) {
	var conn *pacer
	var window *semaphore.Weighted // nil: only maxInFlight chunks bound the queue
	if p.link.capped() {
		window = semaphore.NewWeighted(cappedInFlight)
		if p.link.perConn > 0 {
			conn = &pacer{rate: p.link.perConn}
		}
	}
	counter := &p.down
	if dir == toServer {
		counter = &p.up
	}
	queue := make(chan chunk, maxInFlight)
	go func() {
		defer close(queue)
		for {
			buf := chunkPool.Get().(*[]byte)
			n, err := src.Read(*buf)
			if n > 0 && window != nil {
				// Never fails: the context is never cancelled, and no chunk
				// is larger than the window.
				_ = window.Acquire(context.Background(), int64(n))
			}
			if n > 0 {
				counter.Add(int64(n))
				sent := conn.carry(time.Now(), n)
				sent = p.total[dir].carry(sent, n)
				queue <- chunk{buf: buf, n: n, due: sent.Add(p.delay)}
			} else {
				chunkPool.Put(buf)
			}
			if err != nil {
				return
			}
		}
	}()

	failed := false
	for c := range queue {
		if !failed {
			time.Sleep(time.Until(c.due))
			if _, err := dst.Write((*c.buf)[:c.n]); err != nil {
				// Cut both sides so the reader stops; keep draining the
				// queue so it is never blocked on a full one.
				failed = true
				src.Close()
				dst.Close()
			}
		}
		if window != nil {
			window.Release(int64(c.n))
		}
		chunkPool.Put(c.buf)
	}
	if tcp, ok := dst.(*net.TCPConn); ok && !failed {
		if err := tcp.CloseWrite(); err != nil && !errors.Is(err, net.ErrClosed) {
			dst.Close()
		}
	}
}

// pacer is one bandwidth cap: a queue that carries rate bytes per second.
type pacer struct {
	rate float64 // bytes per second

	mu   sync.Mutex
	free time.Time // when the bytes already queued have been carried
}

// carry queues n bytes that are ready at ready and returns when the last of
// them has been carried. A nil pacer carries at once.
func (p *pacer) carry(ready time.Time, n int) time.Time {
	if p == nil {
		return ready
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	start := ready
	if p.free.After(start) {
		start = p.free
	}
	p.free = start.Add(time.Duration(float64(n) / p.rate * float64(time.Second)))
	return p.free
}
