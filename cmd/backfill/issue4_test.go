package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/myhibachi/backfill/internal/imaptest"
)

// Issue 4, errors that lose nothing: a lost COMMIT acknowledgement, a lost
// run lock, secrets in the error_logs fallback file and a missing mailbox.

// summaryCount reads a "Total <label>:" count from the closing block.
func summaryCount(t *testing.T, out, label string) int {
	t.Helper()
	m := regexp.MustCompile(`Total ` + label + `:\s+(\d+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("output has no Total %s line:\n%s", label, out)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// commitAck is PostgreSQL's CommandComplete message for a COMMIT.
var commitAck = []byte("C\x00\x00\x00\x0bCOMMIT\x00")

// commitCutter is a TCP proxy to PostgreSQL that, once, resets the
// connection instead of forwarding a COMMIT acknowledgement: the transaction
// committed and the client never hears so. It needs plaintext (sslmode=disable
// in the test database's URL), or it never sees a COMMIT.
type commitCutter struct {
	ln     net.Listener
	target string
	cuts   atomic.Int32
}

func startCommitCutter(t *testing.T, target string) *commitCutter {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &commitCutter{ln: ln, target: target}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.serve(c)
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return p
}

func (p *commitCutter) serve(client net.Conn) {
	defer client.Close()
	server, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	defer server.Close()
	go func() {
		io.Copy(server, client) //nolint:errcheck // ends with either side
		server.Close()
	}()
	buf := make([]byte, 64<<10)
	var tail []byte // the end of what went before, for an ack split over reads
	for {
		n, err := server.Read(buf)
		if n > 0 {
			if p.cuts.Load() == 0 {
				window := append(tail, buf[:n]...)
				if bytes.Contains(window, commitAck) && p.cuts.CompareAndSwap(0, 1) {
					client.(*net.TCPConn).SetLinger(0) //nolint:errcheck // an RST, as a dropped link
					return
				}
				tail = append([]byte(nil), window[max(0, len(window)-len(commitAck)+1):]...)
			}
			if _, werr := client.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// TestLostCommitAckCountsAsStored cuts the database connection exactly when
// the first batch's COMMIT is acknowledged: the rows are in, the client sees
// a dropped connection and retries the batch, which finds them. The summary
// must count them as synced, not skipped, and nothing may be logged.
func TestLostCommitAckCountsAsStored(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	appended := f.imap.AppendGenerated(t, 61, 120)
	f.migrate() // straight to the database: only the run goes through the proxy
	db, err := url.Parse(f.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := startCommitCutter(t, db.Host)
	f.environ = append(f.environ, "DATABASE_URL="+withHost(t, f.dbURL, proxy.ln.Addr().String()))

	out := f.mustRun(0, "--inbox", "demo", "--workers", "2", "--batch-size", "30")
	if proxy.cuts.Load() != 1 {
		t.Fatalf("no COMMIT acknowledgement was cut: the test proves nothing\n%s", out)
	}
	if !strings.Contains(out, "🔁 store batch failed") {
		t.Fatalf("the cut batch was not retried\n%s", out)
	}
	unique := uniqueMails(appended)
	if n := f.count(`SELECT count(*) FROM email_messages`); n != unique {
		t.Fatalf("email_messages has %d rows, want %d\n%s", n, unique, out)
	}
	checkStoredOnce(f)
	if got := summaryCount(t, out, "synced"); got != unique {
		t.Fatalf("Total synced: %d, want %d: a batch whose COMMIT acknowledgement was lost counted as skipped\n%s", got, unique, out)
	}
	if got, want := summaryCount(t, out, "skipped"), len(appended)-unique; got != want {
		t.Fatalf("Total skipped: %d, want %d (the mailbox's redelivered copies)\n%s", got, want, out)
	}
	if n := f.count(`SELECT count(*) FROM error_logs WHERE severity <> 'warning'`); n != 0 {
		t.Fatalf("error_logs has %d errors after exit 0\n%s", n, out)
	}
}

// TestRunLockLostMidRunExits2 kills the database session holding a run's
// lock while another session waits for that lock, so the other one gets it
// first. The run must notice within seconds and stop: exit 2, the reason
// said, logged as critical, and the run recorded as aborted.
func TestRunLockLostMidRunExits2(t *testing.T) {
	t.Parallel()
	fetching := make(chan struct{}, 1)
	unblock := make(chan struct{})
	defer close(unblock)
	// FETCH answers wait, so the run is still going when its lock is lost.
	f := newFixture(t, imaptest.WithFetchHook(func(int) error {
		select {
		case fetching <- struct{}{}:
		default:
		}
		select {
		case <-unblock:
		case <-time.After(time.Minute):
		}
		return nil
	}))
	f.imap.AppendGenerated(t, 67, 20)
	f.migrate()
	type result struct {
		code int
		out  string
	}
	done := make(chan result, 1)
	start := time.Now()
	go func() {
		code, out := f.run("--inbox", "demo", "--workers", "1")
		done <- result{code, out}
	}()
	select {
	case <-fetching:
	case r := <-done:
		t.Fatalf("the run ended before fetching: exit %d\n%s", r.code, r.out)
	case <-time.After(30 * time.Second):
		t.Fatal("the run never fetched")
	}

	ctx := context.Background()
	const key = `hashtextextended('backfill:demo', 0)`
	var holder int32
	if err := f.pool.QueryRow(ctx, `SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted
		AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
		AND ((classid::bigint << 32) | objid::bigint) = `+key).Scan(&holder); err != nil {
		t.Fatalf("find the run lock's session: %v", err)
	}
	// Another session queues on the lock before the holder dies, so it wins
	// the race with the run's attempt to take the lock back.
	other, err := f.pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Release()
	granted := make(chan error, 1)
	go func() {
		_, err := other.Exec(ctx, `SELECT pg_advisory_lock(`+key+`)`)
		granted <- err
	}()
	for f.count(`SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND pid = $1`,
		int32(other.Conn().PgConn().PID())) == 0 {
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := f.pool.Exec(ctx, `SELECT pg_terminate_backend($1)`, holder); err != nil {
		t.Fatal(err)
	}
	if err := <-granted; err != nil {
		t.Fatal(err)
	}
	defer other.Exec(ctx, `SELECT pg_advisory_unlock_all()`) //nolint:errcheck // the database is dropped anyway

	var r result
	select {
	case r = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the run went on for 30 s after losing its lock")
	}
	t.Logf("the run stopped %s after it started", time.Since(start).Round(time.Millisecond))
	if r.code != 2 {
		t.Fatalf("exit %d after losing the run lock, want 2\n%s", r.code, r.out)
	}
	f.wantLine(r.out, "🛑 BACKFILL ABORTED: lost the run lock for this inbox")
	if n := f.count(`SELECT count(*) FROM error_logs WHERE error_type = 'lock_lost' AND severity = 'critical'`); n != 1 {
		t.Fatalf("error_logs has %d critical lock_lost rows, want 1\n%s", n, r.out)
	}
	if n := f.count(`SELECT count(*) FROM email_sync_status WHERE inbox = 'demo' AND last_status = 'aborted'`); n != 1 {
		t.Fatalf("email_sync_status does not say the run was aborted\n%s", r.out)
	}
}

// TestFallbackFileHoldsNoPassword refuses every error_logs row, so a refused
// login is recorded in the JSON-lines fallback file: the file must hold the
// failure but not the password, and the closing block must name it.
func TestFallbackFileHoldsNoPassword(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.imap.AppendGenerated(t, 71, 3)
	f.migrate()
	// NOT VALID: the table is empty anyway; every new row is refused.
	if _, err := f.pool.Exec(context.Background(),
		`ALTER TABLE error_logs ADD CONSTRAINT refuse_every_row CHECK (false) NOT VALID`); err != nil {
		t.Fatal(err)
	}
	const wrong = "hunter2-Wrong-Password"
	f.environ = append(f.environ, "BACKFILL_INBOX_DEMO_PASSWORD="+wrong)
	out := f.mustRun(2, "--inbox", "demo")
	if strings.Contains(out, wrong) || strings.Contains(out, f.imap.Password) {
		t.Fatalf("output shows a password:\n%s", out)
	}
	files, err := filepath.Glob(filepath.Join(f.dir, "backfill-errors-*.jsonl"))
	if err != nil || len(files) != 1 {
		t.Fatalf("fallback files %v (%v), want one\n%s", files, err, out)
	}
	f.wantLine(out, "⚠️  error_logs could not be written; entries saved to "+files[0])
	data, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(data, []byte(`"error_type":"login_failed"`)) || !bytes.Contains(data, []byte(`"severity":"critical"`)) {
		t.Fatalf("fallback file lacks the critical login_failed entry:\n%s", data)
	}
	if bytes.Contains(data, []byte(wrong)) || bytes.Contains(data, []byte(f.imap.Password)) {
		t.Fatalf("fallback file holds a password:\n%s", data)
	}
	if fi, err := os.Stat(files[0]); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("fallback file mode %v (%v), want 0600: it names the mailbox's messages", fi.Mode().Perm(), err)
	}
	if n := f.count(`SELECT count(*) FROM error_logs`); n != 0 {
		t.Fatalf("error_logs took %d rows although every row is refused", n)
	}
}

// TestMissingMailboxExits2 points the inbox at a mailbox the server does not
// have: no retrying, exit 2 at once, the mailbox named, a critical
// error_logs row and the run recorded as aborted.
func TestMissingMailboxExits2(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.imap.AppendGenerated(t, 73, 3)
	f.migrate()
	f.environ = append(f.environ, "BACKFILL_INBOX_DEMO="+f.imap.URL("No-Such-Folder"))
	out := f.mustRun(2, "--inbox", "demo")
	f.wantLine(out, `🛑 BACKFILL ABORTED: select mailbox "No-Such-Folder"`)
	// Retried as transient, it would log in again for firstConnectFor
	// (30 s): counted, not timed, so that a slow machine cannot pass for a
	// retry.
	if strings.Contains(out, "🔁") || f.imap.Logins() != 1 {
		t.Fatalf("a missing mailbox was retried (%d logins):\n%s", f.imap.Logins(), out)
	}
	if n := f.count(`SELECT count(*) FROM error_logs WHERE severity = 'critical' AND error_type = 'mailbox_missing'
		AND error_message LIKE '%No-Such-Folder%'`); n != 1 {
		t.Fatalf("error_logs has %d critical mailbox_missing rows naming the mailbox, want 1\n%s", n, out)
	}
	if n := f.count(`SELECT count(*) FROM email_sync_status WHERE inbox = 'demo' AND last_status = 'aborted'`); n != 1 {
		t.Fatalf("email_sync_status does not say the run was aborted\n%s", out)
	}
	if f.imap.Fetches() != 0 {
		t.Fatal("fetched mail although the mailbox is missing")
	}
}
