package pgtest_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/myhibachi/backfill/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func TestNewDatabaseIsolated(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	a := connect(t, pgtest.NewDatabase(t))
	b := connect(t, pgtest.NewDatabase(t))

	if _, err := a.Exec(ctx, "CREATE TABLE only_in_a (id int)"); err != nil {
		t.Fatal(err)
	}
	var nameA, nameB string
	if err := a.QueryRow(ctx, "SELECT current_database()").Scan(&nameA); err != nil {
		t.Fatal(err)
	}
	if err := b.QueryRow(ctx, "SELECT current_database()").Scan(&nameB); err != nil {
		t.Fatal(err)
	}
	if nameA == nameB {
		t.Fatalf("both databases are named %q", nameA)
	}

	_, err := b.Exec(ctx, "SELECT * FROM only_in_a")
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "42P01" { // undefined_table
		t.Fatalf("table of database a seen from database b: err = %v", err)
	}
}

func TestNewDatabaseDroppedAfterTest(t *testing.T) {
	t.Parallel()
	var dsn string
	t.Run("owner", func(t *testing.T) {
		dsn = pgtest.NewDatabase(t)
		connect(t, dsn)
	})
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err == nil {
		conn.Close(ctx)
		t.Fatal("database still exists after its test ended")
	}
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "3D000" { // invalid_catalog_name
		t.Fatalf("connect to dropped database: %v, want SQLSTATE 3D000", err)
	}
}

func TestRestartKeepsData(t *testing.T) {
	t.Parallel()
	c := pgtest.NewCluster(t)
	ctx := t.Context()
	dsn := c.DSN("postgres")

	conn := connect(t, dsn)
	if _, err := conn.Exec(ctx, "CREATE TABLE kept (v text); INSERT INTO kept VALUES ('before restart')"); err != nil {
		t.Fatal(err)
	}
	if err := c.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	// The session open across the restart is gone, as in production.
	if err := conn.Ping(ctx); err == nil {
		t.Error("connection survived the restart")
	}

	var v string
	if err := connect(t, dsn).QueryRow(ctx, "SELECT v FROM kept").Scan(&v); err != nil {
		t.Fatal(err)
	}
	if v != "before restart" {
		t.Fatalf("after restart: %q", v)
	}
}

func TestStopThenRestart(t *testing.T) {
	t.Parallel()
	c := pgtest.NewCluster(t)
	ctx := t.Context()
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := c.Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	if conn, err := pgx.Connect(ctx, c.DSN("postgres")); err == nil {
		conn.Close(ctx)
		t.Fatal("connected to a stopped cluster")
	}
	if err := c.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if err := connect(t, c.DSN("postgres")).Ping(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestStartInTempDir(t *testing.T) {
	t.Parallel()
	// t.TempDir makes 0700 directories with long names: the server's user must
	// still reach the cluster, and the socket must still fit its size limit.
	ctx := t.Context()
	c, err := pgtest.Start(ctx, t.TempDir()+"/a-rather-long-directory-name-for-the-cluster-to-live-in")
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := c.Stop(); err != nil {
			t.Error(err)
		}
	}()
	if err := connect(t, c.DSN("postgres")).Ping(ctx); err != nil {
		t.Fatal(err)
	}
}

func BenchmarkNewDatabase(b *testing.B) {
	pgtest.NewDatabase(b) // the first call starts the cluster
	for b.Loop() {
		pgtest.NewDatabase(b) // dropped when the benchmark ends
	}
}

func connect(tb testing.TB, dsn string) *pgx.Conn {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		tb.Fatalf("connect %s: %v", dsn, err)
	}
	tb.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}
