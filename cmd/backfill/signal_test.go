package main

import (
	"bufio"
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

			cmd := exec.Command(bin, "--inbox", "demo", "--workers", "2", "--batch-size", "10")
			cmd.Dir, cmd.Env = f.dir, append([]string{"PATH=" + os.Getenv("PATH")}, f.environ...)
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			cmd.Stderr = cmd.Stdout
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			var out strings.Builder
			sc := bufio.NewScanner(stdout)
			signalled := false
			for sc.Scan() {
				out.WriteString(sc.Text() + "\n")
				if !signalled && strings.HasPrefix(sc.Text(), "📦 Processing batch 2/") {
					if err := cmd.Process.Signal(tt.sig); err != nil {
						t.Fatal(err)
					}
					signalled = true
				}
			}
			err = cmd.Wait()
			if code := cmd.ProcessState.ExitCode(); code != tt.code {
				t.Fatalf("exit %d (%v), want %d\n%s", code, err, tt.code, out.String())
			}
			f.wantLine(out.String(), "⏹️  BACKFILL INTERRUPTED")
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
