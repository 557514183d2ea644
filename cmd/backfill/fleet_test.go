package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/myhibachi/backfill/internal/dovecottest"
	"github.com/myhibachi/backfill/internal/mailgen"
	"github.com/myhibachi/backfill/internal/pgtest"
)

// fleetRegistry says how the fleet test configures its inboxes: in the
// database with `backfill inboxes add`, enqueued with --all-inboxes
// (true), or as deploy scripts without a registry do, BACKFILL_INBOX_<NAME>
// variables in every process's environment, enqueued by name (false).
// The password is an environment variable either way: the registry
// stores its name, never the secret.
const fleetRegistry = true

// fleetDrainLimit bounds how long the fleet test waits for the queue to
// drain after the kill: River's rescuer looks every 30 s, a new leader may
// have to be elected first, and the machine is shared. A bound, not a
// speed assertion.
const fleetDrainLimit = 3 * time.Minute

// TestFleetSurvivesKilledWorker is issue 12's proof: 50 inboxes on one
// Dovecot, queued with `backfill enqueue`, run by three `backfill worker`
// processes, one of which is killed with SIGKILL while it runs jobs. River
// hands its jobs to the other two, which resume from the settled UIDs: in
// the end every job has completed, every message of every inbox is stored
// exactly once, and the killed worker's jobs were finished by another
// worker after River's rescuer took them back.
func TestFleetSurvivesKilledWorker(t *testing.T) {
	if testing.Short() {
		t.Skip("fleet test: three worker processes against Dovecot, skipped in -short mode")
	}
	t.Parallel()
	w := newFleetWorld(t, 50)
	w.register()
	out := w.mustExec(0, append([]string{"enqueue"}, w.enqueueArgs()...)...)
	if n := strings.Count(out, "➕ queued "); n != len(w.inboxes) {
		t.Fatalf("enqueue queued %d jobs, want %d\n%s", n, len(w.inboxes), out)
	}

	// A short --max-job-time cuts the larger inboxes' jobs mid-way, so they
	// continue on whichever worker is free; with the hidden --rescue-grace
	// River rescues a dead worker's job seconds, not minutes, after it ran
	// that long. Two IMAP connections per job and small batches keep every
	// job in flight for a while.
	args := []string{"worker", "--concurrency", "3", "--max-job-time", "1s", "--rescue-grace", "2s",
		"--workers", "2", "--batch-size", "10"}
	var workers []*watchProc
	var ids []string
	for range 3 {
		p := startProc(t, w.bin, w.dir, w.environ, args...)
		workers = append(workers, p)
		ids = append(ids, w.workerID(p))
	}
	victim, victimID := workers[0], ids[0]

	// Kill it while it runs a job, once the fleet is in full swing: in the
	// queue's eyes that job is running, on a worker that will never finish
	// it.
	w.waitUntil("the first worker to run a job after ten completed", time.Minute, func() bool {
		return w.count(`SELECT count(*) FROM river_job WHERE kind = 'backfill_folder' AND state = 'completed'`) >= 10 &&
			len(w.runningOn(victimID)) > 0
	})
	if err := victim.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-victim.done
	orphans := w.runningOn(victimID)
	if len(orphans) == 0 {
		t.Fatalf("no job left running on the killed worker %s; the kill came too late to prove anything\n%s", victimID, victim.output())
	}
	t.Logf("killed worker %s with jobs %v running", victimID, orphans)

	w.waitUntil("the queue to drain", fleetDrainLimit, func() bool {
		return w.count(`SELECT count(*) FROM river_job WHERE kind = 'backfill_folder'
			AND state NOT IN ('completed', 'cancelled', 'discarded')`) == 0
	})
	for _, p := range workers[1:] {
		p.terminate()
	}
	t.Logf("jobs cut by --max-job-time and continued: %d", workers[1].count("⏸️")+workers[2].count("⏸️")+victim.count("⏸️"))

	// Every job completed: one per inbox, none cancelled or discarded.
	if states := w.jobStates(); len(states) != 1 || states["completed"] != len(w.inboxes) {
		t.Fatalf("jobs by state: %v; want all %d completed", states, len(w.inboxes))
	}
	if n := w.count(`SELECT count(DISTINCT args->>'inbox') FROM river_job WHERE kind = 'backfill_folder' AND args->>'folder' = 'INBOX'`); n != len(w.inboxes) {
		t.Fatalf("jobs for %d inboxes' INBOX, want %d", n, len(w.inboxes))
	}
	// The killed worker's jobs were taken back by River's rescuer and
	// finished by one of the others.
	for _, id := range orphans {
		var attempt int
		var by []string
		var errs string
		if err := w.pool.QueryRow(context.Background(), `SELECT attempt, attempted_by, coalesce(errors::text, '')
			FROM river_job WHERE id = $1`, id).Scan(&attempt, &by, &errs); err != nil {
			t.Fatal(err)
		}
		last := by[len(by)-1]
		if last == victimID || (last != ids[1] && last != ids[2]) {
			t.Errorf("job %d was last run by %q (attempted by %v); want one of the surviving workers %s, %s", id, last, by, ids[1], ids[2])
		}
		if attempt < 2 || !strings.Contains(errs, "rescued") {
			t.Errorf("job %d: attempt %d, errors %s; want a second attempt after River's rescuer took it back", id, attempt, errs)
		}
	}

	// Every message of every inbox stored exactly once.
	stored := w.rowsPerInbox()
	for name, want := range w.inboxes {
		if stored[name] != want {
			t.Errorf("inbox %s has %d rows, want %d", name, stored[name], want)
		}
	}
	if len(stored) != len(w.inboxes) {
		t.Errorf("rows for %d inboxes, want %d", len(stored), len(w.inboxes))
	}
	if n := w.count(`SELECT count(*) - count(DISTINCT (inbox, imap_uidvalidity, imap_uid)) FROM email_messages`); n != 0 {
		t.Errorf("%d rows store a UID of an inbox a second time", n)
	}
	if n := w.count(`SELECT count(*) FROM email_threads t WHERE message_count <> (SELECT count(*)
		FROM email_messages m WHERE m.inbox = t.inbox AND m.thread_id = t.thread_id)`); n != 0 {
		t.Errorf("%d threads miscounted", n)
	}
}

