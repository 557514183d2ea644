package main

import (
	"context"
	"testing"

	"github.com/myhibachi/backfill/internal/mailgen"
	"github.com/myhibachi/backfill/pgsink"
)

// TestAdoptedTablesFollow records what watch follows into the backend's
// own tables: flags into whichever of is_read, is_starred and labels they
// have, in their types; deletions only once email_messages has a
// deleted_at column, expunged UIDs forgotten either way.
func TestAdoptedTablesFollow(t *testing.T) {
	t.Parallel()
	opts := mailgen.DefaultOptions()
	opts.NoMessageIDRatio = 0
	opts.DuplicateRatio = 0
	mails := opts.Generate(17, 5)
	for _, s := range backendSchemas {
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			f.imap.AppendMails(t, mails)
			f.mustExec(s.ddl)
			f.migrate()
			f.mustRun(0, "--inbox", "demo")
			ctx := context.Background()
			open := func() *pgsink.Sink {
				sink, err := pgsink.Open(ctx, f.dbURL, 2)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(sink.Close)
				if err := sink.CheckSchema(ctx); err != nil {
					t.Fatal(err)
				}
				return sink
			}
			var uv int64
			if err := f.pool.QueryRow(ctx, `SELECT max(uidvalidity) FROM email_sync_uids`).Scan(&uv); err != nil {
				t.Fatal(err)
			}
			idOf := func(uid int) string {
				var id string
				if err := f.pool.QueryRow(ctx, `SELECT message_id FROM email_sync_uids WHERE uid = $1`, uid).Scan(&id); err != nil {
					t.Fatal(err)
				}
				return id
			}
			first, second := idOf(1), idOf(2)

			sink := open()
			flags, deletions := sink.Follows()
			if !flags || deletions {
				t.Fatalf("Follows() = %v, %v; want flags followed, deletions not (no deleted_at)", flags, deletions)
			}
			n, err := sink.UpdateFlags(ctx, "demo", "INBOX", uint32(uv), []pgsink.FlagState{{UID: 1, IsRead: true, IsStarred: true, Labels: []string{"$Work"}}})
			if err != nil || n != 1 {
				t.Fatalf("UpdateFlags = %d, %v; want 1 row", n, err)
			}
			labels := `labels::text IN ('{$Work}', '["$Work"]')`
			if n := f.count(`SELECT count(*) FROM email_messages WHERE message_id = $1 AND `+labels, first); n != 1 {
				t.Fatalf("%s does not have label $Work: %v", first, f.strings(`SELECT labels::text FROM email_messages`))
			}
			if n, err := sink.MarkExpunged(ctx, "demo", "INBOX", uint32(uv), []uint32{1}); err != nil || n != 0 {
				t.Fatalf("MarkExpunged without deleted_at = %d, %v; want 0", n, err)
			}
			if n := f.count(`SELECT count(*) FROM email_sync_uids WHERE uid = 1`); n != 0 {
				t.Fatal("the expunged UID is still settled")
			}

			f.mustExec(`ALTER TABLE email_messages ADD COLUMN deleted_at timestamptz`)
			sink = open()
			if _, deletions := sink.Follows(); !deletions {
				t.Fatal("Follows() says deletions are not followed with a deleted_at column")
			}
			if n, err := sink.MarkExpunged(ctx, "demo", "INBOX", uint32(uv), []uint32{2}); err != nil || n != 1 {
				t.Fatalf("MarkExpunged = %d, %v; want 1 row marked", n, err)
			}
			if n := f.count(`SELECT count(*) FROM email_messages WHERE deleted_at IS NOT NULL AND message_id = $1`, second); n != 1 {
				t.Fatalf("%s has no deleted_at", second)
			}
		})
	}
}
