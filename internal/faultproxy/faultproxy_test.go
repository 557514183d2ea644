package faultproxy_test

import (
	"bytes"
	"errors"
	"io"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/myhibachi/backfill/internal/faultproxy"
)

// pattern is the byte stream the test servers send: position-dependent, so
// a stream cut or shuffled anywhere shows.
func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i/251)
	}
	return b
}

// server is a loopback TCP server running handle for each connection; it
// stops, and waits for its handlers, when the test ends.
type server struct {
	ln       net.Listener
	accepted atomic.Int64
}

func startServer(t *testing.T, handle func(net.Conn)) *server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &server{ln: ln}
	var wg sync.WaitGroup
	var mu sync.Mutex
	conns := map[net.Conn]bool{}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.accepted.Add(1)
			mu.Lock()
			conns[c] = true
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				handle(c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return s
}

func (s *server) addr() string { return s.ln.Addr().String() }

// streamServer answers a one-byte request on every connection with the
// first size bytes of pattern, then closes it. Waiting for the request, as a
// real server waits for a command, makes sure the client's dial is complete:
// a reset that came before the dialler ran would fail the dial itself.
func streamServer(t *testing.T, size int) *server {
	data := pattern(size)
	return startServer(t, func(c net.Conn) {
		if _, err := c.Read(make([]byte, 1)); err == nil {
			_, _ = c.Write(data)
		}
	})
}

func echoServer(t *testing.T) *server {
	return startServer(t, func(c net.Conn) { _, _ = io.Copy(c, c) })
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	// No test may hang on a proxy bug: reads fail after this long.
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	return c
}

// request dials addr and sends streamServer's one-byte request.
func request(t *testing.T, addr string) net.Conn {
	t.Helper()
	c := dial(t, addr)
	// A refused connection may fail the write; its read says so too.
	_, _ = c.Write([]byte{'?'})
	return c
}

// readAll requests a stream and reads until EOF or an error.
func readAll(t *testing.T, addr string) ([]byte, error) {
	t.Helper()
	return io.ReadAll(request(t, addr))
}

func TestForwardsUnchanged(t *testing.T) {
	t.Parallel()
	p := faultproxy.Start(t, echoServer(t).addr())
	c := dial(t, p.Addr())
	want := pattern(3 << 20)
	go func() {
		_, _ = c.Write(want)
		_ = c.(*net.TCPConn).CloseWrite() // the echo ends, and with it the server's side
	}()
	got, err := io.ReadAll(c)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("echo through the proxy: %d bytes (equal: %v), err %v; want the %d bytes sent",
			len(got), bytes.Equal(got, want), err, len(want))
	}
	if s := p.Stats(); s != (faultproxy.Stats{Connections: 1, ToClient: int64(len(want)), ToServer: int64(len(want))}) {
		t.Fatalf("stats %+v, want one connection and no fault", s)
	}
}

func TestResetAfterCutsAtTheOffset(t *testing.T) {
	t.Parallel()
	const size, cut = 1 << 20, 100_000
	p := faultproxy.Start(t, streamServer(t, size).addr(), faultproxy.ResetAfter(cut, nil))
	got, err := readAll(t, p.Addr())
	if err == nil {
		t.Fatalf("read %d bytes and a clean EOF; want an error after the reset", len(got))
	}
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("the client saw %v, want ECONNRESET", err)
	}
	if len(got) != cut || !bytes.Equal(got, pattern(cut)) {
		t.Fatalf("client read %d bytes before the reset, want exactly the first %d", len(got), cut)
	}
	if s := p.Stats(); s.Resets != 1 {
		t.Fatalf("stats %+v, want one reset", s)
	}
}

func TestResetAfterClientToServer(t *testing.T) {
	t.Parallel()
	const size, cut = 1 << 20, 100_000
	received := make(chan int64, 1)
	sink := startServer(t, func(c net.Conn) {
		n, _ := io.Copy(io.Discard, c)
		received <- n
	})
	p := faultproxy.Start(t, sink.addr(), faultproxy.ResetAfter(cut, nil).In(faultproxy.ClientToServer))
	c := dial(t, p.Addr())
	// Socket buffers and the proxy's queue may take the whole write before
	// the reset: its result says nothing.
	go func() { _, _ = c.Write(pattern(size)) }()
	select {
	case n := <-received:
		if n != cut {
			t.Fatalf("server received %d bytes before the reset, want exactly %d", n, cut)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the server's connection did not end")
	}
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("client read after the reset: %v, want ECONNRESET", err)
	}
}

