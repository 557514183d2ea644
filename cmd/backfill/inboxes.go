package main

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/myhibachi/backfill/fleet"
	"github.com/myhibachi/backfill/imapsrc"
	"github.com/myhibachi/backfill/pgsink"
	"github.com/urfave/cli/v2"
)

const (
	inboxesAddUsage    = "backfill inboxes add NAME URL [--password-command CMD | --password-env VAR | --token-command CMD] [--folders LIST | --all-folders] [--max-download SIZE/PERIOD]"
	inboxesRemoveUsage = "backfill inboxes remove NAME"
	inboxesListUsage   = "backfill inboxes [list] [--check] [--json]"
)

func (a *appEnv) inboxesCommand() *cli.Command {
	return &cli.Command{
		Name:      "inboxes",
		Usage:     "list inboxes (the database's and the environment's), register or remove one; --check logs in to each",
		UsageText: inboxesListUsage + "\n" + inboxesAddUsage + "\n" + inboxesRemoveUsage,
		Flags:     listFlags(),
		Action:    a.listInboxes,
		Subcommands: []*cli.Command{
			{
				Name:      "add",
				Usage:     "register an inbox in the database, or change its registration (no secret is stored)",
				UsageText: inboxesAddUsage,
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "password-command", Usage: "`CMD` that prints the password, run without a shell where backfill runs, e.g. 'pass show mail/sales'"},
					&cli.StringFlag{Name: "password-env", Usage: "the `VAR`iable that holds the password where backfill runs (environment or .env)"},
					&cli.StringFlag{Name: "token-command", Usage: "`CMD` that prints an OAuth2 access token, as BACKFILL_INBOX_<NAME>_TOKEN_COMMAND"},
					&cli.StringFlag{Name: "folders", Usage: "`LIST` of folders the inbox reads when a run names none (default: the URL's mailbox)"},
					&cli.BoolFlag{Name: "all-folders", Usage: "the inbox reads every folder when a run names none"},
					&cli.StringFlag{Name: "max-download", Usage: "the inbox's download budget, `SIZE/PERIOD` like 2500MB/24h, when a run gives no --max-download"},
					dbFlag(),
				},
				Action: a.addInbox,
			},
			{
				Name:      "remove",
				Usage:     "remove an inbox's registration (its mail stays in the database)",
				UsageText: inboxesRemoveUsage,
				Flags:     []cli.Flag{dbFlag()},
				Action:    a.removeInbox,
			},
			{
				Name:      "list",
				Usage:     "list inboxes, the database's and the environment's; --check logs in to each and selects its mailbox",
				UsageText: inboxesListUsage,
				Flags:     listFlags(),
				Action:    a.listInboxes,
			},
		},
	}
}

func listFlags() []cli.Flag {
	return []cli.Flag{
		&cli.BoolFlag{Name: "check", Usage: "log in and SELECT each inbox (runs password commands)"},
		&cli.BoolFlag{Name: "json", Usage: "print JSON"},
		&cli.BoolFlag{Name: "allow-plaintext", Usage: "allow imap:// without STARTTLS to a non-loopback host"},
		dbFlag(),
	}
}

func (a *appEnv) addInbox(c *cli.Context) error {
	if c.NArg() != 2 {
		return usageError("give an inbox NAME and its URL: %s", inboxesAddUsage)
	}
	reg, err := registration(c)
	if err != nil {
		return err
	}
	sink, err := a.openMigrated(c)
	if err != nil {
		return err
	}
	defer sink.Close()
	change, err := pgsink.UpsertInbox(c.Context, sink.Pool(), reg)
	if err != nil {
		return err
	}
	switch change {
	case pgsink.Added:
		fmt.Fprintf(a.stdout, "➕ Added %s\n", reg.Name)
	case pgsink.Updated:
		fmt.Fprintf(a.stdout, "✏️  Updated %s\n", reg.Name)
	default:
		fmt.Fprintf(a.stdout, "✅ %s unchanged\n", reg.Name)
	}
	if e, err := a.env(); err == nil && configuredInEnv(e, reg.Name) {
		fmt.Fprintf(a.stdout, "ℹ️  %s is also configured in the environment: the database's entry is used\n", reg.Name)
	}
	if reg.PasswordCommand == "" && reg.PasswordEnv == "" && reg.TokenCommand == "" {
		fmt.Fprintf(a.stdout, "🔑 No credential registered: the password is read from %s_PASSWORD where backfill runs\n", inboxVar(reg.Name))
	}
	return nil
}

