package main

import (
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/myhibachi/backfill/internal/dovecottest"
	"github.com/myhibachi/backfill/internal/faultproxy"
	"github.com/myhibachi/backfill/internal/imaptest"
	"github.com/myhibachi/backfill/internal/mailgen"
)

// These tests put a faultproxy between backfill and one of its servers and
// check what a user would: the exit code, the rows, the thread counts and
// error_logs.

// TestIMAPResetsEveryOtherConnection cuts every other IMAP connection a few
// megabytes into what Dovecot sends, mid-FETCH and usually mid-literal, while
// four workers fetch. Every message must still be stored once with every
// field right (a truncated body must never be stored), and a failure, if any,
// must be in error_logs with its UID; a re-run straight to Dovecot then
// finishes the job without storing anything twice.
func TestIMAPResetsEveryOtherConnection(t *testing.T) {
	t.Parallel()
	user := dovecottest.User{Name: "cs@myhibachichef.com", Password: "dovecot-pw"}
	srv := dovecottest.NewServer(t, []dovecottest.User{user})
	corpus := mailgen.Generate(41, 1500)
	if err := srv.LoadMaildir(user.Name, mails(corpus)); err != nil {
		t.Fatal(err)
	}
	// 250 KB is about half of what a 100-message batch transfers with
	// attachments left on the server: each even connection dies during its
	// first batch, which its worker must resume elsewhere.
	proxy := faultproxy.Start(t, srv.Addr(), faultproxy.ResetAfter(250_000, faultproxy.EveryOther))
	bin := buildBinary(t)
	f := newFixture(t) // for its database and its helpers; its IMAP server is unused
	f.migrate()
	environ := func(inboxURL string) []string {
		return []string{"PATH=" + os.Getenv("PATH"), "DATABASE_URL=" + f.dbURL,
			"BACKFILL_INBOX_DEMO=" + inboxURL, "BACKFILL_INBOX_DEMO_PASSWORD=" + user.Password}
	}
	direct := srv.URL(user.Name, "INBOX")

	code, out := execBinary(t, bin, f.dir, environ(withHost(t, direct, proxy.Addr())), "--inbox", "demo", "--workers", "4")
	if code != 0 && code != 1 {
		t.Fatalf("through a proxy resetting every other connection: exit %d, want 0 or 1\n%s", code, out)
	}
	if s := proxy.Stats(); s.Resets == 0 {
		t.Fatalf("the proxy reset no connection (%+v): the test proves nothing", s)
	}
	// The cuts fall mid-FETCH: each is a fetch that failed and was resumed.
	resumed := f.count(`SELECT count(*) FROM error_logs WHERE error_type = 'fetch_retried'`)
	t.Logf("exit %d; proxy %+v; %d fetches resumed", code, proxy.Stats(), resumed)
	if resumed == 0 || !strings.Contains(out, "🔁 IMAP fetch failed") {
		t.Fatalf("%d fetches resumed after %d resets: no batch failed and was retried\n%s", resumed, proxy.Stats().Resets, out)
	}

	unique := 0
	for _, m := range corpus {
		if m.DuplicateOf < 0 {
			unique++
		}
	}
	checkStoredOnce(f)
	failed := totalErrors(t, out)
	if code == 0 {
		if n := f.count(`SELECT count(*) FROM email_messages`); n != unique || failed != 0 {
			t.Fatalf("exit 0 with %d rows and %d errors, want %d rows\n%s", n, failed, unique, out)
		}
	} else {
		// Exit 1 means some messages failed: each must be in error_logs
		// with its UID, and no other message may be missing.
		if n := f.count(`SELECT count(*) FROM error_logs WHERE severity = 'error' AND imap_uid IS NULL`); n != 0 {
			t.Fatalf("%d error_logs rows without a UID\n%s", n, out)
		}
		logged := f.count(`SELECT count(DISTINCT imap_uid) FROM error_logs WHERE severity = 'error'`)
		if failed == 0 || logged != failed {
			t.Fatalf("exit 1 with %d errors in the summary and %d failed UIDs in error_logs\n%s", failed, logged, out)
		}
		if n := f.count(`SELECT count(*) FROM email_messages`); n+failed < unique {
			t.Fatalf("%d rows and %d failures account for fewer than %d messages\n%s", n, failed, unique, out)
		}
	}

	// A re-run on a clean path exits 0 and stores what failed, if anything,
	// and nothing twice.
	before := f.snapshot()
	out = f.runBinary(bin, environ(direct), 0, "--inbox", "demo")
	if code == 0 {
		f.wantLine(out, "Downloaded:    0 message bodies")
		f.wantLine(out, "Total synced:  0 ✅")
		if f.snapshot() != before {
			t.Fatal("the re-run changed the tables")
		}
	}
	checkStoredOnce(f)
	rows := f.rows()
	if len(rows) != unique {
		t.Fatalf("after the re-run email_messages has %d rows, want %d", len(rows), unique)
	}
	// In a fresh Maildir, Dovecot numbers messages in load order from 1.
	uids := make([]uint32, len(corpus))
	for i := range corpus {
		uids[i] = uint32(i + 1)
	}
	checkCorpus(t, rows, corpus, uids)
}

