package pipeline

import (
	"strings"
	"testing"

	"github.com/myhibachi/backfill/errlog"
)

func TestBreaker(t *testing.T) {
	tests := []struct {
		name       string
		consec     int
		rate       float64
		window     int
		outcomes   string // f = failed, . = ok
		tripsAt    int    // index of the outcome that trips, -1 for never
		reasonPart string
	}{
		{"consecutive", 3, 0, 10, "..f.ff.fff..", 9, "3 messages failed in a row"},
		{"consecutive off", 0, 0, 10, "ffffffffff", -1, ""},
		{"rate over a full window", 0, 0.5, 4, "f.f.ff", 5, "75% of the last 4"},
		{"rate waits for a full window", 0, 0.5, 8, "fff", -1, ""},
		{"rate at the limit does not trip", 0, 0.5, 4, "f.f.f.f.", -1, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBreaker(tt.consec, tt.rate, tt.window)
			for i, c := range tt.outcomes {
				err := b.record(c == 'f')
				switch {
				case err != nil && i != tt.tripsAt:
					t.Fatalf("tripped at %d (%v), want %d", i, err, tt.tripsAt)
				case err == nil && i == tt.tripsAt:
					t.Fatalf("did not trip at %d", i)
				case err != nil:
					if errlog.Classify(err) != errlog.Critical || !strings.Contains(err.Error(), tt.reasonPart) {
						t.Fatalf("error %v: want a critical error saying %q", err, tt.reasonPart)
					}
					return
				}
			}
		})
	}
}

// TestBreakerKeepsItsFirstTrip: two inserters report batches concurrently,
// and whichever returns first ends the run, so every report after the trip
// must carry the same reason, not a higher count.
func TestBreakerKeepsItsFirstTrip(t *testing.T) {
	b := newBreaker(2, 0, 10)
	b.record(true)
	first := b.record(true)
	if first == nil {
		t.Fatal("did not trip at 2 failures in a row")
	}
	for _, failed := range []bool{true, false, true} {
		if err := b.record(failed); err != first {
			t.Fatalf("after the trip record returned %v, want the first trip %v", err, first)
		}
	}
}
