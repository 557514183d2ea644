package pgsink_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/myhibachi/backfill/internal/pgtest"
	"github.com/myhibachi/backfill/migrations"
	"github.com/myhibachi/backfill/pgsink"
)

// TestInboxRegistry: a registration is added once, then unchanged or
// updated as its fields are; it is listed, found and removed by name.
func TestInboxRegistry(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := newSink(t).Pool()
	sales := pgsink.Inbox{Name: "sales", URL: "imaps://s%40x.example@imap.x.example/INBOX", PasswordCommand: "pass show sales"}
	for _, step := range []struct {
		in   pgsink.Inbox
		want pgsink.Change
	}{
		{sales, pgsink.Added},
		{sales, pgsink.Unchanged},
		{pgsink.Inbox{Name: "sales", URL: sales.URL, PasswordEnv: "SALES_PW", Folders: []string{"INBOX", "sent"}, MaxDownload: "1GB/24h"}, pgsink.Updated},
		{pgsink.Inbox{Name: "sales", URL: sales.URL, PasswordEnv: "SALES_PW", Folders: []string{"INBOX", "sent"}, MaxDownload: "1GB/24h"}, pgsink.Unchanged},
		{pgsink.Inbox{Name: "sales", URL: sales.URL, PasswordEnv: "SALES_PW", Folders: []string{"INBOX"}, MaxDownload: "1GB/24h"}, pgsink.Updated},
		{pgsink.Inbox{Name: "sales", URL: sales.URL, PasswordEnv: "SALES_PW", Folders: []string{"INBOX"}, MaxDownload: "1GB/24h", AllFolders: true}, pgsink.Updated},
		{pgsink.Inbox{Name: "sales", URL: sales.URL, TokenCommand: "oauth2l fetch"}, pgsink.Updated},
		{pgsink.Inbox{Name: "archive", URL: "imaps://a%40x.example@imap.x.example/INBOX"}, pgsink.Added},
	} {
		got, err := pgsink.UpsertInbox(ctx, db, step.in)
		if err != nil || got != step.want {
			t.Fatalf("UpsertInbox(%+v) = %v, %v; want %v", step.in, got, err, step.want)
		}
	}
	list, err := pgsink.ListInboxes(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, in := range list {
		names = append(names, in.Name)
	}
	if !slices.Equal(names, []string{"archive", "sales"}) {
		t.Fatalf("listed %v, want archive, sales", names)
	}
	got, ok, err := pgsink.GetInbox(ctx, db, "sales")
	if err != nil || !ok {
		t.Fatalf("GetInbox(sales) = %v, %v", ok, err)
	}
	// The last registration wins whole: what it left out is cleared.
	if got.TokenCommand != "oauth2l fetch" || got.PasswordEnv != "" || got.PasswordCommand != "" || got.Folders != nil ||
		got.AllFolders || got.MaxDownload != "" || !got.UpdatedAt.After(got.CreatedAt) {
		t.Fatalf("sales registered as %+v", got)
	}
	var nulls int
	if err := db.QueryRow(ctx, `SELECT num_nulls(password_command, password_env, folders, max_download) FROM backfill_inboxes
		WHERE name = 'sales'`).Scan(&nulls); err != nil || nulls != 4 {
		t.Fatalf("cleared fields are not NULL (%d of 4, %v)", nulls, err)
	}
	if _, ok, err := pgsink.GetInbox(ctx, db, "nope"); ok || err != nil {
		t.Fatalf("GetInbox(nope) = %v, %v; want not found", ok, err)
	}
	if _, err := pgsink.UpsertInbox(ctx, db, pgsink.Inbox{Name: "two", URL: sales.URL, PasswordCommand: "a", PasswordEnv: "B"}); err == nil {
		t.Fatal("an inbox with two credentials was registered")
	}
	for _, want := range []bool{true, false} {
		if removed, err := pgsink.RemoveInbox(ctx, db, "sales"); removed != want || err != nil {
			t.Fatalf("RemoveInbox(sales) = %v, %v; want %v", removed, err, want)
		}
	}
	if _, ok, _ := pgsink.GetInbox(ctx, db, "sales"); ok {
		t.Fatal("sales is still registered after its removal")
	}
}

// TestInboxRegistryWithoutTable: a database from before the registry has
// no registered inbox, and registering one says to migrate.
func TestInboxRegistryWithoutTable(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, err := pgxpool.New(ctx, pgtest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	if _, ok, err := pgsink.GetInbox(ctx, db, "sales"); ok || err != nil {
		t.Fatalf("GetInbox = %v, %v; want not found, no error", ok, err)
	}
	if list, err := pgsink.ListInboxes(ctx, db); list != nil || err != nil {
		t.Fatalf("ListInboxes = %v, %v; want none, no error", list, err)
	}
	if _, err := pgsink.UpsertInbox(ctx, db, pgsink.Inbox{Name: "sales", URL: "imaps://u@h/INBOX"}); !errors.Is(err, migrations.ErrNotMigrated) {
		t.Fatalf("UpsertInbox = %v, want ErrNotMigrated", err)
	}
	if _, err := pgsink.RemoveInbox(ctx, db, "sales"); !errors.Is(err, migrations.ErrNotMigrated) {
		t.Fatalf("RemoveInbox = %v, want ErrNotMigrated", err)
	}
}