// registration reads `inboxes add`'s arguments into a registry row,
// refusing anything a run would refuse later, and any secret.
func registration(c *cli.Context) (pgsink.Inbox, error) {
	name, raw := c.Args().Get(0), strings.TrimSpace(c.Args().Get(1))
	if err := checkRegisteredName(name); err != nil {
		return pgsink.Inbox{}, err
	}
	// The URL is stored: a password in it would be stored too. Not even
	// shown back.
	if u, err := url.Parse(raw); err == nil && u.User != nil {
		if _, ok := u.User.Password(); ok {
			return pgsink.Inbox{}, usageError("inbox %s: put no password in the URL, it would be stored in the database: "+
				"give --password-command CMD, --password-env VAR or --token-command CMD instead", name)
		}
	}
	if _, err := imapsrc.ParseURL(raw, true); err != nil {
		return pgsink.Inbox{}, usageError("inbox %s: %v", name, err)
	}
	reg := pgsink.Inbox{Name: name, URL: raw, AllFolders: c.Bool("all-folders")}
	given := 0
	for _, cred := range []struct {
		flag string
		dst  *string
	}{{"password-command", &reg.PasswordCommand}, {"password-env", &reg.PasswordEnv}, {"token-command", &reg.TokenCommand}} {
		if !c.IsSet(cred.flag) {
			continue
		}
		given++
		*cred.dst = strings.TrimSpace(c.String(cred.flag))
		if *cred.dst == "" {
			return pgsink.Inbox{}, usageError("--%s is empty", cred.flag)
		}
	}
	if given > 1 {
		return pgsink.Inbox{}, usageError("give one of --password-command, --password-env and --token-command, not %d", given)
	}
	for flag, cmd := range map[string]string{"--password-command": reg.PasswordCommand, "--token-command": reg.TokenCommand} {
		if cmd == "" {
			continue
		}
		if _, err := splitRegistered(flag, cmd); err != nil {
			return pgsink.Inbox{}, usageError("%v", err)
		}
	}
	if v := reg.PasswordEnv; v != "" && !isVarName(v) {
		return pgsink.Inbox{}, usageError("--password-env %q: give the name of a variable (letters, digits and _), not its value", v)
	}
	if c.IsSet("folders") {
		if reg.Folders = splitFolders(c.String("folders")); len(reg.Folders) == 0 {
			return pgsink.Inbox{}, usageError("--folders names no folder: give a comma-separated list, e.g. --folders INBOX,sent")
		}
	}
	if c.IsSet("max-download") {
		reg.MaxDownload = strings.TrimSpace(c.String("max-download"))
		if _, err := parseMaxDownload(reg.MaxDownload); err != nil {
			return pgsink.Inbox{}, usageError("--max-download %v", err)
		}
	}
	return reg, nil
}

// checkRegisteredName takes the names --inbox takes.
func checkRegisteredName(name string) error {
	if name == "" || !isVarName("X"+name) {
		return usageError("inbox name %q: letters, digits and _ only (it is what --inbox takes)", name)
	}
	return nil
}

func isVarName(s string) bool {
	for i, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r == '_' || i > 0 && r >= '0' && r <= '9') {
			return false
		}
	}
	return s != ""
}

// configuredInEnv reports whether the environment configures inbox name
// (a built-in one always is).
func configuredInEnv(e env, name string) bool {
	_, builtin := builtins[name]
	return builtin || e.get(inboxVar(name)) != ""
}

func (a *appEnv) removeInbox(c *cli.Context) error {
	if c.NArg() != 1 {
		return usageError("give the NAME of the inbox to remove: %s", inboxesRemoveUsage)
	}
	name := c.Args().First()
	sink, err := a.openMigrated(c)
	if err != nil {
		return err
	}
	defer sink.Close()
	removed, err := pgsink.RemoveInbox(c.Context, sink.Pool(), name)
	if err != nil {
		return err
	}
	if removed {
		fmt.Fprintf(a.stdout, "🗑️  Removed %s (its mail stays in the database)\n", name)
		// Its queued jobs could only fail now: no worker knows it.
		if ok, err := fleet.Ready(c.Context, sink.Pool()); err != nil || !ok {
			return err
		}
		_, err := a.cancelJobs(c.Context, sink, []string{name}, nil)
		return err
	}
	list, err := pgsink.ListInboxes(c.Context, sink.Pool())
	if err != nil {
		return err
	}
	names := "none"
	if len(list) > 0 {
		names = strings.Join(registeredNames(list), ", ")
	}
	if e, err := a.env(); err == nil && configuredInEnv(e, name) {
		return usageError("inbox %s is configured in the environment (%s), not registered: remove it there (registered inboxes: %s)",
			name, inboxVar(name), names)
	}
	return usageError("inbox %q is not registered (registered inboxes: %s)", name, names)
}

