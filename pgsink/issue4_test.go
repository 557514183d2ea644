package pgsink_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/myhibachi/backfill/errlog"
	"github.com/myhibachi/backfill/message"
	"github.com/myhibachi/backfill/pgsink"
	"github.com/myhibachi/backfill/threading"
)

// TestRetryAfterLostCommitAckReportsStored plays a COMMIT that took effect
// while its acknowledgement was lost: the first Store commits, the client
// never hears it, and the retry finds the rows already there. The retry must
// report its own rows as inserted, and still report a genuine duplicate (a
// row another UID stored) as skipped, without inflating the thread counts.
func TestRetryAfterLostCommitAckReportsStored(t *testing.T) {
	t.Parallel()
	s := newSink(t)
	ctx := context.Background()
	// An earlier batch stored d@x from UID 1.
	if _, err := s.Store(ctx, pgsink.Batch{Inbox: "support", UIDValidity: 7,
		Messages: []*message.Message{msg(1, "d@x", "Earlier", "dan@example.com", "cs@myhibachichef.com")}}); err != nil {
		t.Fatal(err)
	}
	batch := pgsink.Batch{Inbox: "support", UIDValidity: 7, Messages: []*message.Message{
		msg(10, "a@x", "Payment Question", "alice@example.com", "cs@myhibachichef.com"),
		msg(11, "d@x", "Earlier", "dan@example.com", "cs@myhibachichef.com"), // redelivered copy of UID 1
		msg(12, "b@x", "RE: Payment Question", "cs@myhibachichef.com", "alice@example.com"),
	}, Done: []pgsink.Settled{{UID: 13, MessageID: "a@x"}}}

	first, err := s.Store(ctx, batch) // committed; its answer "lost"
	if err != nil {
		t.Fatal(err)
	}
	if want := []bool{true, false, true}; !slices.Equal(first, want) {
		t.Fatalf("first attempt inserted %v, want %v", first, want)
	}

	retry := batch
	retry.Retry = true
	got, err := s.Store(ctx, retry)
	if err != nil {
		t.Fatal(err)
	}
	if want := []bool{true, false, true}; !slices.Equal(got, want) {
		t.Fatalf("retry after a lost COMMIT acknowledgement reported inserted = %v, want %v (its own rows stored, the duplicate skipped)", got, want)
	}

	// Without the retry flag (a later run), the same rows are skipped.
	again, err := s.Store(ctx, batch)
	if err != nil {
		t.Fatal(err)
	}
	if want := []bool{false, false, false}; !slices.Equal(again, want) {
		t.Fatalf("a first attempt finding the rows reported %v, want %v", again, want)
	}
	// A retry with the same Message-ID under another UIDVALIDITY is not ours.
	other := retry
	other.UIDValidity = 8
	other.Messages = []*message.Message{msg(10, "a@x", "Payment Question", "alice@example.com", "cs@myhibachichef.com")}
	other.Messages[0].UIDValidity = 8
	if got, err := s.Store(ctx, other); err != nil || got[0] {
		t.Fatalf("retry of a row stored under another UIDVALIDITY: inserted %v, %v; want false", got, err)
	}

	p := s.Pool()
	if n := count(t, p, `SELECT count(*) FROM email_messages WHERE inbox = 'support'`); n != 3 {
		t.Fatalf("email_messages has %d rows, want 3", n)
	}
	if n := count(t, p, `SELECT message_count FROM email_threads WHERE thread_id = $1`,
		threading.ID("Payment Question", "alice@example.com", []string{"cs@myhibachichef.com"})); n != 2 {
		t.Fatalf("payment thread message_count = %d, want 2 (a retry must not count twice)", n)
	}
}

