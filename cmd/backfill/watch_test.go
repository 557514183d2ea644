package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/myhibachi/backfill/internal/dovecottest"
	"github.com/myhibachi/backfill/internal/mailgen"
	"github.com/myhibachi/backfill/internal/pgtest"
)

// watchProc is `backfill watch` running in the background, its output
// collected line by line.
type watchProc struct {
	t    testing.TB
	cmd  *exec.Cmd
	done chan struct{} // closed once the output has ended and the process exited

	mu    sync.Mutex
	lines []string
	code  int
}

// startWatch starts the built binary with args; it is stopped (SIGKILL)
// when the test ends, if it still runs.
func startWatch(t testing.TB, bin, dir string, environ []string, args ...string) *watchProc {
	t.Helper()
	return startProc(t, bin, dir, environ, append([]string{"watch"}, args...)...)
}

// startProc runs backfill with args as a process of its own (watch,
// worker), its output collected line by line.
func startProc(t testing.TB, bin, dir string, environ []string, args ...string) *watchProc {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir, cmd.Env = dir, environ
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &watchProc{t: t, cmd: cmd, done: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			p.mu.Lock()
			p.lines = append(p.lines, sc.Text())
			p.mu.Unlock()
		}
		_ = cmd.Wait() // the exit code is the answer
		p.mu.Lock()
		p.code = cmd.ProcessState.ExitCode()
		p.mu.Unlock()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() || testing.Verbose() {
			t.Logf("backfill %s output:\n%s", args[0], p.output())
		}
	})
	return p
}

func (p *watchProc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.lines, "\n")
}

// count is how many output lines start with prefix.
func (p *watchProc) count(prefix string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, l := range p.lines {
		if strings.HasPrefix(l, prefix) {
			n++
		}
	}
	return n
}

// waitLines waits until n lines start with prefix. The deadline only
// bounds a test that would otherwise hang: it asserts nothing about speed.
func (p *watchProc) waitLines(prefix string, n int) {
	p.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for p.count(prefix) < n {
		select {
		case <-p.done:
			p.t.Fatalf("watch exited before printing %d lines starting %q", n, prefix)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("no %d lines starting %q within a minute", n, prefix)
		}
	}
}

// stop sends sig and returns the exit code.
func (p *watchProc) stop(sig syscall.Signal) int {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatal(err)
	}
	select {
	case <-p.done:
	case <-time.After(60 * time.Second):
		p.t.Fatal("watch did not exit within a minute of the signal")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.code
}

// terminate stops watch with SIGTERM, as systemd does, and fails the
// test unless it exits 143 (interrupted, what was in flight committed).
func (p *watchProc) terminate() {
	p.t.Helper()
	if code := p.stop(syscall.SIGTERM); code != 143 {
		p.t.Fatalf("exit %d after SIGTERM, want 143", code)
	}
}

