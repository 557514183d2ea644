package main

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/myhibachi/backfill/internal/imaptest"
	"github.com/myhibachi/backfill/internal/mailgen"
	"github.com/myhibachi/backfill/message"
	"github.com/myhibachi/backfill/pgsink"
)

// row is what the tests read back from email_messages.
type row struct {
	MessageID, ThreadID, From, FromName, Subject, Text, HTML, InReplyTo string
	To, Cc, References                                                  []string
	Attachments                                                         []message.Attachment
	ReceivedAt                                                          time.Time
	SentAt                                                              *time.Time
	UID                                                                 int64
}

func (f *fixture) rows() map[int64]row {
	f.t.Helper()
	rs, err := f.pool.Query(context.Background(), `SELECT message_id, thread_id, from_address, from_name, subject,
		coalesce(text_body, ''), coalesce(html_body, ''), coalesce(in_reply_to, ''), to_addresses, cc_addresses,
		"references", attachments, received_at, sent_at, imap_uid FROM email_messages`)
	if err != nil {
		f.t.Fatal(err)
	}
	defer rs.Close()
	out := map[int64]row{}
	for rs.Next() {
		var r row
		var atts []byte
		if err := rs.Scan(&r.MessageID, &r.ThreadID, &r.From, &r.FromName, &r.Subject, &r.Text, &r.HTML, &r.InReplyTo,
			&r.To, &r.Cc, &r.References, &atts, &r.ReceivedAt, &r.SentAt, &r.UID); err != nil {
			f.t.Fatal(err)
		}
		if err := json.Unmarshal(atts, &r.Attachments); err != nil {
			f.t.Fatal(err)
		}
		out[r.UID] = r
	}
	if err := rs.Err(); err != nil {
		f.t.Fatal(err)
	}
	return out
}

