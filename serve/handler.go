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
// health may be nil. The emails endpoints read the tool's own tables, or
// the backend's that `backfill migrate` adopted, through the same mapping
// a run writes them with. Give the handler a pool with connections to
// spare, or one of its own of two: /healthz waits at most 2 s for a
// connection, and a pool whose connections all store batches would make
// it report the database unreachable.
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

	mu      sync.Mutex
	queries *queries // nil until the tables' shape was read once
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

// EmailList is the emails endpoint's answer. Each email has the keys id,
// message_id, thread_id, from_address, from_name, to_addresses,
// cc_addresses, subject, received_at, sent_at, is_read, is_starred, labels,
// size_bytes, synced_at and attachment_count (null where the table has no
// such column), and folders, deleted_at, gmail_msgid and gmail_thread_id
// (decimal strings) where it has them. Bodies are left out: the endpoint is
// for checking what was stored, and a page of bodies can weigh megabytes.
type EmailList struct {
	Inbox  string            `json:"inbox"`
	Limit  int               `json:"limit"`
	Count  int               `json:"count"`
	Emails []json.RawMessage `json:"emails"`
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
	q, ok := h.readSchema(ctx, w)
	if !ok {
		return
	}
	list := EmailList{Inbox: inbox, Limit: limit}
	known := true
	err := h.read(ctx, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, q.emails, inbox, limit)
		if err != nil {
			return err
		}
		if list.Emails, err = pgx.CollectRows(rows, pgx.RowTo[json.RawMessage]); err != nil {
			return err
		}
		if len(list.Emails) == 0 {
			// An inbox with no rows may still be a known one, synced
			// while empty: only a name never seen is unknown.
			return tx.QueryRow(ctx, q.known, inbox).Scan(&known)
		}
		return nil
	})
	switch {
	case err != nil:
		writeError(w, http.StatusInternalServerError, fmt.Sprintf("read emails: %v", err))
		return
	case !known:
		writeError(w, http.StatusNotFound, fmt.Sprintf("unknown inbox %q: no stored emails and no sync status", inbox))
		return
	}
	if list.Emails == nil {
		list.Emails = []json.RawMessage{}
	}
	list.Count = len(list.Emails)
	writeJSON(w, http.StatusOK, list)
}

// read runs fn in a read-only snapshot, so that numbers read by several
// queries agree while batches commit, with times written in UTC.
func (h *handler) read(ctx context.Context, fn func(pgx.Tx) error) error {
	tx, err := h.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx) //nolint:errcheck // read-only: nothing to keep
	if _, err := tx.Exec(ctx, "SET LOCAL TimeZone = 'UTC'"); err != nil {
		return err
	}
	return fn(tx)
}

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
	q, ok := h.readSchema(ctx, w)
	if !ok {
		return
	}
	var st *Stats
	err := h.read(ctx, func(tx pgx.Tx) (err error) {
		st, err = readStats(ctx, tx, q)
		return err
	})
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, st)
}

func readStats(ctx context.Context, tx pgx.Tx, q *queries) (*Stats, error) {
	byInbox := map[string]*InboxStats{}
	get := func(inbox string) *InboxStats {
		s := byInbox[inbox]
		if s == nil {
			s = &InboxStats{Inbox: inbox}
			byInbox[inbox] = s
		}
		return s
	}
	steps := []struct {
		what, sql string
		scan      func(pgx.Rows) error
	}{
		{"sync status", q.status, func(rows pgx.Rows) error {
			var inbox, status string
			var at *time.Time
			var total *int64
			var op *string
			if err := rows.Scan(&inbox, &at, &total, &op, &status); err != nil {
				return err
			}
			s := get(inbox)
			s.LastSyncAt, s.TotalSynced = at, total
			if op != nil {
				s.LastRun = &LastRun{OperationID: *op, Status: status, BySeverity: map[string]int64{}, ByType: map[string]int64{}}
			}
			return nil
		}},
		{"message counts", q.messages, func(rows pgx.Rows) error {
			var inbox string
			var n int64
			var unread *int64
			if err := rows.Scan(&inbox, &n, &unread); err != nil {
				return err
			}
			s := get(inbox)
			s.Messages = n
			if unread != nil {
				s.Unread = *unread
			}
			return nil
		}},
		{"thread counts", q.threads, func(rows pgx.Rows) error {
			var inbox string
			var n int64
			if err := rows.Scan(&inbox, &n); err != nil {
				return err
			}
			get(inbox).Threads = n
			return nil
		}},
		{"errors of the last runs", q.errors, func(rows pgx.Rows) error {
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
	for _, step := range steps {
		if step.sql == "" {
			continue
		}
		rows, err := tx.Query(ctx, step.sql)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", step.what, err)
		}
		for rows.Next() {
			if err := step.scan(rows); err != nil {
				rows.Close()
				return nil, fmt.Errorf("read %s: %w", step.what, err)
			}
		}
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("read %s: %w", step.what, err)
		}
	}
	st := &Stats{Inboxes: make([]InboxStats, 0, len(byInbox))}
	for _, s := range byInbox {
		st.Total.Messages += s.Messages
		st.Total.Threads += s.Threads
		st.Total.Unread += s.Unread
		st.Inboxes = append(st.Inboxes, *s)
	}
	slices.SortFunc(st.Inboxes, func(a, b InboxStats) int { return strings.Compare(a.Inbox, b.Inbox) })
	return st, nil
}

// readSchema answers for the caller (and returns false) when the tables
// cannot be read: not migrated (503), or adopted tables this build cannot
// map (501). The shape is read once; a failure is not remembered.
func (h *handler) readSchema(ctx context.Context, w http.ResponseWriter) (*queries, bool) {
	h.mu.Lock()
	q := h.queries
	h.mu.Unlock()
	if q != nil {
		return q, true
	}
	m, err := migrations.Inspect(ctx, h.pool)
	switch {
	case errors.Is(err, migrations.ErrNotMigrated):
		writeError(w, http.StatusServiceUnavailable, "the tables are missing: run backfill migrate")
		return nil, false
	case errors.Is(err, migrations.ErrIncompatible):
		writeError(w, http.StatusNotImplemented, fmt.Sprintf("the backend's tables cannot be read: %v", err))
		return nil, false
	case err != nil:
		writeError(w, http.StatusInternalServerError, fmt.Sprintf("read the tables' shape: %v", err))
		return nil, false
	}
	q = newQueries(m)
	h.mu.Lock()
	h.queries = q
	h.mu.Unlock()
	return q, true
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