// eventually polls the database until check holds. Its deadline bounds a
// test that would otherwise hang; it is no speed assertion.
func (f *fixture) eventually(what string, check func() bool) {
	f.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !check() {
		if time.Now().After(deadline) {
			f.t.Fatalf("%s: not seen within a minute", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// liveMail is a small message delivered while watch runs.
func liveMail(id string) []byte {
	return []byte(fmt.Sprintf("From: Alice <alice@example.com>\r\nTo: cs@myhibachichef.com\r\n"+
		"Subject: Live message %s\r\nDate: Tue, 01 Dec 2026 10:00:00 +0000\r\nMessage-ID: <%s@example.com>\r\n"+
		"\r\nHello from %s.\r\n", id, id, id))
}

// dovecotWatch is a Dovecot with a loaded INBOX, a migrated database and
// the environment to watch it with.
type dovecotWatch struct {
	*fixture
	srv     *dovecottest.Server
	cluster *pgtest.Cluster // the test's own, when it restarts PostgreSQL
	user    string
	bin     string
	environ []string
	corpus  []mailgen.Mail // loaded into INBOX
	unique  int            // messages loaded, duplicates left out
}

// watchSetup says what a watch test needs beyond the defaults.
type watchSetup struct {
	ownCluster bool // a PostgreSQL of the test's own, to stop and restart
	dovecot    []dovecottest.Option
	// other adds a second account, inbox "other", with an empty INBOX.
	other bool
}

// otherUser is the second account of watchSetup.other.
const otherUser = "payments@myhibachichef.com"

func newDovecotWatch(t testing.TB, n int, setup watchSetup) *dovecotWatch {
	t.Helper()
	user := dovecottest.User{Name: "cs@myhibachichef.com", Password: "dovecot-pw"}
	users := []dovecottest.User{user}
	if setup.other {
		users = append(users, dovecottest.User{Name: otherUser, Password: "other-pw"})
	}
	srv := dovecottest.NewServer(t, users, setup.dovecot...)
	corpus := mailgen.Generate(41, n)
	if err := srv.LoadMaildir(user.Name, mails(corpus)); err != nil {
		t.Fatal(err)
	}
	w := &dovecotWatch{srv: srv, user: user.Name, bin: buildBinary(t), corpus: corpus}
	f := &fixture{t: t, dir: t.TempDir()}
	if setup.ownCluster {
		w.cluster = pgtest.NewCluster(t)
		f.dbURL = w.cluster.DSN("postgres")
	} else {
		f.dbURL = pgtest.NewDatabase(t)
	}
	f.connect()
	w.fixture = f
	for _, m := range corpus {
		if m.DuplicateOf < 0 {
			w.unique++
		}
	}
	w.environ = []string{"PATH=" + os.Getenv("PATH"), "DATABASE_URL=" + w.dbURL,
		"BACKFILL_INBOX_DEMO=" + srv.URL(user.Name, "INBOX"), "BACKFILL_INBOX_DEMO_PASSWORD=" + user.Password}
	if setup.other {
		w.environ = append(w.environ, "BACKFILL_INBOX_OTHER="+srv.URL(otherUser, "INBOX"), "BACKFILL_INBOX_OTHER_PASSWORD=other-pw")
	}
	f.environ = w.environ
	w.migrate()
	return w
}

func (w *dovecotWatch) start(args ...string) *watchProc {
	w.t.Helper()
	return startWatch(w.t, w.bin, w.dir, w.environ,
		append([]string{"--inbox", "demo", "--max-backoff", "500ms"}, args...)...)
}

// rowCount counts the rows of a Message-ID made by liveMail.
func (w *dovecotWatch) rowCount(id string, cond string) int {
	return w.count(`SELECT count(*) FROM email_messages WHERE inbox = 'demo' AND message_id = $1 AND `+cond, id+"@example.com")
}

// TestWatchFollowsDovecot runs `backfill watch` against Dovecot, as the
// issue's "done when" says: it backfills, stores mail delivered while it
// runs, follows a flag change and an expunge (deleted_at, the row kept),
// and exits 143 on SIGTERM.
func TestWatchFollowsDovecot(t *testing.T) {
	t.Parallel()
	w := newDovecotWatch(t, 30, watchSetup{})
	p := w.start()
	p.waitLines("👀 demo/INBOX: following (IDLE, CONDSTORE)", 1)
	if n := w.count(`SELECT count(*) FROM email_messages`); n != w.unique {
		t.Fatalf("after the backfill email_messages has %d rows, want %d", n, w.unique)
	}

	w.followScenario("live-1")

	p.terminate()
	if !strings.Contains(p.output(), "⏹️  WATCH STOPPED") {
		t.Fatal("no line says watch stopped")
	}
	if n := w.count(`SELECT count(*) FROM email_messages`); n != w.unique+1 {
		t.Fatalf("email_messages has %d rows after SIGTERM, want %d (rows are never deleted)", n, w.unique+1)
	}
}

// followScenario delivers a message, flags it and expunges it, and waits
// for each to be reflected in the database.
func (w *dovecotWatch) followScenario(id string) {
	t := w.t
	t.Helper()
	if err := w.srv.Deliver(w.user, "INBOX", liveMail(id)); err != nil {
		t.Fatal(err)
	}
	w.eventually("the delivered message stored", func() bool { return w.rowCount(id, "true") == 1 })
	var uid uint32
	if err := w.pool.QueryRow(context.Background(), `SELECT imap_uid FROM email_messages WHERE message_id = $1`, id+"@example.com").Scan(&uid); err != nil {
		t.Fatal(err)
	}
	if n := w.rowCount(id, "NOT is_read AND NOT is_starred AND labels = '{}' AND deleted_at IS NULL"); n != 1 {
		t.Fatal("the delivered message was stored read, starred, labelled or deleted")
	}

	if err := w.srv.AddFlags(w.user, "INBOX", uid, `\Seen`, `\Flagged`, "$Work"); err != nil {
		t.Fatal(err)
	}
	w.eventually("the flag change recorded", func() bool {
		return w.rowCount(id, `is_read AND is_starred AND labels = '{$Work}'`) == 1
	})

	if err := w.srv.Expunge(w.user, "INBOX", uid); err != nil {
		t.Fatal(err)
	}
	w.eventually("the expunge recorded", func() bool { return w.rowCount(id, "deleted_at IS NOT NULL") == 1 })
	if n := w.count(`SELECT count(*) FROM email_messages WHERE deleted_at IS NOT NULL`); n != 1 {
		t.Fatalf("%d rows marked deleted, want only the expunged one", n)
	}
}

// TestWatchPollsWithoutIdle follows a Dovecot that offers neither IDLE nor
// CONDSTORE: new mail is found by polling, flags by comparing them all,
// expunges by comparing UIDs.
func TestWatchPollsWithoutIdle(t *testing.T) {
	t.Parallel()
	w := newDovecotWatch(t, 20, watchSetup{dovecot: []dovecottest.Option{
		dovecottest.WithConfig("imap_capability = IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE LITERAL+ UIDPLUS\n")}})
	p := w.start("--poll", "200ms")
	p.waitLines("👀 demo/INBOX: following (polling)", 1)
	w.followScenario("polled-1")
	if code := p.stop(syscall.SIGINT); code != 130 {
		t.Fatalf("exit %d after SIGINT, want 130", code)
	}
}

// TestWatchSurvivesRestarts restarts Dovecot, then stops PostgreSQL while
// mail arrives and starts it again: watch stays up, reconnects, logs what
// happened, and stores every message once the servers are back.
func TestWatchSurvivesRestarts(t *testing.T) {
	t.Parallel()
	w := newDovecotWatch(t, 20, watchSetup{ownCluster: true})
	p := w.start()
	p.waitLines("👀 demo/INBOX: following", 1)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	if err := w.srv.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if err := w.srv.Deliver(w.user, "INBOX", liveMail("after-imap-restart")); err != nil {
		t.Fatal(err)
	}
	w.eventually("mail delivered after Dovecot's restart stored", func() bool { return w.rowCount("after-imap-restart", "true") == 1 })
	p.waitLines("👀 demo/INBOX: following", 2)
	if n := w.count(`SELECT count(*) FROM error_logs WHERE error_type LIKE 'watch_%' AND context->>'folder' = 'INBOX'`); n == 0 {
		t.Fatal("the lost IMAP connection is not in error_logs")
	}

	failed := p.count("⚠️  demo/INBOX:")
	if err := w.cluster.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := w.srv.Deliver(w.user, "INBOX", liveMail("during-db-outage")); err != nil {
		t.Fatal(err)
	}
	// Watch tries to store it, fails, and says so; then the database comes back.
	p.waitLines("⚠️  demo/INBOX:", failed+2)
	if err := w.cluster.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	w.eventually("mail delivered during the outage stored", func() bool { return w.rowCount("during-db-outage", "true") == 1 })
	if err := w.srv.Deliver(w.user, "INBOX", liveMail("after-db-restart")); err != nil {
		t.Fatal(err)
	}
	w.eventually("mail delivered after the outage stored", func() bool { return w.rowCount("after-db-restart", "true") == 1 })

	p.terminate()
	if n := w.count(`SELECT count(*) FROM email_messages`); n != w.unique+3 {
		t.Fatalf("email_messages has %d rows, want %d", n, w.unique+3)
	}
}

// TestOneShotBesideWatch runs one-shot backfills while watch follows the
// same inbox and mail keeps arriving: the run lock lets one of them write
// at a time (a one-shot finding watch at work exits 2 saying so, watch
// waits for a one-shot), nothing is stored twice or missed, and after
// SIGTERM a one-shot run finds nothing left to download.
func TestOneShotBesideWatch(t *testing.T) {
	t.Parallel()
	w := newDovecotWatch(t, 20, watchSetup{})
	p := w.start()
	p.waitLines("👀 demo/INBOX: following", 1)
	// Every insert takes a while, so that runs hold the lock long enough
	// to meet: otherwise watch stores each message before a one-shot
	// starts, and the two never overlap.
	w.mustExec(`CREATE FUNCTION slow_insert() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN PERFORM pg_sleep(0.2); RETURN NULL; END $$;
		CREATE TRIGGER slow_insert AFTER INSERT ON email_messages FOR EACH STATEMENT EXECUTE FUNCTION slow_insert();`)
	const rounds, perRound = 3, 8
	codes := map[int]int{}
	for r := range rounds {
		type result struct {
			code int
			out  string
		}
		oneShot := make(chan result)
		go func() {
			code, out := execBinary(t, w.bin, w.dir, w.environ, "--inbox", "demo", "--batch-size", "1", "--workers", "1")
			oneShot <- result{code, out}
		}()
		for i := range perRound {
			if err := w.srv.Deliver(w.user, "INBOX", liveMail(fmt.Sprintf("r%d-m%d", r, i))); err != nil {
				t.Fatal(err)
			}
		}
		res := <-oneShot
		codes[res.code]++
		if res.code != 0 && (res.code != 2 || !strings.Contains(res.out, "another backfill is already running for this inbox")) {
			t.Fatalf("one-shot beside watch: exit %d\n%s", res.code, res.out)
		}
	}
	waited := p.count("⏳ demo/INBOX: another backfill is already running")
	t.Logf("one-shot exit codes beside watch: %v; watch waited %d times", codes, waited)
	if codes[2] == 0 && waited == 0 {
		t.Fatal("watch and the one-shot runs never met: the test proves little")
	}
	want := w.unique + rounds*perRound
	w.eventually("every delivered message stored", func() bool { return w.count(`SELECT count(*) FROM email_messages`) == want })
	if n := w.count(`SELECT count(*) FROM email_sync_uids`); n != want {
		t.Fatalf("email_sync_uids has %d UIDs, want %d: one settled twice or not at all", n, want)
	}
	if n := w.count(`SELECT count(*) FROM email_threads t WHERE message_count <> (SELECT count(*) FROM email_messages m
		WHERE m.inbox = t.inbox AND m.thread_id = t.thread_id)`); n != 0 {
		t.Fatalf("%d threads miscounted", n)
	}
	p.terminate()
	out := w.mustRun(0, "--inbox", "demo")
	w.wantLine(out, "Downloaded:    0 message bodies")
}

// TestWatchFollowsRenumberedFolder rebuilds the mailbox under watch, as a
// provider may: the same mail under a new UIDVALIDITY, then a new message.
// Watch re-syncs the folder as a run does: the old UIDs forgotten, every
// message settled again under the new numbering, none stored twice, none
// taken for expunged, and the new one stored.
func TestWatchFollowsRenumberedFolder(t *testing.T) {
	t.Parallel()
	w := newDovecotWatch(t, 20, watchSetup{})
	p := w.start()
	p.waitLines("👀 demo/INBOX: following", 1)
	var before int64
	if err := w.pool.QueryRow(context.Background(), `SELECT max(uidvalidity) FROM email_sync_uids`).Scan(&before); err != nil {
		t.Fatal(err)
	}
	if err := w.srv.ResetMailbox(w.user); err != nil {
		t.Fatal(err)
	}
	if err := w.srv.LoadMaildir(w.user, mails(w.corpus)); err != nil {
		t.Fatal(err)
	}
	if err := w.srv.Deliver(w.user, "INBOX", liveMail("after-renumbering")); err != nil {
		t.Fatal(err)
	}
	w.eventually("the message delivered after renumbering stored", func() bool { return w.rowCount("after-renumbering", "true") == 1 })
	w.eventually("every UID settled under the new UIDVALIDITY", func() bool {
		return w.count(`SELECT count(*) FROM email_sync_uids WHERE uidvalidity <> $1`, before) == len(w.corpus)+1
	})
	if n := w.count(`SELECT count(*) FROM email_sync_uids WHERE uidvalidity = $1`, before); n != 0 {
		t.Fatalf("%d UIDs of the old UIDVALIDITY still settled", n)
	}
	if n := w.count(`SELECT count(*) FROM email_messages`); n != w.unique+1 {
		t.Fatalf("email_messages has %d rows, want %d", n, w.unique+1)
	}
	if n := w.count(`SELECT count(*) FROM email_messages WHERE deleted_at IS NOT NULL`); n != 0 {
		t.Fatalf("%d rows marked deleted: renumbered messages taken for expunged", n)
	}
	p.terminate()
}

// TestWatchFlagsKeep runs watch with --flags keep: a flag change on the
// server leaves the stored flags alone. A marker message delivered after
// the change, stored and then expunged, shows watch has looked since.
func TestWatchFlagsKeep(t *testing.T) {
	t.Parallel()
	w := newDovecotWatch(t, 5, watchSetup{})
	p := w.start("--flags", "keep")
	p.waitLines("👀 demo/INBOX: following", 1)
	uidOf := func(id string) uint32 {
		t.Helper()
		w.eventually(id+" stored", func() bool { return w.rowCount(id, "true") == 1 })
		var uid uint32
		if err := w.pool.QueryRow(context.Background(), `SELECT imap_uid FROM email_messages WHERE message_id = $1`, id+"@example.com").Scan(&uid); err != nil {
			t.Fatal(err)
		}
		return uid
	}
	if err := w.srv.Deliver(w.user, "INBOX", liveMail("kept")); err != nil {
		t.Fatal(err)
	}
	kept := uidOf("kept")
	// The dashboard marks it read; the server says starred.
	w.mustExec(`UPDATE email_messages SET is_read = true WHERE message_id = 'kept@example.com'`)
	if err := w.srv.AddFlags(w.user, "INBOX", kept, `\Flagged`); err != nil {
		t.Fatal(err)
	}
	if err := w.srv.Deliver(w.user, "INBOX", liveMail("marker")); err != nil {
		t.Fatal(err)
	}
	if err := w.srv.Expunge(w.user, "INBOX", uidOf("marker")); err != nil {
		t.Fatal(err)
	}
	w.eventually("the marker's expunge recorded", func() bool { return w.rowCount("marker", "deleted_at IS NOT NULL") == 1 })
	if n := w.rowCount("kept", "is_read AND NOT is_starred"); n != 1 {
		t.Fatal("--flags keep: the stored flags were overwritten")
	}
	p.terminate()
}

// TestWatchSeveralInboxes watches two inboxes in one process: each is
// followed on its own and its mail stored under its own name.
func TestWatchSeveralInboxes(t *testing.T) {
	t.Parallel()
	w := newDovecotWatch(t, 5, watchSetup{other: true})
	p := w.start("--inbox", "other")
	p.waitLines("👀 demo/INBOX: following", 1)
	p.waitLines("👀 other/INBOX: following", 1)
	if err := w.srv.Deliver(w.user, "INBOX", liveMail("to-demo")); err != nil {
		t.Fatal(err)
	}
	if err := w.srv.Deliver(otherUser, "INBOX", liveMail("to-other")); err != nil {
		t.Fatal(err)
	}
	w.eventually("both deliveries stored", func() bool {
		return w.count(`SELECT count(*) FROM email_messages WHERE (inbox, message_id) IN
			(('demo', 'to-demo@example.com'), ('other', 'to-other@example.com'))`) == 2
	})
	if n := w.count(`SELECT count(*) FROM email_messages WHERE inbox = 'other'`); n != 1 {
		t.Fatalf("inbox other has %d rows, want 1", n)
	}
	p.terminate()
}

// TestWatchSIGTERMCommitsInFlight stops watch while it is storing new
// mail: the batch in flight is committed, then it exits 143.
func TestWatchSIGTERMCommitsInFlight(t *testing.T) {
	t.Parallel()
	w := newDovecotWatch(t, 5, watchSetup{})
	p := w.start()
	p.waitLines("👀 demo/INBOX: following", 1)
	w.mustExec(`CREATE FUNCTION slow_insert() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN PERFORM pg_sleep(1); RETURN NULL; END $$;
		CREATE TRIGGER slow_insert AFTER INSERT ON email_messages FOR EACH STATEMENT EXECUTE FUNCTION slow_insert();`)
	if err := w.srv.Deliver(w.user, "INBOX", liveMail("in-flight")); err != nil {
		t.Fatal(err)
	}
	// The cluster is shared by parallel tests, some with slow triggers of
	// their own: only a sleep in this test's database is this message's.
	w.eventually("watch inserting", func() bool {
		return w.count(`SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND application_name = 'backfill' AND wait_event = 'PgSleep'`) > 0
	})
	p.terminate()
	if n := w.rowCount("in-flight", "true"); n != 1 {
		t.Fatal("the message being stored when SIGTERM came was not committed")
	}
	if n := w.count(`SELECT count(*) FROM email_sync_uids`); n != len(w.corpus)+1 {
		t.Fatalf("%d UIDs settled, want %d", n, len(w.corpus)+1)
	}
}

// TestWatchIdleRefresh renews IDLE every 300 ms instead of 25 minutes:
// each renewal without news compares every message with the server, so
// a flag changed in the database alone goes back to the server's (the
// server wins), and mail delivered after many renewals is still stored.
func TestWatchIdleRefresh(t *testing.T) {
	t.Parallel()
	w := newDovecotWatch(t, 5, watchSetup{})
	p := w.start("--idle-refresh", "300ms")
	p.waitLines("👀 demo/INBOX: following (IDLE", 1)
	w.mustExec(`UPDATE email_messages SET is_starred = true`)
	w.eventually("stored flags compared with the server's at a renewal", func() bool {
		return w.count(`SELECT count(*) FROM email_messages WHERE is_starred`) == 0
	})
	time.Sleep(time.Second) // a few more renewals
	if err := w.srv.Deliver(w.user, "INBOX", liveMail("after-renewals")); err != nil {
		t.Fatal(err)
	}
	w.eventually("mail delivered after renewals stored", func() bool { return w.rowCount("after-renewals", "true") == 1 })
	p.terminate()
}

// TestWatchJSONLog runs watch with --log-format json: every line of its
// output is a JSON object naming its event, inbox and folder.
func TestWatchJSONLog(t *testing.T) {
	t.Parallel()
	w := newDovecotWatch(t, 3, watchSetup{})
	p := w.start("--log-format", "json")
	p.waitLines(`{"condstore":true,"event":"following","folder":"INBOX","idle":true,"inbox":"demo"`, 1)
	if err := w.srv.Deliver(w.user, "INBOX", liveMail("json")); err != nil {
		t.Fatal(err)
	}
	p.waitLines(`{"created":1,"event":"stored","failed":0,"folder":"INBOX","inbox":"demo"`, 1)
	p.terminate()
	for _, line := range strings.Split(p.output(), "\n") {
		var ev map[string]any
		if err := json.Unmarshal([]byte(line), &ev); err != nil || ev["event"] == nil || ev["time"] == nil {
			t.Fatalf("not a JSON event: %q (%v)", line, err)
		}
	}
}

// TestWatchSkipsKnownFailures follows a mailbox holding a message over
// --max-message-size: it fails at the backfill (logged) and at the
// session's full catch-up, but new mail after that does not download and
// log it again each time.
func TestWatchSkipsKnownFailures(t *testing.T) {
	t.Parallel()
	w := newDovecotWatch(t, 0, watchSetup{})
	big := append(liveMail("big"), []byte(strings.Repeat("x", 30000)+"\r\n")...)
	if err := w.srv.Deliver(w.user, "INBOX", big); err != nil {
		t.Fatal(err)
	}
	p := w.start("--max-message-size", "20000")
	p.waitLines("👀 demo/INBOX: following", 1)
	logged := w.count(`SELECT count(*) FROM error_logs WHERE error_type = 'oversized'`)
	if logged == 0 {
		t.Fatal("the oversized message is not in error_logs")
	}
	for i := range 3 {
		id := fmt.Sprintf("small-%d", i)
		if err := w.srv.Deliver(w.user, "INBOX", liveMail(id)); err != nil {
			t.Fatal(err)
		}
		w.eventually(id+" stored", func() bool { return w.rowCount(id, "true") == 1 })
	}
	if n := w.count(`SELECT count(*) FROM error_logs WHERE error_type = 'oversized'`); n != logged {
		t.Fatalf("the oversized message was logged %d times more while new mail arrived", n-logged)
	}
	p.terminate()
}

// TestWatchUsageAndConfigErrorsExit2 checks what stops watch before it
// follows anything: bad flags, an unknown inbox, a schema to migrate, an
// unknown folder, a refused login. Each exits 2 saying why, as a run would.
func TestWatchUsageAndConfigErrorsExit2(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"watch"}, "--inbox is required"},
		{[]string{"watch", "--inbox", "demo", "--flags", "bogus"}, `--flags "bogus"`},
		{[]string{"watch", "--inbox", "demo", "--inbox", "demo"}, "--inbox demo given twice"},
		{[]string{"watch", "--inbox", "nosuch"}, `unknown inbox "nosuch"`},
		{[]string{"watch", "--inbox", "demo"}, "run `backfill migrate`"},
	} {
		out := f.mustRun(2, c.args...)
		if !strings.Contains(out, c.want) {
			t.Errorf("backfill %s: output does not say %q:\n%s", strings.Join(c.args, " "), c.want, out)
		}
	}
	f.migrate()
	if out := f.mustRun(2, "watch", "--inbox", "demo", "--folders", "INBOX,Nosuch"); !strings.Contains(out, "Nosuch") {
		t.Errorf("an unknown folder: output does not name it:\n%s", out)
	}
	wrong := *f
	wrong.environ = append(slices.Clone(f.environ), "BACKFILL_INBOX_DEMO_PASSWORD=wrong")
	if out := wrong.mustRun(2, "watch", "--inbox", "demo"); !strings.Contains(out, "refused") {
		t.Errorf("a refused login: output does not say so:\n%s", out)
	}
}

// TestWatchFollowsFolders follows INBOX and the \Sent folder (named sent,
// as a run names it), each on its connection: mail saved into Sent is
// stored with Sent in its folders, and a message expunged from INBOX but
// kept in Sent is not marked deleted.
func TestWatchFollowsFolders(t *testing.T) {
	t.Parallel()
	w := newDovecotWatch(t, 3, watchSetup{dovecot: []dovecottest.Option{
		dovecottest.WithFolders(dovecottest.Folder{Name: "Sent Items", SpecialUse: `\Sent`})}})
	p := w.start("--folders", "INBOX,sent")
	p.waitLines("👀 demo/INBOX: following", 1)
	p.waitLines("👀 demo/Sent Items: following", 1)
	if err := w.srv.Deliver(w.user, "Sent Items", liveMail("sent-1")); err != nil {
		t.Fatal(err)
	}
	w.eventually("the message saved into Sent stored", func() bool { return w.rowCount("sent-1", `folders = '{Sent Items}'`) == 1 })

	// The same message in both folders, then gone from INBOX only.
	if err := w.srv.Deliver(w.user, "INBOX", liveMail("sent-1")); err != nil {
		t.Fatal(err)
	}
	w.eventually("INBOX added to its folders", func() bool {
		return w.rowCount("sent-1", `folders @> '{INBOX,Sent Items}'`) == 1
	})
	var uid uint32
	if err := w.pool.QueryRow(context.Background(), `SELECT uid FROM email_sync_uids WHERE folder = 'INBOX'
		AND message_id = 'sent-1@example.com'`).Scan(&uid); err != nil {
		t.Fatal(err)
	}
	if err := w.srv.Expunge(w.user, "INBOX", uid); err != nil {
		t.Fatal(err)
	}
	w.eventually("the INBOX copy forgotten", func() bool {
		return w.count(`SELECT count(*) FROM email_sync_uids WHERE folder = 'INBOX' AND message_id = 'sent-1@example.com'`) == 0
	})
	if n := w.rowCount("sent-1", "deleted_at IS NULL"); n != 1 {
		t.Fatal("a message still in Sent was marked deleted when it left INBOX")
	}
	p.terminate()
}

// TestWatchServesHealthAndMetrics runs watch with --listen and asks it
// over HTTP: /healthz is 200 while the folder is followed and 503 naming
// it once Dovecot is gone, /metrics counts what was stored and the
// connection, and the guide's emails endpoint lists the stored rows.
func TestWatchServesHealthAndMetrics(t *testing.T) {
	t.Parallel()
	w := newDovecotWatch(t, 4, watchSetup{})
	addr := freeAddr(t)
	p := w.start("--listen", addr)
	p.waitLines("👀 demo/INBOX: following", 1)
	get := func(path string) (int, string) {
		t.Helper()
		return httpGet(t, "http://"+addr+path)
	}
	if code, body := get("/healthz"); code != 200 {
		t.Fatalf("/healthz while following: %d %s", code, body)
	}
	if err := w.srv.Deliver(w.user, "INBOX", liveMail("served")); err != nil {
		t.Fatal(err)
	}
	w.eventually("the delivered message stored", func() bool { return w.rowCount("served", "true") == 1 })
	_, metrics := get("/metrics")
	for _, want := range []string{
		`backfill_connected{folder="INBOX",inbox="demo"} 1`,
		fmt.Sprintf(`backfill_messages_stored_total{folder="INBOX",inbox="demo"} %d`, w.unique+1),
	} {
		if !strings.Contains(metrics, want) {
			t.Fatalf("/metrics has no line %q:\n%s", want, metrics)
		}
	}
	code, body := get("/api/v1/admin/emails/demo?limit=2")
	var list struct{ Count int }
	if err := json.Unmarshal([]byte(body), &list); code != 200 || err != nil || list.Count != 2 {
		t.Fatalf("/api/v1/admin/emails/demo?limit=2: %d %s", code, body)
	}

	if err := w.srv.Stop(); err != nil {
		t.Fatal(err)
	}
	w.eventually("/healthz saying the folder is down", func() bool {
		code, body := get("/healthz")
		return code == 503 && strings.Contains(body, "demo/INBOX")
	})
	p.terminate()
}
