package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/myhibachi/backfill/internal/imaptest"
	"github.com/myhibachi/backfill/internal/mailgen"
)

// TestSettledRerunLogsInOnce: a run opens no more IMAP connections than it
// has batches for, and a re-run of a settled mailbox opens one, the
// lister's (issue 14: pre-dialled connections made a no-op re-run wait).
func TestSettledRerunLogsInOnce(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.imap.AppendGenerated(t, 3, 120)
	f.migrate()

	logins := f.imap.Logins()
	f.mustRun(0, "--inbox", "demo", "--workers", "4", "--batch-size", "50")
	if got := f.imap.Logins() - logins; got != 3 {
		t.Errorf("a run of 3 batches with --workers 4 logged in %d times, want 3", got)
	}
	for _, args := range [][]string{
		{"--inbox", "demo", "--workers", "4", "--batch-size", "50"},
		{"--inbox", "demo", "--workers", "4", "--limit", "10"},
	} {
		logins, conns := f.imap.Logins(), f.imap.Connections()
		out := f.mustRun(0, args...)
		f.wantLine(out, "Downloaded:    0 message bodies")
		if got, dialled := f.imap.Logins()-logins, f.imap.Connections()-conns; got != 1 || dialled != 1 {
			t.Errorf("backfill %v on a settled mailbox made %d connections and logged in %d times, want 1 and 1", args, dialled, got)
		}
	}
}

// TestInboxNameIsCheckedFirst: a name that cannot be part of an environment
// variable is refused, exit 2, before any other check, any variable is
// read or anything connects.
func TestInboxNameIsCheckedFirst(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	for _, name := range []string{"lab; drop table x", "lab-1", "lab.x", "läb", "a b"} {
		t.Run(name, func(t *testing.T) {
			g := *f
			g.t = t
			out := g.mustRun(2, "--inbox", name, "--workers", "0", "extra")
			want := "an inbox name is letters, digits and _ only"
			if !strings.Contains(out, want) || strings.Contains(out, "--workers") || strings.Contains(out, "extra") {
				t.Fatalf("output does not report the inbox name first, alone (%q):\n%s", want, out)
			}
		})
	}
	if n := f.imap.Logins(); n != 0 {
		t.Fatalf("the IMAP server saw %d logins, want none", n)
	}
	// Letters, digits and _ in any case still name an inbox.
	f.migrate()
	f.mustRun(0, "--inbox", "Demo")
}

// TestVersion: --version and the version command print which build ran,
// with no configuration at all, and a run says the same in its JSON start
// event and its closing block.
func TestVersion(t *testing.T) {
	t.Parallel()
	want := "backfill " + currentVersion().String() + "\n"
	for _, args := range [][]string{{"--version"}, {"version"}} {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), append([]string{"backfill"}, args...), &stdout, &stderr, nil, t.TempDir())
		if code != 0 || stdout.String() != want {
			t.Errorf("backfill %v: exit %d, stdout %q, stderr %q; want exit 0 and %q", args, code, stdout.String(), stderr.String(), want)
		}
	}

	f := newFixture(t)
	f.migrate()
	out := f.mustRun(0, "--inbox", "demo")
	f.wantLine(out, "Version:       "+strings.TrimSpace(want))
	out = f.mustRun(0, "--inbox", "demo", "--log-format", "json")
	var start struct {
		Event   string       `json:"event"`
		Version buildVersion `json:"version"`
	}
	if err := json.Unmarshal([]byte(strings.SplitN(out, "\n", 2)[0]), &start); err != nil {
		t.Fatal(err)
	}
	if start.Event != "start" || start.Version != currentVersion() {
		t.Errorf("first JSON event = %+v, want start with version %+v", start, currentVersion())
	}
}

// TestVersionOf: what Go stamps into a binary built from a git checkout is
// what --version says.
func TestVersionOf(t *testing.T) {
	info := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v0.0.0-20261202060608-5305c73bc028+dirty"},
		Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "5305c73bc028c990f4bada3e4cb23e4a7515b954"},
			{Key: "vcs.time", Value: "2026-12-02T06:06:08Z"},
			{Key: "vcs.modified", Value: "true"},
		}}
	got := versionOf(info).String()
	want := "v0.0.0-20261202060608-5305c73bc028+dirty (revision 5305c73bc028c990f4bada3e4cb23e4a7515b954 with uncommitted changes, 2026-12-02T06:06:08Z, go1.26.8)"
	if got != want {
		t.Errorf("version = %q, want %q", got, want)
	}
	got = versionOf(&debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}}).String()
	if want := "(devel) (no VCS revision: built outside a git checkout or with -buildvcs=false, go1.26.8)"; got != want {
		t.Errorf("version without VCS = %q, want %q", got, want)
	}
}