// TestFullRunAndRerun is the product's promise: every field of every message
// stored as sent, duplicates once, and a re-run that changes nothing.
func TestFullRunAndRerun(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	mails := f.imap.AppendGenerated(t, 1, 400)
	f.migrate()

	out := f.mustRun(0, "--inbox", "demo", "--workers", "4", "--batch-size", "50")
	f.wantLine(out, "🚀 Starting email backfill for inbox: demo")
	f.wantLine(out, "📬 Found 400 total emails in IMAP")
	f.wantLine(out, "📦 Processing batch 8/8 (50 emails)")
	f.wantLine(out, "📊 BACKFILL COMPLETE")
	f.wantLine(out, "Total fetched: 400")
	f.wantLine(out, "Total errors:  0 ❌")
	f.wantLine(out, "Success rate:  100.0%")

	// Every unique message is stored once; a redelivered copy is skipped.
	unique := 0
	for _, m := range mails {
		if m.Mail.DuplicateOf < 0 {
			unique++
		}
	}
	f.wantLine(out, fmt.Sprintf("Total synced:  %d ✅", unique))
	f.wantLine(out, fmt.Sprintf("Total skipped: %d ⏭️", len(mails)-unique))
	rows := f.rows()
	if len(rows) != unique {
		t.Fatalf("email_messages has %d rows, want %d", len(rows), unique)
	}
	corpus := make([]mailgen.Mail, len(mails))
	uids := make([]uint32, len(mails))
	for i, m := range mails {
		corpus[i], uids[i] = m.Mail, uint32(m.UID)
	}
	checkCorpus(t, rows, corpus, uids)

	// email_threads and email_sync_status agree with email_messages.
	if n := f.count(`SELECT count(*) FROM email_threads t WHERE message_count <> (SELECT count(*) FROM email_messages m
		WHERE m.inbox = t.inbox AND m.thread_id = t.thread_id)`); n != 0 {
		t.Fatalf("%d threads disagree with email_messages on message_count", n)
	}
	if n := f.count(`SELECT count(*) FROM email_threads t JOIN (SELECT inbox, thread_id, min(received_at) AS first,
		max(received_at) AS last FROM email_messages GROUP BY 1, 2) m USING (inbox, thread_id)
		WHERE t.first_message_at <> m.first OR t.last_message_at <> m.last`); n != 0 {
		t.Fatalf("%d threads disagree with email_messages on first/last message time", n)
	}
	if n := f.count(`SELECT count(DISTINCT thread_id) FROM email_messages`); n != f.count(`SELECT count(*) FROM email_threads`) {
		t.Fatalf("email_threads has a row per thread? %d distinct thread ids in email_messages", n)
	}
	if n := f.count(`SELECT total_synced FROM email_sync_status WHERE inbox = 'demo' AND last_status = 'completed'`); n != unique {
		t.Fatalf("email_sync_status.total_synced = %d, want %d", n, unique)
	}

	// A re-run downloads nothing, stores nothing, changes nothing, exits 0.
	before, fetches := f.snapshot(), f.imap.Fetches()
	out = f.mustRun(0, "--inbox", "demo")
	f.wantLine(out, "Total synced:  0 ✅")
	f.wantLine(out, "Total skipped: 400 ⏭️")
	f.wantLine(out, "⏭️  400 already synced by earlier runs")
	f.wantLine(out, "Downloaded:    0 message bodies")
	if got := f.imap.Fetches(); got != fetches {
		t.Fatalf("re-run sent %d FETCH commands, want none", got-fetches)
	}
	if after := f.snapshot(); after != before {
		t.Fatal("re-run changed email_messages or email_threads")
	}

	// A new UIDVALIDITY (the server rebuilt its index) means every body is
	// fetched again, but Message-IDs, synthetic ones included, match: no
	// new rows, no inflated threads. Three new messages come first, so
	// every old UID names another message now: a re-run that trusted the
	// old UIDs would download 3 bodies, not 403, and store the wrong 3.
	f.imap.RecreateMailbox(t, imaptest.Inbox)
	date := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	for i := range 3 {
		f.imap.Append(t, []byte(fmt.Sprintf("From: new@example.com\r\nTo: cs@myhibachichef.com\r\n"+
			"Subject: after the rebuild %d\r\nMessage-ID: <rebuild-%d@example.com>\r\n\r\nnew\r\n", i, i)), date)
	}
	f.imap.AppendGenerated(t, 1, 400)
	out = f.mustRun(0, "--inbox", "demo")
	f.wantLine(out, "Downloaded:    403 message bodies")
	f.wantLine(out, "Total synced:  3 ✅")
	f.wantLine(out, "Total skipped: 400 ⏭️")
	if n := f.count(`SELECT count(*) FROM email_messages WHERE message_id LIKE 'rebuild-%'`); n != 3 {
		t.Fatalf("%d of the 3 new messages stored after the UIDVALIDITY change", n)
	}
	if n := f.count(`SELECT count(*) FROM email_messages`); n != unique+3 {
		t.Fatalf("email_messages has %d rows after the UIDVALIDITY change, want %d", n, unique+3)
	}
	checkStoredOnce(f)
}

// checkCorpus checks every unique message of corpus (mail i at uids[i]) is
// stored with every field right. Of a message delivered twice, either copy
// may be the one stored: they are byte for byte the same, and the one whose
// batch commits first wins.
func checkCorpus(t *testing.T, rows map[int64]row, corpus []mailgen.Mail, uids []uint32) {
	t.Helper()
	copies := map[int][]uint32{}
	dates := map[int][]time.Time{} // received_at is the stored copy's INTERNALDATE
	for i, m := range corpus {
		orig := i
		if m.DuplicateOf >= 0 {
			orig = m.DuplicateOf
		}
		if uids[i] != 0 {
			copies[orig] = append(copies[orig], uids[i])
		}
		dates[orig] = append(dates[orig], m.InternalDate)
	}
	noID := 0
	for i, m := range corpus {
		if m.DuplicateOf >= 0 {
			continue
		}
		stored := 0
		for _, uid := range copies[i] {
			if r, ok := rows[int64(uid)]; ok {
				stored++
				checkRow(t, uid, r, m, dates[i])
			}
		}
		if stored != 1 {
			t.Errorf("message at UIDs %v (%q) stored %d times, want once", copies[i], m.Want.Subject, stored)
		}
		if m.Want.MessageID == "" {
			noID++
		}
	}
	if noID == 0 {
		t.Fatal("the corpus has no message without Message-ID; the test proves nothing about synthetic ids")
	}
}

