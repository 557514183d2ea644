package pgsink_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/myhibachi/backfill/errlog"
	"github.com/myhibachi/backfill/internal/pgtest"
	"github.com/myhibachi/backfill/message"
	"github.com/myhibachi/backfill/migrations"
	"github.com/myhibachi/backfill/pgsink"
	"github.com/myhibachi/backfill/threading"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// newSink opens a migrated database of the test's own.
func newSink(t testing.TB) *pgsink.Sink {
	t.Helper()
	ctx := context.Background()
	s, err := pgsink.Open(ctx, pgtest.NewDatabase(t), 4)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	if _, err := migrations.Apply(ctx, s.Pool()); err != nil {
		t.Fatal(err)
	}
	return s
}

func msg(uid uint32, id, subject, from string, to ...string) *message.Message {
	return &message.Message{
		MessageID: id, Subject: subject, FromAddress: from, To: to, UID: uid, UIDValidity: 7,
		ThreadID:    threading.ID(subject, from, to),
		ReceivedAt:  time.Date(2025, 11, 1, 10, 0, int(uid), 0, time.UTC),
		Attachments: []message.Attachment{{Filename: "a.pdf", ContentType: "application/pdf", Size: 3}},
	}
}

func count(t *testing.T, pool *pgxpool.Pool, sql string, args ...any) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

func TestStoreIsIdempotentAndCountsThreadsOnce(t *testing.T) {
	t.Parallel()
	s := newSink(t)
	ctx := context.Background()
	batch := pgsink.Batch{Inbox: "support", UIDValidity: 7, Messages: []*message.Message{
		msg(1, "a@x", "Payment Question", "alice@example.com", "cs@myhibachichef.com"),
		msg(2, "b@x", "RE: Payment Question", "cs@myhibachichef.com", "alice@example.com"),
		msg(3, "c@x", "Catering", "bob@example.org", "cs@myhibachichef.com"),
	}, Done: []pgsink.Settled{{UID: 4, MessageID: "a@x"}}}

	inserted, err := s.Store(ctx, batch)
	if err != nil {
		t.Fatal(err)
	}
	if want := []bool{true, true, true}; !slices.Equal(inserted, want) {
		t.Fatalf("first store inserted %v, want %v", inserted, want)
	}
	inserted, err = s.Store(ctx, batch)
	if err != nil {
		t.Fatal(err)
	}
	if want := []bool{false, false, false}; !slices.Equal(inserted, want) {
		t.Fatalf("re-store inserted %v, want %v", inserted, want)
	}

	p := s.Pool()
	if n := count(t, p, `SELECT count(*) FROM email_messages WHERE inbox = 'support'`); n != 3 {
		t.Fatalf("email_messages has %d rows, want 3", n)
	}
	if n := count(t, p, `SELECT message_count FROM email_threads WHERE thread_id = $1`, threading.ID("Payment Question", "alice@example.com", []string{"cs@myhibachichef.com"})); n != 2 {
		t.Fatalf("payment thread message_count = %d, want 2 (re-store must not inflate it)", n)
	}
	if n := count(t, p, `SELECT count(*) FROM email_threads`); n != 2 {
		t.Fatalf("email_threads has %d rows, want 2", n)
	}
	if n := count(t, p, `SELECT count(*) FROM email_sync_uids WHERE inbox = 'support' AND uidvalidity = 7`); n != 4 {
		t.Fatalf("email_sync_uids has %d rows, want 4 (3 stored + 1 done)", n)
	}
	var atts string
	if err := p.QueryRow(ctx, `SELECT attachments::text FROM email_messages WHERE message_id = 'a@x'`).Scan(&atts); err != nil {
		t.Fatal(err)
	}
	if want := `[{"size": 3, "filename": "a.pdf", "content_type": "application/pdf"}]`; atts != want {
		t.Fatalf("attachments = %s, want %s", atts, want)
	}
	seen, err := s.SeenUIDs(ctx, "support", "", 7)
	if err != nil || len(seen) != 4 || !seen[4] {
		t.Fatalf("SeenUIDs = %v, %v; want UIDs 1-4", seen, err)
	}
	if seen, err := s.SeenUIDsFrom(ctx, "support", "", 7, 3); err != nil || len(seen) != 2 || !seen[3] || !seen[4] {
		t.Fatalf("SeenUIDsFrom(3) = %v, %v; want UIDs 3, 4", seen, err)
	}
	if seen, err := s.SeenUIDs(ctx, "support", "", 8); err != nil || len(seen) != 0 {
		t.Fatalf("SeenUIDs for another UIDVALIDITY = %v, %v; want none", seen, err)
	}
	found, err := s.ExistingMessageIDs(ctx, "support", []string{"a@x", "zzz", "c@x"})
	if err != nil || len(found) != 2 || !found["a@x"] || !found["c@x"] {
		t.Fatalf("ExistingMessageIDs = %v, %v", found, err)
	}
	if found, err := s.ExistingMessageIDs(ctx, "other", []string{"a@x"}); err != nil || len(found) != 0 {
		t.Fatalf("ExistingMessageIDs looked across inboxes: %v, %v", found, err)
	}
}

