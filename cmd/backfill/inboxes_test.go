package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/myhibachi/backfill/internal/imaptest"
	"github.com/myhibachi/backfill/pgsink"
)

// passwordScript is a password command as an operator writes one: a
// script in a folder of the test's own.
func passwordScript(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "password.sh")
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// unique is how many of the appended messages are stored: mailgen's
// duplicates share a Message-ID with an earlier one.
func unique(appended []imaptest.Appended) int {
	n := 0
	for _, a := range appended {
		if a.Mail.DuplicateOf < 0 {
			n++
		}
	}
	return n
}

// lineOf is the output line that starts with prefix.
func lineOf(t *testing.T, out, prefix string) string {
	t.Helper()
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, prefix) {
			return l
		}
	}
	t.Fatalf("no line starts with %q:\n%s", prefix, out)
	return ""
}

// TestInboxesAddListRemove registers an inbox as a deploy script would,
// again and again: added, unchanged (flags before or after the arguments),
// updated; lists it beside the environment's; backfills it with the
// password from the variable it names; and removes it, its mail kept.
func TestInboxesAddListRemove(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	stored := unique(f.imap.AppendGenerated(t, 5, 6))
	f.migrate()
	url := f.imap.URL("INBOX")
	add := []string{"inboxes", "add", "sales", url, "--password-env", "SALES_PW", "--folders", "INBOX,sent", "--max-download", "1GB/24h"}
	f.wantLine(f.mustRun(0, add...), "➕ Added sales")
	f.wantLine(f.mustRun(0, add...), "✅ sales unchanged")
	f.wantLine(f.mustRun(0, "inboxes", "add", "--max-download", "1GB/24h", "--folders", "INBOX,sent", "--password-env", "SALES_PW", "sales", url),
		"✅ sales unchanged")
	f.wantLine(f.mustRun(0, "inboxes", "add", "sales", url, "--password-env", "SALES_PW", "--all-folders"), "✏️  Updated sales")
	var (
		gotURL, passwordEnv string
		cleared, all        bool
	)
	if err := f.pool.QueryRow(t.Context(), `SELECT url, password_env, folders IS NULL AND max_download IS NULL AND password_command IS NULL
		AND token_command IS NULL, all_folders FROM backfill_inboxes WHERE name = 'sales'`).Scan(&gotURL, &passwordEnv, &cleared, &all); err != nil {
		t.Fatal(err)
	}
	if gotURL != url || passwordEnv != "SALES_PW" || !cleared || !all {
		t.Fatalf("backfill_inboxes holds %s, %s, cleared %v, all_folders %v; want the last registration exactly", gotURL, passwordEnv, cleared, all)
	}
	f.wantLine(f.mustRun(0, "inboxes", "add", "archive", url, "--password-command", "pass show 'mail/archive'"), "➕ Added archive")

	for _, args := range [][]string{{"inboxes"}, {"inboxes", "list"}} {
		out := f.mustRun(0, args...)
		if h := lineOf(t, out, "NAME"); !strings.Contains(h, "SOURCE") {
			t.Fatalf("backfill %s: no SOURCE column:\n%s", strings.Join(args, " "), out)
		}
		for prefix, want := range map[string][]string{
			"sales ":   {"database", "password from $SALES_PW", " all "},
			"archive ": {"database", "password command: pass show 'mail/archive'", " INBOX "},
			"demo ":    {"environment", "password from $BACKFILL_INBOX_DEMO_PASSWORD"},
		} {
			for _, w := range want {
				if l := lineOf(t, out, prefix); !strings.Contains(l, w) {
					t.Errorf("backfill %s: the %sline lacks %q: %s", strings.Join(args, " "), prefix, w, l)
				}
			}
		}
	}
	var listed []inboxListing
	if err := json.Unmarshal([]byte(f.mustRun(0, "inboxes", "list", "--json")), &listed); err != nil {
		t.Fatal(err)
	}
	sources := map[string]string{}
	for _, l := range listed {
		sources[l.Name] = l.Source
		if l.Name == "sales" && (!l.AllFolders || l.URL != url) {
			t.Errorf("--json lists sales as %+v", l)
		}
	}
	if sources["sales"] != "database" || sources["archive"] != "database" || sources["demo"] != "environment" {
		t.Fatalf("--json sources %v", sources)
	}

	// The password is read from the variable the registration names,
	// where the run is.
	if out := f.mustRun(2, "--inbox", "sales"); !strings.Contains(out, "SALES_PW is not set") {
		t.Fatalf("without SALES_PW the run does not say it is missing:\n%s", out)
	}
	withPW := *f
	withPW.environ = append(withPW.environ, "SALES_PW="+f.imap.Password)
	withPW.mustRun(0, "--inbox", "sales")
	if n := f.count(`SELECT count(*) FROM email_messages WHERE inbox = 'sales'`); n != stored {
		t.Fatalf("sales has %d rows, want %d", n, stored)
	}

	f.wantLine(f.mustRun(0, "inboxes", "remove", "sales"), "🗑️  Removed sales")
	if n := f.count(`SELECT count(*) FROM backfill_inboxes WHERE name = 'sales'`); n != 0 {
		t.Fatal("sales is still registered")
	}
	if n := f.count(`SELECT count(*) FROM email_messages WHERE inbox = 'sales'`); n != stored {
		t.Fatalf("removing the registration left %d of %d rows", n, stored)
	}
	if out := f.mustRun(2, "inboxes", "remove", "sales"); !strings.Contains(out, `inbox "sales" is not registered (registered inboxes: archive)`) {
		t.Fatalf("removing it again:\n%s", out)
	}
	if out := f.mustRun(2, "inboxes", "remove", "demo"); !strings.Contains(out, "configured in the environment (BACKFILL_INBOX_DEMO)") {
		t.Fatalf("removing an environment inbox:\n%s", out)
	}
	if out := f.mustRun(0, "inboxes", "add", "--help"); !strings.Contains(out, "--password-command") {
		t.Fatalf("inboxes add --help:\n%s", out)
	}
}

