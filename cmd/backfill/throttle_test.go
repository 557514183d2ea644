package main

import (
	"bytes"
	"context"
	"net"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/myhibachi/backfill/internal/imaptest"
	"github.com/myhibachi/backfill/internal/mailgen"
)

// throttles answers the first times, then lets through.
func throttles(times int, answer *imap.Error) func(n int) error {
	return func(n int) error {
		if n <= times {
			return answer
		}
		return nil
	}
}

// TestThrottledServer: a server answering LOGIN or FETCH with a throttling
// answer a few times is waited out. The run stores every message and exits
// 0; the throttles are not message failures and do not trip the breaker,
// even at --max-consecutive-failures 1.
func TestThrottledServer(t *testing.T) {
	t.Parallel()
	no := func(code imap.ResponseCode, text string) *imap.Error {
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: code, Text: text}
	}
	microsoft := no("THROTTLED", "Request is throttled. Suggested Backoff Time: 300 milliseconds")
	gmail := no(imap.ResponseCodeAlert, "Too many simultaneous connections. (Failure)")
	cases := []struct {
		name string
		opt  imaptest.Option
	}{
		{"FETCH THROTTLED with suggested backoff", imaptest.WithFetchHook(throttles(3, microsoft))},
		{"FETCH OVERQUOTA", imaptest.WithFetchHook(throttles(2, no(imap.ResponseCodeOverQuota, "Download quota exceeded")))},
		{"FETCH LIMIT", imaptest.WithFetchHook(throttles(2, no(imap.ResponseCodeLimit, "Rate limit exceeded")))},
		{"FETCH too many connections", imaptest.WithFetchHook(throttles(2, gmail))},
		{"LOGIN THROTTLED", imaptest.WithLoginHook(func(n, _ int) error { return throttles(2, microsoft)(n) })},
		{"LOGIN too many connections", imaptest.WithLoginHook(func(n, _ int) error { return throttles(2, gmail)(n) })},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, tc.opt)
			opts := mailgen.DefaultOptions()
			opts.DuplicateRatio, opts.NoMessageIDRatio = 0, 0
			f.imap.AppendMails(t, opts.Generate(7, 20))
			f.migrate()
			out := f.mustRun(0, "--inbox", "demo", "--workers", "2", "--batch-size", "5", "--max-consecutive-failures", "1")
			f.wantLine(out, "Total synced:  20 ✅")
			if n := f.count(`SELECT count(*) FROM email_messages`); n != 20 {
				t.Fatalf("%d rows stored, want 20\n%s", n, out)
			}
			if n := f.count(`SELECT count(*) FROM error_logs WHERE category <> 'transient' OR severity <> 'warning'`); n != 0 {
				t.Fatalf("error_logs has %d entries beyond transient warnings for a throttled server\n%s\n%s", n, f.tableText("error_logs"), out)
			}
		})
	}
}

// TestConnectionLimitStepsAside: a server that refuses a third
// simultaneous connection, with Gmail's NO to LOGIN or with a BYE as its
// greeting, leaves the run with fewer connections than the four asked for
// (two, unless a worker left early enough to let another in); it stores
// everything and exits 0.
func TestConnectionLimitStepsAside(t *testing.T) {
	t.Parallel()
	const limit = 2
	cases := []struct {
		name string
		opt  imaptest.Option
	}{
		{"Gmail NO to LOGIN", imaptest.WithLoginHook(func(_, active int) error {
			if active >= limit {
				return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeAlert, Text: "Too many simultaneous connections. (Failure)"}
			}
			return nil
		})},
		{"BYE greeting", imaptest.WithGreetingHook(func(open int) error {
			if open >= limit {
				return &imap.Error{Type: imap.StatusResponseTypeBye, Text: "Maximum number of connections from user+IP exceeded (mail_max_userip_connections=2)"}
			}
			return nil
		})},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			// Slow answers keep the admitted workers connected while the
			// others try to join: a worker that finished and left would let
			// a late one in.
			slow := imaptest.WithFetchHook(func(int) error { time.Sleep(20 * time.Millisecond); return nil })
			f := newFixture(t, tc.opt, slow)
			opts := mailgen.DefaultOptions()
			opts.DuplicateRatio, opts.NoMessageIDRatio = 0, 0
			f.imap.AppendMails(t, opts.Generate(9, 40))
			f.migrate()
			out := f.mustRun(0, "--inbox", "demo", "--workers", "4", "--batch-size", "2", "--max-consecutive-failures", "1")
			f.wantLine(out, "Total synced:  40 ✅")
			m := regexp.MustCompile(`The server refused (\d) of 4 connections; the run used (\d)`).FindStringSubmatch(out)
			if m == nil || m[1] == "0" {
				t.Fatalf("the closing block does not say that connections were refused\n%s", out)
			}
			if n := f.count(`SELECT count(*) FROM email_messages`); n != 40 {
				t.Fatalf("%d rows stored, want 40\n%s", n, out)
			}
			// Refused for too many connections, a worker steps aside at once.
			if n := f.count(`SELECT count(*) FROM error_logs WHERE error_type = 'connection_refused' AND attempts = 1`); strconv.Itoa(n) != m[1] {
				t.Fatalf("error_logs has %d connection_refused entries after one attempt, want %s\n%s", n, m[1], f.tableText("error_logs"))
			}
			if n := f.count(`SELECT count(*) FROM error_logs WHERE category <> 'transient'`); n != 0 {
				t.Fatalf("error_logs has %d entries beyond transient ones\n%s", n, f.tableText("error_logs"))
			}
		})
	}
}

// TestWorkersLoweredToPreset: --workers above a provider's connection cap
// is lowered, with a notice, before anything connects. The database is
// unreachable on purpose, so the run stops (exit 2) before it would dial
// the real Gmail.
func TestWorkersLoweredToPreset(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedPort := ln.Addr().String()
	ln.Close()
	environ := []string{
		"DATABASE_URL=postgres://nobody@" + closedPort + "/none?connect_timeout=5",
		"BACKFILL_INBOX_PAY=imaps://me%40gmail.com@imap.gmail.com:993/INBOX",
		"BACKFILL_INBOX_PAY_PASSWORD=secret",
	}
	for _, tc := range []struct {
		workers, want string
	}{
		{"20", "--workers 20 lowered to 15: imap.gmail.com admits at most 15 simultaneous connections per account"},
		{"15", ""},
	} {
		for _, format := range []string{"text", "json"} {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), []string{"backfill", "--inbox", "pay", "--workers", tc.workers, "--log-format", format},
				&stdout, &stderr, environ, t.TempDir())
			out := stdout.String() + stderr.String()
			if code != exitFatal {
				t.Fatalf("--workers %s, %s: exit %d, want %d (database unreachable)\n%s", tc.workers, format, code, exitFatal, out)
			}
			noted := strings.Contains(out, "lowered to")
			switch {
			case tc.want == "" && noted:
				t.Errorf("--workers %s, %s: a notice for workers within the cap:\n%s", tc.workers, format, out)
			case tc.want != "" && format == "text" && !hasLine(out, "⚠️  "+tc.want):
				t.Errorf("--workers %s: no line %q:\n%s", tc.workers, tc.want, out)
			case tc.want != "" && format == "json" && !strings.Contains(out, `"event":"note"`) || tc.want != "" && format == "json" && !strings.Contains(out, `"message":"`+tc.want+`"`):
				t.Errorf("--workers %s: no JSON note event %q:\n%s", tc.workers, tc.want, out)
			}
		}
	}
}