func TestStoreHugeMessageID(t *testing.T) {
	t.Parallel()
	s := newSink(t)
	id := strings.Repeat("x", 10000) + "@example.com"
	b := pgsink.Batch{Inbox: "i", UIDValidity: 7, Messages: []*message.Message{msg(1, id, "s", "a@b.c")}}
	for i, want := range []bool{true, false} {
		got, err := s.Store(context.Background(), b)
		if err != nil {
			t.Fatalf("store %d: %v", i, err)
		}
		if got[0] != want {
			t.Fatalf("store %d inserted = %v, want %v", i, got[0], want)
		}
	}
}

func TestLockIsPerInbox(t *testing.T) {
	t.Parallel()
	s := newSink(t)
	ctx := context.Background()
	release, err := s.Lock(ctx, "support")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Lock(ctx, "support"); !errors.Is(err, pgsink.ErrLocked) || errlog.Classify(err) != errlog.Critical {
		t.Fatalf("second lock on the same inbox: %v, want critical ErrLocked", err)
	}
	other, err := s.Lock(ctx, "payments")
	if err != nil {
		t.Fatalf("lock on another inbox: %v", err)
	}
	other()
	release()
	again, err := s.Lock(ctx, "support")
	if err != nil {
		t.Fatalf("lock after release: %v", err)
	}
	again()
}

func TestSchemaCheckAndConcurrentMigrations(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, err := pgsink.Open(ctx, pgtest.NewDatabase(t), 8)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	err = s.CheckSchema(ctx)
	if !errors.Is(err, migrations.ErrNotMigrated) || errlog.Classify(err) != errlog.Critical {
		t.Fatalf("CheckSchema on an empty database = %v, want critical ErrNotMigrated", err)
	}
	var wg sync.WaitGroup
	applied := make([]int, 4)
	errs := make([]error, 4)
	for i := range 4 {
		wg.Go(func() {
			m, err := migrations.Apply(ctx, s.Pool())
			applied[i], errs[i] = len(m), err
		})
	}
	wg.Wait()
	total := 0
	for i := range 4 {
		if errs[i] != nil {
			t.Fatalf("concurrent migrate %d: %v", i, errs[i])
		}
		total += applied[i]
	}
	all, err := migrations.All()
	if err != nil {
		t.Fatal(err)
	}
	if total != len(all) {
		t.Fatalf("concurrent migrations applied %d in total, want %d (each exactly once)", total, len(all))
	}
	if err := s.CheckSchema(ctx); err != nil {
		t.Fatalf("CheckSchema after migrate: %v", err)
	}
}

// TestStoreFallsBackWhenARowAppearedMeanwhile stores a batch one of whose
// messages another writer stored after the dedup check: the direct COPY
// conflicts, the batch is stored row by row instead, and threads count
// only the new row.
func TestStoreFallsBackWhenARowAppearedMeanwhile(t *testing.T) {
	t.Parallel()
	s := newSink(t)
	ctx := context.Background()
	a := msg(1, "a@x", "Payment Question", "alice@example.com", "cs@myhibachichef.com")
	b := msg(2, "b@x", "RE: Payment Question", "cs@myhibachichef.com", "alice@example.com")
	if _, err := s.Store(ctx, pgsink.Batch{Inbox: "support", UIDValidity: 7, Messages: []*message.Message{a}}); err != nil {
		t.Fatal(err)
	}
	inserted, err := s.Store(ctx, pgsink.Batch{Inbox: "support", UIDValidity: 7, Messages: []*message.Message{a, b}})
	if err != nil {
		t.Fatal(err)
	}
	if want := []bool{false, true}; !slices.Equal(inserted, want) {
		t.Fatalf("inserted %v, want %v", inserted, want)
	}
	if n := count(t, s.Pool(), `SELECT count(*) FROM email_messages`); n != 2 {
		t.Fatalf("email_messages has %d rows, want 2", n)
	}
	if n := count(t, s.Pool(), `SELECT message_count FROM email_threads WHERE thread_id = $1`, a.ThreadID); n != 2 {
		t.Fatalf("thread message_count = %d, want 2", n)
	}
}

