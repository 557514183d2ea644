package imapsrc

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/myhibachi/backfill/errlog"
	"github.com/myhibachi/backfill/internal/dovecottest"
)

func TestSplitCommand(t *testing.T) {
	for _, tt := range []struct {
		in      string
		want    []string
		wantErr string
	}{
		{in: "oauth2l fetch --scope mail", want: []string{"oauth2l", "fetch", "--scope", "mail"}},
		{in: "  gcloud\tauth  print-access-token ", want: []string{"gcloud", "auth", "print-access-token"}},
		{in: `/opt/my tools/tok`, want: []string{"/opt/my", "tools/tok"}},
		{in: `'/opt/my tools/tok' --user 'a b'`, want: []string{"/opt/my tools/tok", "--user", "a b"}},
		{in: `"/opt/my tools/tok" "say \"hi\" \\ \n"`, want: []string{"/opt/my tools/tok", `say "hi" \ \n`}},
		{in: `/opt/my\ tools/tok it\'s`, want: []string{"/opt/my tools/tok", "it's"}},
		{in: `tok '' x""y`, want: []string{"tok", "", "xy"}},
		{in: `tok $HOME | cat > f; rm *`, want: []string{"tok", "$HOME", "|", "cat", ">", "f;", "rm", "*"}},
		{in: `tok 'unclosed`, wantErr: "unclosed ' quote"},
		{in: `tok "unclosed`, wantErr: `unclosed " quote`},
		{in: `tok \`, wantErr: "trailing backslash"},
		{in: "   ", wantErr: "empty command"},
	} {
		got, err := SplitCommand(tt.in)
		if tt.wantErr != "" {
			if err == nil || err.Error() != tt.wantErr {
				t.Errorf("SplitCommand(%q) = %q, %v; want error %q", tt.in, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("SplitCommand(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

// tokenScript is a token command as an operator writes one: a script that
// prints the token kept in a file, and counts its runs in another.
type tokenScript struct {
	path, tokenFile, runsFile string
}

func newTokenScript(t *testing.T, token string, extra string) *tokenScript {
	t.Helper()
	dir := t.TempDir()
	s := &tokenScript{path: filepath.Join(dir, "token.sh"), tokenFile: filepath.Join(dir, "token"), runsFile: filepath.Join(dir, "runs")}
	s.setToken(t, token)
	script := "#!/bin/sh\nprintf x >> '" + s.runsFile + "'\n" + extra + "cat '" + s.tokenFile + "'\n"
	if err := os.WriteFile(s.path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return s
}

func (s *tokenScript) setToken(t *testing.T, token string) {
	t.Helper()
	if err := os.WriteFile(s.tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
}

func (s *tokenScript) runs() int {
	b, _ := os.ReadFile(s.runsFile)
	return len(b)
}

func TestTokenCommand(t *testing.T) {
	ctx := context.Background()
	s := newTokenScript(t, "tok-1", "")
	tc := &TokenCommand{Argv: []string{s.path}}

	tok, first, err := tc.Token(ctx)
	if err != nil || tok != "tok-1" {
		t.Fatalf("Token() = %q, %v; want tok-1", tok, err)
	}
	s.setToken(t, "tok-2")
	if tok, at, _ := tc.Token(ctx); tok != "tok-1" || !at.Equal(first) || s.runs() != 1 {
		t.Fatalf("second Token() = %q (runs %d); want the kept tok-1 without running the command", tok, s.runs())
	}
	tc.Refused("some-older-token") // not the kept one: changes nothing
	if tok, _, _ := tc.Token(ctx); tok != "tok-1" {
		t.Fatalf("Token() after refusing another token = %q, want tok-1", tok)
	}
	tc.Refused("tok-1")
	if tok, at, _ := tc.Token(ctx); tok != "tok-2" || !at.After(first) || s.runs() != 2 {
		t.Fatalf("Token() after a refusal = %q (runs %d); want tok-2 from a second run", tok, s.runs())
	}
	tc.MaxAge = time.Nanosecond
	s.setToken(t, "tok-3")
	if tok, _, _ := tc.Token(ctx); tok != "tok-3" || s.runs() != 3 {
		t.Fatalf("Token() past MaxAge = %q (runs %d); want tok-3 from a third run", tok, s.runs())
	}
}

func TestTokenCommandFailures(t *testing.T) {
	ctx := context.Background()
	for _, tt := range []struct {
		name    string
		extra   string // script lines before it prints the token
		token   string
		timeout time.Duration
		want    string
	}{
		{name: "fails", extra: "echo 'refresh token revoked; run oauth2l reset' >&2\nexit 3\n", token: "never-shown",
			want: "exit status 3: refresh token revoked; run oauth2l reset"},
		{name: "prints then fails", extra: "cat '%TOKEN%'\necho 'quota exceeded' >&2\nexit 1\n", token: "never-shown",
			want: "exit status 1: quota exceeded"},
		{name: "silent failure", extra: "exit 4\n", token: "never-shown", want: "exit status 4 (it wrote nothing to stderr)"},
		{name: "prints nothing", token: "", want: "printed no token"},
		{name: "prints two words", token: "never-shown and-more", want: "printed more than one token"},
		// The command sleeps far longer than Token may take on any
		// machine, so only a timeout that works can end it in time.
		{name: "hangs", extra: "sleep 30\n", token: "never-shown", timeout: 200 * time.Millisecond, want: "no token within 200ms"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := newTokenScript(t, tt.token, "")
			s = newTokenScript(t, tt.token, strings.ReplaceAll(tt.extra, "%TOKEN%", s.tokenFile))
			tc := &TokenCommand{Argv: []string{s.path}, Timeout: tt.timeout}
			start := time.Now()
			tok, _, err := tc.Token(ctx)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Token() = %q, %v; want an error containing %q", tok, err, tt.want)
			}
			if strings.Contains(err.Error(), "never-shown") {
				t.Fatalf("the error shows what the command printed on stdout: %v", err)
			}
			// Timeout, kill and WaitDelay take about 1.2 s; a loaded CI
			// machine may stretch that, never to the command's 30 s.
			if time.Since(start) > 20*time.Second {
				t.Fatalf("Token() took %v: the timeout did not stop the command", time.Since(start))
			}
		})
	}
	if _, _, err := (&TokenCommand{Argv: []string{"/nonexistent/token-cmd"}}).Token(ctx); err == nil || !strings.Contains(err.Error(), "/nonexistent/token-cmd") {
		t.Fatalf("missing program: %v, want an error naming it", err)
	}
}

// introspection is a token introspection endpoint (RFC 7662) for Dovecot's
// oauth2 passdb: it accepts the tokens in active for user.
type introspection struct {
	user string
	mu   sync.Mutex
	ok   map[string]bool
	seen []string
}

func (in *introspection) accept(tokens ...string) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.ok = map[string]bool{}
	for _, tok := range tokens {
		in.ok[tok] = true
	}
}

func (in *introspection) asked() []string {
	in.mu.Lock()
	defer in.mu.Unlock()
	return slices.Clone(in.seen)
}

func (in *introspection) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	tok := r.PostFormValue("token")
	in.mu.Lock()
	active := in.ok[tok]
	in.seen = append(in.seen, tok)
	in.mu.Unlock()
	answer := map[string]string{"active": "false"}
	if active {
		answer = map[string]string{"active": "true", "username": in.user}
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(answer) //nolint:errcheck // Dovecot sees a short answer
}

func oauthDovecot(t *testing.T, opts ...dovecottest.Option) (*introspection, Config, *dovecottest.Server) {
	t.Helper()
	user := dovecottest.User{Name: "pay@example.com", Password: "unused-password"}
	in := &introspection{user: user.Name}
	ep := httptest.NewServer(in)
	t.Cleanup(ep.Close)
	srv := dovecottest.NewServer(t, []dovecottest.User{user}, append(opts, dovecottest.WithOAuth2(ep.URL))...)
	cfg, err := ParseURL(srv.URL(user.Name, "INBOX"), false)
	if err != nil {
		t.Fatal(err)
	}
	return in, cfg, srv
}

// TestDialOAuth2 logs in to Dovecot's oauth2 passdb with tokens from a
// command: a kept token the server refuses is replaced once, a new token
// it refuses is a critical error, and the password is never sent.
func TestDialOAuth2(t *testing.T) {
	in, cfg, _ := oauthDovecot(t)
	ctx := context.Background()
	login := func(tc *TokenCommand) error {
		t.Helper()
		cfg := cfg
		cfg.Token = tc
		conn, err := Dial(ctx, cfg)
		if err == nil {
			if _, err := conn.SelectReadOnly(ctx, "INBOX"); err != nil {
				t.Fatal(err)
			}
			conn.Close()
		}
		return err
	}

	s := newTokenScript(t, "tok-1", "")
	tc := &TokenCommand{Argv: []string{s.path}}
	in.accept("tok-1")
	if err := login(tc); err != nil {
		t.Fatalf("login with an accepted token: %v", err)
	}
	if err := login(tc); err != nil || s.runs() != 1 {
		t.Fatalf("second login: %v after %d runs; want the kept token, one run", err, s.runs())
	}

	// The token expires: the next connection is refused with it, and
	// logs in with a new one.
	s.setToken(t, "tok-2")
	in.accept("tok-2")
	if err := login(tc); err != nil || s.runs() != 2 {
		t.Fatalf("login after the kept token expired: %v after %d runs; want success after a second run", err, s.runs())
	}
	if got := in.asked(); !reflect.DeepEqual(got[len(got)-2:], []string{"tok-1", "tok-2"}) {
		t.Fatalf("the endpoint was asked about %q, want the expired tok-1 then tok-2 last", got)
	}

	// A new token that is refused: critical, and not asked for again.
	s.setToken(t, "tok-3")
	fresh := newTokenScript(t, "tok-3", "")
	err := login(&TokenCommand{Argv: []string{fresh.path}})
	var ce *errlog.CriticalError
	if !errors.As(err, &ce) || ce.Type != "login_failed" || !strings.Contains(err.Error(), "refused a new token from the token command") {
		t.Fatalf("login with a refused new token: %v; want a critical login_failed error", err)
	}
	if fresh.runs() != 1 || strings.Contains(err.Error(), "tok-3") {
		t.Fatalf("refused new token: %d runs, error %v; want one run and no token in the error", fresh.runs(), err)
	}

	// A command that fails is critical too, with what it said.
	broken := newTokenScript(t, "tok-1", "echo 'token endpoint unreachable' >&2\nexit 1\n")
	err = login(&TokenCommand{Argv: []string{broken.path}})
	if !errors.As(err, &ce) || ce.Type != "token_command_failed" || !strings.Contains(err.Error(), "token endpoint unreachable") {
		t.Fatalf("login with a failing command: %v; want a critical token_command_failed error with its stderr", err)
	}
}

// TestDialOAuth2Mechanism uses OAUTHBEARER when the server offers it and
// XOAUTH2 when that is all it offers.
func TestDialOAuth2Mechanism(t *testing.T) {
	for _, tt := range []struct {
		mechanisms, want string
	}{
		{"plain login oauthbearer xoauth2", "method=OAUTHBEARER"},
		{"plain login xoauth2", "method=XOAUTH2"},
		{"plain login", "offers neither OAUTHBEARER nor XOAUTH2 (AUTH=LOGIN AUTH=PLAIN)"},
	} {
		t.Run(tt.mechanisms, func(t *testing.T) {
			in, cfg, srv := oauthDovecot(t, dovecottest.WithConfig("auth_mechanisms = "+tt.mechanisms))
			in.accept("tok-1")
			cfg.Token = &TokenCommand{Argv: []string{newTokenScript(t, "tok-1", "").path}}
			conn, err := Dial(context.Background(), cfg)
			if err != nil {
				if !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("Dial: %v, want %q", err, tt.want)
				}
				return
			}
			conn.Close()
			// Dovecot's log process writes a moment later.
			var log []byte
			for deadline := time.Now().Add(10 * time.Second); !strings.Contains(string(log), tt.want) && time.Now().Before(deadline); {
				time.Sleep(20 * time.Millisecond)
				log, _ = os.ReadFile(srv.LogFile())
			}
			if !strings.Contains(string(log), tt.want) {
				t.Fatalf("Dovecot's log does not say %s:\n%s", tt.want, log)
			}
			// A refused token ends with the server's NO, after the client
			// answered its error challenge, not with a hung command.
			cfg.Token = &TokenCommand{Argv: []string{newTokenScript(t, "unknown-token", "").path}}
			_, err = Dial(context.Background(), cfg)
			var ce *errlog.CriticalError
			if !errors.As(err, &ce) || ce.Type != "login_failed" {
				t.Fatalf("Dial with an unknown token: %v; want a critical login_failed error", err)
			}
		})
	}
}
