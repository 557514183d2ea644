package pgsink_test

import (
	"context"
	"slices"
	"testing"

	"github.com/myhibachi/backfill/message"
	"github.com/myhibachi/backfill/pgsink"
)

// TestFollowFlagsAndExpunges records what a follower finds: flags by UID,
// only where they differ, and expunges as deleted_at on rows no other
// settled UID stands for, the rows kept.
func TestFollowFlagsAndExpunges(t *testing.T) {
	t.Parallel()
	s := newSink(t)
	ctx := context.Background()
	// UID 4 is a redelivered copy of a@x, settled without a row of its own.
	if _, err := s.Store(ctx, pgsink.Batch{Inbox: "support", UIDValidity: 7, Messages: []*message.Message{
		msg(1, "a@x", "Payment Question", "alice@example.com", "cs@myhibachichef.com"),
		msg(2, "b@x", "Catering", "bob@example.org", "cs@myhibachichef.com"),
		msg(3, "c@x", "Menu", "carol@example.net", "cs@myhibachichef.com"),
	}, Done: []pgsink.Settled{{UID: 4, MessageID: "a@x"}}}); err != nil {
		t.Fatal(err)
	}
	if flags, deletions := s.Follows(); !flags || !deletions {
		t.Fatalf("Follows() = %v, %v on the tool's own tables, want true, true", flags, deletions)
	}

	states := []pgsink.FlagState{
		{UID: 2, IsRead: true, IsStarred: true, Labels: []string{"$Work", "Invoice"}},
		{UID: 3},               // as stored: no change
		{UID: 9, IsRead: true}, // not settled: nothing to update
	}
	n, err := s.UpdateFlags(ctx, "support", "", 7, states)
	if err != nil || n != 1 {
		t.Fatalf("UpdateFlags = %d, %v; want 1 row changed", n, err)
	}
	if c := count(t, s.Pool(), `SELECT count(*) FROM email_messages WHERE message_id = 'b@x'
		AND is_read AND is_starred AND labels = '{$Work,Invoice}'`); c != 1 {
		t.Fatal("b@x does not have the server's flags")
	}
	if n, err := s.UpdateFlags(ctx, "support", "", 7, states); err != nil || n != 0 {
		t.Fatalf("UpdateFlags again = %d, %v; want nothing changed", n, err)
	}
	if n, err := s.UpdateFlags(ctx, "support", "", 8, states); err != nil || n != 0 {
		t.Fatalf("UpdateFlags under another UIDVALIDITY = %d, %v; want nothing changed", n, err)
	}

	// UID 1 goes, but a@x is still in the mailbox as UID 4: not deleted.
	if n, err := s.MarkExpunged(ctx, "support", "", 7, []uint32{1, 3}); err != nil || n != 1 {
		t.Fatalf("MarkExpunged(1, 3) = %d, %v; want 1 row marked (c@x)", n, err)
	}
	deleted := func() []string {
		rows, err := s.Pool().Query(ctx, `SELECT message_id FROM email_messages WHERE deleted_at IS NOT NULL ORDER BY 1`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var ids []string
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				t.Fatal(err)
			}
			ids = append(ids, id)
		}
		return ids
	}
	if got := deleted(); !slices.Equal(got, []string{"c@x"}) {
		t.Fatalf("rows marked deleted: %v, want [c@x]", got)
	}
	settled, err := s.SettledUIDs(ctx, "support", "", 7)
	if err != nil || !slices.Equal(settled, []uint32{2, 4}) {
		t.Fatalf("SettledUIDs = %v, %v; want [2 4]", settled, err)
	}
	if n, err := s.MarkExpunged(ctx, "support", "", 7, []uint32{4}); err != nil || n != 1 {
		t.Fatalf("MarkExpunged(4) = %d, %v; want 1 row marked (a@x, its last copy gone)", n, err)
	}
	if got := deleted(); !slices.Equal(got, []string{"a@x", "c@x"}) {
		t.Fatalf("rows marked deleted: %v, want [a@x c@x]", got)
	}
	// b@x (INBOX UID 2) is also in Archive, as UID 2 there: leaving INBOX
	// does not make it deleted, and Archive's UID 2 stays settled.
	if _, err := s.Store(ctx, pgsink.Batch{Inbox: "support", Folder: "Archive", UIDValidity: 7,
		Done: []pgsink.Settled{{UID: 2, MessageID: "b@x"}}}); err != nil {
		t.Fatal(err)
	}
	if n, err := s.MarkExpunged(ctx, "support", "INBOX", 7, []uint32{2}); err != nil || n != 0 {
		t.Fatalf("MarkExpunged(INBOX 2) = %d, %v; want nothing marked: b@x is in Archive", n, err)
	}
	if archived, err := s.SettledUIDs(ctx, "support", "Archive", 7); err != nil || !slices.Equal(archived, []uint32{2}) {
		t.Fatalf("Archive's settled UIDs = %v, %v; want [2]", archived, err)
	}
	if c := count(t, s.Pool(), `SELECT count(*) FROM email_messages`); c != 3 {
		t.Fatalf("%d rows left, want 3: rows are never deleted", c)
	}
}

// TestExpungedMessageFoundAgain: watch marked a row deleted when its UID
// left INBOX, but the message had moved to Archive (or came back to
// INBOX): storing it there again must clear deleted_at, not leave a row
// that says deleted while the server holds the message.
func TestExpungedMessageFoundAgain(t *testing.T) {
	t.Parallel()
	s := newSink(t)
	ctx := context.Background()
	if _, err := s.Store(ctx, pgsink.Batch{Inbox: "support", UIDValidity: 7, Messages: []*message.Message{
		msg(1, "a@x", "Payment Question", "alice@example.com", "cs@myhibachichef.com"),
		msg(2, "b@x", "Catering", "bob@example.org", "cs@myhibachichef.com"),
	}}); err != nil {
		t.Fatal(err)
	}
	if n, err := s.MarkExpunged(ctx, "support", "", 7, []uint32{1, 2}); err != nil || n != 2 {
		t.Fatalf("MarkExpunged(1, 2) = %d, %v; want 2 rows marked", n, err)
	}
	// a@x arrives in Archive (the dedup stage found it stored: Done); b@x
	// comes back to INBOX under a new UID and is fetched again.
	for _, b := range []pgsink.Batch{
		{Inbox: "support", Folder: "Archive", UIDValidity: 9, Done: []pgsink.Settled{{UID: 1, MessageID: "a@x"}}},
		{Inbox: "support", UIDValidity: 7, Messages: []*message.Message{msg(3, "b@x", "Catering", "bob@example.org", "cs@myhibachichef.com")}},
	} {
		if _, err := s.Store(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	if n := count(t, s.Pool(), `SELECT count(*) FROM email_messages WHERE deleted_at IS NOT NULL`); n != 0 {
		t.Errorf("%d rows still marked deleted, want 0: both messages are on the server again", n)
	}
	if n := count(t, s.Pool(), `SELECT count(*) FROM email_messages WHERE message_id = 'a@x' AND folders = '{INBOX,Archive}'`); n != 1 {
		t.Error("a@x's folders are not {INBOX,Archive}")
	}
	if n := count(t, s.Pool(), `SELECT count(*) FROM email_messages WHERE message_id = 'b@x' AND folders = '{INBOX}'`); n != 1 {
		t.Error("b@x's folders are not {INBOX}: the folder it was already in was added twice")
	}
}
