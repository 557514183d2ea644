package main

import (
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
