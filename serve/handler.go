package serve

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/myhibachi/backfill/migrations"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Limits of the emails endpoint's ?limit=.
const (
	DefaultLimit = 50
	MaxLimit     = 500
)

// healthTimeout bounds a health check: a probe that hangs is a failure.
const healthTimeout = 2 * time.Second

// NewHandler serves, for GET and HEAD only (other methods get 405):
//
//	/healthz                         200 "ok" while health returns nil and the database answers, else 503 and why
//	/metrics                         gatherer's metrics, Prometheus text format
//	/api/v1/admin/emails/{inbox}     the inbox's newest emails, JSON (?limit=N, default 50, at most 500)
//	/api/v1/admin/emails/stats       per inbox: messages, threads, unread, last sync, errors of the last run
//
// health may be nil. The emails endpoints read the tool's own tables; when
// `backfill migrate` adopted the backend's tables instead, they answer 501:
// the backend serves these endpoints over its own tables itself.
func NewHandler(pool *pgxpool.Pool, health func(ctx context.Context) error, gatherer prometheus.Gatherer) http.Handler {
	h := &handler{pool: pool, health: health}
	mux := http.NewServeMux()
	// A GET pattern also matches HEAD; any other method gets 405 with Allow.
	mux.HandleFunc("GET /healthz", h.healthz)
	mux.Handle("GET /metrics", promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /api/v1/admin/emails/stats", h.stats)
	mux.HandleFunc("GET /api/v1/admin/emails/{inbox}", h.emails)
	return mux
}

type handler struct {
	pool   *pgxpool.Pool
	health func(ctx context.Context) error

	mu     sync.Mutex
	schema *schema // nil until read successfully once
}

func (h *handler) healthz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), healthTimeout)
	defer cancel()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if h.health != nil {
		if err := h.health(ctx); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintf(w, "unhealthy: %v\n", err)
			return
		}
	}
	if err := h.pool.Ping(ctx); err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintf(w, "database unreachable: %v\n", err)
		return
	}
	fmt.Fprintln(w, "ok")
}

// Email is one row of the emails endpoint. Bodies are left out: the
// endpoint is for checking what was stored, and a page of bodies can weigh
// megabytes.
type Email struct {
	ID              int64      `json:"id"`
	MessageID       string     `json:"message_id"`
	ThreadID        string     `json:"thread_id"`
	FromAddress     string     `json:"from_address"`
	FromName        string     `json:"from_name"`
	To              []string   `json:"to_addresses"`
	Cc              []string   `json:"cc_addresses"`
	Subject         string     `json:"subject"`
	ReceivedAt      time.Time  `json:"received_at"`
	SentAt          *time.Time `json:"sent_at"`
	IsRead          bool       `json:"is_read"`
	IsStarred       bool       `json:"is_starred"`
	Labels          []string   `json:"labels"`
	AttachmentCount int        `json:"attachment_count"`
	SizeBytes       int64      `json:"size_bytes"`
	SyncedAt        time.Time  `json:"synced_at"`
	// Folders and DeletedAt are shown once the table has the columns.
	Folders   []string   `json:"folders,omitempty"`
	DeletedAt *time.Time `json:"deleted_at,omitempty"`
}

// EmailList is the emails endpoint's answer.
type EmailList struct {
	Inbox  string  `json:"inbox"`
	Limit  int     `json:"limit"`
	Count  int     `json:"count"`
	Emails []Email `json:"emails"`
}

