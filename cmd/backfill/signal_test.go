package main

import (
	"os"
	"os/exec"
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
