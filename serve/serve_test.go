package serve_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/myhibachi/backfill/errlog"
	"github.com/myhibachi/backfill/imapsrc"
	"github.com/myhibachi/backfill/internal/imaptest"
	"github.com/myhibachi/backfill/internal/pgtest"
	"github.com/myhibachi/backfill/migrations"
	"github.com/myhibachi/backfill/pgsink"
	"github.com/myhibachi/backfill/pipeline"
	"github.com/myhibachi/backfill/serve"
	"github.com/prometheus/client_golang/prometheus"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

const inbox = "customer_support"

// world is a database filled by a real run over a real IMAP server, and
// the handler serving it.
type world struct {
	pool    *pgxpool.Pool
	metrics *serve.Metrics
	reg     *prometheus.Registry
	srv     *httptest.Server
	opID    uuid.UUID
}

// day is the INTERNALDATE of the test mailbox's i-th message.
func day(i int) time.Time { return time.Date(2025, 11, i, 9, 0, 0, 0, time.UTC) }

// newWorld stores five small messages (the third read, the fourth
// starred) and one over the size cap, which fails, through pipeline.Run
// with the metrics' observer, and serves the database.
func newWorld(t *testing.T, health func(context.Context) error) *world {
	t.Helper()
	return newWorldOver(t, "", health)
}

