package main

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// echoServer answers every connection with what it receives.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	return ln.Addr().String()
}

func startTestProxy(t *testing.T, target string, delay time.Duration) *latencyProxy {
	t.Helper()
	p, err := startProxy(target, delay, link{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// Megabytes both ways through the proxy arrive whole and in order, and the
// end of the client's data reaches the server (half-close), so the echo ends.
func TestProxyForwardsEveryByteInOrder(t *testing.T) {
	t.Parallel()
	p := startTestProxy(t, echoServer(t), 5*time.Millisecond)
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	want := make([]byte, 8<<20)
	if _, err := rand.Read(want); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		_, err := c.Write(want)
		if err == nil {
			err = c.(*net.TCPConn).CloseWrite()
		}
		errc <- err
	}()
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("echo through the proxy: got %d bytes, want %d, equal %v", len(got), len(want), bytes.Equal(got, want))
	}
}

// The delay is the proxy's function, not its speed: a round trip cannot be
// shorter than the delay each way. Only this lower bound is checked; how much
// longer it takes depends on the machine.
func TestProxyDelaysEachDirection(t *testing.T) {
	t.Parallel()
	const delay = 30 * time.Millisecond
	p := startTestProxy(t, echoServer(t), delay)
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 5)
	for range 3 {
		start := time.Now()
		if _, err := c.Write([]byte("hello")); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(c, buf); err != nil {
			t.Fatal(err)
		}
		if rtt := time.Since(start); rtt < 2*delay {
			t.Errorf("round trip took %v through a proxy delaying %v each way", rtt, delay)
		}
	}
}

// Close cuts open connections instead of waiting for them.
func TestProxyCloseCutsConnections(t *testing.T) {
	t.Parallel()
	p, err := startProxy(echoServer(t), time.Millisecond, link{})
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Error("read after Close: no error")
	}
}

// sourceServer writes n bytes to every connection, then closes it.
func sourceServer(t *testing.T, n int) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				_, _ = c.Write(make([]byte, n))
			}()
		}
	}()
	return ln.Addr().String()
}

// download reads what the proxy's target sends on one connection.
func download(p *latencyProxy) (int64, error) {
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		return 0, err
	}
	defer c.Close()
	return io.Copy(io.Discard, c)
}

// A capped link carries no more than its rate, per connection and in all:
// only the lower bound on the time is checked, and the bytes it counts.
func TestProxyCapsBandwidth(t *testing.T) {
	t.Parallel()
	const size = 2 << 20
	const rate = 8 << 20 // bytes per second
	tests := []struct {
		name  string
		link  link
		conns int
		least time.Duration
	}{
		// One connection at the per-connection rate.
		{"per connection", link{perConn: rate}, 1, size * time.Second / rate},
		// Three connections, each allowed the rate, share a total of it.
		{"in total", link{perConn: rate, total: rate}, 3, 3 * size * time.Second / rate},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p, err := startProxy(sourceServer(t, size), time.Millisecond, tt.link)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { p.Close() })
			start := time.Now()
			var wg sync.WaitGroup
			errs := make(chan error, tt.conns)
			for range tt.conns {
				wg.Add(1)
				go func() {
					defer wg.Done()
					n, err := download(p)
					if err == nil && n != size {
						err = fmt.Errorf("got %d bytes, want %d", n, size)
					}
					errs <- err
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Fatal(err)
				}
			}
			if took := time.Since(start); took < tt.least*9/10 {
				t.Errorf("%d × %d bytes took %v; a link of %v B/s needs at least %v", tt.conns, size, took, tt.link, tt.least)
			}
			if down, up := p.Carried(); down != int64(tt.conns*size) || up != 0 {
				t.Errorf("carried %d bytes down, %d up; want %d, 0", down, up, tt.conns*size)
			}
		})
	}
}
