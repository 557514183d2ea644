package main

import (
	"errors"
	"net"
	"sync"
	"time"
)

// latencyProxy forwards TCP connections from a loopback port to a target and
// delays every byte by a fixed time in each direction, as a distant server
// would, without limiting bandwidth: data read at t is written at t+delay,
// however much of it is in flight. A round trip through it takes 2×delay
// more than without it.
type latencyProxy struct {
	ln     net.Listener
	target string
	delay  time.Duration

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

// startProxy listens on a free port of 127.0.0.1 and forwards to target.
func startProxy(target string, delay time.Duration) (*latencyProxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &latencyProxy{ln: ln, target: target, delay: delay, conns: make(map[net.Conn]struct{})}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr returns the proxy's host:port.
func (p *latencyProxy) Addr() string { return p.ln.Addr().String() }

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
	go func() { defer wg.Done(); p.pipe(server, client) }()
	go func() { defer wg.Done(); p.pipe(client, server) }()
	wg.Wait()
}

// chunk is data read from one side, due to be written to the other.
type chunk struct {
	buf *[]byte
	n   int
	due time.Time
}

// pipe copies src to dst, each chunk delay after it was read. A reader
// stamps chunks and queues them; a writer sleeps until each is due. Order is
// kept, and the reader never waits for the writer, so bandwidth is not
// limited by the delay. When src ends, dst is half-closed, as the real peer
// would see.
func (p *latencyProxy) pipe(dst, src net.Conn) {
	queue := make(chan chunk, maxInFlight)
	go func() {
		defer close(queue)
		for {
			buf := chunkPool.Get().(*[]byte)
			n, err := src.Read(*buf)
			if n > 0 {
				queue <- chunk{buf: buf, n: n, due: time.Now().Add(p.delay)}
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
		chunkPool.Put(c.buf)
	}
	if tcp, ok := dst.(*net.TCPConn); ok && !failed {
		if err := tcp.CloseWrite(); err != nil && !errors.Is(err, net.ErrClosed) {
			dst.Close()
		}
	}
}