// fleetWorld is the fleet test's world: one Dovecot with a user per inbox,
// a migrated database, and the built binary with the environment every
// process of the fleet gets.
type fleetWorld struct {
	*fixture
	srv     *dovecottest.Server
	bin     string
	names   []string       // inboxes in order
	inboxes map[string]int // name → distinct messages delivered, the rows it must end with
	urls    map[string]string
}

// fleetLarge is the size of every tenth inbox of the fleet test: more
// than a job does in a second here, so --max-job-time cuts it.
const fleetLarge = 1200

// newFleetWorld starts Dovecot with n users and delivers each a few dozen
// messages, every tenth fleetLarge. Inbox i gets the first messages of mailgen's corpus i%7, so
// inboxes share messages, Message-IDs included: dedup is per inbox.
func newFleetWorld(t *testing.T, n int) *fleetWorld {
	t.Helper()
	w := &fleetWorld{inboxes: make(map[string]int), urls: make(map[string]string)}
	users := make([]dovecottest.User, n)
	for i := range users {
		users[i] = dovecottest.User{Name: fmt.Sprintf("u%d@example.com", i+1), Password: "pw-" + strconv.Itoa(i+1)}
	}
	w.srv = dovecottest.NewServer(t, users)
	// Few attachments: a large inbox is many messages, not many bytes.
	opts := mailgen.DefaultOptions()
	opts.AttachmentRatio = 0.02
	corpora := make(map[int64][]mailgen.Mail)
	for i, u := range users {
		size := 24 + i%5*6
		if i%10 == 9 {
			size = fleetLarge
		}
		seed := int64(i % 7)
		if corpora[seed] == nil {
			corpora[seed] = opts.Generate(seed, fleetLarge)
		}
		mail := corpora[seed][:size]
		if err := w.srv.LoadMaildir(u.Name, mails(mail)); err != nil {
			t.Fatal(err)
		}
		name := "u" + strconv.Itoa(i+1)
		w.names = append(w.names, name)
		w.urls[name] = w.srv.URL(u.Name, "INBOX")
		for _, m := range mail {
			if m.DuplicateOf < 0 {
				w.inboxes[name]++
			}
		}
	}
	w.bin = buildBinary(t)

	f := &fixture{t: t, dir: t.TempDir(), dbURL: pgtest.NewDatabase(t)}
	f.connect()
	w.fixture = f
	w.environ = []string{"PATH=" + os.Getenv("PATH"), "DATABASE_URL=" + f.dbURL}
	for i, u := range users {
		w.environ = append(w.environ, "FLEET_PW_U"+strconv.Itoa(i+1)+"="+u.Password)
	}
	w.mustExec(0, "migrate")
	return w
}

