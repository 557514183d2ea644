package main

import (
	"fmt"
	"testing"

	"github.com/myhibachi/backfill/internal/imaptest"
	"github.com/myhibachi/backfill/internal/mailgen"
)

// Issue 8 §4: what is not in the database is synced again, even when
// email_sync_uids says its UID was settled.
func TestDeletedRowsComeBack(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	opts := mailgen.DefaultOptions()
	opts.DuplicateRatio, opts.NoMessageIDRatio = 0, 0
	f.imap.AppendMails(t, opts.Generate(5, 60))
	f.migrate()
	f.mustRun(0, "--inbox", "demo", "--batch-size", "20")
	full := f.snapshot()

	// Rows deleted by hand: a dry run calls them new, a run stores them
	// again and downloads only them.
	f.mustExec(`DELETE FROM email_messages WHERE id IN (SELECT id FROM email_messages ORDER BY imap_uid LIMIT 7)`)
	f.mustExec(`UPDATE email_threads t SET message_count = (SELECT count(*) FROM email_messages m
		WHERE m.inbox = t.inbox AND m.thread_id = t.thread_id)`)
	f.mustExec(`DELETE FROM email_threads WHERE message_count = 0`)
	out := f.mustRun(0, "--inbox", "demo", "--dry-run")
	f.wantLine(out, "New: 7, already stored or duplicates: 53")
	out = f.mustRun(0, "--inbox", "demo")
	f.wantLine(out, "⏭️  53 already synced by earlier runs")
	f.wantLine(out, "Total synced:  7 ✅")
	f.wantLine(out, "Downloaded:    7 message bodies")
	if got := f.snapshot(); got != full {
		t.Fatal("after the re-run, the tables differ from the first run's")
	}

	// TRUNCATE to start over: everything comes back.
	f.mustExec(`TRUNCATE email_messages, email_threads`)
	out = f.mustRun(0, "--inbox", "demo", "--dry-run")
	f.wantLine(out, "New: 60, already stored or duplicates: 0")
	out = f.mustRun(0, "--inbox", "demo")
	f.wantLine(out, "Total synced:  60 ✅")
	if got := f.snapshot(); got != full {
		t.Fatal("after TRUNCATE and a re-run, the tables differ from the first run's")
	}

	// An untouched mailbox: nothing downloaded.
	fetches := f.imap.Fetches()
	out = f.mustRun(0, "--inbox", "demo")
	f.wantLine(out, "⏭️  60 already synced by earlier runs")
	if got := f.imap.Fetches(); got != fetches {
		t.Fatalf("re-run of an untouched mailbox sent %d FETCH commands, want none", got-fetches)
	}
}

// Issue 14: a server that hands out a new UIDVALIDITY on every session.
// Settlements of the old ones are dropped, so email_sync_uids stays the
// mailbox's size, and the run says what happened.
func TestChangingUIDValidityKeepsSyncUIDsBounded(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	const n = 40
	f.imap.AppendGenerated(t, 9, n)
	f.migrate()
	out := f.mustRun(0, "--inbox", "demo")
	if hasLine(out, "⚠️  UIDVALIDITY changed") {
		t.Fatalf("first run says UIDVALIDITY changed:\n%s", out)
	}
	rows := f.snapshot()
	for i := range 3 {
		old := f.imap.UIDValidity(t, imaptest.Inbox)
		uv := f.imap.RecreateMailbox(t, imaptest.Inbox)
		f.imap.AppendGenerated(t, 9, n)
		out = f.mustRun(0, "--inbox", "demo")
		f.wantLine(out, fmt.Sprintf("⚠️  UIDVALIDITY changed since the last run (%d → %d)", old, uv))
		f.wantLine(out, "Total synced:  0 ✅")
		if got := f.count(`SELECT count(*) FROM email_sync_uids`); got != n {
			t.Fatalf("run %d: email_sync_uids has %d rows, want %d (the mailbox's size)", i+2, got, n)
		}
		if got := f.count(`SELECT count(DISTINCT uidvalidity) FROM email_sync_uids WHERE uidvalidity = $1`, int64(uv)); got != 1 {
			t.Fatalf("run %d: email_sync_uids does not hold the current UIDVALIDITY %d", i+2, uv)
		}
		if f.snapshot() != rows {
			t.Fatalf("run %d changed email_messages or email_threads", i+2)
		}
	}
	// Unchanged since the last run: no line.
	out = f.mustRun(0, "--inbox", "demo")
	if hasLine(out, "⚠️  UIDVALIDITY changed") {
		t.Fatalf("run without a change says UIDVALIDITY changed:\n%s", out)
	}
}

// BenchmarkRerunSettled re-runs a settled 10,000-message mailbox: listing,
// the settled UIDs checked against their rows, nothing downloaded. Issue 8
// asks for under a second.
func BenchmarkRerunSettled(b *testing.B) {
	f := newFixture(b)
	f.imap.AppendGenerated(b, 11, 10000)
	f.migrate()
	f.mustRun(0, "--inbox", "demo")
	fetches := f.imap.Fetches()
	b.ResetTimer()
	for b.Loop() {
		f.mustRun(0, "--inbox", "demo")
	}
	b.StopTimer()
	if f.imap.Fetches() != fetches {
		b.Fatal("a re-run downloaded messages")
	}
}
