package imapsrc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"
	"github.com/myhibachi/backfill/errlog"
)

// TokenSource gives the OAuth2 access tokens a connection logs in with. It
// is shared by every connection of a run, so implementations are safe for
// concurrent use.
type TokenSource interface {
	// Token returns a token and when it was obtained.
	Token(ctx context.Context) (token string, obtained time.Time, err error)
	// Refused tells the source that the server refused token, so that the
	// next Token call obtains a new one.
	Refused(token string)
}

// TokenCommand runs a command that prints an access token (oauth2l,
// gcloud auth print-access-token, a script around a refresh token). It
// keeps the token for later connections until it is older than MaxAge or
// the server refuses it, then runs the command again.
type TokenCommand struct {
	// Argv is the program and its arguments; it is run without a shell.
	Argv []string
	// Timeout bounds one run; zero means 30 s.
	Timeout time.Duration
	// MaxAge is how long a token is used for new connections; zero means
	// 10 minutes. Access tokens usually live an hour, and a command that
	// caches its own token may hand out one that is about to expire.
	MaxAge time.Duration

	mu       sync.Mutex
	token    string
	obtained time.Time
}

// String names the command, never the token it printed.
func (tc *TokenCommand) String() string { return "token command " + strings.Join(tc.Argv, " ") }

// GoString keeps %#v from printing the kept token.
func (tc *TokenCommand) GoString() string { return "&imapsrc.TokenCommand{" + tc.String() + "}" }

// maxTokenOutput bounds what is read of the command's stdout and stderr.
const maxTokenOutput = 64 << 10

// Token returns the kept token, or runs the command for a new one.
func (tc *TokenCommand) Token(ctx context.Context) (string, time.Time, error) {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	maxAge := tc.MaxAge
	if maxAge <= 0 {
		maxAge = 10 * time.Minute
	}
	if tc.token != "" && time.Since(tc.obtained) < maxAge {
		return tc.token, tc.obtained, nil
	}
	tok, err := tc.run(ctx)
	if err != nil {
		return "", time.Time{}, err
	}
	tc.token, tc.obtained = tok, time.Now()
	return tc.token, tc.obtained, nil
}

// Refused forgets token if it is still the kept one.
func (tc *TokenCommand) Refused(token string) {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	if tc.token == token {
		tc.token = ""
	}
}

// run runs the command once. Its stdout is the token and is never part of
// an error; its stderr is, because that is where such commands say why.
func (tc *TokenCommand) run(ctx context.Context) (string, error) {
	if len(tc.Argv) == 0 {
		return "", errors.New("token command: empty command")
	}
	timeout := tc.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, tc.Argv[0], tc.Argv[1:]...)
	var stdout, stderr limitedBuffer
	stdout.max, stderr.max = maxTokenOutput, maxTokenOutput
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	// A child that keeps stderr open must not hold the run past the timeout.
	cmd.WaitDelay = time.Second
	err := cmd.Run()
	name := tc.Argv[0]
	if err != nil {
		if ctx.Err() == context.DeadlineExceeded {
			err = fmt.Errorf("no token within %v", timeout)
		}
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			return "", fmt.Errorf("token command %s: %w (it wrote nothing to stderr)", name, err)
		}
		return "", fmt.Errorf("token command %s: %w: %s", name, err, msg)
	}
	tok := strings.TrimSpace(stdout.String())
	switch {
	case tok == "":
		return "", fmt.Errorf("token command %s printed no token", name)
	case stdout.truncated || strings.ContainsFunc(tok, unicode.IsSpace):
		// Not shown: it may hold the token.
		return "", fmt.Errorf("token command %s printed more than one token (%d bytes with white space inside); it must print the access token alone", name, len(tok))
	}
	return tok, nil
}

// limitedBuffer keeps the first max bytes written to it and drops the rest,
// so a runaway command cannot fill memory.
type limitedBuffer struct {
	bytes.Buffer
	max       int
	truncated bool
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if room := b.max - b.Len(); room < len(p) {
		b.truncated = true
		b.Buffer.Write(p[:max(room, 0)])
		return len(p), nil
	}
	return b.Buffer.Write(p)
}

var _ io.Writer = (*limitedBuffer)(nil)