func TestEveryOtherAffectsEvenConnectionsOnly(t *testing.T) {
	t.Parallel()
	const size, cut = 200_000, 10_000
	p := faultproxy.Start(t, streamServer(t, size).addr(), faultproxy.ResetAfter(cut, faultproxy.EveryOther))
	for n := 1; n <= 6; n++ {
		// One at a time, so connection numbers follow the loop.
		got, err := readAll(t, p.Addr())
		if n%2 == 1 && (err != nil || len(got) != size) {
			t.Errorf("connection %d (odd): %d bytes, err %v; want all %d and EOF", n, len(got), err, size)
		}
		if n%2 == 0 && (err == nil || len(got) != cut) {
			t.Errorf("connection %d (even): %d bytes, err %v; want %d and a reset", n, len(got), err, cut)
		}
	}
	if s := p.Stats(); s.Connections != 6 || s.Resets != 3 {
		t.Fatalf("stats %+v, want 6 connections and 3 resets", s)
	}
}

func TestTimesLimitsAFault(t *testing.T) {
	t.Parallel()
	const size, cut = 50_000, 1_000
	p := faultproxy.Start(t, streamServer(t, size).addr(),
		faultproxy.ResetAfter(cut, faultproxy.From(2)).Times(1),
		faultproxy.RefuseConnections(faultproxy.From(3)).Times(1))
	// Connection 2 is cut, 3 refused; 4 is past both budgets.
	for n, want := range []int{size, cut, 0, size} {
		got, err := readAll(t, p.Addr())
		wantErr := want == cut // a refusal may read as EOF or as a reset
		if len(got) != want || (want != 0 && wantErr != (err != nil)) {
			t.Errorf("connection %d: %d bytes, err %v; want %d", n+1, len(got), err, want)
		}
	}
	if s := p.Stats(); s.Resets != 1 || s.Refused != 1 {
		t.Fatalf("stats %+v, want one reset and one refusal", s)
	}
}

func TestSelectors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		which func(int) bool
		want  []int // of connections 1..6
	}{
		{"All", faultproxy.All, []int{1, 2, 3, 4, 5, 6}},
		{"EveryOther", faultproxy.EveryOther, []int{2, 4, 6}},
		{"First(2)", faultproxy.First(2), []int{1, 2}},
		{"Nth(3)", faultproxy.Nth(3), []int{3}},
		{"Only(2,5)", faultproxy.Only(2, 5), []int{2, 5}},
		{"From(4)", faultproxy.From(4), []int{4, 5, 6}},
	} {
		var got []int
		for n := 1; n <= 6; n++ {
			if tc.which(n) {
				got = append(got, n)
			}
		}
		if !bytes.Equal(ints(got), ints(tc.want)) {
			t.Errorf("%s matches %v, want %v", tc.name, got, tc.want)
		}
	}
}

func ints(s []int) []byte {
	b := make([]byte, len(s))
	for i, v := range s {
		b[i] = byte(v)
	}
	return b
}

func TestRefuseConnections(t *testing.T) {
	t.Parallel()
	const size = 1000
	srv := streamServer(t, size)
	p := faultproxy.Start(t, srv.addr(), faultproxy.RefuseConnections(faultproxy.Nth(1)))
	if got, err := readAll(t, p.Addr()); len(got) != 0 {
		t.Fatalf("refused connection read %d bytes (err %v), want none", len(got), err)
	}
	if got, err := readAll(t, p.Addr()); err != nil || len(got) != size {
		t.Fatalf("second connection: %d bytes, err %v; want %d", len(got), err, size)
	}
	// The refused connection never reached the target.
	if n := srv.accepted.Load(); n != 1 {
		t.Fatalf("target accepted %d connections, want 1", n)
	}
	if s := p.Stats(); s.Connections != 2 || s.Refused != 1 {
		t.Fatalf("stats %+v, want 2 connections, 1 refused", s)
	}
}

func TestStallHoldsThenResumes(t *testing.T) {
	t.Parallel()
	const size, at, hold = 100_000, 40_000, 300 * time.Millisecond
	p := faultproxy.Start(t, streamServer(t, size).addr(), faultproxy.Stall(at, hold, nil))
	// The clock starts before the request: the stall begins once the
	// head is written, which can be well before this test gets to read
	// it on a busy machine, so timing from the read would cut into hold.
	start := time.Now()
	c := request(t, p.Addr())
	head := make([]byte, at)
	if _, err := io.ReadFull(c, head); err != nil {
		t.Fatal(err)
	}
	rest, err := io.ReadAll(c)
	if err != nil || !bytes.Equal(append(head, rest...), pattern(size)) {
		t.Fatalf("stream through a stall: %d bytes, err %v; want the %d bytes unchanged", at+len(rest), err, size)
	}
	// A lower bound only: the proxy held the bytes at least this long.
	if d := time.Since(start); d < hold {
		t.Fatalf("the whole stream came after %s, want at least the %s stall", d, hold)
	}
	if s := p.Stats(); s.Stalls != 1 {
		t.Fatalf("stats %+v, want one stall", s)
	}
}

