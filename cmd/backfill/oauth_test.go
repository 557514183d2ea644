package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/myhibachi/backfill/imapsrc"
	"github.com/myhibachi/backfill/internal/dovecottest"
	"github.com/myhibachi/backfill/internal/mailgen"
)

// introspection is the token introspection endpoint (RFC 7662) Dovecot's
// oauth2 passdb asks about each token: it knows which tokens are active.
type introspection struct {
	user    string
	mu      sync.Mutex
	active  map[string]bool
	refused map[string]int // how often each inactive token was asked about
}

func (in *introspection) accept(tokens ...string) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.active = map[string]bool{}
	for _, tok := range tokens {
		in.active[tok] = true
	}
}

func (in *introspection) refusals(token string) int {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.refused[token]
}

func (in *introspection) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	tok := r.PostFormValue("token")
	in.mu.Lock()
	active := in.active[tok]
	if !active {
		in.refused[tok]++
	}
	in.mu.Unlock()
	answer := map[string]string{"active": "false"}
	if active {
		answer = map[string]string{"active": "true", "username": in.user}
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(answer) //nolint:errcheck // Dovecot sees a short answer
}

// tokenScript writes the token command an operator would: a script that
// prints the access token kept in a file (where a real one would refresh
// it), and counts its runs. extra runs before the token is printed.
func tokenScript(t *testing.T, extra string) (script, tokenFile, runsFile string) {
	t.Helper()
	dir := t.TempDir()
	script, tokenFile, runsFile = filepath.Join(dir, "print-token"), filepath.Join(dir, "token"), filepath.Join(dir, "runs")
	body := "#!/bin/sh\nprintf x >> '" + runsFile + "'\n" + extra + "cat '" + tokenFile + "'\n"
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	return script, tokenFile, runsFile
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// onLine is an output writer that calls at once, synchronously, when a line
// starting with prefix has been written: the run's output waits, so the run
// cannot finish meanwhile.
type onLine struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	prefix string
	at     func()
	called bool
}

func (w *onLine) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if !w.called && bytes.Contains(w.buf.Bytes(), []byte("\n"+w.prefix)) {
		w.called = true
		w.at()
	}
	return len(p), nil
}

func (w *onLine) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// TestOAuth2TokenCommand runs against Dovecot's oauth2 passdb, which asks
// the test's introspection endpoint about each token: a run logs in with
// the token a command prints and stores every message, also when the token
// expires mid-run; a failing command and a password beside a token command
// exit 2.
func TestOAuth2TokenCommand(t *testing.T) {
	t.Parallel()
	user := dovecottest.User{Name: "payments@myhibachichef.com", Password: "unused-password"}
	in := &introspection{user: user.Name, refused: map[string]int{}}
	ep := httptest.NewServer(in)
	t.Cleanup(ep.Close)
	srv := dovecottest.NewServer(t, []dovecottest.User{user}, dovecottest.WithOAuth2(ep.URL))
	corpus := mailgen.Generate(17, 400)
	if err := srv.LoadMaildir(user.Name, mails(corpus)); err != nil {
		t.Fatal(err)
	}
	unique := 0
	for _, m := range corpus {
		if m.DuplicateOf < 0 {
			unique++
		}
	}

	t.Run("token expires mid-run", func(t *testing.T) {
		script, tokenFile, runsFile := tokenScript(t, "")
		writeFile(t, tokenFile, "ya29.first-token\n")
		in.accept("ya29.first-token")
		f := newFixture(t)
		f.environ = append(f.environ, "BACKFILL_INBOX_PAY="+srv.URL(user.Name, "INBOX"), "BACKFILL_INBOX_PAY_TOKEN_COMMAND="+script)
		f.migrate()
		// At the second batch the first token expires and every session is
		// cut: the workers reconnect, are refused with the kept token, and
		// must run the command again for the new one.
		out := &onLine{prefix: "📦 Processing batch 2/", at: func() {
			writeFile(t, tokenFile, "ya29.second-token\n")
			in.accept("ya29.second-token")
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if err := srv.Restart(ctx); err != nil {
				t.Error(err)
			}
		}}
		code := run(context.Background(), []string{"backfill", "--inbox", "pay", "--workers", "2", "--batch-size", "20"}, out, out, f.environ, f.dir)
		if testing.Verbose() {
			t.Logf("exit %d\n%s", code, out)
		}
		if code != 0 || !out.called || !strings.Contains(out.String(), "(plaintext, OAuth2)") {
			t.Fatalf("exit %d (token expired mid-run: %v), want 0:\n%s", code, out.called, out)
		}
		if n := f.count(`SELECT count(*) FROM email_messages`); n != unique {
			t.Fatalf("email_messages has %d rows, want %d", n, unique)
		}
		runs, _ := os.ReadFile(runsFile)
		if len(runs) < 2 || in.refusals("ya29.first-token") == 0 {
			t.Fatalf("the token command ran %d times and the expired token was refused %d times; want a second run after a refusal",
				len(runs), in.refusals("ya29.first-token"))
		}
		for _, tok := range []string{"first-token", "second-token"} {
			if strings.Contains(out.String(), tok) {
				t.Fatalf("output shows the token %s:\n%s", tok, out)
			}
			if n := f.count(`SELECT count(*) FROM error_logs WHERE error_message LIKE '%' || $1 || '%' OR context::text LIKE '%' || $1 || '%'`, tok); n != 0 {
				t.Fatalf("error_logs holds the token %s", tok)
			}
		}
	})

	t.Run("failing command", func(t *testing.T) {
		script, tokenFile, _ := tokenScript(t, "echo 'oauth2l: refresh token revoked; run oauth2l reset' >&2\nexit 1\n")
		writeFile(t, tokenFile, "ya29.never-shown\n")
		f := newFixture(t)
		f.environ = append(f.environ, "BACKFILL_INBOX_PAY="+srv.URL(user.Name, "INBOX"), "BACKFILL_INBOX_PAY_TOKEN_COMMAND="+script+" --scope 'https://mail.google.com/'")
		f.migrate()
		out := f.mustRun(2, "--inbox", "pay")
		if !strings.Contains(out, "refresh token revoked; run oauth2l reset") {
			t.Fatalf("output does not show what the command said on stderr:\n%s", out)
		}
		if strings.Contains(out, "never-shown") {
			t.Fatalf("output shows what the command printed on stdout:\n%s", out)
		}
		if n := f.count(`SELECT count(*) FROM error_logs WHERE error_type = 'token_command_failed' AND severity = 'critical'`); n != 1 {
			t.Fatalf("error_logs has %d critical token_command_failed rows, want 1", n)
		}
	})

	t.Run("refused new token", func(t *testing.T) {
		script, tokenFile, _ := tokenScript(t, "")
		writeFile(t, tokenFile, "ya29.revoked-token\n")
		f := newFixture(t)
		f.environ = append(f.environ, "BACKFILL_INBOX_PAY="+srv.URL(user.Name, "INBOX"), "BACKFILL_INBOX_PAY_TOKEN_COMMAND="+script)
		f.migrate()
		out := f.mustRun(2, "--inbox", "pay")
		if !strings.Contains(out, "refused a new token from the token command") || strings.Contains(out, "revoked-token") {
			t.Fatalf("output does not say the new token was refused, or shows it:\n%s", out)
		}
	})
}

