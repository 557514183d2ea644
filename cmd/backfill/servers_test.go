package main

import (
	"bytes"
	"context"
	"encoding/json"
	"iter"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/myhibachi/backfill/internal/couriertest"
	"github.com/myhibachi/backfill/internal/cyrustest"
	"github.com/myhibachi/backfill/internal/mailgen"
	"github.com/myhibachi/backfill/message"
)

// TestCyrusAndCourierEndToEnd stores generated and real-world mail from
// Cyrus IMAP and Courier-IMAP, as Debian ships them, with --fetch full and
// --fetch lean: every message once, the two modes' rows equal column by
// column, and a re-run of each that downloads nothing. Both servers differ
// from Dovecot where lean fetching is touchy (BODYSTRUCTURE case, literals,
// line ends; see internal/cyrustest and internal/couriertest).
func TestCyrusAndCourierEndToEnd(t *testing.T) {
	t.Parallel()
	var corpus [][]byte
	for _, m := range mailgen.Generate(41, 300) {
		if m.DuplicateOf < 0 {
			corpus = append(corpus, m.Raw)
		}
	}
	corpus = append(corpus, realWorldMail(t)...)
	// Of different messages sharing a Message-ID (real-world mail has
	// them), the run stores whichever commits first, which differs between
	// runs: keep the first of each, so that full and lean can be compared.
	seen := map[string]bool{}
	corpus = slices.DeleteFunc(corpus, func(raw []byte) bool {
		id := message.Parse(crlf(raw), message.Meta{}).MessageID
		dup := seen[id]
		seen[id] = true
		return dup
	})
	date := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	all := func(raws [][]byte) iter.Seq2[[]byte, time.Time] {
		return func(yield func([]byte, time.Time) bool) {
			for i, raw := range raws {
				if !yield(raw, date.Add(time.Duration(i)*time.Minute)) {
					return
				}
			}
		}
	}

	t.Run("cyrus", func(t *testing.T) {
		t.Parallel()
		srv := cyrustest.Start(t)
		refused, err := srv.Load(all(corpus))
		if err != nil {
			t.Fatal(err)
		}
		stored := corpus
		if len(refused) > 0 {
			stored = nil
			skip := map[int]bool{}
			for _, r := range refused {
				t.Logf("Cyrus refused real-world message %d: %v", r.Index, r.Err)
				skip[r.Index] = true
			}
			for i, raw := range corpus {
				if !skip[i] {
					stored = append(stored, raw)
				}
			}
		}
		if len(refused) > len(corpus)/10 {
			t.Fatalf("Cyrus refused %d of %d messages", len(refused), len(corpus))
		}
		fullAndLeanAgree(t, srv.URL("INBOX"), srv.Password, distinctIDs(stored))
	})
	t.Run("courier", func(t *testing.T) {
		t.Parallel()
		srv := couriertest.Start(t)
		if err := srv.LoadMaildir(all(corpus)); err != nil {
			t.Fatal(err)
		}
		// As a mail client would have, so that UIDVALIDITY holds (see
		// TestCourierUnsettledMaildir for the other case).
		if err := srv.Settle(); err != nil {
			t.Fatal(err)
		}
		fullAndLeanAgree(t, srv.URL("INBOX"), srv.Password, distinctIDs(corpus))
	})
}