// register configures every inbox, in the registry or the environment
// (see fleetRegistry).
func (w *fleetWorld) register() {
	w.t.Helper()
	for _, name := range w.names {
		pwVar := "FLEET_PW_" + strings.ToUpper(name)
		if fleetRegistry {
			w.mustExec(0, "inboxes", "add", name, w.urls[name], "--password-env", pwVar)
			continue
		}
		pw := ""
		for _, kv := range w.environ {
			if v, ok := strings.CutPrefix(kv, pwVar+"="); ok {
				pw = v
			}
		}
		w.environ = append(w.environ, inboxVar(name)+"="+w.urls[name], inboxVar(name)+"_PASSWORD="+pw)
	}
}

// enqueueArgs say which inboxes to enqueue: all registered ones, or each
// by name.
func (w *fleetWorld) enqueueArgs() []string {
	if fleetRegistry {
		return []string{"--all-inboxes"}
	}
	var args []string
	for _, name := range w.names {
		args = append(args, "--inbox", name)
	}
	return args
}

// mustExec runs the built binary to completion and fails the test unless
// it exits with want.
func (w *fleetWorld) mustExec(want int, args ...string) string {
	w.t.Helper()
	code, out := execBinary(w.t, w.bin, w.dir, w.environ, args...)
	if code != want {
		w.t.Fatalf("backfill %s: exit %d, want %d\n%s", strings.Join(args, " "), code, want, out)
	}
	return out
}

// workerID waits for a worker's start line and returns its River client id.
func (w *fleetWorld) workerID(p *watchProc) string {
	w.t.Helper()
	const prefix = "🚀 Worker "
	p.waitLines(prefix, 1)
	for _, line := range strings.Split(p.output(), "\n") {
		if rest, ok := strings.CutPrefix(line, prefix); ok {
			if id, _, ok := strings.Cut(rest, " running"); ok {
				return id
			}
		}
	}
	w.t.Fatalf("no client id in the worker's start line:\n%s", p.output())
	return ""
}

// runningOn returns the jobs the queue holds as running on the worker
// with this client id: those it took last and has not finished.
func (w *fleetWorld) runningOn(id string) []int64 {
	w.t.Helper()
	rows, err := w.pool.Query(context.Background(), `SELECT id FROM river_job WHERE kind = 'backfill_folder'
		AND state = 'running' AND attempted_by[array_upper(attempted_by, 1)] = $1 ORDER BY id`, id)
	if err != nil {
		w.t.Fatal(err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		w.t.Fatal(err)
	}
	return ids
}

// jobStates counts the fleet's jobs by state.
func (w *fleetWorld) jobStates() map[string]int {
	w.t.Helper()
	rows, err := w.pool.Query(context.Background(), `SELECT state::text, count(*) FROM river_job
		WHERE kind = 'backfill_folder' GROUP BY state`)
	if err != nil {
		w.t.Fatal(err)
	}
	states := make(map[string]int)
	var state string
	var n int
	if _, err := pgx.ForEachRow(rows, []any{&state, &n}, func() error { states[state] = n; return nil }); err != nil {
		w.t.Fatal(err)
	}
	return states
}

// rowsPerInbox counts email_messages rows by inbox.
func (w *fleetWorld) rowsPerInbox() map[string]int {
	w.t.Helper()
	rows, err := w.pool.Query(context.Background(), `SELECT inbox, count(*) FROM email_messages GROUP BY inbox`)
	if err != nil {
		w.t.Fatal(err)
	}
	stored := make(map[string]int)
	var inbox string
	var n int
	if _, err := pgx.ForEachRow(rows, []any{&inbox, &n}, func() error { stored[inbox] = n; return nil }); err != nil {
		w.t.Fatal(err)
	}
	return stored
}

// waitUntil polls until check holds; limit only bounds a test that would
// otherwise hang. On failure it shows where the jobs stand.
func (w *fleetWorld) waitUntil(what string, limit time.Duration, check func() bool) {
	w.t.Helper()
	deadline := time.Now().Add(limit)
	for !check() {
		if time.Now().After(deadline) {
			w.t.Fatalf("waited %v for %s; jobs by state: %v", limit, what, w.jobStates())
		}
		time.Sleep(10 * time.Millisecond)
	}
}
