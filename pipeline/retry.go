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
	rt.r.obs.Retrying(rt.what, cause, rt.attempt, d)
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

// dbAttemptTimeout bounds one database operation. A statement that takes
// longer is taken for a stalled server and retried, instead of holding the
// run for ever.
const dbAttemptTimeout = time.Minute

// retry runs op until it succeeds, fails for a reason other than a
// transient one, or has been retried for --retry-for. Each attempt gets its
// own context, bounded by dbAttemptTimeout.
func (r *runner) retry(ctx context.Context, what string, op func(context.Context) error) error {
	rt := r.retrier(ctx, what)
	for {
		actx, cancel := context.WithTimeout(ctx, dbAttemptTimeout)
		err := op(actx)
		cancel()
		if err == nil || ctx.Err() != nil || errlog.Classify(err) != errlog.Transient {
			return err
		}
		if werr := rt.wait(ctx, err); werr != nil {
			return werr
		}
	}
}

// firstConnectFor bounds retries of a run's first connection and listing: a
// server that is down when a deployment script runs should fail it quickly
// (exit 2), not after the full --retry-for. Later connections are the
// workers' (join).
const firstConnectFor = 30 * time.Second

// connectAndList makes the run's first connection, selects the mailbox
// read-only and lists its UIDs, starting over on a transient failure at any
// step (a refused or dropped connection, a server at its connection limit);
// refused credentials or a missing mailbox fail at once.
func (r *runner) connectAndList(ctx context.Context) (*imapsrc.Conn, imapsrc.Mailbox, []uint32, error) {
	rt := r.retrier(ctx, "IMAP connection")
	rt.b = newBackOff(ctx, min(r.cfg.RetryFor, firstConnectFor))
	for {
		conn, mbox, uids, err := r.tryList(ctx)
		if err == nil {
			return conn, mbox, uids, nil
		}
		if ctx.Err() != nil {
			return nil, mbox, nil, ctx.Err()
		}
		if errlog.Classify(err) != errlog.Transient {
			return nil, mbox, nil, err
		}
		if werr := rt.wait(ctx, err); werr != nil {
			return nil, mbox, nil, werr
		}
	}
}

func (r *runner) tryList(ctx context.Context) (*imapsrc.Conn, imapsrc.Mailbox, []uint32, error) {
	conn, mbox, err := r.conns.open(ctx)
	if err != nil {
		return nil, mbox, nil, err
	}
	if !r.cfg.DryRun {
		r.conns.predial(ctx, func(ctx context.Context) int { return r.predialCount(ctx, mbox) })
	}
	uids, err := conn.ListUIDs(ctx)
	if err != nil {
		conn.Close()
		return nil, mbox, nil, err
	}
	return conn, mbox, uids, nil
}