// TestRegisteredInboxWithPasswordCommand backfills an inbox registered
// with a password command, end to end; the password is in neither the
// registry, nor the listing, nor the run's output. A command that fails,
// or cannot be run, stops the run with exit 2 and says why.
func TestRegisteredInboxWithPasswordCommand(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	stored := unique(f.imap.AppendGenerated(t, 7, 8))
	f.migrate()
	secret := f.imap.Password
	f.mustRun(0, "inboxes", "add", "reg", f.imap.URL("INBOX"), "--password-command", passwordScript(t, "echo '"+secret+"'\n"))
	f.mustRun(0, "inboxes", "add", "sealed", f.imap.URL("INBOX"),
		"--password-command", passwordScript(t, "echo 'vault is sealed' >&2\nexit 3\n"))
	f.mustRun(0, "inboxes", "add", "missing", f.imap.URL("INBOX"), "--password-command", "/nonexistent/password-cmd")

	run := f.mustRun(0, "--inbox", "reg")
	if n := f.count(`SELECT count(*) FROM email_messages WHERE inbox = 'reg'`); n != stored {
		t.Fatalf("reg has %d rows, want %d", n, stored)
	}
	if n := f.count(`SELECT count(*) FROM email_sync_status WHERE inbox = 'reg' AND last_status = 'completed'`); n != 1 {
		t.Fatal("email_sync_status does not say reg's run completed")
	}
	_, check := f.run("inboxes", "--check")
	if l := lineOf(t, check, "reg "); !strings.Contains(l, "✅") {
		t.Fatalf("--check does not log in to reg: %s", l)
	}
	for what, text := range map[string]string{
		"backfill_inboxes": f.tableText("backfill_inboxes"), "the run's output": run, "inboxes --check": check,
		"inboxes list --json": f.mustRun(0, "inboxes", "list", "--json"),
	} {
		if strings.Contains(text, secret) {
			t.Fatalf("%s holds the password:\n%s", what, text)
		}
	}

	out := f.mustRun(2, "--inbox", "sealed")
	if !strings.Contains(out, "password command") || !strings.Contains(out, "exit status 3: vault is sealed") {
		t.Fatalf("a failing password command is not explained:\n%s", out)
	}
	if l := lineOf(t, check, "sealed "); !strings.Contains(l, "❌") || !strings.Contains(l, "vault is sealed") {
		t.Fatalf("--check does not say sealed failed: %s", l)
	}
	if out := f.mustRun(2, "--inbox", "missing"); !strings.Contains(out, "/nonexistent/password-cmd cannot be run") {
		t.Fatalf("a missing password command is not explained:\n%s", out)
	}
	if n := f.count(`SELECT count(*) FROM email_messages WHERE inbox IN ('sealed', 'missing')`); n != 0 {
		t.Fatalf("%d rows stored without a password", n)
	}
}