// TestPostgresConnectionDropsMidRun resets database connections while a
// batch is on the wire: the failed transaction is retried on a new
// connection, and every message is stored exactly once with threads counted
// once, exit 0. The cuts are placed in the batches' traffic: the statements
// that record the run's start and result are not retried, and a cut in
// them ends the run with exit 2.
func TestPostgresConnectionDropsMidRun(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		rule   faultproxy.Rule
		resets int
	}{
		// A 50-message batch's COPY is about 120 KB (bodies as text,
		// attachments as metadata), and nothing else the run sends comes
		// near: the first two connections to send 50 KB are cut mid-COPY.
		// Connection 1 holds the run lock and is left alone. Which of the
		// pool's connections carry the batches depends on timing, hence
		// From and Times rather than connection numbers.
		{"mid-COPY", faultproxy.ResetAfter(50_000, faultproxy.From(2)).In(faultproxy.ClientToServer).Times(2), 2},
		// The server's answers are small: about 600 bytes to start a
		// session, record the run's start and read the synced UIDs, then a
		// few hundred per batch (RETURNING ords, command tags). The first
		// connection to receive 1.5 KB is cut inside a batch's lookup or
		// transaction, sometimes after a COMMIT it never hears about.
		{"mid-answer", faultproxy.ResetAfter(1_500, faultproxy.From(2)).Times(1), 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			appended := f.imap.AppendGenerated(t, 43, 400)
			f.migrate() // straight to the database: only the run goes through the proxy
			db, err := url.Parse(f.dbURL)
			if err != nil {
				t.Fatal(err)
			}
			proxy := faultproxy.Start(t, db.Host, tc.rule)
			f.environ = append(f.environ, "DATABASE_URL="+withHost(t, f.dbURL, proxy.Addr()))

			out := f.mustRun(0, "--inbox", "demo", "--workers", "2", "--batch-size", "50")
			if s := proxy.Stats(); s.Resets != tc.resets {
				t.Fatalf("the proxy reset %d connections (%+v), want %d\n%s", s.Resets, s, tc.resets, out)
			}
			unique := uniqueMails(appended)
			if n := f.count(`SELECT count(*) FROM email_messages`); n != unique {
				t.Fatalf("email_messages has %d rows, want %d\n%s", n, unique, out)
			}
			checkStoredOnce(f)
			// A cut after a COMMIT took effect must not turn the batch's
			// rows into "already exists" when it is retried.
			if got := summaryCount(t, out, "synced"); got != unique {
				t.Fatalf("Total synced: %d, want %d\n%s", got, unique, out)
			}
			if got, want := summaryCount(t, out, "skipped"), len(appended)-unique; got != want {
				t.Fatalf("Total skipped: %d, want %d (the mailbox's redelivered copies)\n%s", got, want, out)
			}
			if n := f.count(`SELECT coalesce(sum(message_count), 0)::int FROM email_threads`); n != unique {
				t.Fatalf("email_threads counts %d messages, want %d\n%s", n, unique, out)
			}
			if n := f.count(`SELECT count(*) FROM error_logs WHERE severity <> 'warning'`); n != 0 {
				t.Fatalf("error_logs has %d errors after exit 0\n%s", n, out)
			}
		})
	}
}

