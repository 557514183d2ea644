package main

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/myhibachi/backfill/internal/faultproxy"
	"github.com/myhibachi/backfill/internal/imaptest"
)

// These tests drive, on purpose, the paths a run takes only when something
// goes wrong, and check what a user sees: exit code, rows, error_logs and
// summary lines.

// throughProxy points the fixture's inbox at a faultproxy in front of its
// IMAP server.
func (f *fixture) throughProxy(rules ...faultproxy.Rule) *faultproxy.Proxy {
	f.t.Helper()
	proxy := faultproxy.Start(f.t, f.imap.Addr(), rules...)
	u, err := url.Parse(f.imap.URL(imaptest.Inbox))
	if err != nil {
		f.t.Fatal(err)
	}
	u.Host = proxy.Addr()
	f.environ = append(f.environ, "BACKFILL_INBOX_DEMO="+u.String())
	return proxy
}

// TestWorkerStepsAsideWhenRefused: the server admits the run's first
// connection and refuses every other, as a provider at its per-account cap
// does. The second worker is refused three times and steps aside; the
// first fetches everything: exit 0, a connection_refused warning, and the
// summary says how many connections the run used.
func TestWorkerStepsAsideWhenRefused(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	appended := f.imap.AppendGenerated(t, 61, 60)
	f.migrate()
	proxy := f.throughProxy(faultproxy.RefuseConnections(faultproxy.From(2)))

	// --retry-for is short: a worker that never stepped aside would be
	// retrying until it ran out, and fail the run.
	out := f.mustRun(0, "--inbox", "demo", "--workers", "2", "--batch-size", "10", "--retry-for", "5s")
	if s := proxy.Stats(); s.Refused < 3 {
		t.Fatalf("the proxy refused %d connections, want at least 3 (%+v)\n%s", s.Refused, s, out)
	}
	if !strings.Contains(out, "The server refused 1 of 2 connections; the run used 1") {
		t.Fatalf("the summary does not say the run used 1 of 2 connections\n%s", out)
	}
	if n := f.count(`SELECT count(*) FROM error_logs WHERE error_type = 'connection_refused' AND severity = 'warning' AND attempts = 3`); n != 1 {
		t.Fatalf("error_logs has %d connection_refused warnings after 3 attempts, want 1\n%s", n, out)
	}
	if n, want := f.count(`SELECT count(*) FROM email_messages`), uniqueMails(appended); n != want {
		t.Fatalf("email_messages has %d rows, want %d\n%s", n, want, out)
	}
}

// TestReconnectFailsInsideAFetch cuts the only worker's connection in the
// middle of a FETCH, then refuses its next two connections: the worker,
// holding a batch, keeps reconnecting, and resumes. Exit 0, every row, the
// retries in the output and the resumed fetch in error_logs.
func TestReconnectFailsInsideAFetch(t *testing.T) {
	t.Parallel()
	f := newFixture(t, imaptest.FailFetch(2))
	appended := f.imap.AppendGenerated(t, 67, 80)
	f.migrate()
	// Connection 1 is the run's; the cut FETCH is on it; 2 and 3 are the
	// worker's first tries to reconnect.
	proxy := f.throughProxy(faultproxy.RefuseConnections(faultproxy.Only(2, 3)))

	out := f.mustRun(0, "--inbox", "demo", "--workers", "1", "--batch-size", "10", "--fetch", "full")
	if s := proxy.Stats(); s.Refused != 2 {
		t.Fatalf("the proxy refused %d connections, want 2 (%+v)\n%s", s.Refused, s, out)
	}
	if n := strings.Count(out, "🔁 IMAP fetch failed"); n != 3 {
		t.Fatalf("%d retried fetches in the output, want 3 (the cut and two refused reconnects)\n%s", n, out)
	}
	if n := f.count(`SELECT count(*) FROM error_logs WHERE error_type = 'fetch_retried'`); n != 1 {
		t.Fatalf("error_logs has %d fetch_retried rows, want 1\n%s", n, out)
	}
	if n, want := f.count(`SELECT count(*) FROM email_messages`), uniqueMails(appended); n != want {
		t.Fatalf("email_messages has %d rows, want %d\n%s", n, want, out)
	}
}

// TestNonTransientErrorMidFetch: the server refuses the second FETCH with a
// NO [NOPERM]. That is not retried: the run aborts with exit 2, the batches
// committed before stay, and error_logs and email_sync_status say why.
func TestNonTransientErrorMidFetch(t *testing.T) {
	t.Parallel()
	f := newFixture(t, imaptest.WithFetchHook(func(n int) error {
		if n == 2 {
			return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeNoPerm, Text: "access to this mailbox revoked"}
		}
		return nil
	}))
	appended := f.imap.AppendGenerated(t, 71, 100)
	f.migrate()

	// One worker fetching whole, four 10-message batches per FETCH: the
	// first FETCH stores 40 messages, the second is refused.
	out := f.mustRun(2, "--inbox", "demo", "--workers", "1", "--batch-size", "10", "--fetch", "full")
	f.wantLine(out, "🛑 BACKFILL ABORTED")
	if !strings.Contains(out, "access to this mailbox revoked") {
		t.Fatalf("the output does not say what the server refused\n%s", out)
	}
	if strings.Contains(out, "🔁") {
		t.Fatalf("a refusal that will not change was retried\n%s", out)
	}
	stored := f.count(`SELECT count(*) FROM email_messages`)
	if stored == 0 || stored >= uniqueMails(appended) {
		t.Fatalf("%d rows stored, want the first FETCH's and no more\n%s", stored, out)
	}
	if n := f.count(`SELECT count(*) FROM error_logs WHERE severity = 'critical' AND error_message LIKE '%access to this mailbox revoked%'`); n != 1 {
		t.Fatalf("error_logs has %d critical rows for the refusal, want 1\n%s", n, out)
	}
	if n := f.count(`SELECT count(*) FROM email_sync_status WHERE last_status = 'aborted'`); n != 1 {
		t.Fatalf("email_sync_status does not say aborted\n%s", out)
	}
}

