package main

import (
	"bufio"
	"bytes"
	"errors"
	"iter"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/myhibachi/backfill/internal/dovecottest"
	"github.com/myhibachi/backfill/internal/mailgen"
	"github.com/myhibachi/backfill/message"
)

// buildBinary builds cmd/backfill once per test, as a deployment would.
func buildBinary(t testing.TB) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "backfill")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// execBinary runs the built binary with env only (no inherited variables)
// and returns its exit code and combined output.
func execBinary(t testing.TB, bin, dir string, environ []string, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir, cmd.Env = dir, environ
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("run %s: %v", bin, err)
	}
	if testing.Verbose() {
		t.Logf("backfill %s → exit %d\n%s", strings.Join(args, " "), cmd.ProcessState.ExitCode(), out.String())
	}
	return cmd.ProcessState.ExitCode(), out.String()
}

// execUntil runs the built binary and calls at(cmd) once, when a line of
// its output starts with prefix (to signal it, or to break something under
// it). It returns the exit code, the output, and whether at was called.
func execUntil(t *testing.T, bin, dir string, environ []string, prefix string, at func(*exec.Cmd), args ...string) (int, string, bool) {
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
	var out strings.Builder
	called := false
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		out.WriteString(sc.Text() + "\n")
		if !called && strings.HasPrefix(sc.Text(), prefix) {
			at(cmd)
			called = true
		}
	}
	_ = cmd.Wait() // the exit code is the answer
	return cmd.ProcessState.ExitCode(), out.String(), called
}

func mails(ms []mailgen.Mail) iter.Seq2[[]byte, time.Time] {
	return func(yield func([]byte, time.Time) bool) {
		for _, m := range ms {
			if !yield(m.Raw, m.InternalDate) {
				return
			}
		}
	}
}

