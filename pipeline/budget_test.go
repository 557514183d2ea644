package pipeline

import (
	"testing"
	"time"

	"github.com/myhibachi/backfill/pgsink"
)

// TestBudgetTake: a round gets the longest prefix of its messages that
// fits beside the window's downloads and the rounds in flight; once one
// is turned away, every later one is.
func TestBudgetTake(t *testing.T) {
	now := time.Now()
	tests := []struct {
		name     string
		ledger   []pgsink.Download
		reserved int64
		sizes    []int64
		want     int
		stopped  bool
	}{
		{name: "fits", sizes: []int64{300, 300, 400}, want: 3},
		{name: "prefix", sizes: []int64{300, 300, 500, 100}, want: 2, stopped: true},
		{name: "window counts", ledger: []pgsink.Download{{At: now.Add(-time.Minute), Bytes: 600}}, sizes: []int64{300, 300}, want: 1, stopped: true},
		{name: "old downloads left the window", ledger: []pgsink.Download{{At: now.Add(-2 * time.Hour), Bytes: 1000}}, sizes: []int64{1000}, want: 1},
		{name: "in flight counts", reserved: 800, sizes: []int64{300}, want: 0, stopped: true},
		{name: "larger than the budget, empty window", sizes: []int64{5000, 1}, want: 1, stopped: true},
		{name: "larger than the budget, window in use", ledger: []pgsink.Download{{At: now.Add(-time.Minute), Bytes: 1}}, sizes: []int64{5000}, want: 0, stopped: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBudget(Budget{Bytes: 1000, Period: time.Hour})
			b.ledger, b.reserved = tt.ledger, tt.reserved
			n, reserved := b.take(tt.sizes)
			var sum int64
			for _, s := range tt.sizes[:n] {
				sum += s
			}
			if n != tt.want || reserved != sum || b.exhausted() != tt.stopped {
				t.Fatalf("take(%v) = %d, %d bytes, stopped %v; want %d, %d bytes, stopped %v", tt.sizes, n, reserved, b.exhausted(), tt.want, sum, tt.stopped)
			}
			if n, _ := b.take([]int64{1}); tt.stopped && n != 0 {
				t.Fatal("a budget that turned a message away took another")
			}
		})
	}
	if n, _ := newBudget(Budget{}).take([]int64{1 << 40}); n != 1 {
		t.Fatal("no budget turned a message away")
	}
}

// TestBudgetFreesAt: the budget frees up when enough of the window's
// TestBudgetFreesAt: the budget frees up when enough of the window's
// downloads have left it for the message that was turned away.
func TestBudgetFreesAt(t *testing.T) {
	now := time.Now()
	window := func() *budget {
		b := newBudget(Budget{Bytes: 1000, Period: time.Hour})
		b.ledger = []pgsink.Download{
			{At: now.Add(-50 * time.Minute), Bytes: 200},
			{At: now.Add(-40 * time.Minute), Bytes: 300},
			{At: now.Add(-10 * time.Minute), Bytes: 400},
		}
		return b
	}
	for _, tt := range []struct {
		need int64
		want time.Time
	}{
		{need: 100, want: now},                        // 900 used: it fits already
		{need: 200, want: now.Add(10 * time.Minute)},  // the first 200 must go
		{need: 400, want: now.Add(20 * time.Minute)},  // 500 must go: the first two
		{need: 1000, want: now.Add(50 * time.Minute)}, // everything must go
		{need: 5000, want: now.Add(50 * time.Minute)}, // larger than the budget: the window must empty
	} {
		b := window()
		b.stop(tt.need)
		if got := b.report(now).FreesAt; !got.Equal(tt.want) {
			t.Errorf("need %d: frees up in %v, want %v", tt.need, got.Sub(now), tt.want.Sub(now))
		}
	}
	if rep := window().report(now); !rep.FreesAt.IsZero() || rep.Used != 900 {
		t.Fatalf("a budget that turned nothing away reports %+v", rep)
	}
}