// TestClosingBlockNumbersAreWhatHappened: every number of the closing block
// is what happened, checked against the database and against what the
// IMAP server counted (issue 16: messages skipped as oversized were
// counted as downloaded). Fetched lean, oversized messages are not
// downloaded at all; fetched whole, they are read and thrown away, and the
// closing block says so.
func TestClosingBlockNumbersAreWhatHappened(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"lean", "full"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			var largest int
			var n int
			err := mailgen.Each(7, 80, func(m mailgen.Mail) error {
				largest = max(largest, len(m.Raw))
				n++
				_, err := f.imap.AppendMail(imaptest.Inbox, m)
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			limit := largest + 1
			const oversized = 3
			for i := range oversized {
				body := strings.Repeat(strings.Repeat("x", 76)+"\r\n", limit/78+4096)
				raw := fmt.Sprintf("From: big@example.com\r\nTo: cs@example.com\r\nSubject: big %d\r\nMessage-ID: <big%d@example.com>\r\n\r\n%s", i, i, body)
				f.imap.Append(t, []byte(raw), time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC))
			}
			f.migrate()

			sent := f.imap.BytesSent()
			whole, pieces := f.imap.BodiesAsked()
			out := f.mustRun(1, "--inbox", "demo", "--fetch", mode, "--max-message-size", fmt.Sprint(limit), "--log-format", "json")
			sent = f.imap.BytesSent() - sent
			w, p := f.imap.BodiesAsked()
			whole, pieces = w-whole, p-pieces
			var sum struct {
				Event                                   string
				OperationID                             string `json:"operation_id"`
				Total, Fetched, Synced, Skipped, Errors int
				FetchedWhole                            int    `json:"fetched_whole"`
				FetchedLean                             int    `json:"fetched_lean"`
				Oversized                               int    `json:"oversized"`
				OversizedBytes                          int64  `json:"oversized_bytes"`
				TransferredBytes                        int64  `json:"transferred_bytes"`
				FetchMode                               string `json:"fetch_mode"`
				FetchReason                             string `json:"fetch_reason"`
			}
			lines := strings.Split(strings.TrimSpace(out), "\n")
			if err := json.Unmarshal([]byte(lines[len(lines)-1]), &sum); err != nil || sum.Event != "summary" {
				t.Fatalf("last line is not the summary (%v):\n%s", err, out)
			}

			wantMode := map[string]string{"lean": "lean", "full": "whole"}[mode]
			if sum.FetchMode != wantMode || sum.FetchReason != "--fetch "+mode {
				t.Errorf("fetch_mode %q, fetch_reason %q; want %q, %q", sum.FetchMode, sum.FetchReason, wantMode, "--fetch "+mode)
			}

			// Against the database.
			rows := f.count(`SELECT count(*) FROM email_messages`)
			errs := f.count(`SELECT count(*) FROM error_logs WHERE operation_id = $1 AND severity = 'error'`, sum.OperationID)
			big := f.count(`SELECT count(*) FROM error_logs WHERE operation_id = $1 AND error_type = 'oversized'`, sum.OperationID)
			if sum.Total != n+oversized || sum.Synced != rows || sum.Errors != errs || sum.Oversized != big || big != oversized ||
				sum.Skipped != sum.Total-rows-errs {
				t.Errorf("summary %+v; database: %d rows, %d errors of which %d oversized, of %d messages", sum, rows, errs, big, n+oversized)
			}
			// Against the server: every message that was not oversized was
			// downloaded, each once, whole or in pieces as the summary says.
			if sum.Fetched != n || sum.FetchedWhole+sum.FetchedLean != sum.Fetched {
				t.Errorf("fetched %d (%d whole, %d lean), want %d", sum.Fetched, sum.FetchedWhole, sum.FetchedLean, n)
			}
			wantWhole := sum.FetchedWhole
			if mode == "full" {
				wantWhole += oversized // asked for, read and thrown away
				if sum.FetchedLean != 0 || sum.OversizedBytes < int64(oversized*limit) {
					t.Errorf("--fetch full: %d lean, %d oversized bytes read", sum.FetchedLean, sum.OversizedBytes)
				}
			} else if sum.FetchedLean == 0 || sum.OversizedBytes != 0 {
				t.Errorf("--fetch lean: %d lean, %d oversized bytes read", sum.FetchedLean, sum.OversizedBytes)
			}
			if whole != wantWhole || pieces != sum.FetchedLean {
				t.Errorf("the server was asked for %d messages whole and %d in pieces; the summary says %d whole (%d with the oversized read whole), %d lean",
					whole, pieces, sum.FetchedWhole, wantWhole, sum.FetchedLean)
			}
			// What crossed the wire is the content the summary counts plus
			// protocol: listing, structures and a few hundred bytes a message.
			content := sum.TransferredBytes + sum.OversizedBytes
			if overhead := sent - content; overhead < 0 || overhead > int64(2048*(n+oversized)+16384) {
				t.Errorf("the server sent %d bytes; the summary counts %d of content (%d transferred, %d oversized): %d bytes unaccounted",
					sent, content, sum.TransferredBytes, sum.OversizedBytes, overhead)
			}

			// The text closing block says the same, from a fresh start.
			if _, err := f.pool.Exec(context.Background(), `TRUNCATE email_messages, email_threads, email_sync_uids, email_sync_status, error_logs`); err != nil {
				t.Fatal(err)
			}
			out = f.mustRun(1, "--inbox", "demo", "--fetch", mode, "--max-message-size", fmt.Sprint(limit))
			f.wantLine(out, fmt.Sprintf("Total synced:  %d ✅", rows))
			f.wantLine(out, fmt.Sprintf("Total skipped: %d ⏭️", sum.Skipped))
			f.wantLine(out, fmt.Sprintf("Total errors:  %d ❌", errs))
			f.wantLine(out, fmt.Sprintf("Oversized:     %d over --max-message-size, not stored", oversized))
			f.wantLine(out, fmt.Sprintf("Downloaded:    %d message bodies", n))
			f.wantLine(out, fmt.Sprintf("Fetch mode:    %s (--fetch %s)", wantMode, mode))
			if !strings.Contains(out, fmt.Sprintf(": %d whole, %d lean\n", sum.FetchedWhole, sum.FetchedLean)) {
				t.Errorf("closing block lacks %d whole, %d lean:\n%s", sum.FetchedWhole, sum.FetchedLean, out)
			}
		})
	}
}
