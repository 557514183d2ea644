// Package faultproxy is a TCP proxy for fault tests: it forwards connections
// from a port of 127.0.0.1 to a real server and, chosen by connection number,
// resets, stalls, delays or refuses them, as a flaky network, a provider
// dropping sessions or a restarting load balancer would.
package faultproxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Proxy forwards every connection it accepts to its target, applying the
// rules that match the connection's number. Connections are numbered from 1
// in the order they are accepted, refused ones included.
type Proxy struct {
	ln     *net.TCPListener
	target string
	rules  []Rule

	// ctx is cancelled by Close: it ends dials to the target still in
	// progress; established connections are ended through their own abort.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // the accept loop and every connection's goroutines

	accepted atomic.Int64
	refused  atomic.Int64
	resets   atomic.Int64
	stalls   atomic.Int64
	bytes    [2]atomic.Int64 // forwarded, by Direction

	mu     sync.Mutex
	conns  map[*conn]struct{}
	closed bool

	closeOnce sync.Once
	closeErr  error
}

// Stats counts what a proxy has done so far, so a test can tell a fault it
// meant to inject from one that never happened.
type Stats struct {
	Connections int // accepted, refused ones included
	Refused     int // closed at once by RefuseConnections
	Resets      int // cut by ResetAfter
	Stalls      int // held by Stall
	// Bytes forwarded each way, over all connections: what a test reads to
	// place a fault where the traffic is.
	ToClient, ToServer int64
}

// dialTimeout bounds a dial to the target; Close ends it sooner.
const dialTimeout = 10 * time.Second

// Start runs a proxy to target for the test and closes it, with every
// connection through it, when the test ends.
func Start(tb testing.TB, target string, rules ...Rule) *Proxy {
	tb.Helper()
	p, err := New(target, rules...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := p.Close(); err != nil {
			tb.Errorf("faultproxy: close: %v", err)
		}
	})
	return p
}

// New listens on a free port of 127.0.0.1 and forwards to target (host:port).
// The caller must Close it.
func New(target string, rules ...Rule) (*Proxy, error) {
	if _, _, err := net.SplitHostPort(target); err != nil {
		return nil, fmt.Errorf("faultproxy: target: %w", err)
	}
	own := make([]Rule, len(rules))
	for i, r := range rules {
		if err := r.validate(); err != nil {
			return nil, fmt.Errorf("faultproxy: rule %d: %w", i+1, err)
		}
		own[i] = r.withBudget()
	}
	// Loopback only: a proxy that injects faults has no business being
	// reachable from other machines.
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil, fmt.Errorf("faultproxy: listen: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Proxy{ln: ln, target: target, rules: own, ctx: ctx, cancel: cancel, conns: map[*conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr returns the proxy's host:port, to give clients instead of the
// target's.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Connections returns how many connections the proxy has accepted.
func (p *Proxy) Connections() int { return int(p.accepted.Load()) }

// Stats returns what the proxy has done so far.
func (p *Proxy) Stats() Stats {
	return Stats{
		Connections: int(p.accepted.Load()),
		Refused:     int(p.refused.Load()),
		Resets:      int(p.resets.Load()),
		Stalls:      int(p.stalls.Load()),
		ToClient:    p.bytes[ServerToClient].Load(),
		ToServer:    p.bytes[ClientToServer].Load(),
	}
}

// Close stops accepting, closes every connection through the proxy (both
// sides), ends stalls and delays, and returns once all of the proxy's
// goroutines have exited. Closing twice returns the first result.
func (p *Proxy) Close() error {
	p.closeOnce.Do(func() {
		if err := p.ln.Close(); err != nil {
			p.closeErr = fmt.Errorf("faultproxy: %w", err)
		}
		p.cancel()
		p.mu.Lock()
		p.closed = true
		for c := range p.conns {
			c.abort(false)
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p.closeErr
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		client, err := p.ln.AcceptTCP()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: wait a little rather
			// than spin, as net/http's server does.
			select {
			case <-p.ctx.Done():
				return
			case <-time.After(10 * time.Millisecond):
			}
			continue
		}
		n := int(p.accepted.Add(1))
		// The accept loop's own count keeps the WaitGroup above zero, so
		// this Add cannot race with Close's Wait.
		p.wg.Add(1)
		go p.serve(n, client)
	}
}

// serve handles connection n from accept to close.
func (p *Proxy) serve(n int, client *net.TCPConn) {
	defer p.wg.Done()
	pl := newPlan(n, p.rules)
	if pl.refuse {
		p.refused.Add(1)
		client.Close()
		return
	}
	d := net.Dialer{Timeout: dialTimeout}
	up, err := d.DialContext(p.ctx, "tcp", p.target)
	if err != nil {
		// The client sees its connection closed, as with a dead server.
		client.Close()
		return
	}
	c := &conn{p: p, client: client, server: up.(*net.TCPConn), done: make(chan struct{})}
	if !p.track(c) {
		c.abort(false)
		return
	}
	defer p.untrack(c)
	c.run(pl)
}

// track registers a connection for Close; false once the proxy is closed.
func (p *Proxy) track(c *conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *Proxy) untrack(c *conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
}
