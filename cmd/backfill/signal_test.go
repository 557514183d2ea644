package main

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
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
			// A slow server that holds back all but the first FETCHes
			// until the signal is sent, so the run is still going when it
			// arrives, however late this test gets to send it.
			g := newFetchGate(150 * time.Millisecond)
			f := newFixture(t, imaptest.WithFetchHook(g.hook))
			g.watch(t, f.imap)
			mails := f.imap.AppendGenerated(t, 21, 300)
			f.migrate()

			environ := append([]string{"PATH=" + os.Getenv("PATH")}, f.environ...)
			code, out, _ := execUntil(t, bin, f.dir, environ, "📦 Processing batch 2/", func(cmd *exec.Cmd) {
				if err := cmd.Process.Signal(tt.sig); err != nil {
					t.Error(err)
				}
				g.open()
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
	g := newFetchGate(150 * time.Millisecond)
	f := newFixture(t, imaptest.WithFetchHook(g.hook))
	g.watch(t, f.imap)
	mails := f.imap.AppendGenerated(t, 23, 200)
	f.migrate()

	environ := append([]string{"PATH=" + os.Getenv("PATH")}, f.environ...)
	code, out, killed := execUntil(t, bin, f.dir, environ, "📦 Processing batch 2/", func(cmd *exec.Cmd) {
		if err := cmd.Process.Kill(); err != nil {
			t.Error(err)
		}
		g.open()
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

// fetchGate is a slow IMAP server's FETCH hook that lets through the
// FETCHes of the first few batches and holds back the rest until the test
// opens it. A test that signals or kills a run mid-way opens it once it has:
// the run cannot have finished first, however slow the test process is to
// read the run's output.
type fetchGate struct {
	pause time.Duration
	srv   atomic.Pointer[imaptest.Server]
	ch    chan struct{}
	once  sync.Once
}

// gateAfter is how many message bodies the server sends before it holds
// FETCHes back: two rounds of four 10-message batches, so the first two
// FETCHes, each of one batch at least, always get through.
const gateAfter = 80

func newFetchGate(pause time.Duration) *fetchGate {
	return &fetchGate{pause: pause, ch: make(chan struct{})}
}

// watch starts gating srv's FETCHes, and opens the gate when the test ends
// (before the server closes), so that a failed test leaves none waiting.
func (g *fetchGate) watch(t *testing.T, srv *imaptest.Server) {
	g.srv.Store(srv)
	t.Cleanup(g.open)
}

// open lets every FETCH through from now on.
func (g *fetchGate) open() { g.once.Do(func() { close(g.ch) }) }

// hook delays every FETCH by the pause, and holds one that takes the
// bodies asked for past gateAfter until the gate opens (or a minute has
// passed, as a safety net).
func (g *fetchGate) hook(int) error {
	time.Sleep(g.pause)
	if srv := g.srv.Load(); srv != nil {
		if whole, pieces := srv.BodiesAsked(); whole+pieces > gateAfter {
			select {
			case <-g.ch:
			case <-time.After(time.Minute):
			}
		}
	}
	return nil
}
