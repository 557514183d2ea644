package main

import (
	"crypto/x509"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/joho/godotenv"
	"github.com/myhibachi/backfill/imapsrc"
)

// env is the process environment with a .env file behind it: a variable
// set in the real environment wins over the file.
type env struct {
	real map[string]string
	file map[string]string
}

// loadEnv reads .env from dir (the working directory when empty), if any.
func loadEnv(environ []string, dir string) (env, error) {
	e := env{real: map[string]string{}, file: map[string]string{}}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			e.real[k] = v
		}
	}
	path := filepath.Join(dir, ".env")
	m, err := godotenv.Read(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return e, fmt.Errorf("read %s: %w", path, err)
	}
	if m != nil {
		e.file = m
	}
	return e, nil
}

func (e env) get(key string) string {
	if v, ok := e.real[key]; ok {
		return v
	}
	return e.file[key]
}

func (e env) keys() []string {
	keys := slices.Collect(maps.Keys(e.real))
	keys = slices.AppendSeq(keys, maps.Keys(e.file))
	slices.Sort(keys)
	return slices.Compact(keys)
}

// builtin describes the seed's two inboxes, which work from the seed's own
// variables so existing .env files need no change.
type builtin struct {
	url         func(e env) (string, error)
	passwordVar string
}

var builtins = map[string]builtin{
	"customer_support": {
		url: func(env) (string, error) {
			return "imaps://cs%40myhibachichef.com@imap.ionos.com:993/INBOX", nil
		},
		passwordVar: "SMTP_PASSWORD",
	},
	"payments": {
		url: func(e env) (string, error) {
			addr := e.get("PAYMENT_EMAIL_ADDRESS")
			if addr == "" {
				return "", errors.New("PAYMENT_EMAIL_ADDRESS is not set (in the environment or .env)")
			}
			return "imaps://" + url.PathEscape(addr) + "@imap.gmail.com:993/INBOX", nil
		},
		passwordVar: "PAYMENT_EMAIL_PASSWORD",
	},
}

// inboxVar is the variable holding an inbox's URL: BACKFILL_INBOX_<NAME>.
func inboxVar(name string) string {
	return "BACKFILL_INBOX_" + strings.ToUpper(name)
}

// inboxNames lists the configured inboxes: the built-ins and every
// BACKFILL_INBOX_<NAME> URL. BACKFILL_INBOX_X_FOLDERS is inbox x's folder
// list, unless it holds an IMAP URL: then it is inbox x_folders.
func inboxNames(e env) []string {
	names := []string{"customer_support", "payments"}
	for _, k := range e.keys() {
		rest, ok := strings.CutPrefix(k, "BACKFILL_INBOX_")
		if !ok || rest == "" || strings.HasSuffix(rest, "_PASSWORD") || strings.HasSuffix(rest, "_TOKEN_COMMAND") ||
			strings.HasSuffix(rest, "_MAX_DOWNLOAD") || strings.HasSuffix(rest, "_FOLDERS") && !isIMAPURL(e.get(k)) {
			continue
		}
		names = append(names, strings.ToLower(rest))
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// inboxFolders is an inbox's default folder list, from
// BACKFILL_INBOX_<NAME>_FOLDERS; nil when unset (INBOX). A URL there is
// another inbox's (see inboxNames), not a folder list.
func inboxFolders(e env, name string) []string {
	v := e.get(inboxVar(name) + "_FOLDERS")
	if isIMAPURL(v) {
		return nil
	}
	return splitFolders(v)
}

// isIMAPURL reports whether s is an inbox URL rather than a folder list.
func isIMAPURL(s string) bool {
	s = strings.ToLower(strings.TrimSpace(s))
	return strings.HasPrefix(s, "imap://") || strings.HasPrefix(s, "imaps://")
}

// resolveInbox turns an inbox name into an IMAP configuration, with errors
// that say which variable to set.
func resolveInbox(e env, name string, allowPlaintext bool) (imapsrc.Config, error) {
	urlVar, passVar, tokenVar := inboxVar(name), inboxVar(name)+"_PASSWORD", inboxVar(name)+"_TOKEN_COMMAND"
	raw := e.get(urlVar)
	password := e.get(passVar)
	tokenCommand := e.get(tokenVar)
	// Only this inbox's own variables conflict: the seed's password
	// variables below may stay set for their other uses (sending mail),
	// and a token command wins over them.
	if password != "" && tokenCommand != "" {
		return imapsrc.Config{}, fmt.Errorf("inbox %s: both %s and %s are set: keep %s for an OAuth2 login, or %s for a password login, not both",
			name, passVar, tokenVar, tokenVar, passVar)
	}
	if b, ok := builtins[name]; ok {
		if raw == "" {
			u, err := b.url(e)
			if err != nil {
				return imapsrc.Config{}, fmt.Errorf("inbox %s: %w", name, err)
			}
			raw = u
		}
		if password == "" {
			passVar = b.passwordVar
			password = e.get(passVar)
		}
	} else if raw == "" {
		return imapsrc.Config{}, fmt.Errorf("unknown inbox %q: set %s=imaps://user%%40example.com@imap.example.com:993/INBOX and %s (configured inboxes: %s)",
			name, urlVar, passVar, strings.Join(inboxNames(e), ", "))
	}
	cfg, err := imapsrc.ParseURL(raw, allowPlaintext)
	if err != nil {
		return imapsrc.Config{}, fmt.Errorf("inbox %s (%s): %w", name, urlVar, err)
	}
	// Before the login branches: an OAuth2 login needs the private CA too.
	if cfg.RootCAs, err = rootCAs(e); err != nil {
		return imapsrc.Config{}, fmt.Errorf("inbox %s: %w", name, err)
	}
	if tokenCommand != "" {
		argv, err := imapsrc.SplitCommand(tokenCommand)
		if err != nil {
			return imapsrc.Config{}, fmt.Errorf("inbox %s (%s): %w; the command runs without a shell: quote arguments with ' or \"", name, tokenVar, err)
		}
		cfg.Token = &imapsrc.TokenCommand{Argv: argv}
		return cfg, nil
	}
	if password == "" {
		return imapsrc.Config{}, fmt.Errorf("inbox %s: no password: set %s, or %s for OAuth2 (in the environment or .env)", name, passVar, tokenVar)
	}
	cfg.Password = password
	return cfg, nil
}

// rootCAs reads SSL_CERT_FILE when it is set, in the environment or in
// .env: Go reads it only from the process environment, and a private CA is
// often configured in .env beside its inbox. As with Go's own reading (the
// file replaces the system bundle, /etc/ssl/certs stays), public CAs stay
// trusted: the file's certificates are added to the system pool. Unset,
// the system roots are used as they are (nil).
func rootCAs(e env) (*x509.CertPool, error) {
	path := e.get("SSL_CERT_FILE")
	if path == "" {
		return nil, nil
	}
	pemData, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("SSL_CERT_FILE: %w", err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool() // no system roots here: the file's alone
	}
	if !pool.AppendCertsFromPEM(pemData) {
		return nil, fmt.Errorf("SSL_CERT_FILE %s: no PEM certificate in it", path)
	}
	return pool, nil
}
