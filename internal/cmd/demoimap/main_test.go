package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"
)

// syncBuffer is a bytes.Buffer safe for the server goroutine and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestServesUntilCancelled(t *testing.T) {
	ready := filepath.Join(t.TempDir(), "ready")
	if err := os.WriteFile(ready, []byte("stale\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	var stderr syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-n", "25", "-seed", "3", "-user", "support@example.com", "-password", "pw", "-ready-file", ready}, &stderr)
	}()

	url := waitForURL(t, ready, done)
	prefix := "imap://support%40example.com@127.0.0.1:"
	if !strings.HasPrefix(url, prefix) || !strings.HasSuffix(url, "/INBOX") {
		t.Fatalf("ready file holds %q", url)
	}
	addr := strings.TrimSuffix(strings.TrimPrefix(url, "imap://support%40example.com@"), "/INBOX")
	c, err := imapclient.DialInsecure(addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login("support@example.com", "pw").Wait(); err != nil {
		t.Fatal(err)
	}
	sel, err := c.Select("INBOX", nil).Wait()
	if err != nil || sel.NumMessages != 25 {
		t.Fatalf("SELECT INBOX: %v, %+v", err, sel)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run returned %v after cancel", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return after cancel")
	}
	if _, err := os.Stat(ready); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("ready file left behind: %v", err)
	}
	if out := stderr.String(); !strings.Contains(out, "25 messages") || strings.Contains(out, "pw") {
		t.Errorf("status output %q: want the count and no password", out)
	}
}

// waitForURL polls for the ready file, as a shell script would.
func waitForURL(t *testing.T, path string, done <-chan error) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if b, err := os.ReadFile(path); err == nil && string(b) != "stale\n" {
			return strings.TrimSpace(string(b))
		}
		select {
		case err := <-done:
			t.Fatalf("run returned early: %v", err)
		case <-time.After(10 * time.Millisecond):
		}
	}
	t.Fatal("ready file never appeared")
	return ""
}

func TestRefusesBadUsage(t *testing.T) {
	for _, args := range [][]string{
		{"-addr", "0.0.0.0:1143"},
		{"-addr", ":1143"},
		{"-addr", "192.0.2.7:143"},
		{"-n", "-1"},
		{"extra"},
		{"-nosuchflag"},
	} {
		var stderr syncBuffer
		err := run(context.Background(), args, &stderr)
		var usage usageError
		if !errors.As(err, &usage) {
			t.Errorf("run(%q) = %v, want a usage error", args, err)
		}
	}
}
