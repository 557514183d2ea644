package main

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/joho/godotenv"
	"github.com/myhibachi/backfill/imapsrc"
	"github.com/myhibachi/backfill/pgsink"
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
		return imapsrc.Config{}, unknownInbox(e, name, nil)
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

// unknownInboxError is an inbox name neither the registry nor the
// environment knows.
type unknownInboxError struct{ msg string }

func (e *unknownInboxError) Error() string { return e.msg }

// unknownInbox says how to configure inbox name, and lists the inboxes
// there are: the environment's and the registered ones.
func unknownInbox(e env, name string, registered []string) error {
	names := slices.Concat(inboxNames(e), registered)
	slices.Sort(names)
	return &unknownInboxError{fmt.Sprintf("unknown inbox %q: set %s=imaps://user%%40example.com@imap.example.com:993/INBOX and %s, "+
		"or register it: backfill inboxes add %s URL --password-command CMD (configured inboxes: %s)",
		name, inboxVar(name), inboxVar(name)+"_PASSWORD", name, strings.Join(slices.Compact(names), ", "))}
}

// Where an inbox is configured.
const (
	sourceDatabase    = "database"
	sourceEnvironment = "environment"
)

// inboxSpec is an inbox as configured, ready to log in.
type inboxSpec struct {
	Name        string
	Source      string         // sourceDatabase or sourceEnvironment
	IMAP        imapsrc.Config // Password or Token filled (password command already run)
	Folders     []string       // nil: the URL's mailbox (INBOX) unless AllFolders
	AllFolders  bool
	MaxDownload string // the registry's --max-download; "" = env/preset rules as today
}

// resolveInboxSpec finds inbox name in the database's registry (when pool
// is non-nil and the table is there), else in the environment
// (resolveInbox), and gets its credential: a registered password command
// is run here. Configuration errors (unknown inbox, bad URL, a command
// that cannot be run, no credential) are usage errors; what may pass by
// itself (a database error, a password command failing or timing out) is
// a plain error.
func (a *appEnv) resolveInboxSpec(ctx context.Context, pool *pgxpool.Pool, e env, name string, allowPlaintext bool) (inboxSpec, error) {
	var registered []string
	if pool != nil {
		reg, ok, err := pgsink.GetInbox(ctx, pool, name)
		if err != nil {
			return inboxSpec{}, err
		}
		if ok {
			return registeredSpec(ctx, e, reg, allowPlaintext)
		}
		list, err := pgsink.ListInboxes(ctx, pool)
		if err != nil {
			return inboxSpec{}, err
		}
		for _, in := range list {
			registered = append(registered, in.Name)
		}
	}
	if _, builtin := builtins[name]; !builtin && e.get(inboxVar(name)) == "" {
		return inboxSpec{}, &exitError{code: exitFatal, err: unknownInbox(e, name, registered)}
	}
	cfg, err := resolveInbox(e, name, allowPlaintext)
	if err != nil {
		return inboxSpec{}, usageError("%v", err)
	}
	return inboxSpec{Name: name, Source: sourceEnvironment, IMAP: cfg, Folders: inboxFolders(e, name)}, nil
}

// registeredSpec is a registered inbox ready to log in: its password
// command run, or its password variable read, here.
func registeredSpec(ctx context.Context, e env, reg pgsink.Inbox, allowPlaintext bool) (inboxSpec, error) {
	where := "inbox " + reg.Name + " (registered in the database)"
	cfg, err := registeredConfig(e, reg, allowPlaintext)
	if err != nil {
		return inboxSpec{}, usageError("%s: %v", where, err)
	}
	spec := inboxSpec{Name: reg.Name, Source: sourceDatabase, Folders: reg.Folders, AllFolders: reg.AllFolders, MaxDownload: reg.MaxDownload}
	switch {
	case reg.TokenCommand != "":
		argv, err := splitRegistered("--token-command", reg.TokenCommand)
		if err != nil {
			return inboxSpec{}, usageError("%s: %v", where, err)
		}
		// The token command runs at login; one that cannot run at all is
		// said now, as a password command's is.
		if _, err := exec.LookPath(argv[0]); err != nil {
			return inboxSpec{}, usageError("%s: token command %s %v: %v", where, argv[0], imapsrc.ErrNotRunnable, err)
		}
		cfg.Token = &imapsrc.TokenCommand{Argv: argv}
	case reg.PasswordCommand != "":
		argv, err := splitRegistered("--password-command", reg.PasswordCommand)
		if err != nil {
			return inboxSpec{}, usageError("%s: %v", where, err)
		}
		cfg.Password, err = imapsrc.PasswordCommand(ctx, argv, 0)
		if errors.Is(err, imapsrc.ErrNotRunnable) {
			return inboxSpec{}, usageError("%s: %v", where, err)
		}
		if err != nil {
			return inboxSpec{}, fmt.Errorf("%s: %w", where, err)
		}
	default:
		// Registered without a credential: the password is where an
		// environment inbox's is.
		v := reg.PasswordEnv
		if v == "" {
			v = inboxVar(reg.Name) + "_PASSWORD"
		}
		if cfg.Password = e.get(v); cfg.Password == "" {
			return inboxSpec{}, usageError("%s: no password: %s is not set here (in the environment or .env); "+
				"or register a credential: backfill inboxes add %s URL --password-command CMD", where, v, reg.Name)
		}
	}
	spec.IMAP = cfg
	return spec, nil
}

// registeredConfig reads a registered inbox's URL, without its credential.
func registeredConfig(e env, reg pgsink.Inbox, allowPlaintext bool) (imapsrc.Config, error) {
	cfg, err := imapsrc.ParseURL(reg.URL, allowPlaintext)
	if err != nil {
		return cfg, err
	}
	cfg.RootCAs, err = rootCAs(e)
	return cfg, err
}

func splitRegistered(flag, command string) ([]string, error) {
	argv, err := imapsrc.SplitCommand(command)
	if err == nil && len(argv) == 0 {
		err = errors.New("empty command")
	}
	if err != nil {
		return nil, fmt.Errorf("%s %q: %w; the command runs without a shell: quote arguments with ' or \"", flag, command, err)
	}
	return argv, nil
}