// newWorldOver is newWorld over tables the backend made first (ddl), which
// migrate adopts.
func newWorldOver(t *testing.T, ddl string, health func(context.Context) error) *world {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	srv := imaptest.Start(t)
	for i := 1; i <= 5; i++ {
		var flags []imap.Flag
		switch i {
		case 3:
			flags = []imap.Flag{imap.FlagSeen}
		case 4:
			flags = []imap.Flag{imap.FlagFlagged}
		}
		srv.Append(t, mail(i, "short body"), day(i), flags...)
	}
	srv.Append(t, mail(6, strings.Repeat("too long ", 4000)), day(6))

	dbURL := pgtest.NewDatabase(t)
	sink, err := pgsink.Open(ctx, dbURL, 8)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sink.Close)
	if ddl != "" {
		if _, err := sink.Pool().Exec(ctx, ddl); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := migrations.Apply(ctx, sink.Pool()); err != nil {
		t.Fatal(err)
	}
	if err := sink.CheckSchema(ctx); err != nil {
		t.Fatal(err)
	}
	release, err := sink.Lock(ctx, inbox)
	if err != nil {
		t.Fatal(err)
	}
	defer release()

	w := &world{pool: sink.Pool(), reg: prometheus.NewRegistry(), opID: uuid.New()}
	w.metrics = serve.NewMetrics(w.reg)
	host, port, _ := net.SplitHostPort(srv.Addr())
	p, _ := strconv.Atoi(port)
	cfg := imapsrc.Config{Host: host, Port: p, Security: imapsrc.StartTLSIfOffered, Username: srv.Username,
		Password: srv.Password, Mailbox: "INBOX"}
	log := errlog.New(w.opID, inbox, sink, filepath.Join(t.TempDir(), "errors.jsonl"))
	res, err := pipeline.Run(ctx, pipeline.Config{Inbox: inbox, IMAP: cfg, OperationID: w.opID, Workers: 1,
		BatchSize: 2, MaxMessageSize: 20000, RetryFor: time.Minute}, sink, log, w.metrics.Observer(inbox, "INBOX", nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := log.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if res.Created != 5 || res.Failed != 1 {
		t.Fatalf("run stored %d and failed %d, want 5 and 1", res.Created, res.Failed)
	}
	w.srv = httptest.NewServer(serve.NewHandler(w.pool, health, w.reg))
	t.Cleanup(w.srv.Close)
	return w
}

func mail(i int, body string) []byte {
	return []byte(fmt.Sprintf("From: Customer %d <c%d@example.com>\r\nTo: cs@myhibachichef.com\r\n"+
		"Subject: Question %d\r\nMessage-ID: <q%d@example.com>\r\nDate: %s\r\n\r\n%s\r\n",
		i, i, i, i, day(i).Format(time.RFC1123Z), body))
}

// get fetches path and returns the status, the Content-Type and the body.
func get(t *testing.T, method, url string) (int, string, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header.Get("Content-Type"), string(b)
}

func getJSON(t *testing.T, url string, wantCode int, v any) {
	t.Helper()
	code, ctype, body := get(t, http.MethodGet, url)
	if code != wantCode || ctype != "application/json" {
		t.Fatalf("GET %s: %d %s, want %d application/json\n%s", url, code, ctype, wantCode, body)
	}
	if err := json.Unmarshal([]byte(body), v); err != nil {
		t.Fatalf("GET %s: %v\n%s", url, err, body)
	}
}

func TestEmailsNewestFirst(t *testing.T) {
	t.Parallel()
	w := newWorld(t, nil)
	var list struct {
		Inbox  string           `json:"inbox"`
		Limit  int              `json:"limit"`
		Count  int              `json:"count"`
		Emails []map[string]any `json:"emails"`
	}
	// The guide's own example spells the inbox with a hyphen.
	getJSON(t, w.srv.URL+"/api/v1/admin/emails/customer-support?limit=3", http.StatusOK, &list)
	if list.Inbox != inbox || list.Limit != 3 || list.Count != 3 || len(list.Emails) != 3 {
		t.Fatalf("got inbox %q, limit %d, count %d, %d emails; want %s, 3, 3, 3", list.Inbox, list.Limit, list.Count, len(list.Emails), inbox)
	}
	for i, e := range list.Emails {
		n := 5 - i // newest first
		want := map[string]any{"message_id": fmt.Sprintf("q%d@example.com", n), "subject": fmt.Sprintf("Question %d", n),
			"from_address": fmt.Sprintf("c%d@example.com", n), "from_name": fmt.Sprintf("Customer %d", n),
			"is_read": n == 3, "is_starred": n == 4,
			"attachment_count": 0.0}
		for k, v := range want {
			if e[k] != v {
				t.Errorf("email %d: %s = %v, want %v", i, k, e[k], v)
			}
		}
		if at, err := time.Parse(time.RFC3339, fmt.Sprint(e["received_at"])); err != nil || !at.Equal(day(n)) {
			t.Errorf("email %d: received_at %v, want %v", i, e["received_at"], day(n))
		}
		for _, k := range []string{"id", "thread_id", "labels", "to_addresses", "sent_at", "size_bytes"} {
			if _, ok := e[k]; !ok {
				t.Errorf("email %d has no %s: %v", i, k, e)
			}
		}
		if !strings.HasPrefix(fmt.Sprint(e["thread_id"]), "thread_") {
			t.Errorf("email %d: thread_id %v", i, e["thread_id"])
		}
	}
	var id float64
	if err := w.pool.QueryRow(context.Background(), `SELECT id FROM email_messages WHERE message_id = 'q5@example.com'`).Scan(&id); err != nil {
		t.Fatal(err)
	}
	if list.Emails[0]["id"] != id {
		t.Errorf("id %v, want the row's %v", list.Emails[0]["id"], id)
	}

	getJSON(t, w.srv.URL+"/api/v1/admin/emails/"+inbox, http.StatusOK, &list)
	if list.Limit != serve.DefaultLimit || list.Count != 5 {
		t.Errorf("without ?limit: limit %d, count %d; want %d, 5", list.Limit, list.Count, serve.DefaultLimit)
	}
	for _, bad := range []string{"0", "-1", "abc", "501", "2.5"} {
		var e struct{ Error string }
		getJSON(t, w.srv.URL+"/api/v1/admin/emails/"+inbox+"?limit="+bad, http.StatusBadRequest, &e)
		if !strings.Contains(e.Error, "limit") {
			t.Errorf("limit=%s: error %q", bad, e.Error)
		}
	}
	var e struct{ Error string }
	getJSON(t, w.srv.URL+"/api/v1/admin/emails/payments", http.StatusNotFound, &e)
	if !strings.Contains(e.Error, `unknown inbox "payments"`) {
		t.Errorf("unknown inbox: error %q", e.Error)
	}
}

func TestOnlyGetAndHead(t *testing.T) {
	t.Parallel()
	w := newWorld(t, nil)
	for _, path := range []string{"/healthz", "/metrics", "/api/v1/admin/emails/stats", "/api/v1/admin/emails/" + inbox} {
		if code, _, body := get(t, http.MethodHead, w.srv.URL+path); code != http.StatusOK || body != "" {
			t.Errorf("HEAD %s: %d with %d bytes, want 200 and no body", path, code, len(body))
		}
		for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch} {
			if code, _, _ := get(t, m, w.srv.URL+path); code != http.StatusMethodNotAllowed {
				t.Errorf("%s %s: %d, want 405", m, path, code)
			}
		}
	}
}

func TestStats(t *testing.T) {
	t.Parallel()
	w := newWorld(t, nil)
	var st struct {
		Inboxes []struct {
			Inbox       string     `json:"inbox"`
			Messages    int64      `json:"messages"`
			Threads     int64      `json:"threads"`
			Unread      int64      `json:"unread"`
			LastSyncAt  *time.Time `json:"last_sync_at"`
			TotalSynced int64      `json:"total_synced"`
			LastRun     *struct {
				OperationID string           `json:"operation_id"`
				Status      string           `json:"status"`
				Errors      int64            `json:"errors"`
				BySeverity  map[string]int64 `json:"by_severity"`
				ByType      map[string]int64 `json:"by_type"`
			} `json:"last_run"`
		} `json:"inboxes"`
		Total struct{ Messages, Threads, Unread int64 } `json:"total"`
	}
	getJSON(t, w.srv.URL+"/api/v1/admin/emails/stats", http.StatusOK, &st)
	if len(st.Inboxes) != 1 {
		t.Fatalf("%d inboxes, want 1: %+v", len(st.Inboxes), st)
	}
	var threads int64
	if err := w.pool.QueryRow(context.Background(), `SELECT count(*) FROM email_threads WHERE inbox = $1`, inbox).Scan(&threads); err != nil {
		t.Fatal(err)
	}
	s := st.Inboxes[0]
	if s.Inbox != inbox || s.Messages != 5 || s.Unread != 4 || s.Threads != threads || threads == 0 || s.TotalSynced != 5 {
		t.Errorf("stats %+v, want 5 messages, 4 unread, %d threads", s, threads)
	}
	if s.LastSyncAt == nil || time.Since(*s.LastSyncAt) > time.Minute {
		t.Errorf("last_sync_at %v, want the run's end", s.LastSyncAt)
	}
	if s.LastRun == nil || s.LastRun.OperationID != w.opID.String() || s.LastRun.Status != "completed_with_errors" ||
		s.LastRun.Errors != 1 || s.LastRun.ByType["oversized"] != 1 || s.LastRun.BySeverity["error"] != 1 {
		t.Errorf("last_run %+v, want operation %s, completed_with_errors, 1 oversized error", s.LastRun, w.opID)
	}
	if st.Total.Messages != 5 || st.Total.Unread != 4 || st.Total.Threads != threads {
		t.Errorf("total %+v", st.Total)
	}
}

// scrape returns the value of the sample whose line starts with series.
func scrape(t *testing.T, url, series string) (float64, bool) {
	t.Helper()
	code, _, body := get(t, http.MethodGet, url+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("GET /metrics: %d\n%s", code, body)
	}
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`)
	m := re.FindStringSubmatch(body)
	if m == nil {
		return 0, false
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatal(err)
	}
	return v, true
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	w := newWorld(t, nil)
	w.metrics.Downloaded(inbox, 1234)
	w.metrics.Error(inbox, string(errlog.Transient))
	w.metrics.Error(inbox, string(errlog.Transient))
	w.metrics.SetConnected(inbox, "INBOX", true, true)
	w.metrics.SetConnected(inbox, "Sent", false, true)
	w.metrics.Synced(inbox, "INBOX", time.Now().Add(-90*time.Second))
	for series, want := range map[string]float64{
		`backfill_messages_stored_total{folder="INBOX",inbox="customer_support"}`:  5,
		`backfill_messages_skipped_total{folder="INBOX",inbox="customer_support"}`: 0,
		`backfill_messages_failed_total{folder="INBOX",inbox="customer_support"}`:  1,
		`backfill_bytes_downloaded_total{inbox="customer_support"}`:                1234,
		`backfill_errors_total{class="transient",inbox="customer_support"}`:        2,
		`backfill_idle_connections{inbox="customer_support"}`:                      1,
		`backfill_connected{folder="Sent",inbox="customer_support"}`:               1,
	} {
		if got, ok := scrape(t, w.srv.URL, series); !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", series, got, ok, want)
		}
	}
	since, ok := scrape(t, w.srv.URL, `backfill_seconds_since_last_sync{folder="INBOX",inbox="customer_support"}`)
	if !ok || since < 90 || since > 600 {
		t.Errorf("seconds since last sync %v (present %v), want about 90", since, ok)
	}
	// Computed at scrape time: it grows without anyone calling Synced.
	time.Sleep(1100 * time.Millisecond)
	if later, _ := scrape(t, w.srv.URL, `backfill_seconds_since_last_sync{folder="INBOX",inbox="customer_support"}`); later < since+1 {
		t.Errorf("seconds since last sync went from %v to %v over a second", since, later)
	}
	w.metrics.SetConnected(inbox, "INBOX", true, false) // IDLE counts only while connected
	if got, _ := scrape(t, w.srv.URL, `backfill_idle_connections{inbox="customer_support"}`); got != 0 {
		t.Errorf("idle connections %v after the connection dropped, want 0", got)
	}
}

func TestHealthz(t *testing.T) {
	t.Parallel()
	var healthErr atomic.Pointer[error]
	w := newWorld(t, func(context.Context) error {
		if p := healthErr.Load(); p != nil {
			return *p
		}
		return nil
	})
	if code, _, body := get(t, http.MethodGet, w.srv.URL+"/healthz"); code != http.StatusOK || body != "ok\n" {
		t.Fatalf("healthy: %d %q, want 200 ok", code, body)
	}
	down := errors.New("customer_support/INBOX: not connected")
	healthErr.Store(&down)
	if code, _, body := get(t, http.MethodGet, w.srv.URL+"/healthz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "customer_support/INBOX: not connected") {
		t.Fatalf("unhealthy: %d %q, want 503 with the reason", code, body)
	}
}

// TestHealthzFollowsConnections: Metrics.Health as the health function
// turns /healthz to 503 while a folder is disconnected.
func TestHealthzFollowsConnections(t *testing.T) {
	t.Parallel()
	m := serve.NewMetrics(prometheus.NewRegistry())
	w := newWorld(t, m.Health)
	m.SetConnected(inbox, "INBOX", true, true)
	m.SetConnected(inbox, "Sent", false, true)
	if code, _, body := get(t, http.MethodGet, w.srv.URL+"/healthz"); code != http.StatusOK {
		t.Fatalf("connected: %d %q, want 200", code, body)
	}
	m.SetConnected(inbox, "Sent", false, false)
	if code, _, body := get(t, http.MethodGet, w.srv.URL+"/healthz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "customer_support/Sent") {
		t.Fatalf("Sent disconnected: %d %q, want 503 naming it", code, body)
	}
}

// TestHealthzDatabaseDown stops the database under a running handler.
func TestHealthzDatabaseDown(t *testing.T) {
	t.Parallel()
	c := pgtest.NewCluster(t)
	pool, err := pgxpool.New(context.Background(), c.DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	srv := httptest.NewServer(serve.NewHandler(pool, nil, prometheus.NewRegistry()))
	t.Cleanup(srv.Close)
	if code, _, body := get(t, http.MethodGet, srv.URL+"/healthz"); code != http.StatusOK {
		t.Fatalf("database up: %d %q, want 200", code, body)
	}
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	if code, _, body := get(t, http.MethodGet, srv.URL+"/healthz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "database unreachable") {
		t.Fatalf("database stopped: %d %q, want 503 saying the database is unreachable", code, body)
	}
	// Not migrated (and now unreachable): the JSON endpoints answer with an
	// error too, never a 200.
	if code, _, _ := get(t, http.MethodGet, srv.URL+"/api/v1/admin/emails/stats"); code < 500 {
		t.Fatalf("stats with the database stopped: %d", code)
	}
}

func TestNotMigrated(t *testing.T) {
	t.Parallel()
	pool, err := pgxpool.New(context.Background(), pgtest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	srv := httptest.NewServer(serve.NewHandler(pool, nil, prometheus.NewRegistry()))
	t.Cleanup(srv.Close)
	for _, path := range []string{"/api/v1/admin/emails/stats", "/api/v1/admin/emails/" + inbox} {
		var e struct{ Error string }
		getJSON(t, srv.URL+path, http.StatusServiceUnavailable, &e)
		if !strings.Contains(e.Error, "backfill migrate") {
			t.Errorf("%s: %q, want it to say to run backfill migrate", path, e.Error)
		}
	}
}

// backendTables are tables the backend's own migration made, unlike the
// tool's: uuid ids, JSON address and label lists, a timestamp without time
// zone, no is_starred, threads without an inbox, a status and an error_logs
// with other column names.
const backendTables = `
CREATE TABLE email_messages (
	id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	inbox        varchar(50)  NOT NULL,
	message_id   varchar(255) NOT NULL UNIQUE,
	thread_id    varchar(100) NOT NULL,
	from_address varchar(255) NOT NULL,
	from_name    varchar(255),
	to_addresses jsonb NOT NULL DEFAULT '[]',
	subject      varchar(500),
	text_body    text,
	received_at  timestamp NOT NULL,
	attachments  text,
	labels       jsonb NOT NULL DEFAULT '[]',
	is_read      boolean NOT NULL DEFAULT false,
	created_at   timestamptz NOT NULL DEFAULT now());
CREATE TABLE email_threads (
	id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	thread_id     varchar(100) NOT NULL UNIQUE,
	subject       varchar(500),
	message_count integer NOT NULL DEFAULT 0);
CREATE TABLE email_sync_status (
	inbox          varchar(50) PRIMARY KEY,
	last_synced_at timestamp,
	total_synced   integer NOT NULL DEFAULT 0,
	status         varchar(30),
	operation_id   uuid);
CREATE TABLE error_logs (
	id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	level      varchar(20) NOT NULL,
	message    text NOT NULL,
	details    jsonb,
	created_at timestamptz NOT NULL DEFAULT now());`

// TestAdoptedTables: over the backend's own tables the endpoints read the
// same things, through the mapping the run wrote them with.
func TestAdoptedTables(t *testing.T) {
	t.Parallel()
	w := newWorldOver(t, backendTables, nil)
	var list struct {
		Count  int              `json:"count"`
		Emails []map[string]any `json:"emails"`
	}
	getJSON(t, w.srv.URL+"/api/v1/admin/emails/"+inbox+"?limit=2", http.StatusOK, &list)
	if list.Count != 2 {
		t.Fatalf("%d emails, want 2: %+v", list.Count, list)
	}
	var id string
	if err := w.pool.QueryRow(context.Background(), `SELECT id::text FROM email_messages WHERE message_id = 'q5@example.com'`).Scan(&id); err != nil {
		t.Fatal(err)
	}
	e := list.Emails[0]
	at, _ := time.Parse(time.RFC3339, fmt.Sprint(e["received_at"]))
	if e["id"] != id || e["message_id"] != "q5@example.com" || !at.Equal(day(5)) || e["is_read"] != false ||
		e["is_starred"] != nil || fmt.Sprint(e["to_addresses"]) != "[cs@myhibachichef.com]" || fmt.Sprint(e["labels"]) != "[]" ||
		e["attachment_count"] != 0.0 {
		t.Errorf("newest email %v", e)
	}

	var st struct {
		Inboxes []struct {
			Inbox                     string
			Messages, Threads, Unread int64
			LastSyncAt                *time.Time `json:"last_sync_at"`
			LastRun                   *struct {
				OperationID string           `json:"operation_id"`
				Status      string           `json:"status"`
				Errors      int64            `json:"errors"`
				ByType      map[string]int64 `json:"by_type"`
			} `json:"last_run"`
		}
	}
	getJSON(t, w.srv.URL+"/api/v1/admin/emails/stats", http.StatusOK, &st)
	if len(st.Inboxes) != 1 {
		t.Fatalf("stats %+v, want one inbox", st)
	}
	s := st.Inboxes[0]
	if s.Inbox != inbox || s.Messages != 5 || s.Threads != 5 || s.Unread != 4 || s.LastSyncAt == nil || time.Since(*s.LastSyncAt) > time.Minute {
		t.Errorf("stats %+v, want 5 messages in 5 threads, 4 unread, synced just now", s)
	}
	if s.LastRun == nil || s.LastRun.OperationID != w.opID.String() || s.LastRun.Status != "completed_with_errors" ||
		s.LastRun.Errors != 1 || s.LastRun.ByType["oversized"] != 1 {
		t.Errorf("last run %+v, want operation %s with its one oversized error", s.LastRun, w.opID)
	}
}

// TestEmailsShowDeletedAtOnceTheColumnExists: the columns watch adds
// (folders, deleted_at) are shown when the table has them.
func TestEmailsShowDeletedAtOnceTheColumnExists(t *testing.T) {
	t.Parallel()
	w := newWorld(t, nil)
	if _, err := w.pool.Exec(context.Background(), `ALTER TABLE email_messages
		ADD COLUMN IF NOT EXISTS folders text[] NOT NULL DEFAULT '{INBOX}', ADD COLUMN IF NOT EXISTS deleted_at timestamptz;
		UPDATE email_messages SET deleted_at = '2025-12-01 10:00Z' WHERE message_id = 'q5@example.com'`); err != nil {
		t.Fatal(err)
	}
	var list struct{ Emails []map[string]any }
	getJSON(t, w.srv.URL+"/api/v1/admin/emails/"+inbox+"?limit=2", http.StatusOK, &list)
	if len(list.Emails) != 2 {
		t.Fatalf("%d emails, want 2", len(list.Emails))
	}
	at, _ := time.Parse(time.RFC3339, fmt.Sprint(list.Emails[0]["deleted_at"]))
	if !at.Equal(time.Date(2025, 12, 1, 10, 0, 0, 0, time.UTC)) || fmt.Sprint(list.Emails[0]["folders"]) != "[INBOX]" {
		t.Errorf("expunged email %v, want its deleted_at and folders", list.Emails[0])
	}
	if v, ok := list.Emails[1]["deleted_at"]; !ok || v != nil {
		t.Errorf("email still on the server: deleted_at %v (present %v), want null", v, ok)
	}
}

// Issue 10 (Gmail): Gmail's ids are shown as decimal strings, whole (a
// JSON number that large would lose digits in JavaScript), and null for
// mail from other servers.
func TestEmailsShowGmailIDs(t *testing.T) {
	t.Parallel()
	w := newWorld(t, nil)
	if _, err := w.pool.Exec(context.Background(), `UPDATE email_messages
		SET gmail_msgid = 1600000000000007919, gmail_thread_id = 1600000000000000001 WHERE message_id = 'q5@example.com'`); err != nil {
		t.Fatal(err)
	}
	var list struct{ Emails []map[string]any }
	getJSON(t, w.srv.URL+"/api/v1/admin/emails/"+inbox+"?limit=2", http.StatusOK, &list)
	if len(list.Emails) != 2 {
		t.Fatalf("%d emails, want 2", len(list.Emails))
	}
	if e := list.Emails[0]; e["gmail_msgid"] != "1600000000000007919" || e["gmail_thread_id"] != "1600000000000000001" {
		t.Errorf("Gmail message: gmail_msgid %#v, gmail_thread_id %#v", e["gmail_msgid"], e["gmail_thread_id"])
	}
	if e := list.Emails[1]; e["gmail_msgid"] != nil || e["gmail_thread_id"] != nil {
		t.Errorf("other message: gmail_msgid %#v, gmail_thread_id %#v, want null", e["gmail_msgid"], e["gmail_thread_id"])
	}
	if _, ok := list.Emails[1]["gmail_msgid"]; !ok {
		t.Errorf("other message has no gmail_msgid key: %v", list.Emails[1])
	}
}
