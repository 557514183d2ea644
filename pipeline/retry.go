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
// operation: backoff values are stateful and not goroutine-safe.
func (r *runner) newBackOff(ctx context.Context) backoff.BackOff {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = 200 * time.Millisecond
	b.MaxInterval = 10 * time.Second
	b.MaxElapsedTime = r.cfg.RetryFor
	return backoff.WithContext(b, ctx)
}

// wait sleeps for the next backoff interval after a transient error, or
// returns the error when the operation has been retried long enough.
func wait(ctx context.Context, b backoff.BackOff, cause error) error {
	d := b.NextBackOff()
	if d == backoff.Stop {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return &errlog.CriticalError{Type: "retries_exhausted", Err: fmt.Errorf("gave up retrying: %w", cause)}
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// dial connects with retries on transient failures (a refused connection, a
// server at its connection limit); refused credentials fail at once.
func (r *runner) dial(ctx context.Context) (*imapsrc.Conn, error) {
	bo := r.newBackOff(ctx)
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
		if werr := wait(ctx, bo, err); werr != nil {
			return nil, werr
		}
	}
}