// fullAndLeanAgree backfills the mailbox at url into two databases, with
// --fetch full and --fetch lean, compares every column of every row, and
// re-runs both: the re-runs download nothing and change nothing.
func fullAndLeanAgree(t *testing.T, url, password string, want int) {
	t.Helper()
	full, lean := newFixture(t), newFixture(t)
	for _, f := range []*fixture{full, lean} {
		f.environ = append(f.environ, "BACKFILL_INBOX_DEMO="+url, "BACKFILL_INBOX_DEMO_PASSWORD="+password)
		f.migrate()
	}
	for i, f := range []*fixture{full, lean} {
		mode := []string{"full", "lean"}[i]
		sum := f.summary(0, "--inbox", "demo", "--fetch", mode, "--batch-size", "50")
		if sum.Synced != want || sum.Errors != 0 {
			t.Errorf("--fetch %s: %d stored, %d errors; want %d stored, no error", mode, sum.Synced, sum.Errors, want)
		}
		if n := f.count(`SELECT count(*) FROM email_messages`); n != want {
			t.Errorf("--fetch %s: email_messages has %d rows, want %d", mode, n, want)
		}
	}
	wantRows, gotRows := full.dumpExcept(), lean.dumpExcept()
	if len(wantRows) != len(gotRows) {
		t.Fatalf("full fetch stored %d rows, lean %d", len(wantRows), len(gotRows))
	}
	for i := range wantRows {
		if wantRows[i] != gotRows[i] {
			t.Errorf("row %d differs:%s", i, jsonDiff(wantRows[i], gotRows[i]))
		}
	}

	for i, f := range []*fixture{full, lean} {
		mode := []string{"full", "lean"}[i]
		before := f.snapshot()
		sum := f.summary(0, "--inbox", "demo", "--fetch", mode)
		if sum.Fetched != 0 || sum.Synced != 0 {
			t.Errorf("re-run with --fetch %s downloaded %d messages and stored %d; want none", mode, sum.Fetched, sum.Synced)
		}
		if f.snapshot() != before {
			t.Errorf("re-run with --fetch %s changed the tables", mode)
		}
	}
}

// runSummary is the closing JSON line of a run (--log-format json).
type runSummary struct {
	Status      string `json:"status"`
	Total       int    `json:"total"`
	Fetched     int    `json:"fetched"`
	Synced      int    `json:"synced"`
	Skipped     int    `json:"skipped"`
	Errors      int    `json:"errors"`
	Warnings    int    `json:"warnings"`
	Connections int    `json:"connections"`
}

// summary runs the CLI with --log-format json, fails the test unless it
// exits with want, and returns the run's summary event.
func (f *fixture) summary(want int, args ...string) runSummary {
	f.t.Helper()
	out := f.mustRun(want, append(args, "--log-format", "json")...)
	for _, line := range strings.Split(out, "\n") {
		var ev struct {
			Event string `json:"event"`
			runSummary
		}
		if json.Unmarshal([]byte(line), &ev) == nil && ev.Event == "summary" {
			return ev.runSummary
		}
	}
	f.t.Fatalf("backfill %s: no summary event in the output:\n%s", strings.Join(args, " "), out)
	return runSummary{}
}