// TestDirectAndStagedStoresAgree stores the same messages through the
// direct COPY path and through the staging path (a retry takes it) and
// compares email_threads: both must fold threads the same way.
func TestDirectAndStagedStoresAgree(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	msgs := []*message.Message{
		msg(3, "c@x", "Later subject", "alice@example.com", "cs@myhibachichef.com"),
		msg(1, "a@x", "Payment Question", "alice@example.com", "cs@myhibachichef.com"),
		msg(2, "b@x", "Catering", "bob@example.org", "cs@myhibachichef.com"),
		msg(4, "d@x", "No one", ""),
	}
	// Threads are keyed on subject and participants: make two share one.
	msgs[0].ThreadID = msgs[1].ThreadID
	var dumps [2]string
	for i, retry := range []bool{false, true} {
		s := newSink(t)
		for _, part := range [][]*message.Message{msgs[:2], msgs[2:]} {
			if _, err := s.Store(ctx, pgsink.Batch{Inbox: "support", UIDValidity: 7, Messages: part, Retry: retry}); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Pool().QueryRow(ctx, `SELECT string_agg(concat_ws('|', thread_id, subject, participants,
			message_count, first_message_at, last_message_at), E'\n' ORDER BY thread_id) FROM email_threads`).Scan(&dumps[i]); err != nil {
			t.Fatal(err)
		}
	}
	if dumps[0] != dumps[1] {
		t.Fatalf("direct path threads:\n%s\nstaging path threads:\n%s", dumps[0], dumps[1])
	}
	if !strings.Contains(dumps[0], "|Payment Question|") {
		t.Fatalf("the thread's subject is not its earliest message's:\n%s", dumps[0])
	}
}

// TestMessageIDLookupProbesTheIndex checks the plan of the Message-ID
// look-up on a table PostgreSQL has not analysed yet, as in a first run:
// one probe of the unique index per id, never a pass over the inbox, which
// made an earlier form quadratic in the mailbox. Time is not asserted; the
// plan is what decides how it grows.
func TestMessageIDLookupProbesTheIndex(t *testing.T) {
	t.Parallel()
	s := newSink(t)
	ctx := context.Background()
	if _, err := s.Pool().Exec(ctx, `INSERT INTO email_messages (inbox, message_id, thread_id, received_at)
		SELECT 'support', 'id-' || g || '@x', 'thread_' || (g % 500), now() FROM generate_series(1, 5000) g`); err != nil {
		t.Fatal(err)
	}
	hashes := make([]string, 100)
	for i := range hashes {
		hashes[i] = fmt.Sprintf("%032x", i)
	}
	var plan strings.Builder
	rows, err := s.Pool().Query(ctx, "EXPLAIN "+pgsink.ExistingSQL, "support", hashes)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			t.Fatal(err)
		}
		plan.WriteString(line + "\n")
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	p := plan.String()
	if !strings.Contains(p, "Index Scan using email_messages_inbox_message_id_key") || strings.Contains(p, "Bitmap") ||
		strings.Contains(p, "Seq Scan on email_messages") || strings.Contains(p, "Hash") {
		t.Fatalf("the look-up does not probe the unique index once per id:\n%s", p)
	}
	// And it finds what is there.
	found, err := s.ExistingMessageIDs(ctx, "support", []string{"id-7@x", "nope@x", "id-4999@x"})
	if err != nil {
		t.Fatal(err)
	}
	if len(found) != 2 || !found["id-7@x"] || !found["id-4999@x"] {
		t.Fatalf("found %v, want id-7@x and id-4999@x", found)
	}
}