func registeredNames(list []pgsink.Inbox) []string {
	names := make([]string, len(list))
	for i, in := range list {
		names[i] = in.Name
	}
	return names
}

// inboxListing is one line of `backfill inboxes`, one object of --json.
type inboxListing struct {
	Name    string `json:"name"`
	Source  string `json:"source"` // database or environment
	URL     string `json:"url,omitempty"`
	Mailbox string `json:"mailbox,omitempty"` // user@host:port/mailbox (security)
	Login   string `json:"login,omitempty"`   // how it gets its credential, never the credential
	// Folders a run reads when it names none: the URL's mailbox unless
	// listed; with AllFolders every folder.
	Folders     []string `json:"folders,omitempty"`
	AllFolders  bool     `json:"all_folders"`
	MaxDownload string   `json:"max_download,omitempty"`
	// OverridesEnvironment: the environment configures this name too, and
	// the database's entry is used.
	OverridesEnvironment bool        `json:"overrides_environment,omitempty"`
	Error                string      `json:"error,omitempty"` // why it cannot be used as configured
	Check                *inboxCheck `json:"check,omitempty"` // with --check
	// resolve gets the configuration to log in with (a password command
	// runs): only --check needs it.
	resolve func(ctx context.Context) (imapsrc.Config, error)
}

type inboxCheck struct {
	OK     bool   `json:"ok"`
	Result string `json:"result"`
}

