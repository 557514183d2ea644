package main

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/myhibachi/backfill/internal/dovecottest"
	"github.com/myhibachi/backfill/internal/mailgen"
	"github.com/myhibachi/backfill/pgsink"
	"github.com/myhibachi/backfill/pipeline"
)

// appendSized puts n messages of about size bytes each on the server.
func (f *fixture) appendSized(n, size int) {
	f.t.Helper()
	for i := range n {
		head := fmt.Sprintf("From: a@example.com\r\nTo: cs@myhibachichef.com\r\nSubject: order %d\r\nMessage-ID: <order-%d@example.com>\r\n\r\n", i, i)
		f.imap.Append(f.t, []byte(head+strings.Repeat("x", size-len(head))+"\r\n"), time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	}
}

var freesAtLine = regexp.MustCompile(`Left for later: (\d+) emails; the budget frees up enough to continue at (\S+ \S+) UTC`)

// TestDownloadBudgetStopsAndResumes: a budget smaller than the mailbox
// stops the run with exit 75 and every message it downloaded committed; it
// says when the budget frees up; a run inside the window downloads nothing
// and exits 75 again; once the window has passed, runs go on from where the
// last stopped until the mailbox is done, with no duplicate.
func TestDownloadBudgetStopsAndResumes(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	const total, size, budget = 30, 2000, 20_000
	f.appendSized(total, size)
	f.migrate()
	args := []string{"--inbox", "demo", "--workers", "2", "--batch-size", "4", "--max-download", "20KB/24h"}

	out := f.mustRun(exitBudget, args...)
	f.wantLine(out, "⏸️  DOWNLOAD BUDGET USED UP")
	stored := f.count(`SELECT count(*) FROM email_messages`)
	if stored == 0 || stored >= total {
		t.Fatalf("stored %d of %d messages under a budget of 10 of them\n%s", stored, total, out)
	}
	if settled := f.count(`SELECT count(*) FROM email_sync_uids`); settled != stored {
		t.Fatalf("%d UIDs settled, %d rows stored: what was fetched was not all committed", settled, stored)
	}
	ledger := f.count(`SELECT coalesce(sum(bytes), 0)::int FROM email_downloads WHERE inbox = 'demo'`)
	if sizes := f.count(`SELECT sum(size_bytes)::int FROM email_messages`); ledger != sizes || ledger > budget {
		t.Fatalf("ledger says %d bytes, the stored messages are %d bytes, budget %d", ledger, sizes, budget)
	}
	f.wantLine(out, fmt.Sprintf("Budget:        %s of 20KB per 24h downloaded in the window", formatBytes(int64(ledger))))
	m := freesAtLine.FindStringSubmatch(out)
	if m == nil || m[1] != fmt.Sprint(total-stored) {
		t.Fatalf("no line saying %d emails are left and when the budget frees up:\n%s", total-stored, out)
	}
	// The budget frees up when a round's download leaves the window.
	freesAt, err := time.Parse(time.DateTime, m[2])
	if err != nil {
		t.Fatal(err)
	}
	var first, last time.Time
	if err := f.pool.QueryRow(t.Context(), `SELECT min(at) + interval '24 hours', max(at) + interval '24 hours' FROM email_downloads`).Scan(&first, &last); err != nil {
		t.Fatal(err)
	}
	if freesAt.Before(first.Add(-2*time.Second)) || freesAt.After(last.Add(2*time.Second)) {
		t.Fatalf("frees up at %v, want between %v and %v (24h after the rounds)", freesAt, first, last)
	}
	if n := f.count(`SELECT count(*) FROM email_sync_status WHERE inbox = 'demo' AND last_status = 'budget_exhausted'`); n != 1 {
		t.Fatalf("email_sync_status does not say budget_exhausted\n%s", f.tableText("email_sync_status"))
	}

	// Inside the window: nothing is downloaded.
	whole, pieces := f.imap.BodiesAsked()
	out = f.mustRun(exitBudget, args...)
	if w, p := f.imap.BodiesAsked(); w != whole || p != pieces {
		t.Fatalf("a run inside the window asked for %d more bodies", w+p-whole-pieces)
	}
	if n := f.count(`SELECT coalesce(sum(bytes), 0)::int FROM email_downloads`); n != ledger {
		t.Fatalf("a run inside the window downloaded %d bytes", n-ledger)
	}
	f.wantLine(out, "Left for later: "+fmt.Sprint(total-stored)+" emails")

	// Past the window (its rows backdated): each run goes on where the last
	// stopped, until the mailbox is done.
	code := exitBudget
	for range 5 {
		f.mustExec(`UPDATE email_downloads SET at = at - interval '25 hours'`)
		if code, out = f.run(args...); code != exitBudget {
			break
		}
	}
	if code != exitOK {
		t.Fatalf("the last run exited %d, want 0\n%s", code, out)
	}
	if n := f.count(`SELECT count(DISTINCT message_id) FROM email_messages WHERE imap_uid IS NOT NULL`); n != total ||
		f.count(`SELECT count(*) FROM email_messages`) != total {
		t.Fatalf("%d distinct messages, %d rows; want %d of each", n, f.count(`SELECT count(*) FROM email_messages`), total)
	}
	if n := f.count(`SELECT count(*) FROM email_sync_status WHERE last_status = 'completed'`); n != 1 {
		t.Fatal("the finishing run did not record completed")
	}
}

// TestDownloadBudgetDovecot: against Dovecot, whose RFC822.SIZE the budget
// goes by, a run stays within the budget and commits all it downloaded;
// --max-download none then finishes the mailbox.
func TestDownloadBudgetDovecot(t *testing.T) {
	t.Parallel()
	user := dovecottest.User{Name: "budget@myhibachichef.com", Password: "pw"}
	srv := dovecottest.NewServer(t, []dovecottest.User{user})
	opts := mailgen.DefaultOptions()
	opts.DuplicateRatio, opts.NoMessageIDRatio = 0, 0
	corpus := rawMails(opts.Generate(8, 40))
	var total int
	for _, raw := range corpus {
		total += len(raw)
	}
	err := srv.LoadMaildir(user.Name, func(yield func([]byte, time.Time) bool) {
		for _, raw := range corpus {
			if !yield(raw, time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)) {
				return
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t)
	f.environ = append(f.environ, "BACKFILL_INBOX_DEMO="+srv.URL(user.Name, "INBOX"), "BACKFILL_INBOX_DEMO_PASSWORD="+user.Password)
	f.migrate()
	budget := total / 3
	out := f.mustRun(exitBudget, "--inbox", "demo", "--fetch", "full", "--batch-size", "3", "--max-download", fmt.Sprintf("%d/24h", budget))
	stored := f.count(`SELECT count(*) FROM email_messages`)
	ledger := f.count(`SELECT coalesce(sum(bytes), 0)::int FROM email_downloads`)
	if settled := f.count(`SELECT count(*) FROM email_sync_uids`); stored == 0 || settled != stored {
		t.Fatalf("%d rows stored, %d UIDs settled\n%s", stored, settled, out)
	}
	if sizes := f.count(`SELECT sum(size_bytes)::int FROM email_messages`); ledger != sizes || ledger > budget {
		t.Fatalf("ledger %d bytes, stored messages %d bytes, budget %d", ledger, sizes, budget)
	}
	f.wantLine(out, fmt.Sprintf("Left for later: %d emails", len(corpus)-stored))
	f.mustRun(0, "--inbox", "demo", "--fetch", "full", "--max-download", "none")
	if n := f.count(`SELECT count(*) FROM email_messages`); n != len(corpus) {
		t.Fatalf("%d rows after the run without a budget, want %d", n, len(corpus))
	}
}

// TestDownloadBudgetIsPerInbox: a full window stops its inbox before any
// worker logs in or anything is fetched, and says so in a dry run; another
// inbox on the same database has a budget of its own.
func TestDownloadBudgetIsPerInbox(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.appendSized(6, 2000)
	f.environ = append(f.environ, "BACKFILL_INBOX_OTHER="+f.imap.URL("INBOX"), "BACKFILL_INBOX_OTHER_PASSWORD="+f.imap.Password)
	f.migrate()
	f.mustExec(`INSERT INTO email_downloads (inbox, at, bytes) VALUES ('demo', now() - interval '1 hour', 1000000),
		('demo', now() - interval '3 days', 5), ('demo', now() - interval '8 days', 7)`)

	out := f.mustRun(0, "--inbox", "demo", "--dry-run", "--max-download", "1MB/24h")
	f.wantLine(out, "Download budget: 0B of 1MB per 24h left; the 6 emails to fetch weigh 12KB: the run would stop")
	out = f.mustRun(0, "--inbox", "demo", "--dry-run", "--max-download", "1MB/1h")
	f.wantLine(out, "Download budget: 1MB of 1MB per 1h left; the 6 emails to fetch weigh 12KB: the run fits")

	logins, fetches := f.imap.Logins(), f.imap.Fetches()
	out = f.mustRun(exitBudget, "--inbox", "demo", "--workers", "4", "--batch-size", "1", "--max-download", "1MB/24h")
	if l, n := f.imap.Logins()-logins, f.imap.Fetches()-fetches; l != 1 || n != 0 {
		t.Fatalf("a run with no budget left logged in %d times and sent %d FETCH commands, want 1 and 0", l, n)
	}
	f.wantLine(out, "Left for later: 6 emails")
	if n := f.count(`SELECT count(*) FROM email_downloads WHERE bytes IN (5, 7)`); n != 1 {
		t.Fatalf("%d of the rows 3 and 8 days old are left; want the week-old one pruned, the other kept", n)
	}
	if n := f.count(`SELECT count(*) FROM email_messages`); n != 0 {
		t.Fatalf("%d rows stored with no budget left", n)
	}

	f.mustRun(0, "--inbox", "other", "--max-download", "1MB/24h")
	if n := f.count(`SELECT count(*) FROM email_messages WHERE inbox = 'other'`); n != 6 {
		t.Fatalf("inbox other stored %d of 6 messages: it was held to inbox demo's budget", n)
	}
}

// TestDownloadLedgerCountsBytesMoved: the ledger records what came over
// the wire, which for a lean fetch is much less than the messages' size,
// and for oversized messages includes what was read and thrown away.
func TestDownloadLedgerCountsBytesMoved(t *testing.T) {
	t.Parallel()
	summary := func(t *testing.T, out string) map[string]any {
		t.Helper()
		for _, line := range strings.Split(out, "\n") {
			var ev map[string]any
			if json.Unmarshal([]byte(line), &ev) == nil && ev["event"] == "summary" {
				return ev
			}
		}
		t.Fatalf("no summary event:\n%s", out)
		return nil
	}
	t.Run("lean", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		opts := mailgen.DefaultOptions()
		opts.AttachmentRatio, opts.AttachmentMin, opts.AttachmentMax = 1, 60_000, 120_000
		opts.DuplicateRatio, opts.NoMessageIDRatio = 0, 0
		f.imap.AppendMails(t, opts.Generate(5, 12))
		f.migrate()
		// Small batches: a worker asks the next round's structures while
		// it asks this round's sizes and fetches it.
		sum := summary(t, f.mustRun(0, "--inbox", "demo", "--fetch", "lean", "--log-format", "json",
			"--max-download", "1GB/24h", "--workers", "1", "--batch-size", "1"))
		moved, whole := int(sum["transferred_bytes"].(float64)), int(sum["message_bytes"].(float64))
		ledger := f.count(`SELECT sum(bytes)::int FROM email_downloads`)
		if ledger != moved || moved*2 > whole {
			t.Fatalf("ledger %d bytes, transferred %d of %d: want the ledger to be the bytes moved, under half the messages' size", ledger, moved, whole)
		}
		if used := int(sum["budget"].(map[string]any)["used_bytes"].(float64)); used != ledger {
			t.Fatalf("summary says %d bytes of the budget used, the ledger %d", used, ledger)
		}
	})
	t.Run("oversized", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		f.appendSized(4, 2000)
		f.appendSized(2, 8000) // same Message-IDs as two above, but oversized: never stored
		f.migrate()
		sum := summary(t, f.mustRun(1, "--inbox", "demo", "--fetch", "full", "--log-format", "json", "--max-message-size", "4096"))
		moved, drained := int(sum["transferred_bytes"].(float64)), int(sum["oversized_bytes"].(float64))
		if ledger := f.count(`SELECT sum(bytes)::int FROM email_downloads`); drained < 16000 || ledger != moved+drained {
			t.Fatalf("ledger %d bytes; transferred %d, oversized read and discarded %d", ledger, moved, drained)
		}
	})
}

func TestParseMaxDownload(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want pipeline.Budget
		err  string
	}{
		{in: "2500MB/24h", want: pipeline.Budget{Bytes: 2_500_000_000, Period: 24 * time.Hour}},
		{in: "1GB/1h", want: pipeline.Budget{Bytes: 1_000_000_000, Period: time.Hour}},
		{in: "500MiB/30m", want: pipeline.Budget{Bytes: 500 << 20, Period: 30 * time.Minute}},
		{in: "2.5gb/1d", want: pipeline.Budget{Bytes: 2_500_000_000, Period: 24 * time.Hour}},
		{in: "1000/90s", want: pipeline.Budget{Bytes: 1000, Period: 90 * time.Second}},
		{in: "10 KiB/2s", want: pipeline.Budget{Bytes: 10240, Period: 2 * time.Second}},
		{in: "none"},
		{in: "0"},
		{in: "2500MB", err: "has no /PERIOD"},
		{in: "2500XB/24h", err: `unknown size unit "XB"`},
		{in: "MB/24h", err: "not a number"},
		{in: "0MB/24h", err: "out of range"},
		{in: "2500MB/soon", err: `period "soon" is not a duration`},
		{in: "2500MB/10ms", err: "under a second"},
		{in: "2500MB/0d", err: "is not a duration"},
	} {
		got, err := parseMaxDownload(tc.in)
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), "like 2500MB/24h")):
			t.Errorf("parseMaxDownload(%q) error %v, want one saying %q and how to write it", tc.in, err, tc.err)
		case tc.err == "" && (err != nil || got != tc.want):
			t.Errorf("parseMaxDownload(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
}

