package pgsink_test

import (
	"context"
	"slices"
	"testing"

	"github.com/google/uuid"
	"github.com/myhibachi/backfill/message"
	"github.com/myhibachi/backfill/pgsink"
	"github.com/myhibachi/backfill/threading"
)

// A message present in two folders is one row listing both, counted once
// in its thread; each folder's UIDs are settled, and forgotten, apart.
func TestStoreFoldersOneRowPerMessage(t *testing.T) {
	t.Parallel()
	s := newSink(t)
	ctx := context.Background()
	p := s.Pool()
	question := msg(1, "a@x", "Payment Question", "alice@example.com", "cs@myhibachichef.com")
	reply := msg(2, "b@x", "RE: Payment Question", "cs@myhibachichef.com", "alice@example.com")
	if _, err := s.Store(ctx, pgsink.Batch{Inbox: "support", UIDValidity: 7,
		Messages: []*message.Message{question, reply}}); err != nil {
		t.Fatal(err)
	}
	// Sent holds the reply too (UID 5 there), a message of its own, and a
	// copy of the question the dedup stage left out (Done).
	sentReply := msg(5, "b@x", "RE: Payment Question", "cs@myhibachichef.com", "alice@example.com")
	other := msg(6, "c@x", "Catering", "cs@myhibachichef.com", "bob@example.org")
	sent := pgsink.Batch{Inbox: "support", Folder: "Gesendet", UIDValidity: 70,
		Messages: []*message.Message{sentReply, other}, Done: []pgsink.Settled{{UID: 7, MessageID: "a@x"}}}
	for i := range 2 { // a re-run adds nothing twice
		inserted, err := s.Store(ctx, sent)
		if err != nil {
			t.Fatal(err)
		}
		if want := []bool{false, i == 0}; !slices.Equal(inserted, want) {
			t.Fatalf("store %d of Sent inserted %v, want %v", i, inserted, want)
		}
	}
	for id, want := range map[string][]string{"a@x": {"INBOX", "Gesendet"}, "b@x": {"INBOX", "Gesendet"}, "c@x": {"Gesendet"}} {
		var got []string
		if err := p.QueryRow(ctx, `SELECT folders FROM email_messages WHERE message_id = $1`, id).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s: folders = %v, want %v", id, got, want)
		}
	}
	if n := count(t, p, `SELECT count(*) FROM email_messages`); n != 3 {
		t.Errorf("email_messages has %d rows, want 3", n)
	}
	payment := threading.ID("Payment Question", "alice@example.com", []string{"cs@myhibachichef.com"})
	if n := count(t, p, `SELECT message_count FROM email_threads WHERE thread_id = $1`, payment); n != 2 {
		t.Errorf("payment thread message_count = %d, want 2 (the reply in Sent is the same message)", n)
	}

	inboxSeen, err := s.SeenUIDs(ctx, "support", "INBOX", 7)
	if err != nil || len(inboxSeen) != 2 {
		t.Fatalf("INBOX SeenUIDs = %v, %v; want UIDs 1, 2", inboxSeen, err)
	}
	sentSeen, err := s.SeenUIDs(ctx, "support", "Gesendet", 70)
	if err != nil || len(sentSeen) != 3 || !sentSeen[7] {
		t.Fatalf("Sent SeenUIDs = %v, %v; want UIDs 5, 6, 7", sentSeen, err)
	}
	// Sent renumbered: only its settlements go.
	prev, err := s.ForgetOtherUIDValidities(ctx, "support", "Gesendet", 71, false)
	if err != nil || prev != 70 {
		t.Fatalf("ForgetOtherUIDValidities(Gesendet) = %d, %v; want 70", prev, err)
	}
	if n := count(t, p, `SELECT count(*) FROM email_sync_uids WHERE folder = 'INBOX'`); n != 2 {
		t.Errorf("INBOX's settled UIDs: %d left, want 2", n)
	}
	if n := count(t, p, `SELECT count(*) FROM email_sync_uids WHERE folder = 'Gesendet'`); n != 0 {
		t.Errorf("Sent's settled UIDs: %d left, want 0", n)
	}

	op := uuid.New()
	if _, err := s.BeginRun(ctx, "support", op); err != nil {
		t.Fatal(err)
	}
	for _, f := range []pgsink.FolderResult{
		{Inbox: "support", Folder: "Gesendet", SpecialUse: `\Sent`, OperationID: op, UIDValidity: 71, LastUID: 7, Found: 3, Stored: 1, Skipped: 2, Status: "completed"},
		{Inbox: "support", OperationID: op, UIDValidity: 7, LastUID: 2, Found: 2, Stored: 2, Status: "completed"},
	} {
		if err := s.FinishFolder(ctx, f); err != nil {
			t.Fatal(err)
		}
	}
	sts, err := s.Statuses(ctx, "support")
	if err != nil || len(sts) != 1 {
		t.Fatalf("Statuses = %v, %v", sts, err)
	}
	fs := sts[0].Folders
	if len(fs) != 2 || fs[0].Folder != "INBOX" || fs[1].Folder != "Gesendet" || fs[1].Stored != 1 || fs[1].Found != 3 ||
		fs[1].SpecialUse == nil || *fs[1].SpecialUse != `\Sent` {
		t.Fatalf("folder statuses = %+v, want INBOX then Gesendet (\\Sent, 3 found, 1 stored)", fs)
	}
}