func checkRow(t *testing.T, uid uint32, r row, m mailgen.Mail, dates []time.Time) {
	t.Helper()
	w := m.Want
	where := fmt.Sprintf("UID %d (%s, %s)", uid, m.Traits.Charset, m.Traits.Layout)
	check := func(field string, got, want any) {
		t.Helper()
		gotJSON, _ := json.Marshal(got)
		wantJSON, _ := json.Marshal(want)
		if string(gotJSON) != string(wantJSON) {
			t.Errorf("%s: %s = %s, want %s", where, field, gotJSON, wantJSON)
		}
	}
	if w.MessageID != "" {
		check("message_id", r.MessageID, w.MessageID)
	} else if r.MessageID == "" {
		t.Errorf("%s: empty synthetic message_id", where)
	}
	check("subject", r.Subject, w.Subject)
	check("from_address", r.From, w.FromAddress)
	check("from_name", r.FromName, w.FromName)
	check("to_addresses", r.To, nonNil(w.To))
	check("cc_addresses", r.Cc, nonNil(w.Cc))
	check("thread_id", r.ThreadID, w.ThreadID)
	check("in_reply_to", r.InReplyTo, w.InReplyTo)
	check("references", r.References, nonNil(w.References))
	wantAtts := w.Attachments
	if wantAtts == nil {
		wantAtts = []message.Attachment{}
	}
	check("attachments", r.Attachments, wantAtts)
	if !slices.ContainsFunc(dates, r.ReceivedAt.Equal) {
		t.Errorf("%s: received_at = %s, want one of %v", where, r.ReceivedAt.UTC(), dates)
	}
	if r.SentAt == nil || !r.SentAt.Equal(w.SentAt) {
		t.Errorf("%s: sent_at = %v, want %v", where, r.SentAt, w.SentAt)
	}
	if w.TextContains != "" && !strings.Contains(r.Text, w.TextContains) {
		t.Errorf("%s: text_body lacks %q:\n%.300s", where, w.TextContains, r.Text)
	}
	if w.HTMLContains != "" && !strings.Contains(r.HTML, w.HTMLContains) {
		t.Errorf("%s: html_body lacks %q:\n%.300s", where, w.HTMLContains, r.HTML)
	}
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func TestLimitTakesTheMostRecent(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	mails := f.imap.AppendGenerated(t, 2, 60)
	f.migrate()
	out := f.mustRun(0, "--inbox", "demo", "--limit", "10", "--batch-size", "3", "--verbose")
	f.wantLine(out, "Limited to the 10 most recent")
	f.wantLine(out, "📦 Processing batch 4/4")
	f.wantLine(out, "✅ [1/3] Synced (created):")
	var want []int64
	for _, m := range mails[len(mails)-10:] {
		if m.Mail.DuplicateOf < 0 {
			want = append(want, int64(m.UID))
		}
	}
	var got []int64
	for uid := range f.rows() {
		got = append(got, uid)
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Fatalf("stored UIDs %v, want the 10 highest %v", got, want)
	}
}

func TestDryRunWritesNothing(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	// No duplicates and no missing Message-IDs: every count is exact.
	opts := mailgen.DefaultOptions()
	opts.DuplicateRatio, opts.NoMessageIDRatio = 0, 0
	f.imap.AppendMails(t, opts.Generate(3, 30))
	f.migrate()
	// Store the 10 most recent first, so the dry run has both kinds.
	f.mustRun(0, "--inbox", "demo", "--limit", "10")
	before := f.snapshot()
	tables := []string{"email_sync_status", "error_logs", "email_sync_uids"}
	var rowsBefore []string
	for _, table := range tables {
		rowsBefore = append(rowsBefore, f.tableText(table))
	}
	fetches := f.imap.Fetches()

	out := f.mustRun(0, "--inbox", "demo", "--dry-run")
	f.wantLine(out, "🔍 DRY RUN MODE - No emails will be synced")
	f.wantLine(out, "Would process: 20 emails")
	f.wantLine(out, "New: 20, already stored or duplicates: 10")
	if f.snapshot() != before {
		t.Fatal("dry run wrote to email_messages or email_threads")
	}
	for i, table := range tables {
		if after := f.tableText(table); after != rowsBefore[i] {
			t.Fatalf("dry run changed %s:\nbefore:\n%s\nafter:\n%s", table, rowsBefore[i], after)
		}
	}
	if f.count(`SELECT count(*) FROM email_sync_uids`) != 10 {
		t.Fatal("dry run recorded UIDs")
	}
	if f.imap.Fetches()-fetches > 1 {
		t.Fatalf("dry run sent %d FETCH commands, want one header fetch", f.imap.Fetches()-fetches)
	}

	// Without any database it still connects and counts.
	f.environ = slices.DeleteFunc(slices.Clone(f.environ), func(s string) bool { return strings.HasPrefix(s, "DATABASE_URL=") })
	out = f.mustRun(0, "--inbox", "demo", "--dry-run")
	f.wantLine(out, "Would process: 30 emails")
}

func TestUnmigratedDatabaseExits2(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.imap.AppendGenerated(t, 4, 3)
	out := f.mustRun(2, "--inbox", "demo")
	if !strings.Contains(out, "run `backfill migrate`") {
		t.Fatalf("output does not tell the user to migrate:\n%s", out)
	}
	if f.imap.Fetches() != 0 {
		t.Fatal("fetched mail before checking the schema")
	}
}

func TestUsageAndConfigErrorsExit2(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tests := []struct {
		args    []string
		environ []string
		want    string
	}{
		{args: nil, want: "--inbox is required"},
		{args: []string{"--inbox", "demo", "--workers", "0"}, want: "--workers must be between 1 and 64"},
		{args: []string{"--inbox", "demo", "--batch-size", "-1"}, want: "--batch-size must be between"},
		{args: []string{"--inbox", "demo", "--limit", "-5"}, want: "--limit must be 0"},
		{args: []string{"--inbox", "demo", "--log-format", "xml"}, want: "--log-format must be text or json"},
		{args: []string{"--inbox", "demo", "--bogus"}, want: "flag provided but not defined: -bogus"},
		{args: []string{"--inbox", "demo", "--workers", "many"}, want: "invalid value"},
		{args: []string{"--inbox", "demo", "--max-download", "2500XB/24h"}, want: `--max-download "2500XB/24h": unknown size unit "XB": write SIZE/PERIOD, like 2500MB/24h`},
		{args: []string{"--inbox", "demo", "--max-download", "2500MB"}, want: "has no /PERIOD"},
		{args: []string{"--inbox", "demo"}, environ: []string{"BACKFILL_INBOX_DEMO=imap://u@127.0.0.1/INBOX", "BACKFILL_INBOX_DEMO_PASSWORD=p",
			"BACKFILL_INBOX_DEMO_MAX_DOWNLOAD=1GB/often", "DATABASE_URL=x"}, want: `BACKFILL_INBOX_DEMO_MAX_DOWNLOAD="1GB/often": period "often" is not a duration`},
		{args: []string{"--inbox", "nope"}, want: `unknown inbox "nope": set BACKFILL_INBOX_NOPE=`},
		{args: []string{"--inbox", "customer_support"}, want: "no password: set SMTP_PASSWORD"},
		{args: []string{"frobnicate"}, want: `unknown command "frobnicate"`},
		{args: []string{"--inbox", "demo"}, environ: []string{"BACKFILL_INBOX_DEMO=imap://u@127.0.0.1/INBOX", "BACKFILL_INBOX_DEMO_PASSWORD=p"}, want: "no database: set DATABASE_URL"},
		{args: []string{"--inbox", "demo"}, environ: []string{"BACKFILL_INBOX_DEMO=ftp://a@b/", "BACKFILL_INBOX_DEMO_PASSWORD=p", "DATABASE_URL=x"}, want: "scheme must be imaps:// or imap://"},
		{args: []string{"errors", "--operation", "nope"}, want: "is not an operation id"},
		{args: []string{"status", "--bogus"}, want: "flag provided but not defined: -bogus (see backfill status --help)"},
		{args: []string{"watch", "--inbox", "demo", "--folders"}, want: "flag needs an argument: -folders (see backfill watch --help)"},
		{args: []string{"enqueue"}, want: "say which inboxes: --inbox NAME (repeatable) or --all-inboxes"},
		{args: []string{"enqueue", "--inbox", "demo", "--all-inboxes"}, want: "--inbox and --all-inboxes exclude each other"},
		{args: []string{"enqueue", "--inbox", "demo", "--every", "1s"}, want: "--every must be at least 10s"},
		{args: []string{"enqueue", "--inbox", "demo"}, want: "the job queue's tables (river_job) are missing: run backfill migrate"},
		{args: []string{"worker", "--concurrency", "0"}, want: "--concurrency must be between 1 and 1000"},
		{args: []string{"worker", "--bogus"}, want: "flag provided but not defined: -bogus (see backfill worker --help)"},
		{args: []string{"inboxes", "--bogus"}, want: "flag provided but not defined: -bogus (see backfill inboxes --help)"},
		{args: []string{"inboxes", "frobnicate"}, want: `unknown inboxes command "frobnicate"`},
		{args: []string{"inboxes", "list", "--bogus"}, want: "flag provided but not defined: -bogus (see backfill inboxes list --help)"},
		{args: []string{"inboxes", "remove", "--bogus", "x"}, want: "flag provided but not defined: -bogus (see backfill inboxes remove --help)"},
		{args: []string{"inboxes", "remove"}, want: "give the NAME of the inbox to remove"},
		{args: []string{"inboxes", "add", "x", "imap://u@127.0.0.1/INBOX", "--bogus"}, want: "flag provided but not defined: -bogus (see backfill inboxes add --help)"},
		{args: []string{"inboxes", "add", "x", "imap://u@127.0.0.1/INBOX", "--folders"}, want: "flag needs an argument: -folders (see backfill inboxes add --help)"},
		{args: []string{"inboxes", "add", "x"}, want: "give an inbox NAME and its URL"},
		{args: []string{"inboxes", "add", "x y", "imap://u@127.0.0.1/INBOX"}, want: `inbox name "x y": letters, digits and _ only`},
		{args: []string{"inboxes", "add", "x", "imap://u:hunter2@127.0.0.1/INBOX"}, want: "inbox x: put no password in the URL"},
		{args: []string{"inboxes", "add", "x", "ftp://u@127.0.0.1/"}, want: "scheme must be imaps:// or imap://"},
		{args: []string{"inboxes", "add", "x", "imap://u@127.0.0.1/INBOX", "--password-env", "A", "--token-command", "b"}, want: "give one of --password-command, --password-env and --token-command, not 2"},
		{args: []string{"inboxes", "add", "x", "imap://u@127.0.0.1/INBOX", "--password-env", "s3cret!"}, want: "give the name of a variable"},
		{args: []string{"inboxes", "add", "x", "imap://u@127.0.0.1/INBOX", "--password-command", "'unclosed"}, want: "the command runs without a shell"},
		{args: []string{"inboxes", "add", "x", "imap://u@127.0.0.1/INBOX", "--max-download", "5XB/1h"}, want: `--max-download "5XB/1h": unknown size unit`},
		{args: []string{"inboxes", "add", "x", "imap://u@127.0.0.1/INBOX"}, want: "run `backfill migrate`"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			g := *f
			g.t = t
			if tt.environ != nil {
				g.environ = tt.environ
			}
			out := g.mustRun(2, tt.args...)
			if !strings.Contains(out, tt.want) {
				t.Fatalf("output lacks %q:\n%s", tt.want, out)
			}
			if strings.Contains(out, "hunter2") {
				t.Fatalf("the output shows the password given in the URL:\n%s", out)
			}
			if strings.Contains(out, "Incorrect Usage") {
				t.Fatalf("the error is said twice, once in urfave/cli's words:\n%s", out)
			}
		})
	}
}