// TestBudgetPrecedence: the flag wins over the inbox's variable, which wins
// over the provider's preset; only the preset comes with a notice.
func TestBudgetPrecedence(t *testing.T) {
	gmail := pipeline.Budget{Bytes: 2_500_000_000, Period: 24 * time.Hour}
	for _, tc := range []struct {
		name    string
		flag    string
		set     bool
		environ []string
		host    string
		want    pipeline.Budget
		notice  string
		err     string
	}{
		{name: "gmail preset", host: "imap.gmail.com", want: gmail, notice: "--max-download 2.5GB/24h applied: imap.gmail.com"},
		{name: "gmail turned off", flag: "none", set: true, host: "imap.gmail.com"},
		{name: "gmail by variable", environ: []string{"BACKFILL_INBOX_PAY_MAX_DOWNLOAD=1GB/24h"}, host: "imap.gmail.com",
			want: pipeline.Budget{Bytes: 1e9, Period: 24 * time.Hour}},
		{name: "flag over variable", flag: "2MB/1h", set: true, environ: []string{"BACKFILL_INBOX_PAY_MAX_DOWNLOAD=1GB/24h"},
			host: "imap.ionos.com", want: pipeline.Budget{Bytes: 2e6, Period: time.Hour}},
		{name: "no preset", host: "imap.ionos.com"},
		{name: "bad variable", environ: []string{"BACKFILL_INBOX_PAY_MAX_DOWNLOAD=lots"}, host: "imap.ionos.com",
			err: "BACKFILL_INBOX_PAY_MAX_DOWNLOAD=\"lots\" has no /PERIOD"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, err := loadEnv(tc.environ, t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			got, notice, err := resolveBudget(tc.flag, tc.set, e, "pay", tc.host)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || exitCode(t.Context(), err) != exitFatal {
					t.Fatalf("error %v, want exit 2 saying %q", err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want || !strings.HasPrefix(notice, tc.notice) || (tc.notice == "") != (notice == "") {
				t.Fatalf("got %+v, notice %q, error %v; want %+v, notice %q", got, notice, err, tc.want, tc.notice)
			}
		})
	}
}

// TestMaxDownloadVariableIsNoInbox: BACKFILL_INBOX_<NAME>_MAX_DOWNLOAD
// sets an inbox's budget; it does not name an inbox of its own.
func TestMaxDownloadVariableIsNoInbox(t *testing.T) {
	e, err := loadEnv([]string{"BACKFILL_INBOX_SALES=imaps://a@b/INBOX", "BACKFILL_INBOX_SALES_MAX_DOWNLOAD=1GB/24h"}, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(inboxNames(e), ","); got != "customer_support,payments,sales" {
		t.Fatalf("inboxes %s, want customer_support,payments,sales", got)
	}
}

// downloadsRow is the row of status's downloads table for inbox, split
// into its columns (a budget's source in parentheses is a column of its
// own); nil when there is none.
func downloadsRow(out, inbox string) []string {
	_, table, ok := strings.Cut(out, "DOWNLOADED (24H)")
	if !ok {
		return nil
	}
	for _, line := range strings.Split(table, "\n") {
		if cols := strings.Fields(line); len(cols) > 0 && cols[0] == inbox {
			return cols
		}
	}
	return nil
}

// TestStatusShowsDownloadBudget: status shows what email_downloads holds
// for each inbox in the last 24 hours and, for a budget it knows (the
// inbox's variable, or the imap.gmail.com preset), what is used in the
// budget's window, what is left and, when nothing is, when room comes back.
func TestStatusShowsDownloadBudget(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.appendSized(2, 2000)
	f.migrate()
	f.mustRun(0, "--inbox", "demo")
	// A ledger with known times: 1,500 bytes in the last 24 hours, 7,000
	// before.
	f.mustExec(`TRUNCATE email_downloads`)
	f.mustExec(`INSERT INTO email_downloads (inbox, bytes, at) VALUES ('demo', 7000, now() - interval '30 hours'),
		('demo', 1000, now() - interval '23 hours'), ('demo', 500, now() - interval '1 hour')`)
	base := f.environ
	status := func(env ...string) (pgsink.InboxStatus, string) {
		t.Helper()
		f.environ = append(slices.Clone(base), env...)
		var sts []pgsink.InboxStatus
		if out := f.mustRun(0, "status", "--json"); json.Unmarshal([]byte(out), &sts) != nil || len(sts) != 1 {
			t.Fatalf("status --json with %q:\n%s", env, out)
		}
		return sts[0], f.mustRun(0, "status")
	}

	st, out := status()
	if st.Downloaded24h != 1500 || st.Budget != nil {
		t.Fatalf("without a budget: downloaded %d, budget %+v; want 1500 and none", st.Downloaded24h, st.Budget)
	}
	if got, want := downloadsRow(out, "demo"), []string{"demo", "1.5KB", "-", "-", "-", "-"}; !slices.Equal(got, want) {
		t.Fatalf("downloads row %q, want %q:\n%s", got, want, out)
	}

	// Used up: room comes back when the download of 23 hours ago leaves
	// the window, in an hour.
	st, out = status("BACKFILL_INBOX_DEMO_MAX_DOWNLOAD=1200/24h")
	b := st.Budget
	if b == nil || b.Bytes != 1200 || b.Period != "24h" || b.Source != "BACKFILL_INBOX_DEMO_MAX_DOWNLOAD" || b.Used != 1500 || b.Left != 0 ||
		b.FreesAt == nil || time.Until(*b.FreesAt) < 59*time.Minute || time.Until(*b.FreesAt) > 61*time.Minute {
		t.Fatalf("budget 1200/24h: %+v (frees at %v), want 1500 used, 0 left, free in an hour", b, b.FreesAt)
	}
	row := downloadsRow(out, "demo")
	if want := []string{"demo", "1.5KB", "1.2KB/24h", "(BACKFILL_INBOX_DEMO_MAX_DOWNLOAD)", "1.5KB", "0B", fmtTime(b.FreesAt)}; strings.Join(row, " ") != strings.Join(want, " ") {
		t.Fatalf("downloads row %q, want %q:\n%s", row, want, out)
	}

	// Room left, in a window of its own length: 2 hours, then 2 days.
	for _, c := range []struct {
		budget     string
		used, left int64
	}{{"1KB/2h", 500, 500}, {"10KB/2d", 8500, 1500}} {
		st, _ = status("BACKFILL_INBOX_DEMO_MAX_DOWNLOAD=" + c.budget)
		if b := st.Budget; b == nil || b.Used != c.used || b.Left != c.left || b.FreesAt != nil {
			t.Fatalf("budget %s: %+v, want %d used, %d left, room now", c.budget, b, c.used, c.left)
		}
	}

	// An inbox on imap.gmail.com has Gmail's preset, unless its variable
	// says none.
	f.mustExec(`INSERT INTO email_sync_status (inbox) VALUES ('pay')`)
	f.mustExec(`INSERT INTO email_downloads (inbox, bytes) VALUES ('pay', 1000000000)`)
	f.environ = append(slices.Clone(base), "BACKFILL_INBOX_PAY=imaps://p%40gmail.com@imap.gmail.com:993/INBOX")
	gmail := func() (pgsink.InboxStatus, string) {
		var sts []pgsink.InboxStatus
		if out := f.mustRun(0, "status", "--inbox", "pay", "--json"); json.Unmarshal([]byte(out), &sts) != nil || len(sts) != 1 {
			t.Fatalf("status --inbox pay --json:\n%s", out)
		}
		return sts[0], f.mustRun(0, "status", "--inbox", "pay")
	}
	st, out = gmail()
	if b := st.Budget; b == nil || b.Bytes != 2_500_000_000 || b.Period != "24h" || b.Source != "imap.gmail.com" || b.Left != 1_500_000_000 {
		t.Fatalf("Gmail inbox: budget %+v, want the 2.5GB/24h preset with 1.5GB left", b)
	}
	if want := []string{"pay", "1GB", "2.5GB/24h", "(imap.gmail.com)", "1GB", "1.5GB", "-"}; strings.Join(downloadsRow(out, "pay"), " ") != strings.Join(want, " ") {
		t.Fatalf("downloads row %q, want %q:\n%s", downloadsRow(out, "pay"), want, out)
	}
	f.environ = append(f.environ, "BACKFILL_INBOX_PAY_MAX_DOWNLOAD=none")
	if st, _ = gmail(); st.Budget != nil || st.Downloaded24h != 1_000_000_000 {
		t.Fatalf("Gmail inbox with none: budget %+v, downloaded %d", st.Budget, st.Downloaded24h)
	}

	// A registered inbox's budget is the registry's, as its runs' is.
	f.mustRun(0, "inboxes", "add", "pay", "imaps://p%40gmail.com@imap.gmail.com:993/INBOX", "--password-env", "PAY_PW", "--max-download", "4GB/24h")
	if st, _ = gmail(); st.Budget == nil || st.Budget.Bytes != 4_000_000_000 || st.Budget.Source != "registered" || st.Budget.Left != 3_000_000_000 {
		t.Fatalf("registered inbox with --max-download 4GB/24h: budget %+v", st.Budget)
	}
}
