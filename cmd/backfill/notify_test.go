package main

import (
	"context"
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/myhibachi/backfill/pgsink"
)

// TestRunNotifiesEachBatch: a backend LISTENing on backfill_email hears one
// notification per committed batch, which together name every new row
// once, and nothing from a re-run that stores nothing.
func TestRunNotifiesEachBatch(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.imap.AppendGenerated(t, 41, 5)
	f.migrate()
	ctx := context.Background()
	conn, err := f.pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(conn.Release)
	if _, err := conn.Exec(ctx, "LISTEN "+pgsink.NotifyChannel); err != nil {
		t.Fatal(err)
	}
	// drain reads up to a marker sent after the run: notifications come in
	// commit order, so every one the run sent is before it.
	drain := func() (batches [][]int64) {
		t.Helper()
		ctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		if _, err := f.pool.Exec(ctx, "SELECT pg_notify($1, 'marker')", pgsink.NotifyChannel); err != nil {
			t.Fatal(err)
		}
		for {
			n, err := conn.Conn().WaitForNotification(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if n.Payload == "marker" {
				return batches
			}
			var p struct {
				Inbox string  `json:"inbox"`
				IDs   []int64 `json:"ids"`
			}
			if err := json.Unmarshal([]byte(n.Payload), &p); err != nil || p.Inbox != "demo" || len(p.IDs) == 0 {
				t.Fatalf("payload %q (%v), want the inbox demo and ids", n.Payload, err)
			}
			batches = append(batches, p.IDs)
		}
	}

	f.mustRun(0, "--inbox", "demo", "--batch-size", "2", "--workers", "1")
	batches := drain()
	var heard []int64
	for _, b := range batches {
		heard = append(heard, b...)
	}
	slices.Sort(heard)
	rows, err := f.pool.Query(ctx, `SELECT id FROM email_messages WHERE inbox = 'demo' ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	stored, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		t.Fatal(err)
	}
	if len(batches) != 3 || !slices.Equal(heard, stored) {
		t.Fatalf("heard %v in %d notifications, want the stored ids %v in 3 (5 messages, batches of 2)", batches, len(batches), stored)
	}

	f.mustRun(0, "--inbox", "demo")
	if again := drain(); len(again) != 0 {
		t.Fatalf("a re-run that stored nothing notified %v", again)
	}
}
