package main

import (
	"bytes"
	"context"
	"encoding/json"
	"runtime/debug"
	"strings"
	"testing"
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
		logins = f.imap.Logins()
		out := f.mustRun(0, args...)
		f.wantLine(out, "Downloaded:    0 message bodies")
		if got := f.imap.Logins() - logins; got != 1 {
			t.Errorf("backfill %v on a settled mailbox logged in %d times, want 1", args, got)
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