// TestOversizedBodySkippedInWholeFetch: fetching whole, a body over
// --max-message-size is read off the connection and dropped, and the
// messages after it in the same FETCH are stored from the same connection.
func TestOversizedBodySkippedInWholeFetch(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	date := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	var bigUIDs []imap.UID
	for i := range 12 {
		body := "short body\r\n"
		if i%4 == 1 {
			body = strings.Repeat("0123456789abcdef", 4096) + "\r\n" // 64 KB
		}
		raw := fmt.Sprintf("From: a@example.com\r\nTo: b@example.com\r\nSubject: m%d\r\nMessage-ID: <m%d@x>\r\n\r\n%s", i, i, body)
		uid := f.imap.Append(t, []byte(raw), date)
		if i%4 == 1 {
			bigUIDs = append(bigUIDs, uid)
		}
	}
	f.migrate()
	out := f.mustRun(1, "--inbox", "demo", "--fetch", "full", "--max-message-size", "16384", "--workers", "1")
	f.wantLine(out, "Total synced:  9 ✅")
	f.wantLine(out, "Total errors:  3 ❌")
	for _, uid := range bigUIDs {
		if n := f.count(`SELECT count(*) FROM error_logs WHERE error_type = 'oversized' AND imap_uid = $1`, int64(uid)); n != 1 {
			t.Fatalf("error_logs has %d oversized rows for UID %d, want 1\n%s", n, uid, out)
		}
	}
	// Drained, not cut: the connection served the whole run.
	if n := f.count(`SELECT count(*) FROM error_logs WHERE error_type = 'fetch_retried'`); n != 0 {
		t.Fatalf("%d fetches were retried after skipping a body\n%s", n, out)
	}
	if f.imap.Fetches() != 1 {
		t.Fatalf("the server answered %d FETCH commands, want 1\n%s", f.imap.Fetches(), out)
	}
	if n := f.count(`SELECT count(*) FROM email_messages WHERE length(text_body) > 16384`); n != 0 {
		t.Fatalf("%d oversized bodies were stored", n)
	}
}

// TestDatabaseRejectsOneRow: a trigger refuses one message, as a constraint
// would. The batch holding it is split in halves until that message is
// alone: it is logged with its UID, every other message of the batch is
// stored, exit 1.
func TestDatabaseRejectsOneRow(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	date := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	var badUID imap.UID
	for i := range 20 {
		raw := fmt.Sprintf("From: a@example.com\r\nTo: b@example.com\r\nSubject: m%d\r\nMessage-ID: <m%d@x>\r\n\r\nbody %d\r\n", i, i, i)
		uid := f.imap.Append(t, []byte(raw), date)
		if i == 13 {
			badUID = uid
		}
	}
	f.migrate()
	if _, err := f.pool.Exec(context.Background(), `
		CREATE FUNCTION reject_m13() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			IF NEW.message_id = 'm13@x' THEN
				RAISE EXCEPTION 'message m13 is not welcome' USING ERRCODE = 'check_violation';
			END IF;
			RETURN NEW;
		END $$;
		CREATE TRIGGER reject_m13 BEFORE INSERT ON email_messages FOR EACH ROW EXECUTE FUNCTION reject_m13();`); err != nil {
		t.Fatal(err)
	}

	out := f.mustRun(1, "--inbox", "demo", "--batch-size", "20", "--workers", "1")
	f.wantLine(out, "Total synced:  19 ✅")
	f.wantLine(out, "Total errors:  1 ❌")
	if n := f.count(`SELECT count(*) FROM error_logs WHERE error_type = 'rejected_by_database' AND imap_uid = $1
		AND message_id = 'm13@x' AND error_message LIKE '%not welcome%'`, int64(badUID)); n != 1 {
		t.Fatalf("error_logs has %d rejected_by_database rows for UID %d, want 1\n%s", n, badUID, out)
	}
	if n := f.count(`SELECT count(*) FROM error_logs WHERE severity <> 'warning'`); n != 1 {
		t.Fatalf("error_logs has %d errors, want only the rejected row\n%s", n, out)
	}
	if n := f.count(`SELECT count(*) FROM email_messages WHERE message_id <> 'm13@x'`); n != 19 {
		t.Fatalf("email_messages has %d of the other 19 rows\n%s", n, out)
	}
	checkStoredOnce(f)
}