// TestDovecotEndToEnd runs the binary as a deployment script would, against
// Debian's Dovecot: every field of every message, a re-run that downloads
// nothing, a dry run, and a refused password, with their exit codes.
func TestDovecotEndToEnd(t *testing.T) {
	t.Parallel()
	user := dovecottest.User{Name: "cs@myhibachichef.com", Password: "dovecot-pw"}
	srv := dovecottest.NewServer(t, []dovecottest.User{user})
	corpus := mailgen.Generate(11, 1000)
	if err := srv.LoadMaildir(user.Name, mails(corpus)); err != nil {
		t.Fatal(err)
	}
	bin := buildBinary(t)
	f := newFixture(t) // for its database and its helpers; its IMAP server is unused
	dir := t.TempDir()
	// The seed's variable names, in a .env file as users have them.
	if err := os.WriteFile(filepath.Join(dir, ".env"), []byte("SMTP_PASSWORD="+user.Password+"\nDATABASE_URL="+f.dbURL+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	environ := []string{"PATH=" + os.Getenv("PATH"), "BACKFILL_INBOX_CUSTOMER_SUPPORT=" + srv.URL(user.Name, "INBOX")}
	run := func(want int, args ...string) string {
		t.Helper()
		code, out := execBinary(t, bin, dir, environ, args...)
		if code != want {
			t.Fatalf("backfill %s: exit %d, want %d\n%s", strings.Join(args, " "), code, want, out)
		}
		return out
	}

	out := run(2, "--inbox", "customer_support")
	if !strings.Contains(out, "run `backfill migrate`") {
		t.Fatalf("unmigrated database: output does not say to migrate:\n%s", out)
	}
	run(0, "migrate")
	out = run(0, "--inbox", "customer_support", "--dry-run")
	f.wantLine(out, "Would process: 1000 emails")
	if n := f.count(`SELECT count(*) FROM email_messages`); n != 0 {
		t.Fatalf("dry run stored %d rows", n)
	}

	out = run(0, "--inbox", "customer_support", "--workers", "4")
	f.wantLine(out, "📊 BACKFILL COMPLETE")
	unique := 0
	for _, m := range corpus {
		if m.DuplicateOf < 0 {
			unique++
		}
	}
	rows := f.rows()
	if len(rows) != unique {
		t.Fatalf("email_messages has %d rows, want %d", len(rows), unique)
	}
	// Find each mail's row by Message-ID (the synthetic one for mails
	// without), which holds whichever copy of a redelivered message was
	// stored, rather than assume UIDs.
	byID := map[string]int64{}
	for uid, r := range rows {
		byID[r.MessageID] = uid
	}
	uids := make([]uint32, len(corpus))
	for i, m := range corpus {
		if m.DuplicateOf >= 0 {
			continue // the same bytes: its original's row stands for both
		}
		id := m.Want.MessageID
		if id == "" {
			id = message.Parse(m.Raw, message.Meta{}).MessageID
		}
		uids[i] = uint32(byID[id])
	}
	checkCorpus(t, rows, corpus, uids)
	if n := f.count(`SELECT count(*) FROM email_threads t WHERE message_count <> (SELECT count(*) FROM email_messages m
		WHERE m.inbox = t.inbox AND m.thread_id = t.thread_id)`); n != 0 {
		t.Fatalf("%d threads disagree with email_messages", n)
	}

	before := f.snapshot()
	out = run(0, "--inbox", "customer_support")
	f.wantLine(out, "Downloaded:    0 message bodies")
	f.wantLine(out, "Total synced:  0 ✅")
	if f.snapshot() != before {
		t.Fatal("re-run changed the tables")
	}

	start := time.Now()
	wrong := append([]string{"SMTP_PASSWORD=not-" + user.Password}, environ...)
	code, out := execBinary(t, bin, dir, wrong, "--inbox", "customer_support")
	if code != 2 || !strings.Contains(out, "refused") || strings.Contains(out, "not-"+user.Password) {
		t.Fatalf("wrong password: exit %d, want 2 with no password shown\n%s", code, out)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Logf("note: a refused login took %s", d) // reported, not asserted: tests never assert on time
	}
}

// TestConnectionLimit runs more workers than Dovecot admits per user and
// address: refusals are retried or the refused workers step aside (which of
// the two depends on timing), every message is stored, exit 0, and when
// workers stepped aside the summary says how many connections the run had.
func TestConnectionLimit(t *testing.T) {
	t.Parallel()
	user := dovecottest.User{Name: "payments@myhibachichef.com", Password: "pw"}
	srv := dovecottest.NewServer(t, []dovecottest.User{user}, dovecottest.WithMaxUserIPConnections(2))
	corpus := mailgen.Generate(13, 1000)
	if err := srv.LoadMaildir(user.Name, mails(corpus)); err != nil {
		t.Fatal(err)
	}
	// Another client holds one of the two sessions, as a mail app would.
	// Dovecot counts a session once it has logged in, so connections that
	// log in at the same moment can all get through; with one slot left,
	// every connection after the run's first is refused.
	other, err := imapclient.DialInsecure(srv.Addr(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if err := other.Login(user.Name, user.Password).Wait(); err != nil {
		t.Fatal(err)
	}
	f := newFixture(t)
	f.environ = append(f.environ, "BACKFILL_INBOX_DEMO="+srv.URL(user.Name, "INBOX"), "BACKFILL_INBOX_DEMO_PASSWORD="+user.Password)
	f.migrate()
	out := f.mustRun(0, "--inbox", "demo", "--workers", "4", "--batch-size", "20")
	if !strings.Contains(out, "NO [LIMIT]") {
		t.Fatalf("output does not show the server's refusal:\n%s", out)
	}
	// Under load even the one connection Dovecot would still admit can be
	// refused while a closing one is counted, so 1 to 3 may step aside.
	if strings.Contains(out, "The server refused") {
		m := regexp.MustCompile(`The server refused ([123]) of 4 connections; the run used ([123])`).FindStringSubmatch(out)
		if m == nil || int(m[1][0]-'0')+int(m[2][0]-'0') != 4 {
			t.Fatalf("the summary's connection count is off:\n%s", out)
		}
	}
	unique := 0
	for _, m := range corpus {
		if m.DuplicateOf < 0 {
			unique++
		}
	}
	if n := f.count(`SELECT count(*) FROM email_messages`); n != unique {
		t.Fatalf("email_messages has %d rows, want %d", n, unique)
	}
}