func TestWrongPasswordExits2WithoutShowingIt(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.imap.AppendGenerated(t, 5, 3)
	f.migrate()
	const wrong = "hunter2-Wrong-Password"
	f.environ = append(f.environ, "BACKFILL_INBOX_DEMO_PASSWORD="+wrong)
	out := f.mustRun(2, "--inbox", "demo")
	if !strings.Contains(out, "login to") || !strings.Contains(out, "refused") {
		t.Fatalf("output does not say the login was refused:\n%s", out)
	}
	if strings.Contains(out, wrong) {
		t.Fatalf("output shows the password:\n%s", out)
	}
	if n := f.count(`SELECT count(*) FROM error_logs WHERE error_type = 'login_failed' AND severity = 'critical'`); n != 1 {
		t.Fatalf("error_logs has %d login_failed rows, want 1", n)
	}
	if n := f.count(`SELECT count(*) FROM error_logs WHERE error_message LIKE '%' || $1 || '%' OR context::text LIKE '%' || $1 || '%'`, wrong); n != 0 {
		t.Fatal("error_logs holds the password")
	}
	if n := f.count(`SELECT count(*) FROM email_sync_status WHERE last_status = 'aborted'`); n != 1 {
		t.Fatal("email_sync_status does not say the run was aborted")
	}
}

