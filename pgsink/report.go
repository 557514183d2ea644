package pgsink

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// InboxStatus is one email_sync_status row with counts from the tables.
type InboxStatus struct {
	Inbox           string          `json:"inbox"`
	LastSyncAt      *time.Time      `json:"last_sync_at"`
	TotalSynced     int64           `json:"total_synced"`
	SyncErrors      json.RawMessage `json:"sync_errors"`
	UIDValidity     *int64          `json:"uidvalidity"`
	LastUID         *int64          `json:"last_uid"`
	LastOperationID *string         `json:"last_operation_id"`
	LastStatus      *string         `json:"last_status"`
	Messages        int64           `json:"messages"`
	Threads         int64           `json:"threads"`
	LastRunErrors   int64           `json:"last_run_errors"`
	// Folders are the inbox's folders as their last runs left them
	// (email_sync_folders), INBOX first.
	Folders []FolderStatus `json:"folders"`
	// Downloaded24h is what runs downloaded from the inbox's server in
	// the last 24 hours (email_downloads), in bytes.
	Downloaded24h int64 `json:"downloaded_24h_bytes"`
	// Budget is where the inbox's download budget stands, when status
	// knows the budget (the inbox's variable or its provider's preset;
	// a --max-download given to a run is not recorded); nil otherwise.
	Budget *BudgetStatus `json:"download_budget"`
}

// BudgetStatus is where an inbox's download budget stands.
type BudgetStatus struct {
	Bytes  int64  `json:"bytes"`
	Period string `json:"period"` // as --max-download writes it: 24h, 7d
	// Source says where the budget comes from: the variable's name, or
	// the server name whose preset it is.
	Source string `json:"source"`
	// Used is what the window (the last Period) holds; Left what the
	// budget has left, never below 0.
	Used int64 `json:"used_bytes"`
	Left int64 `json:"left_bytes"`
	// FreesAt is, when nothing is left, when enough downloads will have
	// left the window for the budget to have room again; nil when it has
	// room now.
	FreesAt *time.Time `json:"frees_at"`
}

// FolderStatus is one email_sync_folders row.
type FolderStatus struct {
	Folder          string     `json:"folder"`
	SpecialUse      *string    `json:"special_use"`
	UIDValidity     *int64     `json:"uidvalidity"`
	LastUID         *int64     `json:"last_uid"`
	Found           int64      `json:"found"`
	Stored          int64      `json:"stored"`
	Skipped         int64      `json:"skipped"`
	Failed          int64      `json:"failed"`
	LastSyncAt      *time.Time `json:"last_sync_at"`
	LastOperationID *string    `json:"last_operation_id"`
	LastStatus      *string    `json:"last_status"`
}

// Statuses returns every inbox's status, or one inbox's when inbox is set.
func (s *Sink) Statuses(ctx context.Context, inbox string) ([]InboxStatus, error) {
	rows, err := s.pool.Query(ctx, s.writer().statuses, inbox)
	if err != nil {
		return nil, fmt.Errorf("read sync status: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (InboxStatus, error) {
		var st InboxStatus
		err := row.Scan(&st.Inbox, &st.LastSyncAt, &st.TotalSynced, &st.SyncErrors, &st.UIDValidity, &st.LastUID,
			&st.LastOperationID, &st.LastStatus, &st.Messages, &st.Threads, &st.LastRunErrors)
		return st, err
	})
	if err != nil {
		return nil, fmt.Errorf("read sync status: %w", err)
	}
	folders, err := s.folderStatuses(ctx, inbox)
	if err != nil {
		return nil, err
	}
	downloaded, err := s.downloaded24h(ctx, inbox)
	if err != nil {
		return nil, err
	}
	for i := range out {
		out[i].Downloaded24h = downloaded[out[i].Inbox]
		out[i].Folders = folders[out[i].Inbox]
		if out[i].Folders == nil {
			out[i].Folders = []FolderStatus{}
		}
	}
	return out, nil
}