// TestRegisteredInboxWinsOverEnvironment: a name both registered and set
// in the environment is the database's, for runs and in the listing.
func TestRegisteredInboxWinsOverEnvironment(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.imap.AppendGenerated(t, 1, 3)
	other := imaptest.Start(t)
	stored := unique(other.AppendGenerated(t, 2, 5))
	f.migrate()
	out := f.mustRun(0, "inboxes", "add", "demo", other.URL("INBOX"), "--password-command", passwordScript(t, "echo '"+other.Password+"'\n"))
	f.wantLine(out, "ℹ️  demo is also configured in the environment")
	f.mustRun(0, "--inbox", "demo")
	if n := f.count(`SELECT count(*) FROM email_messages WHERE inbox = 'demo'`); n != stored || f.imap.Logins() != 0 {
		t.Fatalf("demo has %d rows (want %d, the registered server's), the environment's server saw %d logins (want 0)",
			n, stored, f.imap.Logins())
	}
	out = f.mustRun(0, "inboxes")
	if l := lineOf(t, out, "demo "); !strings.Contains(l, "database") || strings.Count(out, "\ndemo ") != 1 {
		t.Fatalf("demo is not listed once, as the database's:\n%s", out)
	}
	f.wantLine(out, "ℹ️  demo is configured in the database and in the environment (BACKFILL_INBOX_DEMO): the database's entry is used")
}

// TestRegisteredFoldersAndBudget: a registration's folders and download
// budget apply to a run that gives none; --folders, --all-folders and
// --max-download win over them.
func TestRegisteredFoldersAndBudget(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.imap.CreateMailbox(t, "Archiv")
	date := time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)
	for i := range 6 {
		f.imap.Append(t, liveMail(fmt.Sprintf("inbox-%d", i)), date)
		if _, err := f.imap.AppendRaw("Archiv", liveMail(fmt.Sprintf("archiv-%d", i)), date); err != nil {
			t.Fatal(err)
		}
	}
	f.migrate()
	pw := passwordScript(t, "echo '"+f.imap.Password+"'\n")
	f.mustRun(0, "inboxes", "add", "reg", f.imap.URL("INBOX"), "--password-command", pw, "--folders", "INBOX,Archiv", "--max-download", "1KB/24h")
	f.mustRun(exitBudget, "--inbox", "reg", "--fetch", "full", "--batch-size", "1", "--workers", "1")
	f.mustRun(0, "--inbox", "reg", "--max-download", "none")
	if n := f.count(`SELECT count(*) FROM email_messages WHERE inbox = 'reg'`); n != 12 {
		t.Fatalf("reg has %d rows, want 12: INBOX's and Archiv's", n)
	}
	f.mustRun(0, "inboxes", "add", "wide", f.imap.URL("INBOX"), "--password-command", pw, "--all-folders")
	f.mustRun(0, "--inbox", "wide", "--folders", "INBOX")
	if n := f.count(`SELECT count(*) FROM email_messages WHERE inbox = 'wide'`); n != 6 {
		t.Fatalf("wide has %d rows, want 6: --folders INBOX wins over the registered --all-folders", n)
	}
	f.mustRun(0, "--inbox", "wide")
	if n := f.count(`SELECT count(*) FROM email_messages WHERE inbox = 'wide'`); n != 12 {
		t.Fatalf("wide has %d rows, want 12: the registered --all-folders", n)
	}
}

// TestWatchRegisteredInbox watches an inbox that only the database knows:
// it backfills it, then stores what arrives.
func TestWatchRegisteredInbox(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	date := time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)
	for i := range 3 {
		f.imap.Append(t, liveMail(fmt.Sprintf("old-%d", i)), date)
	}
	f.migrate()
	f.mustRun(0, "inboxes", "add", "reg", f.imap.URL("INBOX"), "--password-command", passwordScript(t, "echo '"+f.imap.Password+"'\n"))
	p := startWatch(t, buildBinary(t), f.dir, f.environ, "--inbox", "reg", "--max-backoff", "500ms")
	p.waitLines("👀 reg/INBOX: following", 1)
	if n := f.count(`SELECT count(*) FROM email_messages WHERE inbox = 'reg'`); n != 3 {
		t.Fatalf("after the backfill reg has %d rows, want 3", n)
	}
	f.imap.Append(t, liveMail("new"), date)
	f.eventually("the new message stored", func() bool {
		return f.count(`SELECT count(*) FROM email_messages WHERE inbox = 'reg' AND message_id = 'new@example.com'`) == 1
	})
	p.terminate()
}