// TestRateCapsTheLink streams through a 1 MB/s link: the bytes arrive
// unchanged, no faster than the link carries them.
func TestRateCapsTheLink(t *testing.T) {
	t.Parallel()
	const size, rate = 400_000, 1_000_000
	p := faultproxy.Start(t, streamServer(t, size).addr(), faultproxy.Rate(rate, nil))
	start := time.Now()
	c := request(t, p.Addr())
	got, err := io.ReadAll(c)
	if err != nil || !bytes.Equal(got, pattern(size)) {
		t.Fatalf("stream through a capped link: %d bytes, err %v; want the %d bytes unchanged", len(got), err, size)
	}
	// A lower bound only: the first chunk (32 KiB) may go at once.
	if d, least := time.Since(start), time.Duration(size-32<<10)*time.Second/rate; d < least {
		t.Fatalf("%d bytes came in %s over a %d B/s link, want at least %s", size, d, rate, least)
	}
}

func TestDelayEachWay(t *testing.T) {
	t.Parallel()
	const delay = 100 * time.Millisecond
	p := faultproxy.Start(t, echoServer(t).addr(), faultproxy.Delay(delay, nil))
	c := dial(t, p.Addr())
	start := time.Now()
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("echo %q, err %v", buf, err)
	}
	if d := time.Since(start); d < 2*delay-20*time.Millisecond {
		t.Fatalf("round trip took %s, want at least %s (delay each way)", d, 2*delay)
	}
}

func TestNewRejectsBadInput(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		target string
		rule   faultproxy.Rule
	}{
		{"no port", "127.0.0.1", faultproxy.Delay(0, nil)},
		{"zero rule", "127.0.0.1:1", faultproxy.Rule{}},
		{"negative bytes", "127.0.0.1:1", faultproxy.ResetAfter(-1, nil)},
		{"negative duration", "127.0.0.1:1", faultproxy.Stall(0, -time.Second, nil)},
		{"bad direction", "127.0.0.1:1", faultproxy.ResetAfter(1, nil).In(7)},
		{"zero times", "127.0.0.1:1", faultproxy.ResetAfter(1, nil).Times(0)},
		{"zero rate", "127.0.0.1:1", faultproxy.Rate(0, nil)},
	} {
		if p, err := faultproxy.New(tc.target, tc.rule); err == nil {
			p.Close()
			t.Errorf("%s: New succeeded, want an error", tc.name)
		}
	}
}

// TestCloseStopsEverything closes proxies with connections stalled, delayed
// and idle: Close returns promptly, every client sees its connection end,
// nothing listens any more, and no goroutine is left.
// Not parallel: it counts the process's goroutines.
func TestCloseStopsEverything(t *testing.T) {
	srv := streamServer(t, 1<<20)
	idle := echoServer(t)
	// Connections already served by the test servers would blur the
	// count: take it with the servers running and idle.
	before := runtime.NumGoroutine()

	stalled, err := faultproxy.New(srv.addr(), faultproxy.Stall(1000, time.Hour, nil), faultproxy.Delay(time.Hour, faultproxy.Nth(3)))
	if err != nil {
		t.Fatal(err)
	}
	quiet, err := faultproxy.New(idle.addr())
	if err != nil {
		t.Fatal(err)
	}
	var clients []net.Conn
	for range 3 {
		clients = append(clients, request(t, stalled.Addr()))
	}
	clients = append(clients, dial(t, quiet.Addr()))
	// Wait until the first connection is held by its stall, and the idle
	// one is through the proxy (not still in its accept queue).
	if _, err := io.ReadFull(clients[0], make([]byte, 1000)); err != nil {
		t.Fatal(err)
	}
	if _, err := clients[3].Write([]byte{'!'}); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(clients[3], make([]byte, 1)); err != nil {
		t.Fatal(err)
	}

	closed := make(chan error, 2)
	go func() { closed <- stalled.Close() }()
	go func() { closed <- quiet.Close() }()
	for range 2 {
		select {
		case err := <-closed:
			if err != nil {
				t.Fatalf("Close: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Close did not return within 10s")
		}
	}
	for i, c := range clients {
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		var ne net.Error
		if _, err := io.Copy(io.Discard, c); errors.As(err, &ne) && ne.Timeout() {
			t.Errorf("client %d still open after Close", i)
		}
	}
	if c, err := net.DialTimeout("tcp", stalled.Addr(), time.Second); err == nil {
		c.Close()
		t.Error("the proxy still accepts connections after Close")
	}
	if err := stalled.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}

	for _, c := range clients {
		c.Close()
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<20)
		t.Fatalf("%d goroutines after Close, %d before:\n%s", n, before, buf[:runtime.Stack(buf, true)])
	}
}
