package pgsink

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/myhibachi/backfill/errlog"
)

// ErrLocked means another run holds the inbox's lock.
var ErrLocked = errors.New("another backfill is already running for this inbox")

// Lock takes the inbox's advisory lock on a connection held until release
// is called, so two runs on one inbox never race while runs on different
// inboxes proceed in parallel. It fails at once with ErrLocked (wrapped, with
// the other run's operation id when known) instead of waiting.
func (s *Sink) Lock(ctx context.Context, inbox string) (release func(), err error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("acquire lock connection: %w", err)
	}
	key := "backfill:" + inbox
	var ok bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock(hashtextextended($1, 0))`, key).Scan(&ok); err != nil {
		conn.Release()
		return nil, fmt.Errorf("take run lock: %w", err)
	}
	if !ok {
		conn.Release()
		var holder *uuid.UUID
		_ = s.pool.QueryRow(ctx, `SELECT last_operation_id FROM email_sync_status WHERE inbox = $1 AND last_status = 'running'`, inbox).Scan(&holder)
		if holder != nil {
			return nil, &errlog.CriticalError{Type: "already_running", Err: fmt.Errorf("%w (operation %s)", ErrLocked, holder)}
		}
		return nil, &errlog.CriticalError{Type: "already_running", Err: ErrLocked}
	}
	return func() {
		// Unlock before returning the connection: the pool would otherwise
		// hand a locked session to someone else.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := conn.Exec(ctx, `SELECT pg_advisory_unlock(hashtextextended($1, 0))`, key); err != nil {
			conn.Conn().Close(ctx) //nolint:errcheck // closing drops the lock anyway
		}
		conn.Release()
	}, nil
}

// SeenUIDs returns the UIDs earlier runs finished for this UIDVALIDITY.
func (s *Sink) SeenUIDs(ctx context.Context, inbox string, uidValidity uint32) (map[uint32]bool, error) {
	rows, err := s.pool.Query(ctx, `SELECT uid FROM email_sync_uids WHERE inbox = $1 AND uidvalidity = $2`, inbox, int64(uidValidity))
	if err != nil {
		return nil, fmt.Errorf("read synced UIDs: %w", err)
	}
	seen := map[uint32]bool{}
	var uid int64
	_, err = pgx.ForEachRow(rows, []any{&uid}, func() error {
		seen[uint32(uid)] = true
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read synced UIDs: %w", err)
	}
	return seen, nil
}

// ExistingMessageIDs returns which of ids are already stored for the inbox,
// in one query that uses the (inbox, md5(message_id)) index.
func (s *Sink) ExistingMessageIDs(ctx context.Context, inbox string, ids []string) (map[string]bool, error) {
	found := map[string]bool{}
	if len(ids) == 0 {
		return found, nil
	}
	rows, err := s.pool.Query(ctx, `SELECT message_id FROM email_messages
		WHERE inbox = $1 AND md5(message_id) = ANY (SELECT md5(x) FROM unnest($2::text[]) x)`, inbox, ids)
	if err != nil {
		return nil, fmt.Errorf("look up stored Message-IDs: %w", err)
	}
	var id string
	_, err = pgx.ForEachRow(rows, []any{&id}, func() error {
		found[id] = true
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("look up stored Message-IDs: %w", err)
	}
	return found, nil
}

// BeginRun marks the inbox as being synced by operation opID.
func (s *Sink) BeginRun(ctx context.Context, inbox string, opID uuid.UUID) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO email_sync_status (inbox, last_operation_id, last_status)
		VALUES ($1, $2, 'running')
		ON CONFLICT (inbox) DO UPDATE SET last_operation_id = EXCLUDED.last_operation_id, last_status = 'running'`,
		inbox, uuidOrNil(opID))
	if err != nil {
		return fmt.Errorf("record run start: %w", err)
	}
	return nil
}

// RunResult is what FinishRun records.
type RunResult struct {
	Inbox       string
	OperationID uuid.UUID
	UIDValidity uint32
	LastUID     uint32
	Status      string // completed, completed_with_errors, aborted, interrupted
	Errors      []errlog.Group
}

// FinishRun records the run's outcome. total_synced is recounted from
// email_messages so the status row always agrees with the table.
func (s *Sink) FinishRun(ctx context.Context, r RunResult) error {
	groups := r.Errors
	if groups == nil {
		groups = []errlog.Group{}
	}
	errJSON, err := json.Marshal(groups)
	if err != nil {
		return fmt.Errorf("encode sync errors: %w", err)
	}
	_, err = s.pool.Exec(ctx, `INSERT INTO email_sync_status AS s (inbox, last_sync_at, total_synced, sync_errors,
			uidvalidity, last_uid, last_operation_id, last_status)
		VALUES ($1, now(), (SELECT count(*) FROM email_messages WHERE inbox = $1), $2, $3, $4, $5, $6)
		ON CONFLICT (inbox) DO UPDATE SET last_sync_at = EXCLUDED.last_sync_at,
			total_synced = EXCLUDED.total_synced, sync_errors = EXCLUDED.sync_errors,
			uidvalidity = COALESCE(EXCLUDED.uidvalidity, s.uidvalidity),
			last_uid = COALESCE(EXCLUDED.last_uid, s.last_uid),
			last_operation_id = EXCLUDED.last_operation_id, last_status = EXCLUDED.last_status`,
		r.Inbox, errJSON, zeroAsNull(r.UIDValidity), zeroAsNull(r.LastUID), uuidOrNil(r.OperationID), r.Status)
	if err != nil {
		return fmt.Errorf("record run result: %w", err)
	}
	return nil
}

// zeroAsNull keeps what is known when a run stopped before it learned the
// mailbox's UIDVALIDITY or UIDs (a refused login, say).
func zeroAsNull(v uint32) *int64 {
	if v == 0 {
		return nil
	}
	n := int64(v)
	return &n
}
