package pgsink_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/myhibachi/backfill/internal/pgtest"
	"github.com/myhibachi/backfill/message"
	"github.com/myhibachi/backfill/migrations"
	"github.com/myhibachi/backfill/pgsink"
)

// payload is a backfill_email notification.
type payload struct {
	Inbox string            `json:"inbox"`
	IDs   []json.RawMessage `json:"ids"`
	Count int               `json:"count"`
	MinID *int64            `json:"min_id"`
	MaxID *int64            `json:"max_id"`
}

// listener is a connection LISTENing on pgsink.NotifyChannel.
type listener struct {
	t    *testing.T
	conn *pgxpool.Conn
	pool *pgxpool.Pool
}

func listen(t *testing.T, pool *pgxpool.Pool) *listener {
	t.Helper()
	conn, err := pool.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// UNLISTEN before the connection goes back to the pool.
		_, _ = conn.Exec(context.Background(), "UNLISTEN *")
		conn.Release()
	})
	if _, err := conn.Exec(context.Background(), "LISTEN "+pgsink.NotifyChannel); err != nil {
		t.Fatal(err)
	}
	return &listener{t: t, conn: conn, pool: pool}
}

// drain returns every notification sent so far. It sends a marker of its
// own and reads up to it: notifications arrive in commit order, so none
// sent before the marker can come after it, and no timing is involved.
func (l *listener) drain() []payload {
	l.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := l.pool.Exec(ctx, "SELECT pg_notify($1, 'marker')", pgsink.NotifyChannel); err != nil {
		l.t.Fatal(err)
	}
	var out []payload
	for {
		n, err := l.conn.Conn().WaitForNotification(ctx)
		if err != nil {
			l.t.Fatal(err)
		}
		if n.Payload == "marker" {
			return out
		}
		if len(n.Payload) >= 8000 {
			l.t.Errorf("payload of %d bytes: PostgreSQL takes under 8000", len(n.Payload))
		}
		var p payload
		if err := json.Unmarshal([]byte(n.Payload), &p); err != nil {
			l.t.Fatalf("payload %q: %v", n.Payload, err)
		}
		out = append(out, p)
	}
}

// ids returns the ids of the rows of the given Message-IDs as JSON, sorted.
func ids(t *testing.T, pool *pgxpool.Pool, inbox string, messageIDs ...string) []string {
	t.Helper()
	rows, err := pool.Query(context.Background(), `SELECT id::text AS s FROM email_messages
		WHERE inbox = $1 AND message_id = ANY($2) ORDER BY id`, inbox, messageIDs)
	if err != nil {
		t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func rawStrings(raw []json.RawMessage) []string {
	out := make([]string, len(raw))
	for i, r := range raw {
		out[i] = string(r)
	}
	return out
}

// TestStoreNotifiesNewRows: one notification per committed batch that
// inserted rows, naming exactly those rows, by either insert path; none
// for a batch that inserted nothing; a range for a batch too large to list (2000 ids of
// 2 to 4 digits do not fit; 1000 do).
func TestStoreNotifiesNewRows(t *testing.T) {
	t.Parallel()
	s := newSink(t)
	ctx := context.Background()
	l := listen(t, s.Pool())
	a := msg(1, "a@x", "Payment Question", "alice@example.com", "cs@myhibachichef.com")
	b := msg(2, "b@x", "Booking", "bob@example.com", "cs@myhibachichef.com")
	c := msg(3, "c@x", "Refund", "carol@example.com", "cs@myhibachichef.com")
	store := func(msgs ...*message.Message) {
		t.Helper()
		if _, err := s.Store(ctx, pgsink.Batch{Inbox: "support", UIDValidity: 7, Messages: msgs}); err != nil {
			t.Fatal(err)
		}
	}

	store(a, b) // direct COPY
	got := l.drain()
	if len(got) != 1 || got[0].Inbox != "support" || !slices.Equal(rawStrings(got[0].IDs), ids(t, s.Pool(), "support", "a@x", "b@x")) {
		t.Fatalf("after a new batch: %+v, want one notification with the ids of a@x and b@x", got)
	}

	store(b, c) // b is stored: the staging path, which inserts only c
	got = l.drain()
	if len(got) != 1 || !slices.Equal(rawStrings(got[0].IDs), ids(t, s.Pool(), "support", "c@x")) {
		t.Fatalf("after a batch with one new message: %+v, want one notification with c@x's id", got)
	}

	store(a, b, c) // nothing new
	if got = l.drain(); len(got) != 0 {
		t.Fatalf("a batch that inserted nothing notified %+v", got)
	}

	var big []*message.Message
	var bigIDs []string
	for i := range 2000 {
		m := msg(uint32(100+i), fmt.Sprintf("big-%d@x", i), "Newsletter", "news@example.com", "cs@myhibachichef.com")
		big, bigIDs = append(big, m), append(bigIDs, m.MessageID)
	}
	store(big...)
	got = l.drain()
	want := ids(t, s.Pool(), "support", bigIDs...)
	if len(got) != 1 || got[0].IDs != nil || got[0].Count != 2000 || got[0].MinID == nil || got[0].MaxID == nil ||
		fmt.Sprint(*got[0].MinID) != want[0] || fmt.Sprint(*got[0].MaxID) != want[len(want)-1] {
		for i := range got {
			got[i].IDs = got[i].IDs[:min(len(got[i].IDs), 3)] // enough to tell
		}
		t.Fatalf("after a batch of 2000: %+v, want one notification with count 2000, min_id %s, max_id %s", got, want[0], want[len(want)-1])
	}
}

// TestStoreNotifiesAdoptedTable: over the backend's own email_messages with
// uuid ids, the notification carries those ids.
func TestStoreNotifiesAdoptedTable(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newSinkOver(t, `CREATE TABLE email_messages (
		id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
		inbox        varchar(50)  NOT NULL,
		message_id   varchar(255) NOT NULL UNIQUE,
		thread_id    varchar(100) NOT NULL,
		from_address varchar(255) NOT NULL DEFAULT '',
		subject      varchar(500),
		received_at  timestamptz NOT NULL)`)
	l := listen(t, s.Pool())
	a := msg(1, "a@x", "Payment Question", "alice@example.com", "cs@myhibachichef.com")
	if _, err := s.Store(ctx, pgsink.Batch{Inbox: "support", UIDValidity: 7, Messages: []*message.Message{a}}); err != nil {
		t.Fatal(err)
	}
	got := l.drain()
	want := ids(t, s.Pool(), "support", "a@x")
	if len(got) != 1 || len(got[0].IDs) != 1 || len(want) != 1 || string(got[0].IDs[0]) != `"`+want[0]+`"` {
		t.Fatalf("got %+v, want one notification with the uuid %v", got, want)
	}
}

// newSinkOver opens a database of the test's own in which the backend made
// a table first (ddl), migrated so that backfill adopts it.
func newSinkOver(t *testing.T, ddl string) *pgsink.Sink {
	t.Helper()
	ctx := context.Background()
	s, err := pgsink.Open(ctx, pgtest.NewDatabase(t), 4)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	if _, err := s.Pool().Exec(ctx, ddl); err != nil {
		t.Fatal(err)
	}
	if _, err := migrations.Migrate(ctx, s.Pool(), false); err != nil {
		t.Fatal(err)
	}
	if err := s.CheckSchema(ctx); err != nil {
		t.Fatal(err)
	}
	return s
}
