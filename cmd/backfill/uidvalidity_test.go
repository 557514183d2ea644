package main

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
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

// renumberOnFirstSelect renumbers the mailbox right after the first SELECT
// is answered: the run's first connection lists the old numbering, every
// connection after it (the pre-dials) selects the new one.
type renumberOnFirstSelect struct {
	imapserver.SessionIMAP4rev2
	once *sync.Once
	do   func()
}

func (s renumberOnFirstSelect) Select(mailbox string, options *imap.SelectOptions) (*imap.SelectData, error) {
	data, err := s.SessionIMAP4rev2.Select(mailbox, options)
	s.once.Do(s.do)
	return data, err
}

// TestUIDValidityChangesBeforePredials: the mailbox is renumbered between
// the first connection's SELECT and the pre-dialled connections'. A pre-dial
// that finds another UIDVALIDITY must not be handed to a worker, which would
// fetch the old UIDs in the new numbering: the run stops with exit 2, and
// every stored row is the message its UID named in the listing.
func TestUIDValidityChangesBeforePredials(t *testing.T) {
	t.Parallel()
	corpus := mailgen.Generate(79, 120)
	var srv *imaptest.Server
	var once sync.Once
	renumber := func() {
		srv.RecreateMailbox(t, imaptest.Inbox)
		reversed := slices.Clone(corpus)
		slices.Reverse(reversed)
		srv.AppendMails(t, reversed)
	}
	f := newFixture(t, imaptest.WithSession(func(s imapserver.SessionIMAP4rev2, _ *imapserver.Conn) imapserver.SessionIMAP4rev2 {
		return renumberOnFirstSelect{SessionIMAP4rev2: s, once: &once, do: renumber}
	}))
	srv = f.imap
	f.migrate() // before the first SELECT: migrate does not connect to IMAP
	uids := srv.AppendMails(t, corpus)

	out := f.mustRun(2, "--inbox", "demo", "--workers", "4", "--batch-size", "10", "--fetch", "full")
	if n := f.count(`SELECT count(*) FROM error_logs WHERE severity = 'critical' AND error_type = 'uidvalidity_changed'`); n != 1 {
		t.Fatalf("error_logs has %d critical uidvalidity_changed rows, want 1\n%s", n, out)
	}
	wantID := map[int64]string{}
	for i, m := range corpus {
		wantID[int64(uids[i])] = m.Want.MessageID
	}
	rows, err := f.pool.Query(context.Background(), `SELECT imap_uid, message_id FROM email_messages`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var uid int64
		var id string
		if err := rows.Scan(&uid, &id); err != nil {
			t.Fatal(err)
		}
		if want := wantID[uid]; want != "" && want != id {
			t.Errorf("stored UID %d as %q; in the listing's numbering it was %q", uid, id, want)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
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
