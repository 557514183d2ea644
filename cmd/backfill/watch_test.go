package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/myhibachi/backfill/internal/dovecottest"
	"github.com/myhibachi/backfill/internal/mailgen"
)

// watchProc is `backfill watch` running in the background, its output
// collected line by line.
type watchProc struct {
	t    *testing.T
	cmd  *exec.Cmd
	done chan struct{} // closed once the output has ended and the process exited

	mu    sync.Mutex
	lines []string
	code  int
}

// startWatch starts the built binary with args; it is stopped (SIGKILL)
// when the test ends, if it still runs.
func startWatch(t *testing.T, bin, dir string, environ []string, args ...string) *watchProc {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"watch"}, args...)...)
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
			t.Logf("backfill watch output:\n%s", p.output())
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
	user    string
	bin     string
	environ []string
	unique  int // messages loaded, duplicates left out
}

func newDovecotWatch(t *testing.T, n int) *dovecotWatch {
	t.Helper()
	user := dovecottest.User{Name: "cs@myhibachichef.com", Password: "dovecot-pw"}
	srv := dovecottest.NewServer(t, []dovecottest.User{user})
	corpus := mailgen.Generate(41, n)
	if err := srv.LoadMaildir(user.Name, mails(corpus)); err != nil {
		t.Fatal(err)
	}
	w := &dovecotWatch{fixture: newFixture(t), srv: srv, user: user.Name, bin: buildBinary(t)}
	for _, m := range corpus {
		if m.DuplicateOf < 0 {
			w.unique++
		}
	}
	w.migrate()
	w.environ = []string{"PATH=" + os.Getenv("PATH"), "DATABASE_URL=" + w.dbURL,
		"BACKFILL_INBOX_DEMO=" + srv.URL(user.Name, "INBOX"), "BACKFILL_INBOX_DEMO_PASSWORD=" + user.Password}
	return w
}


func (w *dovecotWatch) start(args ...string) *watchProc {
	w.t.Helper()
	return startWatch(w.t.(*testing.T), w.bin, w.dir, w.environ,
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
	w := newDovecotWatch(t, 30)
	p := w.start()
	p.waitLines("👀 demo/INBOX: following (IDLE, CONDSTORE)", 1)
	if n := w.count(`SELECT count(*) FROM email_messages`); n != w.unique {
		t.Fatalf("after the backfill email_messages has %d rows, want %d", n, w.unique)
	}

	if err := w.srv.Deliver(w.user, "INBOX", liveMail("live-1")); err != nil {
		t.Fatal(err)
	}
	w.eventually("the delivered message stored", func() bool { return w.rowCount("live-1", "true") == 1 })
	var uid uint32
	if err := w.pool.QueryRow(context.Background(), `SELECT imap_uid FROM email_messages WHERE message_id = 'live-1@example.com'`).Scan(&uid); err != nil {
		t.Fatal(err)
	}
	if n := w.rowCount("live-1", "NOT is_read AND NOT is_starred AND labels = '{}' AND deleted_at IS NULL"); n != 1 {
		t.Fatal("the delivered message was stored read, starred, labelled or deleted")
	}

	if err := w.srv.AddFlags(w.user, "INBOX", uid, `\Seen`, `\Flagged`, "$Work"); err != nil {
		t.Fatal(err)
	}
	w.eventually("the flag change recorded", func() bool {
		return w.rowCount("live-1", `is_read AND is_starred AND labels = '{$Work}'`) == 1
	})

	if err := w.srv.Expunge(w.user, "INBOX", uid); err != nil {
		t.Fatal(err)
	}
	w.eventually("the expunge recorded", func() bool { return w.rowCount("live-1", "deleted_at IS NOT NULL") == 1 })
	if n := w.count(`SELECT count(*) FROM email_messages WHERE deleted_at IS NOT NULL`); n != 1 {
		t.Fatalf("%d rows marked deleted, want only the expunged one", n)
	}

	if code := p.stop(syscall.SIGTERM); code != 143 {
		t.Fatalf("exit %d after SIGTERM, want 143", code)
	}
	if !strings.Contains(p.output(), "⏹️  WATCH STOPPED") {
		t.Fatal("no line says watch stopped")
	}
	if n := w.count(`SELECT count(*) FROM email_messages`); n != w.unique+1 {
		t.Fatalf("email_messages has %d rows after SIGTERM, want %d (rows are never deleted)", n, w.unique+1)
	}
}
