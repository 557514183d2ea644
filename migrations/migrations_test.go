package migrations_test

import (
	"context"
	"errors"
	"os"
	"slices"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/myhibachi/backfill/internal/pgtest"
	"github.com/myhibachi/backfill/migrations"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

func newPool(t *testing.T) *pgxpool.Pool {
	t.Helper()
	p, err := pgxpool.New(context.Background(), pgtest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

func origins(t *testing.T, p *pgxpool.Pool) map[string]string {
	t.Helper()
	rows, err := p.Query(context.Background(), `SELECT name, origin FROM backfill_tables`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var n, o string
		if err := rows.Scan(&n, &o); err != nil {
			t.Fatal(err)
		}
		out[n] = o
	}
	return out
}

// A fresh database: every table is created and recorded as backfill's own,
// and the writer uses the tool's own shape for all of them.
func TestFreshDatabaseOwnsEveryTable(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := newPool(t)
	rep, err := migrations.Migrate(ctx, p, false)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"backfill_inboxes", "email_downloads", "email_messages", "email_sync_folders", "email_sync_status", "email_sync_uids", "email_threads", "error_logs"}
	if created := slices.Sorted(slices.Values(rep.Created)); len(rep.Adopted) != 0 || !slices.Equal(created, want) {
		t.Fatalf("created %v, adopted %v; want %v created, none adopted", created, rep.Adopted, want)
	}
	for name, origin := range origins(t, p) {
		if origin != "created" {
			t.Errorf("%s recorded as %s", name, origin)
		}
	}
	m, err := migrations.Inspect(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	if !m.Messages.Table.Owned || !m.Errors.Table.Owned {
		t.Fatal("Inspect does not see the tool's own tables as its own")
	}
	again, err := migrations.Migrate(ctx, p, false)
	if err != nil || len(again.Statements) != 0 {
		t.Fatalf("second migrate: %v, statements %q; want none", err, again.Statements)
	}
}

// A database migrated before migrate recorded who created what (migration
// 001 applied, no backfill_tables): its tables are backfill's own.
func TestLegacyDatabaseKeepsItsTables(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := newPool(t)
	all, err := migrations.All()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Exec(ctx, all[0].SQL); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Exec(ctx, `CREATE TABLE backfill_schema_migrations (version integer PRIMARY KEY, name text NOT NULL,
		applied_at timestamptz NOT NULL DEFAULT now());
		INSERT INTO backfill_schema_migrations (version, name) VALUES (1, 'email_storage')`); err != nil {
		t.Fatal(err)
	}
	if err := migrations.Check(ctx, p); !errors.Is(err, migrations.ErrNotMigrated) {
		t.Fatalf("Check before migrate = %v, want ErrNotMigrated (002 missing)", err)
	}
	rep, err := migrations.Migrate(ctx, p, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Adopted) != 0 || len(rep.Applied) != len(all)-1 {
		t.Fatalf("adopted %v, applied %v; want nothing adopted and the later migrations applied", rep.Adopted, rep.Applied)
	}
	got := origins(t, p)
	for _, name := range append(slices.Clone(migrations.BackendTables), "email_sync_uids") {
		if got[name] != "created" {
			t.Errorf("%s recorded as %q, want created", name, got[name])
		}
	}
	if err := migrations.Check(ctx, p); err != nil {
		t.Fatal(err)
	}
}

// A database from before folders: its settled UIDs become INBOX's, its
// rows list INBOX as their folder, and new rows default to none.
func TestFoldersMigrationKeepsEarlierRowsAsInbox(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := newPool(t)
	all, err := migrations.All()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range all[:2] {
		if _, err := p.Exec(ctx, m.SQL); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := p.Exec(ctx, `CREATE TABLE backfill_schema_migrations (version integer PRIMARY KEY, name text NOT NULL,
		applied_at timestamptz NOT NULL DEFAULT now());
		INSERT INTO backfill_schema_migrations (version, name) VALUES (1, 'email_storage'), (2, 'sync_uid_message_ids');
		INSERT INTO email_messages (inbox, message_id, thread_id, received_at) VALUES ('i', 'old@x', 't', now());
		INSERT INTO email_sync_uids (inbox, uidvalidity, uid, message_id) VALUES ('i', 7, 1, 'old@x')`); err != nil {
		t.Fatal(err)
	}
	if _, err := migrations.Migrate(ctx, p, false); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Exec(ctx, `INSERT INTO email_messages (inbox, message_id, thread_id, received_at) VALUES ('i', 'new@x', 't', now());
		INSERT INTO email_sync_uids (inbox, folder, uidvalidity, uid, message_id) VALUES ('i', 'Sent', 7, 1, 'new@x')`); err != nil {
		t.Fatalf("UID 1 of another folder at the same UIDVALIDITY: %v", err)
	}
	var oldFolders, newFolders []string
	if err := p.QueryRow(ctx, `SELECT (SELECT folders FROM email_messages WHERE message_id = 'old@x'),
		(SELECT folders FROM email_messages WHERE message_id = 'new@x')`).Scan(&oldFolders, &newFolders); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(oldFolders, []string{"INBOX"}) || len(newFolders) != 0 {
		t.Fatalf("folders: earlier row %v, new row %v; want [INBOX] and []", oldFolders, newFolders)
	}
	var folder string
	if err := p.QueryRow(ctx, `SELECT folder FROM email_sync_uids WHERE message_id = 'old@x'`).Scan(&folder); err != nil || folder != "INBOX" {
		t.Fatalf("earlier settled UID's folder = %q, %v; want INBOX", folder, err)
	}
}
