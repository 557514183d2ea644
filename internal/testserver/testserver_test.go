package testserver

import (
	"context"
	"errors"
	"fmt"
	"testing"
)

// TestOnFreePortRetriesATakenPort: a start that failed because another port
// it needs was taken is tried again on a new port; one that failed for
// another reason, with its port free, is not.
func TestOnFreePortRetriesATakenPort(t *testing.T) {
	t.Parallel()
	var ports []int
	port, err := OnFreePort(context.Background(), func(port int) error {
		ports = append(ports, port)
		if len(ports) == 1 {
			return fmt.Errorf("%w (imaps port 1): bind: address already in use", ErrPortTaken)
		}
		return nil
	})
	if err != nil || len(ports) != 2 || port != ports[1] {
		t.Fatalf("OnFreePort = %d, %v after starts on %v; want the second start's port", port, err, ports)
	}

	broken := errors.New("bad configuration")
	calls := 0
	if _, err := OnFreePort(context.Background(), func(int) error { calls++; return broken }); !errors.Is(err, broken) || calls != 1 {
		t.Fatalf("OnFreePort = %v after %d starts; want the start's error after one", err, calls)
	}
}