func TestOversizedMessagesExit1AndAreLogged(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	small := "From: a@example.com\r\nTo: b@example.com\r\nSubject: small\r\nMessage-ID: <small@x>\r\n\r\nhi\r\n"
	big := "From: a@example.com\r\nTo: b@example.com\r\nSubject: big\r\nMessage-ID: <big@x>\r\n\r\n" + strings.Repeat("x", 5000) + "\r\n"
	date := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	f.imap.Append(t, []byte(small), date)
	bigUID := f.imap.Append(t, []byte(big), date)
	f.migrate()
	out := f.mustRun(1, "--inbox", "demo", "--max-message-size", "2048")
	f.wantLine(out, "Total synced:  1 ✅")
	f.wantLine(out, "Total errors:  1 ❌")
	f.wantLine(out, "⚠️  Error Summary:")
	f.wantLine(out, fmt.Sprintf("oversized (error): 1, e.g. UIDs %d", bigUID))
	if n := f.count(`SELECT count(*) FROM error_logs WHERE error_type = 'oversized' AND imap_uid = $1`, int64(bigUID)); n != 1 {
		t.Fatalf("error_logs has %d oversized rows for UID %d, want 1", n, bigUID)
	}
	if n := f.count(`SELECT count(*) FROM email_sync_status WHERE last_status = 'completed_with_errors'`); n != 1 {
		t.Fatal("email_sync_status does not say completed_with_errors")
	}
	listed := f.mustRun(0, "errors", "--limit", "5")
	if !strings.Contains(listed, "oversized") || !strings.Contains(listed, fmt.Sprint(bigUID)) {
		t.Fatalf("backfill errors does not list the oversized UID %d:\n%s", bigUID, listed)
	}
	// The failure is not settled: a re-run with a larger cap stores it.
	out = f.mustRun(0, "--inbox", "demo")
	f.wantLine(out, "Total synced:  1 ✅")
	if n := f.count(`SELECT count(*) FROM email_messages`); n != 2 {
		t.Fatalf("email_messages has %d rows, want 2", n)
	}
}

