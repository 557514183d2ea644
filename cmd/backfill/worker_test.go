package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/myhibachi/backfill/internal/imaptest"
	"github.com/myhibachi/backfill/internal/mailgen"
	"github.com/myhibachi/backfill/pgsink"
)

// jobStates is each job's state, by inbox/folder, as River holds them.
func (f *fixture) jobStates() map[string][]string {
	f.t.Helper()
	rows, err := f.pool.Query(context.Background(),
		`SELECT args->>'inbox' || '/' || (args->>'folder'), state::text FROM river_job WHERE kind = 'backfill_folder' ORDER BY id`)
	if err != nil {
		f.t.Fatal(err)
	}
	defer rows.Close()
	out := map[string][]string{}
	for rows.Next() {
		var k, s string
		if err := rows.Scan(&k, &s); err != nil {
			f.t.Fatal(err)
		}
		out[k] = append(out[k], s)
	}
	return out
}

// waitJobs waits until no job is waiting or running; the deadline only
// bounds a test that would otherwise hang.
func (f *fixture) waitJobs(p *watchProc) {
	f.t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for f.count(`SELECT count(*) FROM river_job WHERE state IN ('available', 'running', 'retryable', 'pending')`) > 0 {
		if time.Now().After(deadline) {
			f.t.Fatalf("jobs still queued after 90 s: %v", f.jobStates())
		}
		select {
		case <-p.done:
			f.t.Fatalf("worker exited with jobs queued: %v", f.jobStates())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func TestWorkerRunsQueuedJobs(t *testing.T) {
	var trace lockedBuffer
	f := newFixture(t, imaptest.WithDebug(&trace))
	f.imap.AppendMails(t, mailgen.Generate(7, 40))
	f.migrate()

	out := f.mustRun(0, "enqueue", "--inbox", "demo")
	f.wantLine(out, "➕ queued demo/INBOX (job ")
	// A second enqueue while the first waits does not double it.
	f.wantLine(f.mustRun(0, "enqueue", "--inbox", "demo"), "✅ demo/INBOX already queued (job ")
	if n := f.count(`SELECT count(*) FROM river_job`); n != 1 {
		t.Fatalf("%d jobs after two enqueues, want 1", n)
	}

	bin := buildBinary(t)
	addr := freeAddr(t)
	w := startProc(t, bin, f.dir, f.environ, "worker", "--concurrency", "2", "--listen", addr)
	w.waitLines("✅ demo/INBOX: 40 new, 0 already stored, 0 failed (job ", 1)
	f.waitJobs(w)
	if n := f.count(`SELECT count(*) FROM email_messages WHERE inbox = 'demo'`); n != 40 {
		t.Fatalf("%d rows, want 40", n)
	}
	// The URL's own mailbox is read as a plain run reads it: listing the
	// account's folders first costs each job round trips on a remote link.
	if strings.Contains(trace.String(), " LIST ") {
		t.Fatalf("a job of the URL's mailbox listed the account's folders:\n%s", trace.String())
	}
	if code, body := httpGet(t, "http://"+addr+"/healthz"); code != 200 {
		t.Fatalf("/healthz: %d %s", code, body)
	}
	_, metrics := httpGet(t, "http://"+addr+"/metrics")
	for _, want := range []string{
		`backfill_jobs_finished_total{inbox="demo",result="completed"} 1`,
		`backfill_jobs{state="completed"} 1`,
		`backfill_jobs_running 0`,
		`backfill_messages_stored_total{folder="INBOX",inbox="demo"} 40`,
	} {
		if !strings.Contains(metrics, want) {
			t.Fatalf("/metrics has no line %q:\n%s", want, metrics)
		}
	}

	// A completed job does not block the next enqueue, which finds
	// nothing new.
	f.wantLine(f.mustRun(0, "enqueue", "--inbox", "demo"), "➕ queued demo/INBOX (job ")
	w.waitLines("✅ demo/INBOX: 0 new, 40 already stored, 0 failed (job ", 1)
	f.waitJobs(w)
	w.terminate()
	if got := f.jobStates()["demo/INBOX"]; strings.Join(got, ",") != "completed,completed" {
		t.Fatalf("job states %v, want two completed", got)
	}
	if got := jobsRow(t, f.mustRun(0, "status"), "demo"); got != "0 0 2 0 0 - -" {
		t.Fatalf("status's jobs of demo: %q, want 2 done", got)
	}
	var sts []struct {
		Inbox string
		Jobs  *struct{ Queued, Running, Done, Failed int }
	}
	if err := json.Unmarshal([]byte(f.mustRun(0, "status", "--json")), &sts); err != nil || len(sts) != 1 || sts[0].Jobs == nil || sts[0].Jobs.Done != 2 {
		t.Fatalf("status --json: %+v (%v), want demo with 2 jobs done", sts, err)
	}
}

func TestWorkerCancelsWrongPassword(t *testing.T) {
	f := newFixture(t)
	f.imap.AppendMails(t, mailgen.Generate(7, 5))
	f.migrate()
	f.environ = append(f.environ, "BACKFILL_INBOX_DEMO_PASSWORD=wrong")
	f.mustRun(0, "enqueue", "--inbox", "demo")
	w := startProc(t, buildBinary(t), f.dir, f.environ, "worker")
	w.waitLines("❌ demo/INBOX: cancelled, not retried: ", 1)
	f.waitJobs(w)
	w.terminate()
	if got := f.jobStates()["demo/INBOX"]; strings.Join(got, ",") != "cancelled" {
		t.Fatalf("job states %v, want cancelled", got)
	}
	if got := jobsRow(t, f.mustRun(0, "status"), "demo"); !strings.HasPrefix(got, "0 0 0 1 0 - ") || !strings.Contains(strings.ToLower(got), "auth") {
		t.Fatalf("status's jobs of demo: %q, want 1 failed and why", got)
	}
}

// slowFixture serves 40 messages, each FETCH taking 100 ms, so that a job
// is still running when a test stops or cuts it.
func slowFixture(t *testing.T) *fixture {
	f := newFixture(t, imaptest.WithFetchHook(func(int) error {
		time.Sleep(100 * time.Millisecond)
		return nil
	}))
	f.imap.AppendMails(t, mailgen.Generate(11, 40))
	f.migrate()
	f.mustRun(0, "enqueue", "--inbox", "demo")
	return f
}

// TestWorkerStopGivesJobBack stops a worker mid-job with SIGTERM: what it
// fetched is committed, the job is queued again as it was (no attempt
// spent), and the next worker stores only the rest.
func TestWorkerStopGivesJobBack(t *testing.T) {
	f := slowFixture(t)
	bin := buildBinary(t)
	w := startProc(t, bin, f.dir, f.environ, "worker", "--batch-size", "2", "--workers", "1")
	w.waitLines("▶️  demo/INBOX: started (job ", 1)
	waitFor(t, "some rows stored", func() bool { return f.count(`SELECT count(*) FROM email_messages`) >= 4 })
	w.terminate()
	w.waitLines("⏹️  demo/INBOX: stopped with the worker after ", 1)
	stored := f.count(`SELECT count(*) FROM email_messages`)
	if settled := f.count(`SELECT count(*) FROM email_sync_uids`); stored >= 40 || settled != stored {
		t.Fatalf("%d rows stored, %d UIDs settled: want a part of 40, all settled", stored, settled)
	}
	if n := f.count(`SELECT count(*) FROM river_job WHERE state = 'available' AND attempt = 0`); n != 1 {
		t.Fatalf("the job was not given back unspent: %v", f.jobStates())
	}
	w2 := startProc(t, bin, f.dir, f.environ, "worker", "--batch-size", "8")
	// The job's line counts its stretches: the first worker's and this
	// one's, which found the first's rows stored.
	w2.waitLines("✅ demo/INBOX: 40 new, 0 already stored, 0 failed (job 1,", 1)
	f.waitJobs(w2)
	w2.terminate()
	if n := f.count(`SELECT count(DISTINCT message_id) FROM email_messages`); n != 40 || f.count(`SELECT count(*) FROM email_messages`) != 40 {
		t.Fatalf("%d distinct messages stored, want 40 once each", n)
	}
	// Resumed from the settled UIDs: downloaded again at most what the
	// stop cut in flight (a round of up to four batches of 2), not the 8+
	// stored.
	if whole, pieces := f.imap.BodiesAsked(); whole+pieces > 40+8 {
		t.Fatalf("%d bodies downloaded for 40 messages, %d stored by the first worker", whole+pieces, stored)
	}
	if n := f.count(`SELECT (metadata->'output'->>'runs')::int FROM river_job`); n != 2 {
		t.Fatalf("the job's output counts %d runs, want 2", n)
	}
}

// TestWorkerContinuesAfterMaxJobTime: a job cut by --max-job-time
// commits, runs on as the same job and, done, counts every stretch.
func TestWorkerContinuesAfterMaxJobTime(t *testing.T) {
	f := slowFixture(t)
	w := startProc(t, buildBinary(t), f.dir, f.environ, "worker", "--batch-size", "2", "--workers", "1", "--max-job-time", "1s")
	w.waitLines("✅ demo/INBOX: 40 new, 0 already stored, 0 failed (job 1,", 1)
	f.waitJobs(w)
	w.terminate()
	if w.count("⏸️  demo/INBOX: ") < 1 {
		t.Fatalf("the job was never cut by --max-job-time:\n%s", w.output())
	}
	if got := f.jobStates()["demo/INBOX"]; strings.Join(got, ",") != "completed" {
		t.Fatalf("job states %v, want one job completed", got)
	}
	if n := f.count(`SELECT count(*) FROM email_messages`); n != 40 {
		t.Fatalf("%d rows, want 40", n)
	}
}

// TestWorkerSnoozesUntilBudgetFrees: a used-up download budget puts the
// job off until the budget frees up, with what was fetched committed.
func TestWorkerSnoozesUntilBudgetFrees(t *testing.T) {
	f := newFixture(t)
	f.appendSized(30, 2000)
	f.migrate()
	f.environ = append(f.environ, "BACKFILL_INBOX_DEMO_MAX_DOWNLOAD=40KB/24h")
	f.mustRun(0, "enqueue", "--inbox", "demo")
	w := startProc(t, buildBinary(t), f.dir, f.environ, "worker", "--batch-size", "4", "--workers", "2")
	w.waitLines("💤 demo/INBOX: the download budget is used up; runs again at ", 1)
	stored := f.count(`SELECT count(*) FROM email_messages`)
	if stored == 0 || stored >= 30 {
		t.Fatalf("stored %d of 30 under a budget of 20", stored)
	}
	// Snoozed until the first round leaves the 24-hour window, not
	// retried: no attempt spent, no error.
	waitFor(t, "the job snoozed", func() bool { return f.count(`SELECT count(*) FROM river_job WHERE state = 'scheduled'`) == 1 })
	if n := f.count(`SELECT count(*) FROM river_job WHERE state = 'scheduled' AND attempt = 0 AND errors IS NULL
		AND scheduled_at BETWEEN (SELECT min(at) FROM email_downloads) + interval '24 hours' - interval '2 seconds'
		                     AND (SELECT max(at) FROM email_downloads) + interval '24 hours' + interval '2 seconds'`); n != 1 {
		t.Fatalf("the job is not put off until the budget frees up: %v", f.jobStates())
	}
	// A day later: the window is empty and the job's time has come.
	f.mustExec(`UPDATE email_downloads SET at = at - interval '25 hours'`)
	f.mustExec(`UPDATE river_job SET scheduled_at = now()`)
	w.waitLines(fmt.Sprintf("✅ demo/INBOX: %d new, ", 30), 1)
	f.waitJobs(w)
	w.terminate()
	if n := f.count(`SELECT count(*) FROM email_messages`); n != 30 {
		t.Fatalf("%d rows, want 30", n)
	}
}

// TestWorkerWaitsForRunLock: a job whose inbox another run holds waits
// and runs when the lock is free, rather than failing.
func TestWorkerWaitsForRunLock(t *testing.T) {
	f := newFixture(t)
	f.imap.AppendMails(t, mailgen.Generate(7, 10))
	f.migrate()
	sink, err := pgsink.Open(t.Context(), f.dbURL, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	release, err := sink.Lock(t.Context(), "demo")
	if err != nil {
		t.Fatal(err)
	}
	f.mustRun(0, "enqueue", "--inbox", "demo")
	w := startProc(t, buildBinary(t), f.dir, f.environ, "worker")
	w.waitLines("💤 demo/INBOX: another run holds the inbox's run lock; runs again at ", 1)
	waitFor(t, "the job snoozed", func() bool { return f.count(`SELECT count(*) FROM river_job WHERE state = 'scheduled'`) == 1 })
	if n := f.count(`SELECT count(*) FROM river_job WHERE state = 'scheduled' AND attempt = 0 AND errors IS NULL`); n != 1 {
		t.Fatalf("the job is not waiting for the lock: %v", f.jobStates())
	}
	release()
	f.mustExec(`UPDATE river_job SET scheduled_at = now()`)
	w.waitLines("✅ demo/INBOX: 10 new, 0 already stored, 0 failed (job ", 1)
	f.waitJobs(w)
	w.terminate()
}

// TestEnqueueEvery: a periodic job queues its next run as it completes;
// enqueueing it again while that run waits does not double it.
func TestEnqueueEvery(t *testing.T) {
	f := newFixture(t)
	f.imap.AppendMails(t, mailgen.Generate(7, 5))
	f.migrate()
	f.wantLine(f.mustRun(0, "enqueue", "--inbox", "demo", "--every", "1h"), "➕ queued demo/INBOX (job 1, every 1h0m0s)")
	w := startProc(t, buildBinary(t), f.dir, f.environ, "worker")
	w.waitLines("✅ demo/INBOX: 5 new, ", 1)
	waitFor(t, "the next run queued", func() bool {
		return f.count(`SELECT count(*) FROM river_job WHERE state = 'scheduled'
			AND scheduled_at BETWEEN now() + interval '59 minutes' AND now() + interval '1 hour'`) == 1
	})
	f.wantLine(f.mustRun(0, "enqueue", "--inbox", "demo"), "✅ demo/INBOX already queued (job 2, scheduled, every 1h0m0s)")
	f.imap.AppendMails(t, mailgen.Generate(8, 2))
	f.mustExec(`UPDATE river_job SET scheduled_at = now() WHERE state = 'scheduled'`)
	w.waitLines("✅ demo/INBOX: 2 new, 5 already stored, ", 1)
	waitFor(t, "the third run queued", func() bool {
		return f.count(`SELECT count(*) FROM river_job WHERE state = 'scheduled'`) == 1
	})
	if got := f.jobStates()["demo/INBOX"]; strings.Join(got, ",") != "completed,completed,scheduled" {
		t.Fatalf("job states %v, want two runs completed and the next scheduled", got)
	}
	// dequeue ends the chain.
	if out := f.mustRun(0, "dequeue", "--inbox", "demo"); !strings.HasPrefix(out, "🛑 cancelled demo/INBOX (job ") || !strings.HasSuffix(out, ", was scheduled)\n") {
		t.Fatalf("dequeue did not cancel the scheduled run:\n%s", out)
	}
	f.wantLine(f.mustRun(0, "dequeue", "--inbox", "demo"), "Nothing queued or running to cancel.")
	w.terminate()
	if got := jobsRow(t, f.mustRun(0, "status"), "demo"); got != "0 0 2 0 1 - -" {
		t.Fatalf("status's jobs of demo: %q, want 2 done, 1 cancelled", got)
	}
}

// TestDequeueRunningJob: a job taken off the queue while it runs stops
// after committing what it fetched, and is not run again.
func TestDequeueRunningJob(t *testing.T) {
	f := slowFixture(t)
	w := startProc(t, buildBinary(t), f.dir, f.environ, "worker", "--batch-size", "2", "--workers", "1")
	waitFor(t, "some rows stored", func() bool { return f.count(`SELECT count(*) FROM email_messages`) >= 4 })
	f.wantLine(f.mustRun(0, "dequeue", "--all-inboxes"), "🛑 cancelled demo/INBOX (job 1, was running)")
	w.waitLines("❌ demo/INBOX: cancelled, not retried: taken off the queue by backfill dequeue (job 1)", 1)
	waitFor(t, "the job cancelled", func() bool { return strings.Join(f.jobStates()["demo/INBOX"], ",") == "cancelled" })
	w.terminate()
	stored := f.count(`SELECT count(*) FROM email_messages`)
	if settled := f.count(`SELECT count(*) FROM email_sync_uids`); stored >= 40 || settled != stored {
		t.Fatalf("%d rows stored, %d UIDs settled: want a part of 40, all settled", stored, settled)
	}
}

// jobsRow is an inbox's line in status's jobs table, its columns after
// the name joined by single spaces.
func jobsRow(t *testing.T, status, inbox string) string {
	t.Helper()
	_, table, ok := strings.Cut(status, "INBOX  JOBS QUEUED")
	if !ok {
		t.Fatalf("status has no jobs table:\n%s", status)
	}
	for _, line := range strings.Split(table, "\n") {
		if fields := strings.Fields(line); len(fields) > 0 && fields[0] == inbox {
			return strings.Join(fields[1:], " ")
		}
	}
	t.Fatalf("status's jobs table has no line for %s:\n%s", inbox, status)
	return ""
}

// freeAddr is a loopback address no one listens on, for a process to take.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

// lockedBuffer is a bytes.Buffer safe for a server's connections to
// write at once.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// waitFor polls cond; the deadline only bounds a test that would hang.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within a minute", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestEnqueueRegisteredInboxes queues every registered inbox, each as it
// is registered (a folder list, or all folders as one job), and a worker
// logs in with the credential each worker finds where it runs.
func TestEnqueueRegisteredInboxes(t *testing.T) {
	f := newFixture(t)
	f.imap.AppendMails(t, mailgen.Generate(7, 12))
	f.migrate()
	f.environ = append(f.environ, "IMAP_PW="+f.imap.Password)
	f.mustRun(0, "inboxes", "add", "alpha", f.imap.URL("INBOX"), "--password-env", "IMAP_PW", "--folders", "INBOX")
	f.mustRun(0, "inboxes", "add", "beta", f.imap.URL("INBOX"), "--password-env", "IMAP_PW", "--all-folders")
	code, out := f.run("enqueue", "--inbox", "nope")
	if code != exitFatal || !strings.Contains(out, `unknown inbox "nope"`) || !strings.Contains(out, "alpha, beta") {
		t.Fatalf("enqueue of an unknown inbox: exit %d\n%s", code, out)
	}
	// A folder named twice is one job.
	out = f.mustRun(0, "enqueue", "--inbox", "alpha", "--folders", "INBOX,INBOX")
	if n := strings.Count(out, "➕ queued alpha/INBOX"); n != 1 {
		t.Fatalf("--folders INBOX,INBOX queued %d jobs:\n%s", n, out)
	}
	out = f.mustRun(0, "enqueue", "--all-inboxes")
	f.wantLine(out, "✅ alpha/INBOX already queued (job ")
	f.wantLine(out, "➕ queued beta/* (job ")
	if n := strings.Count(out, "\n"); n != 2 {
		t.Fatalf("%d lines for two registered inboxes (demo is the environment's):\n%s", n, out)
	}
	w := startProc(t, buildBinary(t), f.dir, f.environ, "worker")
	w.waitLines("✅ alpha/INBOX: 12 new, ", 1)
	w.waitLines("✅ beta/*: 12 new, ", 1)
	f.waitJobs(w)
	w.terminate()
	if n := f.count(`SELECT count(*) FROM email_messages WHERE inbox IN ('alpha', 'beta')`); n != 24 {
		t.Fatalf("%d rows for two inboxes of 12 messages", n)
	}
	// Removing an inbox takes its waiting jobs off the queue: no worker
	// could run them any more.
	f.mustRun(0, "enqueue", "--inbox", "beta", "--every", "1h")
	out = f.mustRun(0, "inboxes", "remove", "beta")
	f.wantLine(out, "🛑 cancelled beta/* (job ")
	if n := f.count(`SELECT count(*) FROM river_job WHERE state NOT IN ('completed', 'cancelled')`); n != 0 {
		t.Fatalf("beta's job still queued after its removal: %v", f.jobStates())
	}
}
