package pipeline

import (
	"strings"
	"testing"
	"time"
)

func TestDecideFetch(t *testing.T) {
	for _, tc := range []struct {
		name   string
		total  float64 // bytes/s
		conns  int
		lean   bool
		reason string
	}{
		{"loopback, one connection", 180e6, 1, false, "link 180 MB/s over 1 connection: the server, not the link, is the bottleneck"},
		{"cold loopback, busy machine", 44e6, 4, false, "link 44 MB/s over 4 connections: the server"},
		{"LAN", 30e6, 1, false, "the server, not the link"},
		{"capped link, shared", 12.5e6, 4, true, "link 12 MB/s over 4 connections: the link, not the server"},
		{"capped link, one connection", 5e6, 1, true, "link 5.0 MB/s over 1 connection: the link"},
		{"just below the line", 19.9e6, 4, true, "link 20 MB/s"},
		{"on the line", 20e6, 4, false, "link 20 MB/s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lean, reason := decideFetch(tc.total, tc.conns)
			if lean != tc.lean || !strings.Contains(reason, tc.reason) {
				t.Errorf("decideFetch(%.0f, %d) = %v, %q; want %v, containing %q", tc.total, tc.conns, lean, reason, tc.lean, tc.reason)
			}
		})
	}
}

// TestChooserAddsUpWhatRanTogether: connections that share a link share
// its rate, so one probe alone must not decide for four workers, and the
// rates of probes add up only as far as they ran at the same time.
func TestChooserAddsUpWhatRanTogether(t *testing.T) {
	t0 := time.Now()
	at := func(from, to time.Duration) probe {
		// 1 MB in each probe.
		return probe{first: t0.Add(from), last: t0.Add(to), bytes: 1e6}
	}
	for _, tc := range []struct {
		name   string
		probes []probe
		lean   bool
		reason string
	}{
		// Four probes side by side, 4 MB/s each: 16 MB/s in all.
		{"together, slow", []probe{at(0, 250*time.Millisecond), at(0, 250*time.Millisecond), at(0, 250*time.Millisecond), at(0, 250*time.Millisecond)},
			true, "link 16 MB/s over 4 connections"},
		// The same four one after another: 4 MB/s is all the link showed.
		{"one after another", []probe{at(0, 250*time.Millisecond), at(250*time.Millisecond, 500*time.Millisecond), at(time.Second, 1250*time.Millisecond), at(2*time.Second, 2250*time.Millisecond)},
			true, "link 4.0 MB/s over 4 connections"},
		// Half overlapping, 40 MB/s each: 4 MB over 62.5 ms busy.
		{"overlapping, fast", []probe{at(0, 25*time.Millisecond), at(12500*time.Microsecond, 37500*time.Microsecond), at(25*time.Millisecond, 50*time.Millisecond), at(37500*time.Microsecond, 62500*time.Microsecond)},
			false, "link 64 MB/s over 4 connections"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newChooser(FetchAuto)
			c.start(4)
			for w, p := range tc.probes {
				if !c.probing() {
					t.Fatalf("decided after %d of 4 workers", w)
				}
				c.observe(w, probe{first: p.first}) // one message: nothing timed, ignored
				c.observe(w, p)
			}
			mode, reason := c.outcome()
			if c.probing() || c.fetchLean() != tc.lean || !strings.Contains(reason, tc.reason) {
				t.Errorf("probing %v, lean %v, outcome %q (%s); want lean %v, containing %q", c.probing(), c.fetchLean(), mode, reason, tc.lean, tc.reason)
			}
		})
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