func TestHostileBytesAreCleanedAndStored(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	raw := "From: \"Bad\x00Name\" <a@example.com>\r\nTo: b@example.com\r\nSubject: caf\xe9 \x00 menu\r\n" +
		"Message-ID: <nul@x>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nbody with NUL \x00 and \xff\xfe bytes\r\n"
	f.imap.Append(t, []byte(raw), time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC))
	f.migrate()
	f.mustRun(0, "--inbox", "demo")
	var subject, body, name string
	if err := f.pool.QueryRow(context.Background(), `SELECT subject, text_body, from_name FROM email_messages WHERE message_id = 'nul@x'`).Scan(&subject, &body, &name); err != nil {
		t.Fatalf("hostile message not stored: %v", err)
	}
	if strings.ContainsRune(subject+body+name, 0) || !strings.Contains(body, "body with NUL") {
		t.Fatalf("stored subject %q, body %q, name %q: want NULs removed and text kept", subject, body, name)
	}
}

func TestDroppedConnectionResumes(t *testing.T) {
	t.Parallel()
	// Cut the connection mid-answer on two FETCHes: each worker must
	// re-dial and ask only for what it did not receive.
	f := newFixture(t, imaptest.WithFetchHook(func(n int) error {
		if n == 2 || n == 4 {
			return imaptest.ErrDropConnection
		}
		return nil
	}))
	mails := f.imap.AppendGenerated(t, 6, 200)
	f.migrate()
	f.mustRun(0, "--inbox", "demo", "--workers", "2", "--batch-size", "40")
	unique := 0
	for _, m := range mails {
		if m.Mail.DuplicateOf < 0 {
			unique++
		}
	}
	if n := f.count(`SELECT count(*) FROM email_messages`); n != unique {
		t.Fatalf("email_messages has %d rows after a dropped connection, want %d", n, unique)
	}
}

func TestJSONLogFormat(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.imap.AppendGenerated(t, 7, 12)
	f.migrate()
	out := f.mustRun(0, "--inbox", "demo", "--log-format", "json", "--batch-size", "5", "--verbose")
	var events []string
	var summary map[string]any
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var ev map[string]any
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("not a JSON line: %q: %v", line, err)
		}
		events = append(events, ev["event"].(string))
		if ev["event"] == "summary" {
			summary = ev
		}
	}
	if events[0] != "start" || events[len(events)-1] != "summary" || !slices.Contains(events, "message") {
		t.Fatalf("events = %v", events)
	}
	if summary["status"] != "completed" || summary["errors"].(float64) != 0 || summary["total"].(float64) != 12 {
		t.Fatalf("summary = %v", summary)
	}
}