// dumpExcept returns every email_messages row as JSON, in Message-ID order,
// without the columns that differ between databases or servers, nor the
// extra ones named.
func (f *fixture) dumpExcept(extra ...string) []string {
	f.t.Helper()
	drop := "- 'id' - 'synced_at' - 'imap_uid'"
	for _, c := range extra {
		drop += " - '" + c + "'"
	}
	rows, err := f.pool.Query(context.Background(), `SELECT (to_jsonb(m) `+drop+`)::text FROM email_messages m ORDER BY message_id`)
	if err != nil {
		f.t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			f.t.Fatal(err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		f.t.Fatal(err)
	}
	return out
}

// distinctIDs counts the rows raws should give: one per Message-ID (a
// synthetic one for messages without), as the server serves them, with
// CRLF line ends.
func distinctIDs(raws [][]byte) int {
	ids := map[string]bool{}
	for _, raw := range raws {
		ids[message.Parse(crlf(raw), message.Meta{}).MessageID] = true
	}
	return len(ids)
}

// crlf turns every LF not preceded by CR into CRLF.
func crlf(b []byte) []byte {
	var out bytes.Buffer
	for i, c := range b {
		if c == '\n' && (i == 0 || b[i-1] != '\r') {
			out.WriteByte('\r')
		}
		out.WriteByte(c)
	}
	return out.Bytes()
}

// realWorldMail returns real-world mail that nobody on this project wrote,
// read where it is installed, never copied into the repository: enmime's
// test messages from the Go module cache, and CPython's email test data
// where Python has its test package. Identical files count once.
func realWorldMail(t *testing.T) [][]byte {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/jhillyerd/enmime/v2").Output()
	if err != nil {
		t.Fatalf("find enmime's module: %v", err)
	}
	patterns := []string{filepath.Join(strings.TrimSpace(string(out)), "testdata", "mail", "*.raw")}
	if py, err := exec.Command("python3", "-c", "import test, os; print(os.path.dirname(test.__file__))").Output(); err == nil {
		patterns = append(patterns, filepath.Join(strings.TrimSpace(string(py)), "test_email", "data", "msg_*.txt"))
	}
	seen := map[string]bool{}
	var raws [][]byte
	for _, p := range patterns {
		files, _ := filepath.Glob(p)
		for _, f := range files {
			raw, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if !seen[string(raw)] {
				seen[string(raw)] = true
				raws = append(raws, raw)
			}
		}
	}
	if len(raws) < 40 {
		t.Fatalf("found %d real-world messages in %v, want at least 40", len(raws), patterns)
	}
	t.Logf("%d real-world messages from %v", len(raws), patterns)
	return raws
}

// courierWith starts Courier with the generated mails loaded (raw: the
// files keep CRLF) and a fixture whose inbox "demo" is its INBOX.
func courierWith(t *testing.T, ms []mailgen.Mail, raw, settle bool) (*couriertest.Server, *fixture) {
	t.Helper()
	srv := couriertest.Start(t)
	load := srv.LoadMaildir
	if raw {
		load = srv.LoadMaildirRaw
	}
	if err := load(mails(ms)); err != nil {
		t.Fatal(err)
	}
	if settle {
		if err := srv.Settle(); err != nil {
			t.Fatal(err)
		}
	}
	f := newFixture(t)
	f.environ = append(f.environ, "BACKFILL_INBOX_DEMO="+srv.URL("INBOX"), "BACKFILL_INBOX_DEMO_PASSWORD="+srv.Password)
	f.migrate()
	return srv, f
}

// TestCourierUnsettledMaildir runs twice on a Maildir that no client has
// opened read-write, where Courier hands out a new UIDVALIDITY in every
// session (issue 14): rows stay right through Message-IDs, the UIDs settled
// under UIDVALIDITYs that are gone do not pile up, and the run says that
// the server changed UIDVALIDITY.
func TestCourierUnsettledMaildir(t *testing.T) {
	t.Parallel()
	corpus := mailgen.Generate(43, 60)
	_, f := courierWith(t, corpus, false, false)
	f.mustRun(0, "--inbox", "demo")
	rows := f.count(`SELECT count(*) FROM email_messages`)
	before := f.snapshot()
	// Courier's UIDVALIDITY is the time in seconds: the next run's session
	// must begin in a later second to get a new one.
	time.Sleep(1100 * time.Millisecond)
	out := f.mustRun(0, "--inbox", "demo")
	if f.snapshot() != before {
		t.Error("the second run changed email_messages or email_threads")
	}
	if n := f.count(`SELECT count(DISTINCT uidvalidity) FROM email_sync_uids`); n != 1 {
		t.Errorf("email_sync_uids holds UIDs of %d UIDVALIDITYs, want only the current one", n)
	}
	if n := f.count(`SELECT count(*) FROM email_sync_uids`); n > len(corpus) {
		t.Errorf("email_sync_uids has %d rows for a mailbox of %d messages (%d stored)", n, len(corpus), rows)
	}
	if !strings.Contains(out, "UIDVALIDITY") {
		t.Errorf("the second run does not say that the server changed UIDVALIDITY:\n%s", out)
	}
}

// TestCourierCRLFMaildir serves Maildir files stored with CRLF, which
// Courier sends with lines ending in CR CR LF (issue 14): with --fetch full
// and --fetch lean, the rows are the ones go-imap's server gives for the
// same messages, column by column, and no message is logged with a warning.
func TestCourierCRLFMaildir(t *testing.T) {
	t.Parallel()
	var corpus []mailgen.Mail
	for _, m := range mailgen.Generate(47, 80) {
		if m.DuplicateOf < 0 {
			corpus = append(corpus, m)
		}
	}
	srv, full := courierWith(t, corpus, true, true)
	lean := newFixture(t)
	lean.environ = append(lean.environ, "BACKFILL_INBOX_DEMO="+srv.URL("INBOX"), "BACKFILL_INBOX_DEMO_PASSWORD="+srv.Password)
	lean.migrate()
	plain := newFixture(t)
	for _, m := range corpus {
		plain.imap.Append(t, m.Raw, m.InternalDate)
	}
	plain.migrate()
	plain.mustRun(0, "--inbox", "demo", "--fetch", "full")
	// size_bytes is RFC822.SIZE, which counts the extra CRs Courier serves.
	want := plain.dumpExcept("imap_uidvalidity", "size_bytes")
	if len(want) != len(corpus) {
		t.Fatalf("go-imap's server gave %d rows, want %d", len(want), len(corpus))
	}
	for mode, f := range map[string]*fixture{"full": full, "lean": lean} {
		f.mustRun(0, "--inbox", "demo", "--fetch", mode)
		if n := f.count(`SELECT count(*) FROM error_logs`); n != 0 {
			t.Errorf("--fetch %s: %d error_logs entries for mail served with CR CR LF, want none", mode, n)
		}
		got := f.dumpExcept("imap_uidvalidity", "size_bytes")
		if len(got) != len(want) {
			t.Errorf("--fetch %s: Courier gave %d rows, go-imap's server %d", mode, len(got), len(want))
			continue
		}
		for i := range want {
			if want[i] != got[i] {
				t.Errorf("--fetch %s: row %d differs (\"full\" is go-imap's server, \"lean\" Courier):%s", mode, i, jsonDiff(want[i], got[i]))
			}
		}
	}
}

// TestCourierSettledRerunLogsInOnce re-runs a settled mailbox, which has
// nothing to fetch, with four workers: Courier's log shows one LOGIN for
// the re-run, not one per worker (issue 14).
func TestCourierSettledRerunLogsInOnce(t *testing.T) {
	t.Parallel()
	srv, f := courierWith(t, mailgen.Generate(53, 200), false, true)
	f.mustRun(0, "--inbox", "demo", "--workers", "4")
	first := logins(t, srv)
	sum := f.summary(0, "--inbox", "demo", "--workers", "4")
	if sum.Fetched != 0 {
		t.Fatalf("re-run downloaded %d messages, want none", sum.Fetched)
	}
	if n := logins(t, srv) - first; n != 1 {
		t.Errorf("re-run of a settled mailbox logged in %d times, want once", n)
	}
}

// logins counts the LOGINs in Courier's log.
func logins(t *testing.T, srv *couriertest.Server) int {
	t.Helper()
	b, err := os.ReadFile(srv.LogFile())
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Count(b, []byte("INFO: LOGIN,"))
}

// TestMeasureCourierSettledRerun measures what issue 14 asks of a re-run of
// a settled 10,000-message mailbox on Courier (under 1 s): the wall time of
// the built binary, process start included. It logs and asserts nothing
// about time; set BACKFILL_MEASURE=1 to run it (about a minute).
func TestMeasureCourierSettledRerun(t *testing.T) {
	if os.Getenv("BACKFILL_MEASURE") == "" {
		t.Skip("set BACKFILL_MEASURE=1 to measure a settled re-run of 10,000 messages on Courier")
	}
	const n = 10_000
	srv := couriertest.Start(t)
	err := srv.LoadMaildir(func(yield func([]byte, time.Time) bool) {
		_ = mailgen.Each(59, n, func(m mailgen.Mail) error {
			if !yield(m.Raw, m.InternalDate) {
				return context.Canceled
			}
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Settle(); err != nil {
		t.Fatal(err)
	}
	f := newFixture(t)
	f.environ = append(f.environ, "BACKFILL_INBOX_DEMO="+srv.URL("INBOX"), "BACKFILL_INBOX_DEMO_PASSWORD="+srv.Password)
	f.migrate()
	bin := buildBinary(t)
	start := time.Now()
	if code, out := execBinary(t, bin, f.dir, f.environ, "--inbox", "demo"); code != 0 {
		t.Fatalf("first run: exit %d\n%s", code, out)
	}
	t.Logf("first run of %d messages: %v", n, time.Since(start))
	for i := range 3 {
		before := logins(t, srv)
		start := time.Now()
		code, out := execBinary(t, bin, f.dir, f.environ, "--inbox", "demo")
		took := time.Since(start)
		if code != 0 || !hasLine(out, "Downloaded:    0 message bodies") {
			t.Fatalf("re-run: exit %d\n%s", code, out)
		}
		t.Logf("settled re-run %d: %v wall time, %d LOGINs", i+1, took, logins(t, srv)-before)
	}
}
