package main

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/myhibachi/backfill/internal/imaptest"
	"github.com/myhibachi/backfill/internal/pgtest"
)

// TestDatabaseRestartMidRun restarts PostgreSQL while batches are being
// written: the failed transactions are retried on new connections and every
// message ends up stored exactly once, with exit 0.
func TestDatabaseRestartMidRun(t *testing.T) {
	t.Parallel()
	bin := buildBinary(t)
	cluster := pgtest.NewCluster(t)
	// A slow server keeps the run going while the database restarts.
	srv := imaptest.Start(t, imaptest.WithFetchHook(func(int) error {
		time.Sleep(100 * time.Millisecond)
		return nil
	}))
	mails := srv.AppendGenerated(t, 31, 400)
	dbURL := cluster.DSN("postgres")
	environ := []string{"PATH=" + os.Getenv("PATH"), "DATABASE_URL=" + dbURL,
		"BACKFILL_INBOX_DEMO=" + srv.URL("INBOX"), "BACKFILL_INBOX_DEMO_PASSWORD=" + srv.Password}
	if code, out := execBinary(t, bin, t.TempDir(), environ, "migrate"); code != 0 {
		t.Fatalf("migrate: exit %d\n%s", code, out)
	}
	pool, err := pgxpool.New(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	// Every insert takes a while, and once two batches are in (the two
	// that let "Processing batch 2/" be printed), every insert waits, inside
	// its transaction, for a lock this test holds until PostgreSQL
	// restarts: the restart cuts a transaction, which must be retried,
	// rather than falling between batches where the pool alone hides it,
	// or after the end of a run that finished before a slow test process
	// got to restart the server.
	if _, err := pool.Exec(context.Background(), `
		CREATE FUNCTION slow_insert() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			PERFORM pg_sleep(0.3);
			IF (SELECT count(*) FROM email_messages) > 40 THEN
				PERFORM set_config('lock_timeout', '60s', true);
				PERFORM pg_advisory_xact_lock_shared(hashtextextended('test: restart first', 0));
			END IF;
			RETURN NULL;
		END $$;
		CREATE TRIGGER slow_insert AFTER INSERT ON email_messages FOR EACH STATEMENT EXECUTE FUNCTION slow_insert();`); err != nil {
		t.Fatal(err)
	}
	gate, err := pool.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer gate.Release()
	// The restart ends this session, and with it the lock.
	if _, err := gate.Exec(context.Background(), `SELECT pg_advisory_lock(hashtextextended('test: restart first', 0))`); err != nil {
		t.Fatal(err)
	}

	code, out, restarted := execUntil(t, bin, t.TempDir(), environ, "📦 Processing batch 2/", func(*exec.Cmd) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := cluster.Restart(ctx); err != nil {
			t.Error(err)
		}
	}, "--inbox", "demo", "--workers", "2", "--batch-size", "20")
	if code != 0 || !restarted {
		t.Fatalf("exit %d (restarted: %v), want 0\n%s", code, restarted, out)
	}
	if !strings.Contains(out, "🔁 store batch failed") {
		t.Fatalf("no batch failed and was retried: the restart fell between transactions and the test proves little\n%s", out)
	}
	unique := 0
	for _, m := range mails {
		if m.Mail.DuplicateOf < 0 {
			unique++
		}
	}
	var rows, threadSum int
	if err := pool.QueryRow(context.Background(), `SELECT (SELECT count(*) FROM email_messages),
		(SELECT coalesce(sum(message_count), 0) FROM email_threads)`).Scan(&rows, &threadSum); err != nil {
		t.Fatal(err)
	}
	if rows != unique || threadSum != unique {
		t.Fatalf("after a database restart: %d rows and threads counting %d, want %d of each\n%s", rows, threadSum, unique, out)
	}
}
