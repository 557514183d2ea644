package pipeline

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/myhibachi/backfill/imapsrc"
)

// retries records the waits retryOp announces.
type retries struct{ waits []time.Duration }

func (*retries) Connecting(imapsrc.Config) {}
func (*retries) Listed(Listing)            {}
func (*retries) BatchDone(BatchReport)     {}
func (r *retries) Retrying(_ string, _ error, _ int, wait time.Duration) {
	r.waits = append(r.waits, wait)
}

// TestRetryOpHonoursSuggestedBackoff: a throttled answer that suggests a
// wait is retried after that wait, not the (shorter) exponential one, but
// not later than the retry budget allows; the operation then succeeds.
func TestRetryOpHonoursSuggestedBackoff(t *testing.T) {
	const suggested = 700 * time.Millisecond // above the first interval, 200 ms ± 50%
	for _, tc := range []struct {
		name  string
		limit time.Duration
		text  string
		want  func(time.Duration) bool
	}{
		{"suggested", time.Minute, fmt.Sprintf("Request is throttled. Suggested Backoff Time: %d milliseconds", suggested.Milliseconds()),
			func(d time.Duration) bool { return d == suggested }},
		// The budget leaves the first attempt 1.7 s before the exponential
		// wait (at most 300 ms) no longer fits and nothing is retried: a
		// budget of 700 ms failed if a loaded machine held it up 0.4 s.
		{"past the retry budget", 2 * time.Second, "Suggested Backoff Time: 60000 milliseconds",
			func(d time.Duration) bool { return d > 0 && d <= 2*time.Second }},
		{"none suggested", time.Minute, "Request is throttled.",
			func(d time.Duration) bool { return d > 0 && d < suggested }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &retries{}
			r := &runner{obs: &serialObserver{obs: rec}}
			calls := 0
			err := r.retryOp(context.Background(), "IMAP fetch", tc.limit, func(*attempts) error {
				calls++
				if calls == 1 {
					return &imap.Error{Type: imap.StatusResponseTypeNo, Code: "THROTTLED", Text: tc.text}
				}
				return nil
			})
			if err != nil {
				t.Fatalf("retryOp: %v", err)
			}
			if calls != 2 || len(rec.waits) != 1 || !tc.want(rec.waits[0]) {
				t.Fatalf("calls %d, waits %v: want 2 calls and one wait as %s", calls, rec.waits, tc.name)
			}
		})
	}
}
