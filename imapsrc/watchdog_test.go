package imapsrc

import (
	"errors"
	"net"
	"os"
	"testing"
	"time"
)

// TestWatchdogReadFailsForGood: once a read has timed out, every later read
// fails with the same error at once, even with data waiting and no
// deadline, as go-imap's decoder reads again after a failed read.
func TestWatchdogReadFailsForGood(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server, ok := <-accepted
	if !ok {
		t.Fatal("accept failed")
	}
	defer server.Close()

	wd := &watchdogConn{Conn: client, silence: 50 * time.Millisecond}
	wd.arm(true) // an answer is due; the server says nothing
	buf := make([]byte, 64)
	if _, err := wd.Read(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read from a silent server: %v, want a timeout", err)
	}
	// The server speaks at last, and nothing is due any more: a read that
	// went to the socket would block until the bytes came, then return them.
	if _, err := server.Write([]byte("* OK late\r\n")); err != nil {
		t.Fatal(err)
	}
	wd.arm(false)
	n, err := wd.Read(buf)
	if !errors.Is(err, os.ErrDeadlineExceeded) || n != 0 {
		t.Fatalf("read after a timeout: %q, %v; want the timeout again", buf[:n], err)
	}
	if !wd.failed() {
		t.Fatal("failed() is false after a failed read")
	}
}
