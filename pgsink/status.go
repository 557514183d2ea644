package pgsink

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/myhibachi/backfill/errlog"
)

// SettledCount returns how many UIDs of folder ("" means INBOX) earlier
// runs finished for this UIDVALIDITY (some may have been expunged since).
func (s *Sink) SettledCount(ctx context.Context, inbox, folder string, uidValidity uint32) (int, error) {
	var n int
	err := s.pool.QueryRow(ctx, `SELECT count(*) FROM email_sync_uids WHERE inbox = $1 AND folder = $2 AND uidvalidity = $3`,
		inbox, folderName(folder), int64(uidValidity)).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count synced UIDs: %w", err)
	}
	return n, nil
}

// SeenUIDs returns the UIDs of folder ("" means INBOX) earlier runs finished
// for this UIDVALIDITY whose rows are still stored. A settled UID whose row was deleted (by hand, by a
// cleanup job, by TRUNCATE) is left out, so the run fetches and stores it
// again, as the guide promises: what is not in the database is synced.
func (s *Sink) SeenUIDs(ctx context.Context, inbox, folder string, uidValidity uint32) (map[uint32]bool, error) {
	return s.SeenUIDsFrom(ctx, inbox, folder, uidValidity, 0)
}

// SeenUIDsFrom is SeenUIDs for the UIDs from first up only: a listing of
// the UIDs above those already handled needs no more, and reads as many
// rows as it has UIDs, not as the folder.
func (s *Sink) SeenUIDsFrom(ctx context.Context, inbox, folder string, uidValidity, first uint32) (map[uint32]bool, error) {
	rows, err := s.pool.Query(ctx, s.writer().seen, inbox, int64(uidValidity), folderName(folder), int64(first))
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

// seenSQL checks each settled UID's row with one probe of the unique index,
// for the reason existingSQL gives: measured at 10,000 settled UIDs, see
// BenchmarkSeenUIDs.
const seenSQL = `SELECT u.uid FROM email_sync_uids u
	CROSS JOIN LATERAL (SELECT 1 FROM email_messages m
		WHERE m.inbox = $1 AND md5(m.message_id) = md5(u.message_id) LIMIT 1) AS m
	WHERE u.inbox = $1 AND u.folder = $3 AND u.uidvalidity = $2 AND u.uid >= $4`

// ForgetOtherUIDValidities deletes the UIDs of folder ("" means INBOX)
// settled under any UIDVALIDITY but uidValidity; other folders' stay. Once
// the server has handed out a new one, the old UIDs name nothing, and a
// server that changes it on every session would otherwise grow
// email_sync_uids by the mailbox's size on every run (issue 14). It returns the highest UIDVALIDITY it found besides uidValidity, 0
// when there was none. With keep set (a dry run) it only looks.
func (s *Sink) ForgetOtherUIDValidities(ctx context.Context, inbox, folder string, uidValidity uint32, keep bool) (uint32, error) {
	q := `WITH d AS (DELETE FROM email_sync_uids WHERE inbox = $1 AND folder = $3 AND uidvalidity <> $2 RETURNING uidvalidity)
		SELECT coalesce(max(uidvalidity), 0) FROM d`
	if keep {
		q = `SELECT coalesce(max(uidvalidity), 0) FROM email_sync_uids WHERE inbox = $1 AND folder = $3 AND uidvalidity <> $2`
	}
	var prev int64
	if err := s.pool.QueryRow(ctx, q, inbox, int64(uidValidity), folderName(folder)).Scan(&prev); err != nil {
		return 0, fmt.Errorf("forget UIDs of earlier UIDVALIDITYs: %w", err)
	}
	return uint32(prev), nil
}

// existingSQL finds the stored Message-IDs among MD5 hashes; see
// ExistingMessageIDs.
const existingSQL = `SELECT m.message_id FROM unnest($2::text[]) AS h(hash)
	CROSS JOIN LATERAL (SELECT message_id FROM email_messages
		WHERE inbox = $1 AND md5(message_id) = h.hash LIMIT 1) AS m`

// ExistingMessageIDs returns which of ids are already stored for the inbox
// (dry runs use it), probing the (inbox, md5(message_id)) index once per id.
//
// The shape matters. As a semi-join, or as md5(message_id) = ANY($2), the
// planner read every row of the inbox through another index and filtered
// on the hash whenever the table had not been analysed yet: 5.7 ms per
// 100 ids at 10,000 messages, growing with the mailbox. A LATERAL subquery
// with LIMIT cannot be flattened into a join, and with equality on both
// columns of a unique index its only sensible plan is one index probe.
func (s *Sink) ExistingMessageIDs(ctx context.Context, inbox string, ids []string) (map[string]bool, error) {
	found := map[string]bool{}
	if len(ids) == 0 {
		return found, nil
	}
	w := s.writer()
	keys := make([]string, len(ids))
	original := map[string]string{}
	for i, id := range ids {
		if w.hashes {
			sum := md5.Sum([]byte(id))
			keys[i] = hex.EncodeToString(sum[:])
			continue
		}
		keys[i] = w.storedID(id)
		original[keys[i]] = id
	}
	rows, err := s.pool.Query(ctx, w.existing, inbox, keys)
	if err != nil {
		return nil, fmt.Errorf("look up stored Message-IDs: %w", err)
	}
	var id string
	_, err = pgx.ForEachRow(rows, []any{&id}, func() error {
		if o, ok := original[id]; ok {
			id = o
		}
		found[id] = true
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("look up stored Message-IDs: %w", err)
	}
	return found, nil
}

// BeginRun marks the inbox as being synced by operation opID. The caller
// holds the inbox's run lock, so a row still saying 'running' under another
// operation id belongs to a run that never recorded how it ended (killed
// with SIGKILL, out of memory, its machine lost, or stopping after it lost
// the lock): BeginRun returns that operation id as abandoned, uuid.Nil
// when there is none (or the table has no column to say it).
func (s *Sink) BeginRun(ctx context.Context, inbox string, opID uuid.UUID) (abandoned uuid.UUID, err error) {
	w := s.writer()
	if w.holder != "" {
		var prev *string
		err := s.pool.QueryRow(ctx, w.holder, inbox).Scan(&prev)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return uuid.Nil, fmt.Errorf("record run start: %w", err)
		}
		if prev != nil {
			// An id that is not a UUID (an adopted table's) is no run of ours.
			if id, perr := uuid.Parse(*prev); perr == nil && id != opID {
				abandoned = id
			}
		}
	}
	if w.begin == "" {
		return abandoned, nil // an adopted email_sync_status with no column to say it
	}
	if _, err := s.pool.Exec(ctx, w.begin, inbox, nil, nil, nil, uuidOrNil(opID), nil); err != nil {
		return uuid.Nil, fmt.Errorf("record run start: %w", err)
	}
	return abandoned, nil
}

// beginSQL, finishSQL and holderSQL write and read the tool's own
// email_sync_status; their parameters are statusParams.
const beginSQL = `WITH ` + statusParams + `
	INSERT INTO email_sync_status (inbox, last_operation_id, last_status) SELECT p.inbox, p.op, 'running' FROM p
	ON CONFLICT (inbox) DO UPDATE SET last_operation_id = EXCLUDED.last_operation_id, last_status = 'running'`

const finishSQL = `WITH ` + statusParams + `
	INSERT INTO email_sync_status AS s (inbox, last_sync_at, total_synced, sync_errors,
		uidvalidity, last_uid, last_operation_id, last_status)
	SELECT p.inbox, now(), (SELECT count(*) FROM email_messages WHERE inbox = p.inbox), p.errs, p.uv, p.last_uid, p.op, p.status
	FROM p
	ON CONFLICT (inbox) DO UPDATE SET last_sync_at = EXCLUDED.last_sync_at,
		total_synced = EXCLUDED.total_synced, sync_errors = EXCLUDED.sync_errors,
		uidvalidity = COALESCE(EXCLUDED.uidvalidity, s.uidvalidity),
		last_uid = COALESCE(EXCLUDED.last_uid, s.last_uid),
		last_operation_id = EXCLUDED.last_operation_id, last_status = EXCLUDED.last_status
	-- A run that lost its lock must not overwrite the row of the run that
	-- took the inbox over (only a lock holder calls BeginRun).
	WHERE s.last_status IS DISTINCT FROM 'running' OR s.last_operation_id IS NOT DISTINCT FROM EXCLUDED.last_operation_id`

const holderSQL = `SELECT last_operation_id::text FROM email_sync_status WHERE inbox = $1 AND last_status = 'running'`

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
	_, err = s.pool.Exec(ctx, s.writer().finish,
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

// FolderResult is what FinishFolder records about one folder of a run.
type FolderResult struct {
	Inbox       string
	Folder      string // "" means INBOX
	SpecialUse  string // \Sent, \All, ...; "" when none
	OperationID uuid.UUID
	UIDValidity uint32
	LastUID     uint32
	// Found is how many messages the folder held; Stored, Skipped and
	// Failed what became of those the run selected.
	Found, Stored, Skipped, Failed int
	Status                         string // as RunResult's
}

// FinishFolder records what a run did in one folder, in
// email_sync_folders, for `backfill status`.
func (s *Sink) FinishFolder(ctx context.Context, r FolderResult) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO email_sync_folders AS f (inbox, folder, special_use, uidvalidity, last_uid,
		found, stored, skipped, failed, last_sync_at, last_operation_id, last_status)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, now(), $10, $11)
	ON CONFLICT (inbox, folder) DO UPDATE SET special_use = EXCLUDED.special_use,
		uidvalidity = coalesce(EXCLUDED.uidvalidity, f.uidvalidity), last_uid = coalesce(EXCLUDED.last_uid, f.last_uid),
		found = EXCLUDED.found, stored = EXCLUDED.stored, skipped = EXCLUDED.skipped, failed = EXCLUDED.failed,
		last_sync_at = EXCLUDED.last_sync_at, last_operation_id = EXCLUDED.last_operation_id,
		last_status = EXCLUDED.last_status`,
		r.Inbox, folderName(r.Folder), nullable(r.SpecialUse), zeroAsNull(r.UIDValidity), zeroAsNull(r.LastUID),
		r.Found, r.Stored, r.Skipped, r.Failed, uuidOrNil(r.OperationID), r.Status)
	if err != nil {
		return fmt.Errorf("record folder %s result: %w", folderName(r.Folder), err)
	}
	return nil
}