// TestPasswordAndTokenCommandExit2 refuses an inbox with both a password and
// a token command, before connecting anywhere, and says what to do.
func TestPasswordAndTokenCommandExit2(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.environ = append(f.environ, "BACKFILL_INBOX_DEMO_TOKEN_COMMAND=/usr/local/bin/print-token")
	out := f.mustRun(2, "--inbox", "demo")
	if !strings.Contains(out, "both BACKFILL_INBOX_DEMO_PASSWORD and BACKFILL_INBOX_DEMO_TOKEN_COMMAND are set") ||
		!strings.Contains(out, "not both") || strings.Contains(out, f.imap.Password) {
		t.Fatalf("output does not say which variables conflict, or shows the password:\n%s", out)
	}
}

// TestResolveInboxTokenCommand reads BACKFILL_INBOX_<NAME>_TOKEN_COMMAND.
func TestResolveInboxTokenCommand(t *testing.T) {
	for _, tt := range []struct {
		name     string
		environ  []string
		inbox    string
		wantArgv []string
		wantErr  string
	}{
		{name: "custom inbox", inbox: "sales",
			environ:  []string{"BACKFILL_INBOX_SALES=imaps://s%40x.com@mail.x.com/INBOX", `BACKFILL_INBOX_SALES_TOKEN_COMMAND=oauth2l fetch --scope 'https://mail.google.com/' --credentials "/etc/my creds.json"`},
			wantArgv: []string{"oauth2l", "fetch", "--scope", "https://mail.google.com/", "--credentials", "/etc/my creds.json"}},
		// The seed's password variable is also used to send mail: a token
		// command wins over it rather than conflicting.
		{name: "builtin with the seed's password set", inbox: "payments",
			environ:  []string{"PAYMENT_EMAIL_ADDRESS=p@gmail.com", "PAYMENT_EMAIL_PASSWORD=app", "BACKFILL_INBOX_PAYMENTS_TOKEN_COMMAND=gcloud auth print-access-token"},
			wantArgv: []string{"gcloud", "auth", "print-access-token"}},
		{name: "password and token command", inbox: "payments",
			environ: []string{"PAYMENT_EMAIL_ADDRESS=p@gmail.com", "BACKFILL_INBOX_PAYMENTS_PASSWORD=pw", "BACKFILL_INBOX_PAYMENTS_TOKEN_COMMAND=tok"},
			wantErr: "both BACKFILL_INBOX_PAYMENTS_PASSWORD and BACKFILL_INBOX_PAYMENTS_TOKEN_COMMAND are set"},
		{name: "unclosed quote", inbox: "sales",
			environ: []string{"BACKFILL_INBOX_SALES=imaps://s%40x.com@mail.x.com/INBOX", "BACKFILL_INBOX_SALES_TOKEN_COMMAND=tok 'a"},
			wantErr: "BACKFILL_INBOX_SALES_TOKEN_COMMAND): unclosed ' quote; the command runs without a shell"},
		{name: "neither", inbox: "sales", environ: []string{"BACKFILL_INBOX_SALES=imaps://s%40x.com@mail.x.com/INBOX"},
			wantErr: "set BACKFILL_INBOX_SALES_PASSWORD, or BACKFILL_INBOX_SALES_TOKEN_COMMAND for OAuth2"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e, err := loadEnv(tt.environ, t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := resolveInbox(e, tt.inbox, false)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc, ok := cfg.Token.(*imapsrc.TokenCommand)
			if !ok || !slices.Equal(tc.Argv, tt.wantArgv) || cfg.Password != "" {
				t.Fatalf("token source %#v, password %q; want command %q and no password", cfg.Token, cfg.Password, tt.wantArgv)
			}
			if names := inboxNames(e); slices.ContainsFunc(names, func(n string) bool { return strings.HasSuffix(n, "token_command") }) {
				t.Fatalf("inboxes %q list a token command variable as an inbox", names)
			}
		})
	}
}
