package pgsink

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/myhibachi/backfill/errlog"
)

// ErrLocked means another run holds the inbox's lock.
var ErrLocked = errors.New("another backfill is already running for this inbox")

// ErrLockLost means the run lock's connection died and another session took
// the lock before this run could take it back.
var ErrLockLost = errors.New("lost the run lock for this inbox")

// lockCheckEvery is how often a held run lock's connection is pinged: a
// round trip on an idle connection, cheap, and short enough that a run
// which lost its lock stops within seconds of another starting.
const lockCheckEvery = 2 * time.Second

// runLock is a held run lock and the goroutine watching its connection.
type runLock struct {
	key  string
	conn *pgxpool.Conn // nil while lost; owned by watch until done is closed
	// pid is the backend that last held the lock: while pg_locks still shows
	// it holding, that session (dead to us, alive to the server) keeps other
	// runs out and the lock is not yet lost.
	pid  uint32
	stop context.CancelFunc
	done chan struct{} // closed when watch returns
	lost chan struct{} // closed, after err is set, when the lock is lost for good
	err  error
}

// Lock takes the inbox's advisory lock on a connection held until release
// is called, so two runs on one inbox never race while runs on different
// inboxes proceed in parallel. It fails at once with ErrLocked (wrapped, with
// the other run's operation id when known) instead of waiting.
//
// The lock lives as long as its session, so its connection is pinged every
// few seconds; when it has died the lock is taken again on a new one, and
// when another session took it meanwhile, WatchLock's context is cancelled.
func (s *Sink) Lock(ctx context.Context, inbox string) (release func(), err error) {
	key := "backfill:" + inbox
	conn, ok, err := s.tryLock(ctx, key)
	if err != nil {
		return nil, err
	}
	if !ok {
		var holder *string
		if q := s.writer().holder; q != "" {
			_ = s.pool.QueryRow(ctx, q, inbox).Scan(&holder)
		}
		if holder != nil {
			return nil, &errlog.CriticalError{Type: "already_running", Err: fmt.Errorf("%w (operation %s)", ErrLocked, *holder)}
		}
		return nil, &errlog.CriticalError{Type: "already_running", Err: ErrLocked}
	}
	wctx, stop := context.WithCancel(context.Background())
	l := &runLock{key: key, conn: conn, pid: conn.Conn().PgConn().PID(), stop: stop,
		done: make(chan struct{}), lost: make(chan struct{})}
	s.mu.Lock()
	if s.locks == nil {
		s.locks = map[string]*runLock{}
	}
	s.locks[inbox] = l
	every := s.lockCheck
	s.mu.Unlock()
	if every <= 0 {
		every = lockCheckEvery
	}
	go s.watch(wctx, l, every)
	var once sync.Once
	return func() {
		once.Do(func() {
			l.stop()
			<-l.done
			s.mu.Lock()
			delete(s.locks, inbox)
			s.mu.Unlock()
			if l.conn != nil {
				// Unlock before returning the connection: the pool would
				// otherwise hand a locked session to someone else.
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				_, err := l.conn.Exec(ctx, `SELECT pg_advisory_unlock(hashtextextended($1, 0))`, key)
				if err != nil {
					l.conn.Conn().Close(ctx) //nolint:errcheck // closing drops the lock anyway
				}
				l.conn.Release()
				cancel()
				if err == nil {
					return
				}
			}
			// A closed session keeps its lock until the server has ended
			// it, which it does in its own time: wait for that, so the
			// inbox is free once release returns.
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			s.awaitUnlocked(ctx, key, l.pid)
		})
	}, nil
}

// tryLock takes the lock on a connection of its own, which it returns only
// when ok.
func (s *Sink) tryLock(ctx context.Context, key string) (conn *pgxpool.Conn, ok bool, err error) {
	conn, err = s.pool.Acquire(ctx)
	if err != nil {
		return nil, false, fmt.Errorf("acquire lock connection: %w", err)
	}
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock(hashtextextended($1, 0))`, key).Scan(&ok); err != nil {
		// The server may have taken the lock before the failure: such a
		// session must not go back to the pool.
		conn.Conn().Close(ctx) //nolint:errcheck // closing is the point
		conn.Release()
		return nil, false, fmt.Errorf("take run lock: %w", err)
	}
	if !ok {
		conn.Release()
		return nil, false, nil
	}
	return conn, true, nil
}

// watch pings the lock's connection every interval until ctx ends. A dead
// connection is closed and the lock taken again; if another session holds
// it, the lock is lost and watch returns.
func (s *Sink) watch(ctx context.Context, l *runLock, every time.Duration) {
	defer close(l.done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		// Release stopping the watch must not cut a check short: a ping
		// cancelled halfway leaves the connection closed but its session,
		// and the lock, alive on the server for a while.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), every+5*time.Second)
		err := s.checkLock(cctx, l)
		cancel()
		if errors.Is(err, ErrLockLost) {
			l.err = &errlog.CriticalError{Type: "lock_lost", Err: err}
			close(l.lost)
			return
		}
		// Any other failure (the database unreachable for now) is tried
		// again at the next tick; the run's own retries decide whether the
		// database is gone.
	}
}

// checkLock makes sure l is held, taking it again when its connection died.
// It returns an error wrapping ErrLockLost when another session holds it.
func (s *Sink) checkLock(ctx context.Context, l *runLock) error {
	if l.conn != nil {
		if l.conn.Ping(ctx) == nil {
			return nil
		}
		l.conn.Conn().Close(ctx) //nolint:errcheck // it is broken already
		l.conn.Release()
		l.conn = nil
	}
	conn, ok, err := s.tryLock(ctx, l.key)
	if err != nil {
		return err
	}
	if ok {
		l.conn, l.pid = conn, conn.Conn().PgConn().PID()
		return nil
	}
	var holder uint32
	err = s.pool.QueryRow(ctx, lockPIDSQL, l.key).Scan(&holder)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return nil // released between the two statements: take it at the next tick
	case err != nil:
		return fmt.Errorf("find the run lock's holder: %w", err)
	case holder == l.pid:
		return nil // our old session, not yet reaped by the server: still ours
	}
	return fmt.Errorf("%w: its database connection dropped and session %d took the inbox meanwhile", ErrLockLost, holder)
}

// lockPIDSQL finds the session (backend pid) holding the run lock named $1.
const lockPIDSQL = `SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1
	AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
	AND ((classid::bigint << 32) | objid::bigint) = hashtextextended($1, 0)`

// awaitUnlocked waits until session pid no longer holds the lock named key,
// or ctx ends, or the server cannot be asked: then nothing more can be done.
func (s *Sink) awaitUnlocked(ctx context.Context, key string, pid uint32) {
	for {
		var holder uint32
		if err := s.pool.QueryRow(ctx, lockPIDSQL, key).Scan(&holder); err != nil || holder != pid {
			return // pgx.ErrNoRows: nobody holds it
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// WatchLock returns a copy of ctx that is cancelled, with a critical error
// wrapping ErrLockLost as its cause, when the inbox's run lock taken with
// Lock is lost to another session: a run going on would race that one.
func (s *Sink) WatchLock(ctx context.Context, inbox string) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(ctx)
	s.mu.Lock()
	l := s.locks[inbox]
	s.mu.Unlock()
	if l != nil {
		go func() {
			select {
			case <-l.lost:
				cancel(l.err)
			case <-ctx.Done():
			}
		}()
	}
	return ctx, func() { cancel(nil) }
}
