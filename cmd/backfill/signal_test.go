package main

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/myhibachi/backfill/internal/imaptest"
)

// TestSignalStopsAfterCommitting sends SIGTERM or SIGINT to the binary
// mid-run: it must exit 143 or 130, keep what it committed, record
// "interrupted", and a re-run must finish the job with nothing doubled.
func TestSignalStopsAfterCommitting(t *testing.T) {
	t.Parallel()
	bin := buildBinary(t)
	for _, tt := range []struct {
		sig  syscall.Signal
		code int
	}{{syscall.SIGTERM, 143}, {syscall.SIGINT, 130}} {
		t.Run(tt.sig.String(), func(t *testing.T) {
			t.Parallel()
			// A slow server: each FETCH waits, so the run is still going
			// when the signal arrives.
			f := newFixture(t, imaptest.WithFetchHook(func(int) error {
				time.Sleep(150 * time.Millisecond)
				return nil
			}))
			mails := f.imap.AppendGenerated(t, 21, 300)
			f.migrate()

			environ := append([]string{"PATH=" + os.Getenv("PATH")}, f.environ...)
			code, out, _ := execUntil(t, bin, f.dir, environ, "📦 Processing batch 2/", func(cmd *exec.Cmd) {
				if err := cmd.Process.Signal(tt.sig); err != nil {
					t.Error(err)
				}
			}, "--inbox", "demo", "--workers", "2", "--batch-size", "10")
			if code != tt.code {
				t.Fatalf("exit %d, want %d\n%s", code, tt.code, out)
			}
			f.wantLine(out, "⏹️  BACKFILL INTERRUPTED")
			stored := f.count(`SELECT count(*) FROM email_messages`)
			if stored == 0 || stored >= 290 {
				t.Fatalf("%d rows stored before the signal took effect; want some but not all", stored)
			}
			if n := f.count(`SELECT count(*) FROM email_sync_status WHERE last_status = 'interrupted'`); n != 1 {
				t.Fatal("email_sync_status does not say interrupted")
			}

			f.mustRun(0, "--inbox", "demo")
			unique := 0
			for _, m := range mails {
				if m.Mail.DuplicateOf < 0 {
					unique++
				}
			}
			if n := f.count(`SELECT count(*) FROM email_messages`); n != unique {
				t.Fatalf("after the re-run email_messages has %d rows, want %d", n, unique)
			}
			if n := f.count(`SELECT count(*) FROM email_threads t WHERE message_count <> (SELECT count(*)
				FROM email_messages m WHERE m.inbox = t.inbox AND m.thread_id = t.thread_id)`); n != 0 {
				t.Fatalf("%d threads miscounted after interrupt and re-run", n)
			}
		})
	}
}

// TestKilledRunIsRecordedAbandoned kills the binary with SIGKILL mid-run:
// it cannot record how it ended, and its status row says "running". The
// next run, which takes the lock and so knows nobody else runs, records the
// killed one as abandoned (an error_logs warning naming its operation id,
// in the status row's sync_errors too), completes, and says so.
func TestKilledRunIsRecordedAbandoned(t *testing.T) {
	t.Parallel()
	bin := buildBinary(t)
	f := newFixture(t, imaptest.WithFetchHook(func(int) error {
		time.Sleep(150 * time.Millisecond)
		return nil
	}))
	mails := f.imap.AppendGenerated(t, 23, 200)
	f.migrate()

	environ := append([]string{"PATH=" + os.Getenv("PATH")}, f.environ...)
	code, out, killed := execUntil(t, bin, f.dir, environ, "📦 Processing batch 2/", func(cmd *exec.Cmd) {
		if err := cmd.Process.Kill(); err != nil {
			t.Error(err)
		}
	}, "--inbox", "demo", "--workers", "2", "--batch-size", "10")
	if !killed || code != -1 {
		t.Fatalf("exit %d (killed: %v), want killed by SIGKILL\n%s", code, killed, out)
	}
	var killedOp string
	if err := f.pool.QueryRow(context.Background(), `SELECT last_operation_id::text FROM email_sync_status
		WHERE inbox = 'demo' AND last_status = 'running'`).Scan(&killedOp); err != nil {
		t.Fatalf("the killed run's status row: %v", err)
	}

	out = f.mustRun(0, "--inbox", "demo")
	f.wantLine(out, "📊 BACKFILL COMPLETE")
	if !strings.Contains(out, "previous_run_abandoned (warning): 1") {
		t.Fatalf("the summary does not mention the abandoned run\n%s", out)
	}
	if n := f.count(`SELECT count(*) FROM error_logs WHERE severity = 'warning' AND error_type = 'previous_run_abandoned'
		AND error_message LIKE '%' || $1 || '%' AND context->>'abandoned_operation_id' = $1
		AND operation_id <> $1::uuid`, killedOp); n != 1 {
		t.Fatalf("error_logs has %d warnings naming the abandoned run %s, want 1\n%s", n, killedOp, out)
	}
	if n := f.count(`SELECT count(*) FROM email_sync_status WHERE last_status = 'completed'
		AND sync_errors @> '[{"type": "previous_run_abandoned"}]'`); n != 1 {
		var row string
		_ = f.pool.QueryRow(context.Background(), `SELECT last_status || ' ' || sync_errors::text FROM email_sync_status`).Scan(&row)
		t.Fatalf("the status row does not record the abandoned run: %s", row)
	}
	if n := f.count(`SELECT count(*) FROM email_messages`); n != uniqueMails(mails) {
		t.Fatalf("email_messages has %d rows, want %d", n, uniqueMails(mails))
	}
	// Recorded once: the run after that finds nothing abandoned.
	f.mustRun(0, "--inbox", "demo")
	if n := f.count(`SELECT count(*) FROM error_logs WHERE error_type = 'previous_run_abandoned'`); n != 1 {
		t.Fatalf("%d previous_run_abandoned warnings after a third run, want 1", n)
	}
}
