package main

import (
	"io"
	"net"
	"regexp"
	"sync"
	"testing"
	"time"
)

// TestAutoFetchChoosesByLink runs the default --fetch auto on the same
// mailbox next to go-imap's server and through a link capped at 1 MB/s:
// next to the server it must keep fetching whole, over the slow link switch
// to lean once it has timed the first messages, store every message either
// way, and say in the closing block which it chose and why.
func TestAutoFetchChoosesByLink(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		capped bool
		mode   string
	}{
		{"loopback", false, "whole (link "},
		{"capped link", true, "lean (link "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			appended := f.imap.AppendGenerated(t, 91, 80)
			if tc.capped {
				proxy := startCappedProxy(t, f.imap.Addr(), 1<<20)
				f.environ[1] = "BACKFILL_INBOX_DEMO=" + withHost(t, f.imap.URL("INBOX"), proxy)
			}
			f.migrate()
			out := f.mustRun(0, "--inbox", "demo", "--workers", "1", "--batch-size", "40")
			f.wantLine(out, "Fetch mode:    "+tc.mode)
			if n, want := f.count(`SELECT count(*) FROM email_messages`), uniqueMails(appended); n != want {
				t.Errorf("email_messages has %d rows, want %d\n%s", n, want, out)
			}
			m := wholeLean.FindStringSubmatch(out)
			if m == nil {
				t.Fatalf("no Downloaded line:\n%s", out)
			}
			if wentLean := m[2] != "0"; wentLean != tc.capped {
				t.Errorf("fetched %s whole, %s lean; want lean ones only over the capped link\n%s", m[1], m[2], out)
			}
		})
	}
}

var wholeLean = regexp.MustCompile(`Downloaded: .*: (\d+) whole, (\d+) lean`)

// startCappedProxy forwards a loopback port to target and lets at most rate
// bytes per second through towards the client on each connection: a slow
// link, as far as the client can tell. It returns the port's address.
func startCappedProxy(t *testing.T, target string, rate int) string {
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
			client, err := ln.Accept()
			if err != nil {
				return
			}
			server, err := net.Dial("tcp", target)
			if err != nil {
				client.Close()
				continue
			}
			wg.Add(2)
			go func() { defer wg.Done(); io.Copy(server, client); server.Close() }() //nolint:errcheck // ends with either side
			go func() { defer wg.Done(); pace(client, server, rate); client.Close() }()
		}
	}()
	return ln.Addr().String()
}

// pace copies src to dst in chunks of a hundredth of rate, one every 10 ms.
func pace(dst io.Writer, src io.Reader, rate int) {
	buf := make([]byte, rate/100)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
		<-tick.C
	}
}
