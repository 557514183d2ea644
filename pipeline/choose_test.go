package pipeline

import (
	"strings"
	"testing"
	"time"
)

func TestDecideFetch(t *testing.T) {
	for _, tc := range []struct {
		name    string
		perConn float64 // bytes/s
		conns   int
		lean    bool
		reason  string
	}{
		{"loopback, one connection", 180e6, 1, false, "link 180 MB/s over 1 connection: the server, not the link, is the bottleneck"},
		{"cold loopback, busy machine", 11e6, 4, false, "link 44 MB/s over 4 connections: the server"},
		{"LAN", 30e6, 1, false, "the server, not the link"},
		{"capped link, shared", 3.1e6, 4, true, "link 12 MB/s over 4 connections: the link, not the server"},
		{"capped link, one connection", 5e6, 1, true, "link 5.0 MB/s over 1 connection: the link"},
		{"just below the line", 4.9e6, 4, true, "link 20 MB/s"},
		{"on the line", 5e6, 4, false, "link 20 MB/s"},
		{"slow provider, many connections", 1e6, 8, true, "link 8.0 MB/s over 8 connections"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lean, reason := decideFetch(tc.perConn, tc.conns)
			if lean != tc.lean || !strings.Contains(reason, tc.reason) {
				t.Errorf("decideFetch(%.0f, %d) = %v, %q; want %v, containing %q", tc.perConn, tc.conns, lean, reason, tc.lean, tc.reason)
			}
		})
	}
}

// TestChooserWaitsForEveryWorker: connections that share a link share its
// rate, so one probe alone must not decide for four workers.
func TestChooserWaitsForEveryWorker(t *testing.T) {
	c := newChooser(FetchAuto)
	c.start(4)
	// 1 MB in 0.25 s: 4 MB/s each, 16 MB/s in all: a slow link.
	p := probe{bytes: 1e6, elapsed: 250 * time.Millisecond}
	for w := range 3 {
		c.observe(w, p)
		c.observe(w, probe{}) // nothing timed: ignored
		if !c.probing() {
			t.Fatalf("decided after %d of 4 workers", w+1)
		}
	}
	c.observe(3, p)
	if c.probing() || !c.fetchLean() {
		t.Fatalf("after every worker's probe: probing %v, lean %v; want decided, lean", c.probing(), c.fetchLean())
	}
	mode, reason := c.outcome()
	if mode != "lean" || !strings.Contains(reason, "16 MB/s over 4 connections") {
		t.Errorf("outcome %q, %q", mode, reason)
	}
}

func TestChooserForcedAndUnmeasured(t *testing.T) {
	for _, tc := range []struct {
		mode           FetchMode
		probing, lean  bool
		outcome, cause string
	}{
		{FetchLean, false, true, "lean", "--fetch lean"},
		{FetchFull, false, false, "whole", "--fetch full"},
		{FetchAuto, true, false, "whole", "too few messages"},
	} {
		c := newChooser(tc.mode)
		c.start(2)
		mode, reason := c.outcome()
		if c.probing() != tc.probing || c.fetchLean() != tc.lean || mode != tc.outcome || !strings.Contains(reason, tc.cause) {
			t.Errorf("mode %d: probing %v, lean %v, outcome %q (%s)", tc.mode, c.probing(), c.fetchLean(), mode, reason)
		}
	}
}