func TestSecondRunOnSameInboxExits2(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.imap.AppendGenerated(t, 8, 3)
	f.migrate()
	sink, err := pgsink.Open(context.Background(), f.dbURL, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	release, err := sink.Lock(context.Background(), "demo")
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	out := f.mustRun(2, "--inbox", "demo")
	if !strings.Contains(out, "another backfill is already running for this inbox") {
		t.Fatalf("output does not say another run holds the inbox:\n%s", out)
	}
}

func TestStatusAndErrorsCommands(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.imap.AppendGenerated(t, 9, 5)
	f.migrate()
	f.mustRun(0, "--inbox", "demo")
	out := f.mustRun(0, "status")
	f.wantLine(out, "INBOX")
	if !strings.Contains(out, "demo") || !strings.Contains(out, "completed") {
		t.Fatalf("status output:\n%s", out)
	}
	var sts []pgsink.InboxStatus
	if err := json.Unmarshal([]byte(f.mustRun(0, "status", "--json")), &sts); err != nil || len(sts) != 1 || sts[0].Messages != 5 {
		t.Fatalf("status --json = %+v, %v", sts, err)
	}
	f.wantLine(f.mustRun(0, "errors"), "No errors logged.")
	f.wantLine(f.mustRun(0, "inboxes"), "demo")
	f.wantLine(f.mustRun(0, "migrate"), "✅ Schema is up to date")
}

func TestDeadIMAPServerExits2(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.migrate()
	f.environ = append(f.environ, "BACKFILL_INBOX_DEMO=imap://u@127.0.0.1:1/INBOX")
	// A retry is announced only if its wait fits in --retry-for after the
	// first attempt (waits are 100-300 ms): with 1s, a first attempt held
	// up 0.7 s on a loaded machine left no retry to see.
	out := f.mustRun(2, "--inbox", "demo", "--retry-for", "3s")
	f.wantLine(out, "🔁 IMAP connection failed (attempt 1)")
	f.wantLine(out, "🛑 BACKFILL ABORTED: gave up after")
	if n := f.count(`SELECT count(*) FROM error_logs WHERE error_type = 'retries_exhausted' AND severity = 'critical'`); n != 1 {
		t.Fatalf("error_logs has %d retries_exhausted rows, want 1", n)
	}
	if n := f.count(`SELECT count(*) FROM email_sync_status WHERE last_status = 'aborted'`); n != 1 {
		t.Fatal("email_sync_status does not say aborted")
	}
}

// hidingSession answers every FETCH except for one UID, as a server with a
// corrupt index or a dropped response would.
type hidingSession struct {
	imapserver.SessionIMAP4rev2
	hide imap.UID
}

func (s *hidingSession) Fetch(w *imapserver.FetchWriter, numSet imap.NumSet, options *imap.FetchOptions) error {
	if set, ok := numSet.(imap.UIDSet); ok {
		uids, _ := set.Nums()
		var kept imap.UIDSet
		for _, u := range uids {
			if u != s.hide {
				kept.AddNum(u)
			}
		}
		if len(kept) == 0 {
			return nil
		}
		numSet = kept
	}
	return s.SessionIMAP4rev2.Fetch(w, numSet, options)
}

// A message the server never returns is asked for again, then logged with
// its UID, and the run exits 1: it is never silently lost.
func TestSilentlyDroppedMessageIsReported(t *testing.T) {
	t.Parallel()
	const hidden = 3
	f := newFixture(t, imaptest.WithSession(func(s imapserver.SessionIMAP4rev2, _ *imapserver.Conn) imapserver.SessionIMAP4rev2 {
		return &hidingSession{SessionIMAP4rev2: s, hide: hidden}
	}))
	opts := mailgen.DefaultOptions()
	opts.DuplicateRatio, opts.NoMessageIDRatio = 0, 0
	f.imap.AppendMails(t, opts.Generate(12, 6))
	f.migrate()
	out := f.mustRun(1, "--inbox", "demo")
	f.wantLine(out, "Total synced:  5 ✅")
	f.wantLine(out, "Total errors:  1 ❌")
	f.wantLine(out, "not_returned (error): 1, e.g. UIDs 3")
	if n := f.count(`SELECT count(*) FROM error_logs WHERE error_type = 'not_returned' AND imap_uid = $1 AND attempts >= 1`, hidden); n != 1 {
		t.Fatalf("error_logs has %d not_returned rows for UID %d, want 1", n, hidden)
	}
	if n := f.count(`SELECT count(*) FROM email_sync_uids WHERE uid = $1`, hidden); n != 0 {
		t.Fatal("the missing UID was recorded as settled; a re-run would never retry it")
	}
}

func TestHelpListsExitCodes(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	out := f.mustRun(0, "--help")
	f.wantLine(out, "EXIT CODES:")
	f.wantLine(out, "143  interrupted by SIGTERM")
	f.wantLine(out, "75   the download budget (--max-download) is used up")
	f.wantLine(f.mustRun(0, "errors", "--help"), "backfill errors - list error_logs entries, newest first")
}

// TestCircuitBreakerAborts: when every message fails, the run stops after
// --max-consecutive-failures, exits 2 and says why in the summary, in
// error_logs and in email_sync_status.
func TestCircuitBreakerAborts(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	for i := range 100 {
		raw := fmt.Sprintf("From: a@example.com\r\nTo: b@example.com\r\nSubject: big %d\r\nMessage-ID: <big%d@x>\r\n\r\n%s\r\n", i, i, strings.Repeat("x", 3000))
		f.imap.Append(t, []byte(raw), time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC))
	}
	f.migrate()
	out := f.mustRun(2, "--inbox", "demo", "--workers", "1", "--batch-size", "5",
		"--max-message-size", "2048", "--max-consecutive-failures", "5")
	f.wantLine(out, "🛑 BACKFILL ABORTED: circuit breaker: 5 messages failed in a row (--max-consecutive-failures 5)")
	f.wantLine(out, "circuit_breaker (critical): 1")
	if n := f.count(`SELECT count(*) FROM error_logs WHERE error_type = 'circuit_breaker' AND severity = 'critical'`); n != 1 {
		t.Fatalf("error_logs has %d circuit_breaker rows, want 1", n)
	}
	if n := f.count(`SELECT count(*) FROM email_sync_status WHERE last_status = 'aborted'
		AND sync_errors @> '[{"type": "circuit_breaker"}]'`); n != 1 {
		t.Fatal("email_sync_status does not say the breaker aborted the run")
	}
	// Fetching runs a few batches ahead of committing, but not to the end.
	if n := f.count(`SELECT count(*) FROM error_logs WHERE error_type = 'oversized'`); n >= 100 {
		t.Fatalf("%d oversized rows: the run went on after the breaker tripped", n)
	}
}

