package pgsink_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/myhibachi/backfill/pgsink"
)

// BenchmarkSeenUIDs reads 10,000 settled UIDs, each checked against its
// stored row (issue 8): the database's share of a re-run of an untouched
// 10,000-message mailbox.
func BenchmarkSeenUIDs(b *testing.B) {
	ctx := context.Background()
	s := newSink(b)
	const n = 10000
	for start := 0; start < n; start += 500 {
		batch := pgsink.Batch{Inbox: "support", UIDValidity: 7}
		for uid := start + 1; uid <= start+500; uid++ {
			m := msg(uint32(uid), fmt.Sprintf("%d@bench.example", uid), "Subject", "a@example.com", "cs@example.com")
			m.TextBody = strings.Repeat("body text ", 150)
			batch.Messages = append(batch.Messages, m)
		}
		if _, err := s.Store(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := s.Pool().Exec(ctx, `ANALYZE`); err != nil {
		b.Fatal(err)
	}
	b.Run("checked", func(b *testing.B) {
		for b.Loop() {
			seen, err := s.SeenUIDs(ctx, "support", "", 7)
			if err != nil || len(seen) != n {
				b.Fatalf("SeenUIDs: %d UIDs, %v; want %d", len(seen), err, n)
			}
		}
	})
	// What reading them cost before they were checked, for comparison on
	// the same machine under the same load.
	b.Run("unchecked", func(b *testing.B) {
		for b.Loop() {
			rows, err := s.Pool().Query(ctx, `SELECT uid FROM email_sync_uids WHERE inbox = $1 AND uidvalidity = $2`, "support", int64(7))
			if err != nil {
				b.Fatal(err)
			}
			got := 0
			for rows.Next() {
				got++
			}
			if rows.Close(); got != n {
				b.Fatalf("%d UIDs, want %d", got, n)
			}
		}
	})
}

// BenchmarkStoreFresh stores 2,000 new messages in batches of 100 into the
// tool's own tables: the common path of a first backfill.
func BenchmarkStoreFresh(b *testing.B) {
	ctx := context.Background()
	s := newSink(b)
	body := strings.Repeat("body text ", 150)
	run := 0
	for b.Loop() {
		run++
		inbox := fmt.Sprintf("bench-%d", run)
		for start := 0; start < 2000; start += 100 {
			batch := pgsink.Batch{Inbox: inbox, UIDValidity: 7}
			for uid := start + 1; uid <= start+100; uid++ {
				m := msg(uint32(uid), fmt.Sprintf("%d-%d@bench.example", run, uid), fmt.Sprintf("Subject %d", uid%37), "a@example.com", "cs@example.com")
				m.TextBody = body
				batch.Messages = append(batch.Messages, m)
			}
			if _, err := s.Store(ctx, batch); err != nil {
				b.Fatal(err)
			}
		}
	}
}