// lockHolder returns the backend holding the inbox's run lock in p's
// database, or 0.
func lockHolder(t *testing.T, p *pgxpool.Pool, inbox string) uint32 {
	t.Helper()
	var pid uint32
	err := p.QueryRow(context.Background(), `SELECT coalesce(max(pid), 0) FROM pg_locks
		WHERE locktype = 'advisory' AND granted AND objsubid = 1
		AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
		AND ((classid::bigint << 32) | objid::bigint) = hashtextextended('backfill:' || $1, 0)`, inbox).Scan(&pid)
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

// kill terminates a backend and waits until it is gone, so its locks are
// released.
func kill(t *testing.T, p *pgxpool.Pool, pid uint32) {
	t.Helper()
	if _, err := p.Exec(context.Background(), `SELECT pg_terminate_backend($1)`, int32(pid)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "backend to exit", func() bool {
		return count(t, p, `SELECT count(*) FROM pg_stat_activity WHERE pid = $1`, int32(pid)) == 0
	})
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestLockIsRetakenWhenItsConnectionDies kills the session holding the run
// lock: the holder notices, takes the lock again on a new connection, so a
// second run is still kept out, and the run goes on.
func TestLockIsRetakenWhenItsConnectionDies(t *testing.T) {
	t.Parallel()
	s, release, runCtx := lockedRun(t)
	ctx := context.Background()
	p := s.Pool()
	old := lockHolder(t, p, "support")
	if old == 0 {
		t.Fatal("no session holds the run lock")
	}
	kill(t, p, old)
	waitFor(t, "the lock to be taken again", func() bool {
		pid := lockHolder(t, p, "support")
		return pid != 0 && pid != old
	})
	if runCtx.Err() != nil {
		t.Fatalf("the run was cancelled although its lock was taken back: %v", context.Cause(runCtx))
	}
	if _, err := s.Lock(ctx, "support"); !errors.Is(err, pgsink.ErrLocked) {
		t.Fatalf("a second run after the lock was taken back: %v, want ErrLocked", err)
	}
	release()
	if pid := lockHolder(t, p, "support"); pid != 0 {
		t.Fatalf("session %d still holds the lock after release", pid)
	}
}

// TestReleaseDuringACheckFreesTheLock releases run locks whose connection
// is pinged every millisecond, so release mostly lands while a check is in
// flight: the lock must be free once release returns, every time.
func TestReleaseDuringACheckFreesTheLock(t *testing.T) {
	t.Parallel()
	s := newSink(t)
	pgsink.SetLockCheck(s, time.Millisecond)
	ctx := context.Background()
	for i := range 30 {
		release, err := s.Lock(ctx, "support")
		if err != nil {
			t.Fatalf("lock %d: %v", i, err)
		}
		time.Sleep(time.Duration(i%5) * time.Millisecond)
		release()
		if pid := lockHolder(t, s.Pool(), "support"); pid != 0 {
			t.Fatalf("release %d: session %d still holds the lock", i, pid)
		}
	}
}

// TestLockLostToAnotherSessionCancelsTheRun kills the session holding the
// run lock while another session waits for it: that one gets the lock
// first, and the run's context is cancelled with a critical lock_lost error.
func TestLockLostToAnotherSessionCancelsTheRun(t *testing.T) {
	t.Parallel()
	s, release, runCtx := lockedRun(t)
	ctx := context.Background()
	p := s.Pool()
	old := lockHolder(t, p, "support")

	// The other session queues on the lock before the holder dies, so it
	// wins the race with the holder's next check whatever the timing.
	other, err := p.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Release()
	otherPID := other.Conn().PgConn().PID()
	granted := make(chan error, 1)
	go func() {
		_, err := other.Exec(ctx, `SELECT pg_advisory_lock(hashtextextended('backfill:support', 0))`)
		granted <- err
	}()
	waitFor(t, "the other session to queue on the lock", func() bool {
		return count(t, p, `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND pid = $1`, int32(otherPID)) == 1
	})
	kill(t, p, old)
	if err := <-granted; err != nil {
		t.Fatal(err)
	}

	select {
	case <-runCtx.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the run was not cancelled after losing its lock")
	}
	cause := context.Cause(runCtx)
	var ce *errlog.CriticalError
	if !errors.Is(cause, pgsink.ErrLockLost) || !errors.As(cause, &ce) || ce.Type != "lock_lost" {
		t.Fatalf("cancelled with %v, want a critical lock_lost error", cause)
	}
	if pid := lockHolder(t, p, "support"); pid != otherPID {
		t.Fatalf("lock held by %d, want the other session %d", pid, otherPID)
	}
	release() // must not touch the other session's lock
	if pid := lockHolder(t, p, "support"); pid != otherPID {
		t.Fatalf("after release the lock is held by %d, want the other session %d", pid, otherPID)
	}
	if _, err := other.Exec(ctx, `SELECT pg_advisory_unlock_all()`); err != nil {
		t.Fatal(err)
	}
}

// TestFinishRunLeavesTheNewHoldersRow: a run that lost its lock records its
// end after another run has begun; the status row must stay the other's.
func TestFinishRunLeavesTheNewHoldersRow(t *testing.T) {
	t.Parallel()
	s := newSink(t)
	ctx := context.Background()
	lostRun, newRun := uuid.New(), uuid.New()
	if abandoned, err := s.BeginRun(ctx, "support", lostRun); err != nil || abandoned != uuid.Nil {
		t.Fatalf("first BeginRun: abandoned %s, %v; want none", abandoned, err)
	}
	// The lock changed hands: the new run records the old one abandoned.
	if abandoned, err := s.BeginRun(ctx, "support", newRun); err != nil || abandoned != lostRun {
		t.Fatalf("second BeginRun: abandoned %s, %v; want %s", abandoned, err, lostRun)
	}
	// A retried BeginRun of the same run finds nothing abandoned.
	if abandoned, err := s.BeginRun(ctx, "support", newRun); err != nil || abandoned != uuid.Nil {
		t.Fatalf("BeginRun again: abandoned %s, %v; want none", abandoned, err)
	}
	if err := s.FinishRun(ctx, pgsink.RunResult{Inbox: "support", OperationID: lostRun, Status: "aborted"}); err != nil {
		t.Fatal(err)
	}
	var op uuid.UUID
	var status string
	if err := s.Pool().QueryRow(ctx, `SELECT last_operation_id, last_status FROM email_sync_status WHERE inbox = 'support'`).Scan(&op, &status); err != nil {
		t.Fatal(err)
	}
	if op != newRun || status != "running" {
		t.Fatalf("status row = %s %s, want the new run %s still running", op, status, newRun)
	}
	// The new run's own result is recorded.
	if err := s.FinishRun(ctx, pgsink.RunResult{Inbox: "support", OperationID: newRun, Status: "completed"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Pool().QueryRow(ctx, `SELECT last_operation_id, last_status FROM email_sync_status WHERE inbox = 'support'`).Scan(&op, &status); err != nil {
		t.Fatal(err)
	}
	if op != newRun || status != "completed" {
		t.Fatalf("status row = %s %s, want the new run %s completed", op, status, newRun)
	}
}

// lockedRun takes the "support" run lock, checked every 50 ms, and returns
// the release func and the context WatchLock cancels when the lock is lost.
func lockedRun(t *testing.T) (*pgsink.Sink, func(), context.Context) {
	t.Helper()
	s := newSink(t)
	pgsink.SetLockCheck(s, 50*time.Millisecond)
	ctx := context.Background()
	release, err := s.Lock(ctx, "support")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(release)
	runCtx, stop := s.WatchLock(ctx, "support")
	t.Cleanup(stop)
	return s, release, runCtx
}
