package main

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/myhibachi/backfill/internal/imaptest"
	"github.com/myhibachi/backfill/internal/mailgen"
)

// TestUIDValidityChangesMidRun: during the run's second FETCH the server
// renumbers the mailbox (new UIDVALIDITY, the same mail in another order)
// and cuts the connection. The worker's reconnect finds the new UIDVALIDITY:
// it must not fetch by the old UIDs, which now name other messages. The run
// stops with exit 2 and says why; every stored row is the message its UID
// named when it was fetched; a re-run completes under the new numbering
// with nothing stored twice.
func TestUIDValidityChangesMidRun(t *testing.T) {
	t.Parallel()
	corpus := mailgen.Generate(73, 100)
	var srv *imaptest.Server
	renumbered := make(chan struct{})
	f := newFixture(t, imaptest.WithFetchHook(func(n int) error {
		if n != 2 {
			return nil
		}
		srv.RecreateMailbox(t, imaptest.Inbox)
		reversed := slices.Clone(corpus)
		slices.Reverse(reversed)
		srv.AppendMails(t, reversed)
		close(renumbered)
		return imaptest.ErrDropConnection
	}))
	srv = f.imap
	uids := srv.AppendMails(t, corpus)
	oldValidity := srv.UIDValidity(t, imaptest.Inbox)
	f.migrate()

	// One worker fetching whole, four 10-message batches per FETCH: the
	// first FETCH's 40 messages are stored under the old numbering.
	out := f.mustRun(2, "--inbox", "demo", "--workers", "1", "--batch-size", "10", "--fetch", "full")
	<-renumbered
	f.wantLine(out, "🛑 BACKFILL ABORTED")
	if !strings.Contains(out, "changed its UIDVALIDITY") {
		t.Fatalf("the output does not say the UIDVALIDITY changed\n%s", out)
	}
	if n := f.count(`SELECT count(*) FROM error_logs WHERE severity = 'critical' AND error_type = 'uidvalidity_changed'`); n != 1 {
		t.Fatalf("error_logs has %d critical uidvalidity_changed rows, want 1\n%s", n, out)
	}
	if n := f.count(`SELECT count(*) FROM email_sync_status WHERE last_status = 'aborted'`); n != 1 {
		t.Fatalf("email_sync_status does not say aborted\n%s", out)
	}
	// Every row names the message its UID named under the old numbering
	// (those without a Message-ID get a synthetic one: not compared).
	wantID := map[int64]string{}
	for i, m := range corpus {
		wantID[int64(uids[i])] = m.Want.MessageID
	}
	rows, err := f.pool.Query(context.Background(), `SELECT imap_uid, imap_uidvalidity, message_id FROM email_messages`)
	if err != nil {
		t.Fatal(err)
	}
	stored := 0
	for rows.Next() {
		var uid, validity int64
		var id string
		if err := rows.Scan(&uid, &validity, &id); err != nil {
			t.Fatal(err)
		}
		stored++
		want, ok := wantID[uid]
		if validity != int64(oldValidity) || !ok || (want != "" && want != id) {
			t.Errorf("stored UID %d at UIDVALIDITY %d as %q; under UIDVALIDITY %d it was %q", uid, validity, id, oldValidity, want)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if stored == 0 || stored >= uniqueMailgen(corpus) {
		t.Fatalf("%d rows stored before the renumbering, want the first FETCH's\n%s", stored, out)
	}

	f.mustRun(0, "--inbox", "demo")
	if n := f.count(`SELECT count(*) FROM email_messages`); n != uniqueMailgen(corpus) {
		t.Fatalf("after the re-run email_messages has %d rows, want %d", n, uniqueMailgen(corpus))
	}
	checkStoredOnce(f)
}

// uniqueMailgen counts the generated messages that are not a redelivered
// copy of another.
func uniqueMailgen(ms []mailgen.Mail) int {
	n := 0
	for _, m := range ms {
		if m.DuplicateOf < 0 {
			n++
		}
	}
	return n
}