// folderStatuses reads email_sync_folders, by inbox.
func (s *Sink) folderStatuses(ctx context.Context, inbox string) (map[string][]FolderStatus, error) {
	rows, err := s.pool.Query(ctx, `SELECT inbox, folder, special_use, uidvalidity, last_uid, found, stored, skipped, failed,
		last_sync_at, last_operation_id::text, last_status
	FROM email_sync_folders WHERE $1 = '' OR inbox = $1 ORDER BY inbox, folder <> 'INBOX', folder`, inbox)
	if err != nil {
		return nil, fmt.Errorf("read folder status: %w", err)
	}
	out := map[string][]FolderStatus{}
	var in string
	var f FolderStatus
	_, err = pgx.ForEachRow(rows, []any{&in, &f.Folder, &f.SpecialUse, &f.UIDValidity, &f.LastUID, &f.Found, &f.Stored,
		&f.Skipped, &f.Failed, &f.LastSyncAt, &f.LastOperationID, &f.LastStatus}, func() error {
		out[in] = append(out[in], f)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read folder status: %w", err)
	}
	return out, nil
}

// downloaded24h sums each inbox's email_downloads of the last 24 hours.
func (s *Sink) downloaded24h(ctx context.Context, inbox string) (map[string]int64, error) {
	rows, err := s.pool.Query(ctx, `SELECT inbox, sum(bytes)::bigint FROM email_downloads
		WHERE ($1 = '' OR inbox = $1) AND at > now() - interval '24 hours' GROUP BY inbox`, inbox)
	if err != nil {
		return nil, fmt.Errorf("read download ledger: %w", err)
	}
	out := map[string]int64{}
	var in string
	var n int64
	if _, err := pgx.ForEachRow(rows, []any{&in, &n}, func() error {
		out[in] = n
		return nil
	}); err != nil {
		return nil, fmt.Errorf("read download ledger: %w", err)
	}
	return out, nil
}

// statusesSQL reads the tool's own email_sync_status; genStatuses reads
// other shapes into the same columns.
const statusesSQL = `
	SELECT s.inbox, s.last_sync_at, s.total_synced, s.sync_errors, s.uidvalidity, s.last_uid,
		s.last_operation_id::text, s.last_status,
		(SELECT count(*) FROM email_messages m WHERE m.inbox = s.inbox),
		(SELECT count(*) FROM email_threads t WHERE t.inbox = s.inbox),
		(SELECT count(*) FROM error_logs e WHERE e.operation_id = s.last_operation_id AND e.severity <> 'warning')
	FROM email_sync_status s WHERE $1 = '' OR s.inbox = $1 ORDER BY s.inbox`

// ErrorRow is one error_logs row as `backfill errors` shows it.
type ErrorRow struct {
	OccurredAt  time.Time       `json:"occurred_at"`
	OperationID string          `json:"operation_id"`
	Severity    string          `json:"severity"`
	Category    string          `json:"category"`
	Inbox       *string         `json:"inbox"`
	UID         *int64          `json:"imap_uid"`
	MessageID   *string         `json:"message_id"`
	ErrorType   string          `json:"error_type"`
	Message     string          `json:"error_message"`
	Attempts    int32           `json:"attempts"`
	Context     json.RawMessage `json:"context"`
}

// errorsSQL reads the tool's own error_logs; genErrors reads other shapes
// into the same columns.
const errorsSQL = `
	SELECT occurred_at, operation_id::text, severity, category, inbox, imap_uid, message_id, error_type,
		error_message, attempts, context
	FROM error_logs WHERE $1::text IS NULL OR operation_id = $1::uuid
	ORDER BY occurred_at DESC, id DESC LIMIT $2`

// Errors returns error_logs rows newest first, of one operation when opID
// is not nil.
func (s *Sink) Errors(ctx context.Context, opID uuid.UUID, limit int) ([]ErrorRow, error) {
	var op *string
	if opID != uuid.Nil {
		id := opID.String()
		op = &id
	}
	rows, err := s.pool.Query(ctx, s.writer().errors, op, limit)
	if err != nil {
		return nil, fmt.Errorf("read error_logs: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (ErrorRow, error) {
		var e ErrorRow
		err := row.Scan(&e.OccurredAt, &e.OperationID, &e.Severity, &e.Category, &e.Inbox, &e.UID, &e.MessageID,
			&e.ErrorType, &e.Message, &e.Attempts, &e.Context)
		return e, err
	})
	if err != nil {
		return nil, fmt.Errorf("read error_logs: %w", err)
	}
	return out, nil
}