// TestSilentServerIsDroppedAndResumed: a server that stops answering in the
// middle of a FETCH is given up on after --imap-timeout, and the batch is
// fetched again on a new connection.
func TestSilentServerIsDroppedAndResumed(t *testing.T) {
	t.Parallel()
	// The first FETCH is answered only once the test is over, so only the
	// client's timeout can end it, however slow the machine. The timeout
	// is well above the gaps a loaded CI machine leaves between a live
	// server's answers (-race, two cores), which at 1 s could trip it a
	// second time.
	silent := make(chan struct{})
	f := newFixture(t, imaptest.WithFetchHook(func(n int) error {
		if n == 1 {
			select {
			case <-silent:
			case <-time.After(time.Minute):
			}
		}
		return nil
	}))
	t.Cleanup(func() { close(silent) }) // before the server closes: cleanups run last first
	opts := mailgen.DefaultOptions()
	opts.DuplicateRatio = 0
	f.imap.AppendMails(t, opts.Generate(14, 40))
	f.migrate()
	out := f.mustRun(0, "--inbox", "demo", "--workers", "1", "--batch-size", "20", "--imap-timeout", "5s")
	f.wantLine(out, "🔁 IMAP fetch failed (attempt 1)")
	if n := f.count(`SELECT count(*) FROM email_messages`); n != 40 {
		t.Fatalf("email_messages has %d rows, want 40", n)
	}
	if n := f.count(`SELECT count(*) FROM error_logs WHERE error_type = 'fetch_retried' AND severity = 'warning'`); n != 1 {
		t.Fatalf("error_logs has %d fetch_retried warnings, want 1", n)
	}
}
