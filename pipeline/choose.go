package pipeline

import (
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/myhibachi/backfill/imapsrc"
)

// Lean fetching trades bytes for server work: the server must read and
// parse a message to describe its structure, which costs about what
// sending the message whole costs. Over a slow link the bytes saved win
// (about ten times over a 5 MB/s link); next to the server they cost
// nothing and lean is the slower way (a cold Dovecot on loopback took
// 1.2-1.4x full's time). So in FetchAuto a run starts by fetching small
// probes whole, measures how fast the bytes stream in, and decides once
// for the rest of the run.

const (
	// probeMessages is how many messages a worker fetches whole per probe:
	// enough to time a stream, few enough to cost little over a slow link.
	probeMessages = 25
	// minProbe is the least a probe must bring to count: a link delivers
	// in bursts, and a few small messages can arrive in one.
	minProbe = 256 << 10
	// fastLink is the rate, over all connections, from which a run fetches
	// whole: below it, moving attachments costs more than describing them.
	// The capped link measured (12.5 MB/s in all) is well below it, a cold
	// Dovecot on a busy 2-core machine (45 MB/s and more) well above.
	fastLink = 20e6 // bytes/s
)

// decideFetch is the decision: lean when the link, which carried total
// bytes/s over conns connections, is slow.
func decideFetch(total float64, conns int) (lean bool, reason string) {
	link := fmt.Sprintf("link %s over %d connection%s", rate(total), conns, plural(conns))
	if total < fastLink {
		return true, link + ": the link, not the server, is the bottleneck; large attachments stay on the server"
	}
	return false, link + ": the server, not the link, is the bottleneck"
}

func rate(bps float64) string {
	if bps >= 10e6 {
		return fmt.Sprintf("%.0f MB/s", bps/1e6)
	}
	return fmt.Sprintf("%.1f MB/s", bps/1e6)
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// chooser holds a run's fetch mode: forced by Config.Fetch, or, in
// FetchAuto, undecided until the workers' probes say how fast the link is.
type chooser struct {
	mu      sync.Mutex
	workers int // how many workers the run started; set by start
	decided bool
	lean    bool
	reason  string
	// What the probes measured, and which workers sent them.
	probes   []probe
	reported map[int]bool
}

func newChooser(mode FetchMode) *chooser {
	c := &chooser{reported: map[int]bool{}}
	switch mode {
	case FetchLean:
		c.decided, c.lean, c.reason = true, true, "--fetch lean"
	case FetchFull:
		c.decided, c.reason = true, "--fetch full"
	}
	return c
}

// start sets how many workers probe.
func (c *chooser) start(workers int) {
	c.mu.Lock()
	c.workers = workers
	c.mu.Unlock()
}

// probing reports whether the next fetch should be a probe.
func (c *chooser) probing() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return !c.decided
}

// fetchLean reports whether to fetch lean; false while probing.
func (c *chooser) fetchLean() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.decided && c.lean
}

// observe adds one worker's probe. The mode is decided once there are as
// many probes as workers (connections that share a link share its rate,
// and rateLocked counts only what ran together); or earlier, when the
// probes still to come could not change it: they can only add to the
// rate, and at most what each one carried.
func (c *chooser) observe(worker int, p probe) {
	if p.bytes < minProbe || !p.last.After(p.first) {
		return // too little to time: the worker probes again
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.decided {
		return
	}
	c.probes = append(c.probes, p)
	c.reported[worker] = true
	total := c.rateLocked()
	if len(c.probes) >= c.workers || total >= fastLink || total*float64(c.workers) < fastLink {
		c.decided = true
		c.lean, c.reason = decideFetch(total, len(c.reported))
	}
}

// rateLocked is what the link carried while any probe was streaming: all
// their bytes over the time during which at least one was. Probes that ran
// side by side add up, as connections sharing a link do; probes that ran
// one after another count once, not as a link they never had together.
func (c *chooser) rateLocked() float64 {
	ps := slices.SortedFunc(slices.Values(c.probes), func(a, b probe) int { return a.first.Compare(b.first) })
	var bytes int64
	var busy time.Duration
	var end time.Time
	for _, p := range ps {
		bytes += p.bytes
		start := p.first
		if start.Before(end) {
			start = end
		}
		if p.last.After(start) {
			busy += p.last.Sub(start)
			end = p.last
		}
	}
	return float64(bytes) / busy.Seconds()
}

// outcome is the mode the run used and why, for the summary. A run that
// ended before every probe came in fetched everything whole.
func (c *chooser) outcome() (mode, reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.decided {
		if len(c.probes) == 0 {
			return "whole", "too few messages to measure the link"
		}
		return "whole", fmt.Sprintf("the run ended while measuring the link: %s so far", rate(c.rateLocked()))
	}
	if c.lean {
		return "lean", c.reason
	}
	return "whole", c.reason
}

// probe times how fast a whole fetch streamed: from the first message
// received to the last, the bytes of all but the first, so that neither
// the round trip nor the server's time to begin counts as the link's. The
// worker parses a probe's messages only once it is over.
type probe struct {
	first, last time.Time
	bytes       int64
}

func (p *probe) arrived(f imapsrc.Fetched) {
	now := time.Now()
	if p.first.IsZero() {
		p.first = now
		return
	}
	p.last = now
	p.bytes += f.Transferred
}