func (h *handler) emails(w http.ResponseWriter, r *http.Request) {
	// The guide's own example spells the inbox customer-support.
	inbox := strings.ReplaceAll(r.PathValue("inbox"), "-", "_")
	limit := DefaultLimit
	if s := r.URL.Query().Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxLimit {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("limit must be a whole number from 1 to %d, not %q", MaxLimit, s))
			return
		}
		limit = n
	}
	ctx := r.Context()
	sc, ok := h.readSchema(ctx, w)
	if !ok {
		return
	}
	list := EmailList{Inbox: inbox, Limit: limit, Emails: []Email{}}
	rows, err := h.pool.Query(ctx, sc.emailsSQL, inbox, limit)
	if err != nil {
		writeError(w, http.StatusInternalServerError, fmt.Sprintf("read emails: %v", err))
		return
	}
	list.Emails, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (Email, error) {
		var e Email
		dst := []any{&e.ID, &e.MessageID, &e.ThreadID, &e.FromAddress, &e.FromName, &e.To, &e.Cc, &e.Subject,
			&e.ReceivedAt, &e.SentAt, &e.IsRead, &e.IsStarred, &e.Labels, &e.AttachmentCount, &e.SizeBytes, &e.SyncedAt}
		if sc.folders {
			dst = append(dst, &e.Folders)
		}
		if sc.deletedAt {
			dst = append(dst, &e.DeletedAt)
		}
		return e, row.Scan(dst...)
	})
	if err != nil {
		writeError(w, http.StatusInternalServerError, fmt.Sprintf("read emails: %v", err))
		return
	}
	list.Count = len(list.Emails)
	if list.Count == 0 {
		// An inbox with no rows may still be a known one, synced while
		// empty: only a name the tables have never seen is unknown.
		var known bool
		if err := h.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM email_sync_status WHERE inbox = $1)`, inbox).Scan(&known); err != nil {
			writeError(w, http.StatusInternalServerError, fmt.Sprintf("look up inbox: %v", err))
			return
		}
		if !known {
			writeError(w, http.StatusNotFound, fmt.Sprintf("unknown inbox %q: no stored emails and no sync status", inbox))
			return
		}
	}
	writeJSON(w, http.StatusOK, list)
}

// emailsSQL lists an inbox's newest rows by the (inbox, received_at DESC)
// index; optional columns are appended by readSchema.
const emailsSQL = `SELECT id, message_id, thread_id, from_address, from_name, to_addresses, cc_addresses, subject,
	received_at, sent_at, is_read, is_starred, labels, jsonb_array_length(attachments), size_bytes, synced_at%s
	FROM email_messages WHERE inbox = $1 ORDER BY received_at DESC, id DESC LIMIT $2`

// Stats is the stats endpoint's answer.
type Stats struct {
	Inboxes []InboxStats `json:"inboxes"`
	Total   Totals       `json:"total"`
}

// Totals add up every inbox.
type Totals struct {
	Messages int64 `json:"messages"`
	Threads  int64 `json:"threads"`
	Unread   int64 `json:"unread"`
}

// InboxStats is one inbox's line of the stats endpoint.
type InboxStats struct {
	Inbox string `json:"inbox"`
	Totals
	LastSyncAt  *time.Time `json:"last_sync_at"`
	TotalSynced *int64     `json:"total_synced"`
	LastRun     *LastRun   `json:"last_run"`
}

// LastRun is what email_sync_status and error_logs say of an inbox's last
// run (or of the watch that is running).
type LastRun struct {
	OperationID string `json:"operation_id"`
	Status      string `json:"status"`
	// Errors counts its error_logs rows but warnings; BySeverity and
	// ByType count every row.
	Errors     int64            `json:"errors"`
	BySeverity map[string]int64 `json:"by_severity"`
	ByType     map[string]int64 `json:"by_type"`
}

func (h *handler) stats(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if _, ok := h.readSchema(ctx, w); !ok {
		return
	}
	st, err := h.readStats(ctx)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, st)
}

// readStats reads every count in one read-only snapshot, so that the
// numbers agree with each other while batches commit.
func (h *handler) readStats(ctx context.Context) (*Stats, error) {
	tx, err := h.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, fmt.Errorf("read stats: %w", err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // read-only: nothing to keep
	byInbox := map[string]*InboxStats{}
	var order []string
	get := func(inbox string) *InboxStats {
		s := byInbox[inbox]
		if s == nil {
			s = &InboxStats{Inbox: inbox}
			byInbox[inbox] = s
			order = append(order, inbox)
		}
		return s
	}
	queries := []struct {
		what, sql string
		scan      func(pgx.Rows) error
	}{
		{"sync status", `SELECT inbox, last_sync_at, total_synced, last_operation_id::text, coalesce(last_status, '')
			FROM email_sync_status ORDER BY inbox`, func(rows pgx.Rows) error {
			var inbox string
			var at *time.Time
			var total int64
			var op *string
			var status string
			if err := rows.Scan(&inbox, &at, &total, &op, &status); err != nil {
				return err
			}
			s := get(inbox)
			s.LastSyncAt, s.TotalSynced = at, &total
			if op != nil {
				s.LastRun = &LastRun{OperationID: *op, Status: status, BySeverity: map[string]int64{}, ByType: map[string]int64{}}
			}
			return nil
		}},
		{"message counts", `SELECT inbox, count(*), count(*) FILTER (WHERE NOT is_read)
			FROM email_messages GROUP BY inbox ORDER BY inbox`, func(rows pgx.Rows) error {
			var inbox string
			var n, unread int64
			if err := rows.Scan(&inbox, &n, &unread); err != nil {
				return err
			}
			s := get(inbox)
			s.Messages, s.Unread = n, unread
			return nil
		}},
		{"thread counts", `SELECT inbox, count(*) FROM email_threads GROUP BY inbox ORDER BY inbox`, func(rows pgx.Rows) error {
			var inbox string
			var n int64
			if err := rows.Scan(&inbox, &n); err != nil {
				return err
			}
			get(inbox).Threads = n
			return nil
		}},
		{"errors of the last runs", `SELECT s.inbox, e.severity, e.error_type, count(*)
			FROM email_sync_status s JOIN error_logs e ON e.operation_id = s.last_operation_id
			GROUP BY 1, 2, 3`, func(rows pgx.Rows) error {
			var inbox, severity, typ string
			var n int64
			if err := rows.Scan(&inbox, &severity, &typ, &n); err != nil {
				return err
			}
			if lr := get(inbox).LastRun; lr != nil {
				lr.BySeverity[severity] += n
				lr.ByType[typ] += n
				if severity != "warning" {
					lr.Errors += n
				}
			}
			return nil
		}},
	}
	for _, q := range queries {
		rows, err := tx.Query(ctx, q.sql)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", q.what, err)
		}
		for rows.Next() {
			if err := q.scan(rows); err != nil {
				rows.Close()
				return nil, fmt.Errorf("read %s: %w", q.what, err)
			}
		}
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("read %s: %w", q.what, err)
		}
	}
	st := &Stats{Inboxes: make([]InboxStats, 0, len(order))}
	for _, inbox := range order {
		s := byInbox[inbox]
		st.Total.Messages += s.Messages
		st.Total.Threads += s.Threads
		st.Total.Unread += s.Unread
		st.Inboxes = append(st.Inboxes, *s)
	}
	slices.SortFunc(st.Inboxes, func(a, b InboxStats) int { return strings.Compare(a.Inbox, b.Inbox) })
	return st, nil
}

// schema is what the endpoints need to know of the tables.
type schema struct {
	emailsSQL          string
	folders, deletedAt bool
}

// readSchema answers for the caller (and returns false) when the tables
// cannot be served: not migrated (503), or the backend's own, adopted
// (501). The shape is read once; a failure is not remembered.
func (h *handler) readSchema(ctx context.Context, w http.ResponseWriter) (*schema, bool) {
	h.mu.Lock()
	sc := h.schema
	h.mu.Unlock()
	if sc != nil {
		return sc, true
	}
	m, err := migrations.Inspect(ctx, h.pool)
	switch {
	case errors.Is(err, migrations.ErrNotMigrated):
		writeError(w, http.StatusServiceUnavailable, "the tables are missing: run backfill migrate")
		return nil, false
	case errors.Is(err, migrations.ErrIncompatible):
		writeError(w, http.StatusNotImplemented, "the backend's own email tables are in use; its API serves this endpoint")
		return nil, false
	case err != nil:
		writeError(w, http.StatusInternalServerError, fmt.Sprintf("read the tables' shape: %v", err))
		return nil, false
	}
	for _, tm := range []*migrations.TableMap{m.Messages, m.Threads, m.Status, m.Errors} {
		if !tm.Table.Owned {
			writeError(w, http.StatusNotImplemented, fmt.Sprintf(
				"%s is the backend's own table (adopted by backfill migrate): the backend's API serves this endpoint", tm.Table.Name))
			return nil, false
		}
	}
	sc = &schema{folders: m.Messages.Table.Column("folders") != nil, deletedAt: m.Messages.Table.Column("deleted_at") != nil}
	var extra string
	if sc.folders {
		extra += ", folders"
	}
	if sc.deletedAt {
		extra += ", deleted_at"
	}
	sc.emailsSQL = fmt.Sprintf(emailsSQL, extra)
	h.mu.Lock()
	h.schema = sc
	h.mu.Unlock()
	return sc, true
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v) // the client went away: nothing to tell it
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}
