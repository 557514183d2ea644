package main

import (
	"bytes"
	"context"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/myhibachi/backfill/internal/imaptest"
	"github.com/myhibachi/backfill/internal/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// fixture is one test's world: an IMAP server, a database and the
// environment a deployment script would give backfill.
type fixture struct {
	t       testing.TB
	imap    *imaptest.Server
	dbURL   string
	environ []string
	dir     string
	pool    *pgxpool.Pool
}

func newFixture(t testing.TB, opts ...imaptest.Option) *fixture {
	t.Helper()
	f := &fixture{t: t, imap: imaptest.Start(t, opts...), dbURL: pgtest.NewDatabase(t), dir: t.TempDir()}
	f.environ = []string{
		"DATABASE_URL=" + f.dbURL,
		"BACKFILL_INBOX_DEMO=" + f.imap.URL("INBOX"),
		"BACKFILL_INBOX_DEMO_PASSWORD=" + f.imap.Password,
	}
	f.connect()
	return f
}

// connect opens the test's own pool on f.dbURL, for its checks.
func (f *fixture) connect() {
	f.t.Helper()
	pool, err := pgxpool.New(context.Background(), f.dbURL)
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(pool.Close)
	f.pool = pool
}

// run runs the CLI in-process and returns its exit code and output.
func (f *fixture) run(args ...string) (int, string) {
	f.t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), append([]string{"backfill"}, args...), &stdout, &stderr, f.environ, f.dir)
	out := stdout.String() + stderr.String()
	if testing.Verbose() {
		f.t.Logf("backfill %s → exit %d\n%s", strings.Join(args, " "), code, out)
	}
	return code, out
}

// mustRun runs the CLI and fails the test unless it exits with want.
func (f *fixture) mustRun(want int, args ...string) string {
	f.t.Helper()
	code, out := f.run(args...)
	if code != want {
		f.t.Fatalf("backfill %s: exit %d, want %d\n%s", strings.Join(args, " "), code, want, out)
	}
	return out
}

func (f *fixture) migrate() { f.t.Helper(); f.mustRun(0, "migrate") }

func (f *fixture) count(sql string, args ...any) int {
	f.t.Helper()
	var n int
	if err := f.pool.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		f.t.Fatalf("%s: %v", sql, err)
	}
	return n
}

// snapshot is every table's content in a comparable form.
func (f *fixture) snapshot() string {
	f.t.Helper()
	var b strings.Builder
	for _, q := range []string{
		`SELECT inbox || message_id || thread_id || imap_uid || coalesce(text_body, '') FROM email_messages ORDER BY 1`,
		`SELECT inbox || thread_id || message_count || first_message_at || last_message_at || subject FROM email_threads ORDER BY 1`,
	} {
		rows, err := f.pool.Query(context.Background(), q)
		if err != nil {
			f.t.Fatal(err)
		}
		for rows.Next() {
			var s string
			if err := rows.Scan(&s); err != nil {
				f.t.Fatal(err)
			}
			b.WriteString(s + "\n")
		}
		rows.Close()
	}
	return b.String()
}

// tableText returns every row of a table, whole, as text in a stable order: to
// compare contents, not counts.
func (f *fixture) tableText(table string) string {
	f.t.Helper()
	rows, err := f.pool.Query(context.Background(), `SELECT t::text FROM `+pgx.Identifier{table}.Sanitize()+` t ORDER BY 1`)
	if err != nil {
		f.t.Fatal(err)
	}
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		f.t.Fatal(err)
	}
	return strings.Join(lines, "\n")
}

func hasLine(out, prefix string) bool {
	return slices.ContainsFunc(strings.Split(out, "\n"), func(l string) bool {
		return strings.HasPrefix(strings.TrimSpace(l), prefix)
	})
}

func (f *fixture) wantLine(out, prefix string) {
	f.t.Helper()
	if !hasLine(out, prefix) {
		f.t.Fatalf("output has no line starting %q:\n%s", prefix, out)
	}
}

func (f *fixture) mustExec(sql string, args ...any) {
	f.t.Helper()
	if _, err := f.pool.Exec(context.Background(), sql, args...); err != nil {
		f.t.Fatalf("%s: %v", sql, err)
	}
}
