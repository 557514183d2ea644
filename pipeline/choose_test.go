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
// its rate, so one probe alone decides for four workers only when the
// others could not change the answer, and the rates of probes add up only
// as far as they ran at the same time.
func TestChooserAddsUpWhatRanTogether(t *testing.T) {
	t0 := time.Now()
	at := func(from, to time.Duration) probe {
		// 1.5 MB in each probe.
		return probe{first: t0.Add(from), last: t0.Add(to), bytes: 1.5e6}
	}
	ms := time.Millisecond
	for _, tc := range []struct {
		name    string
		workers int // how many sent the probes, in turn
		probes  []probe
		decided int // after how many probes
		lean    bool
		reason  string
	}{
		// 6 MB/s each: four could make 24 MB/s. Side by side they do.
		{"together", 4, []probe{at(0, 250*ms), at(0, 250*ms), at(0, 250*ms), at(0, 250*ms)},
			4, false, "link 24 MB/s over 4 connections"},
		// The same four one after another: 6 MB/s is all the link showed.
		{"one after another", 4, []probe{at(0, 250*ms), at(250*ms, 500*ms), at(time.Second, 1250*ms), at(2*time.Second, 2250*ms)},
			4, true, "link 6.0 MB/s over 4 connections"},
		// Overlapping, 6-6.7 MB/s each: 6 MB over 275 ms.
		{"overlapping", 4, []probe{at(0, 250*ms), at(25*ms, 275*ms), at(25*ms, 275*ms), at(50*ms, 275*ms)},
			4, false, "link 22 MB/s over 4 connections"},
		// Two side by side, then two more after a pause: 6 MB over 500 ms.
		{"in two waves", 4, []probe{at(0, 250*ms), at(0, 250*ms), at(time.Second, 1250*ms), at(time.Second, 1250*ms)},
			4, true, "link 12 MB/s over 4 connections"},
		// One worker probing while the others dial: as many probes as
		// workers decide, at the rate one connection showed.
		{"one worker", 1, []probe{at(0, 250*ms), at(250*ms, 500*ms), at(500*ms, 750*ms), at(750*ms, time.Second)},
			4, true, "link 6.0 MB/s over 1 connection"},
		// 60 MB/s on one connection: fast, whatever the others do.
		{"fast alone", 4, []probe{at(0, 25*ms)}, 1, false, "link 60 MB/s over 1 connection"},
		// 3 MB/s on one: four such could not make 20 MB/s.
		{"slow alone", 4, []probe{at(0, 500*ms)}, 1, true, "link 3.0 MB/s over 1 connection"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newChooser(FetchAuto)
			c.start(4)
			for i, p := range tc.probes {
				if !c.probing() {
					t.Fatalf("decided after %d probes, want %d", i, tc.decided)
				}
				c.observe(i, probe{first: p.first}) // one message: nothing timed, ignored
				// A few small messages can arrive in one burst: ignored.
				c.observe(i, probe{first: p.first, last: p.first.Add(ms), bytes: 100 << 10})
				c.observe(i%tc.workers, p)
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
