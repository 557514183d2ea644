package pipeline

import (
	"context"
	"fmt"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/myhibachi/backfill/errlog"
	"github.com/myhibachi/backfill/imapsrc"
)

// newBackOff returns a fresh exponential backoff with jitter for one
// operation, giving up after limit: backoff values are stateful and not
// goroutine-safe.
func newBackOff(ctx context.Context, limit time.Duration) backoff.BackOff {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = 200 * time.Millisecond
	b.MaxInterval = 10 * time.Second
	b.MaxElapsedTime = limit
	return backoff.WithContext(b, ctx)
}

// retrier retries one operation on transient errors and tells the observer.
type retrier struct {
	r       *runner
	what    string
	b       backoff.BackOff
	attempt int
}

func (r *runner) retrier(ctx context.Context, what string) *retrier {
	return &retrier{r: r, what: what, b: newBackOff(ctx, r.cfg.RetryFor), attempt: 1}
}

// wait sleeps for the next backoff interval after a transient error, or
// returns a critical error when the operation has been retried long enough.
func (rt *retrier) wait(ctx context.Context, cause error) error {
	d := rt.b.NextBackOff()
	if d == backoff.Stop {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return &errlog.CriticalError{Type: "retries_exhausted", Err: fmt.Errorf("gave up after %d attempts: %w", rt.attempt, cause)}
	}
	rt.r.mu.Lock()
	rt.r.obs.Retrying(rt.what, cause, rt.attempt, d)
	rt.r.mu.Unlock()
	rt.attempt++
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// firstConnectFor bounds retries of a run's first connection: a server that
// is down when a deployment script runs should fail it quickly (exit 2), not
// after the full --retry-for. Later connections are the workers' (join).
const firstConnectFor = 30 * time.Second

// dial makes the run's first connection, retrying transient failures (a
// refused connection, a server at its connection limit); refused
// credentials fail at once.
func (r *runner) dial(ctx context.Context) (*imapsrc.Conn, error) {
	rt := r.retrier(ctx, "IMAP connection")
	rt.b = newBackOff(ctx, min(r.cfg.RetryFor, firstConnectFor))
	for {
		conn, err := imapsrc.Dial(ctx, r.cfg.IMAP)
		if err == nil {
			return conn, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if errlog.Classify(err) != errlog.Transient {
			return nil, err
		}
		if werr := rt.wait(ctx, err); werr != nil {
			return nil, werr
		}
	}
}