// TestIMAPStallMidFetch holds what the IMAP server sends for a few seconds
// in the middle of a FETCH, on the first two connections, as a congested
// link does: with the default timeouts the run waits it out and completes.
func TestIMAPStallMidFetch(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	appended := f.imap.AppendGenerated(t, 47, 200)
	f.migrate()
	const hold = 3 * time.Second
	proxy := faultproxy.Start(t, f.imap.Addr(), faultproxy.Stall(200_000, hold, faultproxy.First(2)))
	f.environ = append(f.environ, "BACKFILL_INBOX_DEMO="+withHost(t, f.imap.URL(imaptest.Inbox), proxy.Addr()))

	out := f.mustRun(0, "--inbox", "demo", "--workers", "2", "--batch-size", "50")
	// A connection is stalled 200 KB into what it carries, mid-FETCH (the
	// two carry 750 KB). The run must wait the stall out on the
	// connections it has, not drop one and dial another.
	s := proxy.Stats()
	if s.Stalls == 0 {
		t.Fatalf("no connection was stalled (%+v): the test proves nothing\n%s", s, out)
	}
	if s.Connections != 2 {
		t.Fatalf("the run made %d connections through the proxy, want its 2: a stalled one was dropped\n%s", s.Connections, out)
	}
	unique := uniqueMails(appended)
	if n := f.count(`SELECT count(*) FROM email_messages`); n != unique {
		t.Fatalf("email_messages has %d rows, want %d\n%s", n, unique, out)
	}
	// Waited out, not cut short: nothing was retried.
	if n := f.count(`SELECT count(*) FROM error_logs`); n != 0 {
		t.Fatalf("error_logs has %d rows after a stall shorter than any timeout\n%s", n, out)
	}
}

// TestIMAPRefusedConnectionsAreRetried refuses the run's first connection
// and a worker's: both are dialled again and the run completes, exit 0.
func TestIMAPRefusedConnectionsAreRetried(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	appended := f.imap.AppendGenerated(t, 53, 100)
	f.migrate()
	proxy := faultproxy.Start(t, f.imap.Addr(), faultproxy.RefuseConnections(faultproxy.Only(1, 3)))
	f.environ = append(f.environ, "BACKFILL_INBOX_DEMO="+withHost(t, f.imap.URL(imaptest.Inbox), proxy.Addr()))

	out := f.mustRun(0, "--inbox", "demo", "--workers", "2", "--batch-size", "25")
	if s := proxy.Stats(); s.Refused != 2 {
		t.Fatalf("the proxy refused %d connections (%+v), want 2\n%s", s.Refused, s, out)
	}
	unique := uniqueMails(appended)
	if n := f.count(`SELECT count(*) FROM email_messages`); n != unique {
		t.Fatalf("email_messages has %d rows, want %d\n%s", n, unique, out)
	}
}

// uniqueMails counts the messages that are not a redelivered copy of
// another: the rows a complete run stores.
func uniqueMails(appended []imaptest.Appended) int {
	n := 0
	for _, m := range appended {
		if m.Mail.DuplicateOf < 0 {
			n++
		}
	}
	return n
}

// withHost returns rawURL with its host:port replaced by hostport, to send a
// client through a proxy with everything else (user, path, query) kept.
func withHost(t *testing.T, rawURL, hostport string) string {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	u.Host = hostport
	return u.String()
}

// checkStoredOnce fails the test if any Message-ID is stored twice for an
// inbox, or if a thread's message_count disagrees with its rows.
func checkStoredOnce(f *fixture) {
	f.t.Helper()
	if n := f.count(`SELECT count(*) FROM (SELECT 1 FROM email_messages GROUP BY inbox, message_id HAVING count(*) > 1) d`); n != 0 {
		f.t.Fatalf("%d Message-IDs are stored more than once", n)
	}
	if n := f.count(`SELECT count(*) FROM email_threads t WHERE message_count <> (SELECT count(*) FROM email_messages m
		WHERE m.inbox = t.inbox AND m.thread_id = t.thread_id)`); n != 0 {
		f.t.Fatalf("%d threads disagree with email_messages on message_count", n)
	}
}

// runBinary runs the built binary and fails the test unless it exits with
// want.
func (f *fixture) runBinary(bin string, environ []string, want int, args ...string) string {
	f.t.Helper()
	code, out := execBinary(f.t, bin, f.dir, environ, args...)
	if code != want {
		f.t.Fatalf("backfill %s: exit %d, want %d\n%s", strings.Join(args, " "), code, want, out)
	}
	return out
}

var totalErrorsLine = regexp.MustCompile(`Total errors:\s+(\d+)`)

// totalErrors reads the summary's error count.
func totalErrors(t *testing.T, out string) int {
	t.Helper()
	m := totalErrorsLine.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("output has no Total errors line:\n%s", out)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}
