package pipeline

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/myhibachi/backfill/errlog"
	"github.com/myhibachi/backfill/imapsrc"
)

// attempts is what a retried operation knows of its retries.
type attempts struct {
	n int // calls so far, this one included
	b *backoff.ExponentialBackOff
}

// progressed restarts the backoff: the retry budget is for an operation
// that keeps failing, not for a long one that failed once after progress.
func (a *attempts) progressed() { a.b.Reset() }

// retryOp runs op until it succeeds, fails for a reason other than a
// transient one (errlog.Classify, or an error op wraps in
// backoff.Permanent), or has failed transiently for limit, waiting an
// exponential backoff with jitter between attempts and telling the
// observer. It never starts an attempt once ctx is done. An operation that
// kept failing ends with a critical retries_exhausted error. This is the
// one retry loop of a run: connections, fetches and database writes all
// retry through it.
func (r *runner) retryOp(ctx context.Context, what string, limit time.Duration, op func(*attempts) error) error {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = 200 * time.Millisecond
	b.MaxInterval = 10 * time.Second
	b.MaxElapsedTime = limit
	a := &attempts{b: b}
	sb := &suggestedBackOff{ExponentialBackOff: b}
	gaveUp := false // the last attempt failed transiently
	err := backoff.RetryNotify(func() error {
		gaveUp = false
		if ctx.Err() != nil {
			return backoff.Permanent(ctx.Err())
		}
		a.n++
		err := op(a)
		var permanent *backoff.PermanentError
		if err == nil || errors.As(err, &permanent) {
			return err
		}
		if ctx.Err() != nil || errlog.Classify(err) != errlog.Transient {
			return backoff.Permanent(err)
		}
		if t, ok := errlog.Throttled(err); ok {
			sb.next = t.Backoff
		}
		gaveUp = true // until the next attempt
		return err
	}, backoff.WithContext(sb, ctx), func(err error, d time.Duration) {
		r.obs.Retrying(what, err, a.n, d)
	})
	if err != nil && gaveUp && ctx.Err() == nil {
		return &errlog.CriticalError{Type: "retries_exhausted", Err: fmt.Errorf("gave up after %d attempts: %w", a.n, err)}
	}
	return err
}

// suggestedBackOff waits what a throttling server suggested (Microsoft
// 365's "Suggested Backoff Time") instead of the exponential backoff's
// next interval, when that is longer, but never past the retry budget
// (MaxElapsedTime): the exponential backoff still says when to give up.
type suggestedBackOff struct {
	*backoff.ExponentialBackOff
	next time.Duration // the server's suggestion for the coming wait
}

func (s *suggestedBackOff) NextBackOff() time.Duration {
	d := s.ExponentialBackOff.NextBackOff()
	if d != backoff.Stop && s.next > d {
		d = s.next
		if left := s.MaxElapsedTime - s.GetElapsedTime(); s.MaxElapsedTime > 0 && d > left {
			d = max(left, 0)
		}
	}
	s.next = 0
	return d
}

// dbAttemptTimeout bounds one database operation. A statement that takes
// longer is taken for a stalled server and retried, instead of holding the
// run for ever.
const dbAttemptTimeout = time.Minute

// retry runs a database operation through retryOp for --retry-for. Each
// attempt gets its own context, bounded by dbAttemptTimeout.
func (r *runner) retry(ctx context.Context, what string, op func(context.Context) error) error {
	return r.retryOp(ctx, what, r.cfg.RetryFor, func(*attempts) error {
		actx, cancel := context.WithTimeout(ctx, dbAttemptTimeout)
		defer cancel()
		return op(actx)
	})
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
func (r *runner) connectAndList(ctx context.Context) (conn *imapsrc.Conn, mbox imapsrc.Mailbox, uids []uint32, err error) {
	err = r.retryOp(ctx, "IMAP connection", min(r.cfg.RetryFor, firstConnectFor), func(*attempts) (err error) {
		conn, mbox, uids, err = r.tryList(ctx)
		return err
	})
	if err != nil {
		return nil, mbox, nil, err
	}
	return conn, mbox, uids, nil
}

func (r *runner) tryList(ctx context.Context) (*imapsrc.Conn, imapsrc.Mailbox, []uint32, error) {
	conn, mbox, err := r.conns.open(ctx)
	if err != nil {
		return nil, mbox, nil, err
	}
	if conn.Gmail() && !r.listed {
		if err := r.listForLabels(ctx, conn, mbox.Name); err != nil {
			conn.Close()
			return nil, mbox, nil, err
		}
	}
	if !r.cfg.DryRun {
		r.conns.predial(ctx, mbox.UIDValidity, func(ctx context.Context) int { return r.predialCount(ctx, mbox) })
	}
	uids, err := conn.ListUIDsFrom(ctx, r.minUID(mbox))
	if err != nil {
		conn.Close()
		return nil, mbox, nil, err
	}
	return conn, mbox, uids, nil
}