func (a *appEnv) listInboxes(c *cli.Context) error {
	if c.Args().Present() {
		return usageError("unknown inboxes command %q: add, remove or list (see backfill inboxes --help)", c.Args().First())
	}
	e, err := a.env()
	if err != nil {
		return err
	}
	allow, ctx := c.Bool("allow-plaintext"), c.Context
	registered, dbErr := a.databaseInboxes(c, e)
	var list []*inboxListing
	for _, reg := range registered {
		list = append(list, registeredListing(e, reg, allow))
	}
	for _, name := range inboxNames(e) {
		if i := slices.IndexFunc(list, func(l *inboxListing) bool { return l.Name == name }); i >= 0 {
			list[i].OverridesEnvironment = true
			continue
		}
		list = append(list, envListing(e, name, allow))
	}
	slices.SortFunc(list, func(x, y *inboxListing) int { return strings.Compare(x.Name, y.Name) })
	failed := 0
	for _, l := range list {
		if l.Error != "" {
			failed++
			continue
		}
		if c.Bool("check") {
			l.check(ctx)
			if !l.Check.OK {
				failed++
			}
		}
	}
	if c.Bool("json") {
		enc := json.NewEncoder(a.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(list); err != nil {
			return err
		}
	} else if err := printInboxes(a, list, c.Bool("check")); err != nil {
		return err
	}
	if dbErr != nil {
		return fmt.Errorf("the database's inboxes are not listed: %w", dbErr)
	}
	if c.Bool("check") && failed > 0 {
		return &shownError{&exitError{code: exitFatal, err: fmt.Errorf("%d inboxes failed the check", failed)}}
	}
	return nil
}

// databaseInboxes lists the database's inboxes; none, without an error,
// when no database is configured or it predates the registry.
func (a *appEnv) databaseInboxes(c *cli.Context, e env) ([]pgsink.Inbox, error) {
	dbURL := c.String("database-url")
	if dbURL == "" {
		dbURL = e.get("DATABASE_URL")
	}
	if dbURL == "" {
		return nil, nil
	}
	sink, err := pgsink.Open(c.Context, dbURL, 2)
	if err != nil {
		return nil, err
	}
	defer sink.Close()
	return pgsink.ListInboxes(c.Context, sink.Pool())
}

func registeredListing(e env, reg pgsink.Inbox, allow bool) *inboxListing {
	l := &inboxListing{Name: reg.Name, Source: sourceDatabase, URL: reg.URL, Folders: reg.Folders, AllFolders: reg.AllFolders,
		MaxDownload: reg.MaxDownload}
	switch {
	case reg.TokenCommand != "":
		l.Login = "token command: " + reg.TokenCommand
	case reg.PasswordCommand != "":
		l.Login = "password command: " + reg.PasswordCommand
	case reg.PasswordEnv != "":
		l.Login = "password from $" + reg.PasswordEnv
	default:
		l.Login = "password from $" + inboxVar(reg.Name) + "_PASSWORD"
	}
	cfg, err := registeredConfig(e, reg, allow)
	if err != nil {
		l.Error = err.Error()
		return l
	}
	l.Mailbox = cfg.String()
	if l.Folders == nil && !l.AllFolders {
		l.Folders = []string{cfg.Mailbox}
	}
	l.resolve = func(ctx context.Context) (imapsrc.Config, error) {
		spec, err := registeredSpec(ctx, e, reg, allow)
		return spec.IMAP, err
	}
	return l
}

func envListing(e env, name string, allow bool) *inboxListing {
	l := &inboxListing{Name: name, Source: sourceEnvironment, URL: e.get(inboxVar(name)), Folders: inboxFolders(e, name),
		MaxDownload: e.get(maxDownloadVar(name))}
	cfg, err := resolveInbox(e, name, allow)
	if err != nil {
		l.Error = err.Error()
		return l
	}
	l.Mailbox = cfg.String()
	if l.Folders == nil {
		l.Folders = []string{cfg.Mailbox}
	}
	if cfg.Token != nil {
		l.Login = "token command from $" + inboxVar(name) + "_TOKEN_COMMAND"
	} else {
		v := inboxVar(name) + "_PASSWORD"
		if b, ok := builtins[name]; ok && e.get(v) == "" {
			v = b.passwordVar
		}
		l.Login = "password from $" + v
	}
	l.resolve = func(context.Context) (imapsrc.Config, error) { return cfg, nil }
	return l
}

// check gets the inbox's credential, logs in and selects its mailbox.
func (l *inboxListing) check(ctx context.Context) {
	cfg, err := l.resolve(ctx)
	msg := ""
	if err == nil {
		msg, err = checkInbox(ctx, cfg)
	}
	if err != nil {
		msg = err.Error()
	}
	l.Check = &inboxCheck{OK: err == nil, Result: msg}
}

func printInboxes(a *appEnv, list []*inboxListing, check bool) error {
	tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	header := "NAME\tSOURCE\tMAILBOX\tLOGIN\tFOLDERS\tMAX DOWNLOAD"
	if check {
		header += "\tCHECK"
	}
	fmt.Fprintln(tw, header)
	for _, l := range list {
		if l.Error != "" {
			fmt.Fprintf(tw, "%s\t%s\t⚠️  %s\n", l.Name, l.Source, l.Error)
			continue
		}
		folders := strings.Join(l.Folders, ",")
		if l.AllFolders {
			folders = strings.TrimSuffix("all,"+folders, ",")
		}
		line := fmt.Sprintf("%s\t%s\t%s\t%s\t%s\t%s", l.Name, l.Source, l.Mailbox, l.Login, folders, cmp.Or(l.MaxDownload, "-"))
		if check {
			if l.Check.OK {
				line += "\t✅ " + l.Check.Result
			} else {
				line += "\t❌ " + l.Check.Result
			}
		}
		fmt.Fprintln(tw, line)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, l := range list {
		if l.OverridesEnvironment {
			fmt.Fprintf(a.stdout, "ℹ️  %s is configured in the database and in the environment (%s): the database's entry is used\n",
				l.Name, inboxVar(l.Name))
		}
	}
	return nil
}

// checkInbox logs in to cfg and selects its mailbox read-only.
func checkInbox(ctx context.Context, cfg imapsrc.Config) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, err := imapsrc.Dial(ctx, cfg)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	mb, err := conn.SelectReadOnly(ctx, cfg.Mailbox)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%d messages, UIDVALIDITY %d, over %s", mb.Messages, mb.UIDValidity, conn.Security()), nil
}