// TestResolveInboxSpec: what runs, watch and workers get for an inbox,
// and which errors are configuration (an *exitError: a worker cancels the
// job) and which may pass by themselves (plain: a worker retries).
func TestResolveInboxSpec(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.migrate()
	ctx := t.Context()
	url := f.imap.URL("INBOX")
	for _, reg := range []pgsink.Inbox{
		{Name: "cmd", URL: url, PasswordCommand: passwordScript(t, "printf 'pw from cmd\\r\\n'\n"), Folders: []string{"INBOX", "sent"}, MaxDownload: "1GB/24h"},
		{Name: "var", URL: url, PasswordEnv: "VAR_PW", AllFolders: true},
		{Name: "tok", URL: url, TokenCommand: passwordScript(t, "echo token\n")},
		{Name: "failing", URL: url, PasswordCommand: passwordScript(t, "exit 1\n")},
		{Name: "missing", URL: url, PasswordCommand: "/nonexistent/password-cmd"},
		{Name: "tokmissing", URL: url, TokenCommand: "/nonexistent/token-cmd"},
		{Name: "unset", URL: url, PasswordEnv: "UNSET_PW"},
		{Name: "badurl", URL: "ftp://u@h/", PasswordEnv: "VAR_PW"},
	} {
		if _, err := pgsink.UpsertInbox(ctx, f.pool, reg); err != nil {
			t.Fatal(err)
		}
	}
	e, err := loadEnv(append(slices.Clone(f.environ), "VAR_PW=pw from var"), f.dir)
	if err != nil {
		t.Fatal(err)
	}
	a := &appEnv{}
	for _, tt := range []struct {
		name, source, password string
		folders                []string
		all, token             bool
		maxDownload            string
	}{
		{name: "cmd", source: sourceDatabase, password: "pw from cmd", folders: []string{"INBOX", "sent"}, maxDownload: "1GB/24h"},
		{name: "var", source: sourceDatabase, password: "pw from var", all: true},
		{name: "tok", source: sourceDatabase, token: true},
		{name: "demo", source: sourceEnvironment, password: f.imap.Password},
	} {
		spec, err := a.resolveInboxSpec(ctx, f.pool, e, tt.name, false)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if spec.Name != tt.name || spec.Source != tt.source || spec.IMAP.Password != tt.password || (spec.IMAP.Token != nil) != tt.token ||
			!slices.Equal(spec.Folders, tt.folders) || spec.AllFolders != tt.all || spec.MaxDownload != tt.maxDownload || spec.IMAP.Port == 0 {
			t.Errorf("%s resolved as %+v", tt.name, spec)
		}
	}
	for _, tt := range []struct {
		name, want string
		config     bool
	}{
		{"failing", "exit status 1", false},
		{"missing", "/nonexistent/password-cmd cannot be run", true},
		{"tokmissing", "/nonexistent/token-cmd cannot be run", true},
		{"unset", "UNSET_PW is not set", true},
		{"badurl", "scheme must be", true},
		{"nosuch", `unknown inbox "nosuch"`, true},
	} {
		_, err := a.resolveInboxSpec(ctx, f.pool, e, tt.name, false)
		var ee *exitError
		if err == nil || !strings.Contains(err.Error(), tt.want) || errors.As(err, &ee) != tt.config {
			t.Errorf("%s: %v; want an error saying %q, a configuration error: %v", tt.name, err, tt.want, tt.config)
		}
	}
	if err := unknownInbox(e, "x", []string{"cmd"}); !strings.Contains(err.Error(), "configured inboxes: cmd, customer_support, demo, payments") {
		t.Errorf("the unknown inbox's error does not list the registered ones: %v", err)
	}
	closed, err := pgxpool.New(ctx, f.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	closed.Close()
	if _, err := a.resolveInboxSpec(ctx, closed, e, "cmd", false); err == nil || errors.As(err, new(*exitError)) {
		t.Errorf("a database that cannot be read: %v, want a plain error", err)
	}

	// A database that cannot be reached: environment inboxes still dry
	// run, and an unknown inbox says the registry could not be read.
	unreachable := *f
	unreachable.environ = append(slices.Clone(f.environ), "DATABASE_URL=postgres://127.0.0.1:1/none?connect_timeout=5")
	unreachable.wantLine(unreachable.mustRun(0, "--inbox", "demo", "--dry-run"), "⚠️  database not usable")
	if out := unreachable.mustRun(2, "--inbox", "cmd"); !strings.Contains(out, "the database, which may register it, could not be read") {
		t.Fatalf("an unknown inbox with the database unreachable:\n%s", out)
	}
}