// SplitCommand splits a command line into program and arguments the way a
// POSIX shell splits words, without any of its expansions: white space
// separates words; 'single quotes' keep everything literally; "double
// quotes" keep everything, with \" and \\ for " and \; outside quotes a backslash keeps
// the next character. No variables, globs, pipes or redirections.
func SplitCommand(s string) ([]string, error) {
	var (
		words   []string
		word    strings.Builder
		inWord  bool
		quote   rune // 0, '\'' or '"'
		escaped bool
	)
	for _, r := range s {
		switch {
		case escaped:
			// In double quotes only \" and \\ are escapes, as in a shell.
			if quote == '"' && r != '"' && r != '\\' {
				word.WriteRune('\\')
			}
			word.WriteRune(r)
			escaped = false
		case quote == '\'':
			if r == '\'' {
				quote = 0
			} else {
				word.WriteRune(r)
			}
		case quote == '"':
			switch r {
			case '"':
				quote = 0
			case '\\':
				escaped = true
			default:
				word.WriteRune(r)
			}
		case r == '\\':
			escaped, inWord = true, true
		case r == '\'' || r == '"':
			quote, inWord = r, true
		case unicode.IsSpace(r):
			if inWord {
				words = append(words, word.String())
				word.Reset()
				inWord = false
			}
		default:
			word.WriteRune(r)
			inWord = true
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("unclosed %c quote", quote)
	}
	if escaped {
		return nil, errors.New("trailing backslash")
	}
	if inWord {
		words = append(words, word.String())
	}
	if len(words) == 0 {
		return nil, errors.New("empty command")
	}
	return words, nil
}

// errKeptTokenRefused is authenticateBearer's error when the server
// refused a token kept from an earlier connection: Dial tries once more,
// on a new connection, because a server may close the connection after a
// failed exchange.
var errKeptTokenRefused = errors.New("the server refused the kept OAuth2 token")

// authenticateBearer logs in with a token from cfg.Token. A token kept
// from an earlier connection may have expired: when the server refuses it,
// the source is told and errKeptTokenRefused returned. A refused new token
// is critical: running the command again would not help.
func authenticateBearer(ctx context.Context, c *imapclient.Client, cfg Config) error {
	mech, err := bearerMechanism(c.Caps())
	if err != nil {
		return &errlog.CriticalError{Type: "login_failed", Err: fmt.Errorf("OAuth2 login to %s: %w", cfg.Addr(), err)}
	}
	// Usually the token Dial obtained just before connecting.
	token, obtained, err := cfg.Token.Token(ctx)
	if err != nil {
		return tokenError(ctx, err)
	}
	sc := bearerClient(mech, cfg.Username, token, cfg.Host, cfg.Port)
	err = c.Authenticate(sc)
	if err == nil {
		return nil
	}
	err = ctxErr(ctx, err)
	// The server's error challenge says the token was refused, whatever
	// it answers to the client's reply (NO, or BAD from a server that
	// wanted another reply).
	if !refused(err) && (sc.status == "" || ctx.Err() != nil) {
		return fmt.Errorf("%s login to %s as %s: %w", mech, cfg.Addr(), cfg.Username, err)
	}
	cfg.Token.Refused(token)
	if !cfg.lastToken && obtained.Before(cfg.tokenSince) {
		return errKeptTokenRefused
	}
	if sc.status != "" {
		err = fmt.Errorf("%w (status %s)", err, sc.status)
	}
	return &errlog.CriticalError{Type: "login_failed", Err: fmt.Errorf(
		"%s login to %s as %s refused a new token from the token command: %w; check that the command prints an access token for this account with the IMAP mail scope",
		mech, cfg.Addr(), cfg.Username, err)}
}

// tokenError makes a token command's failure critical: running it again
// would fail again, and the operator must act. A cancelled run is not a
// failure of the command.
func tokenError(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctxErr(ctx, err)
	}
	return &errlog.CriticalError{Type: "token_command_failed", Err: err}
}

// bearerMechanism picks the SASL mechanism for a token: OAUTHBEARER, the
// standard one, when the server offers it, else XOAUTH2.
func bearerMechanism(caps imap.CapSet) (string, error) {
	mechs := caps.AuthMechanisms()
	slices.Sort(mechs) // a set: the same message every time
	for _, want := range []string{sasl.OAuthBearer, xoauth2} {
		for _, m := range mechs {
			if strings.EqualFold(m, want) {
				return want, nil
			}
		}
	}
	return "", fmt.Errorf("the server offers neither OAUTHBEARER nor XOAUTH2 (AUTH=%s); use a password instead of a token command", strings.Join(mechs, " AUTH="))
}
