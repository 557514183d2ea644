package pipeline

import (
	"fmt"

	"github.com/myhibachi/backfill/errlog"
)

// breaker trips when messages keep failing: too many in a row, or too high
// a share of the most recent ones. A run that fails everything (a parser
// bug, a database refusing every row) should stop and say so, not log
// thousands of identical errors.
type breaker struct {
	maxConsecutive int     // 0: off
	maxRate        float64 // 0: off
	window         []bool  // ring of recent outcomes, true = failed
	next           int
	filled         bool
	failedInWindow int
	consecutive    int
	// tripped is the first trip, returned from then on: batches reported
	// after it (two inserters report concurrently) must not replace it with
	// a later count, whichever of them ends the run.
	tripped error
}

func newBreaker(maxConsecutive int, maxRate float64, window int) *breaker {
	if window <= 0 {
		window = 1
	}
	return &breaker{maxConsecutive: maxConsecutive, maxRate: maxRate, window: make([]bool, window)}
}

// record adds one message's outcome and returns a critical error when the
// breaker trips.
func (b *breaker) record(failed bool) error {
	if b.tripped != nil {
		return b.tripped
	}
	if b.filled && b.window[b.next] {
		b.failedInWindow--
	}
	b.window[b.next] = failed
	if failed {
		b.failedInWindow++
		b.consecutive++
	} else {
		b.consecutive = 0
	}
	b.next = (b.next + 1) % len(b.window)
	if b.next == 0 {
		b.filled = true
	}
	if b.maxConsecutive > 0 && b.consecutive >= b.maxConsecutive {
		b.tripped = &errlog.CriticalError{Type: "circuit_breaker",
			Err: fmt.Errorf("circuit breaker: %d messages failed in a row (--max-consecutive-failures %d)", b.consecutive, b.maxConsecutive)}
	} else if b.maxRate > 0 && b.filled {
		if rate := float64(b.failedInWindow) / float64(len(b.window)); rate > b.maxRate {
			b.tripped = &errlog.CriticalError{Type: "circuit_breaker",
				Err: fmt.Errorf("circuit breaker: %.0f%% of the last %d messages failed (--max-failure-rate %.2f)", 100*rate, len(b.window), b.maxRate)}
		}
	}
	return b.tripped
}
