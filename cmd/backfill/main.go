// Command backfill copies the mail already in an IMAP mailbox into
// PostgreSQL, without duplicates, and can be re-run at will.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/myhibachi/backfill/errlog"
	"github.com/urfave/cli/v2"
)

// Exit codes, decided only in exitCode; listed in the help text.
const (
	exitOK          = 0
	exitPartial     = 1
	exitFatal       = 2
	exitBudget      = 75  // EX_TEMPFAIL: the download budget is used up
	exitInterrupted = 130 // SIGINT
	exitTerminated  = 143 // SIGTERM
)

const exitCodesHelp = `EXIT CODES:
   0    every message was stored or already present
   1    the run finished, but some messages failed (each one is in error_logs)
   2    fatal: bad usage or configuration, could not connect or log in,
        schema missing, or the run was aborted
   75   the download budget (--max-download) is used up: what was fetched
        is committed; run again after the time the closing block names
   130  interrupted by SIGINT after committing what was in flight
   143  interrupted by SIGTERM after committing what was in flight`

func main() {
	ctx, cancel := context.WithCancelCause(context.Background())
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		first := <-sigs
		cancel(signalError{first.(syscall.Signal)})
		// A second signal means "now": skip the wait for in-flight batches.
		second := <-sigs
		os.Exit(signalError{second.(syscall.Signal)}.code())
	}()
	tuneGC()
	wd, _ := os.Getwd()
	os.Exit(run(ctx, os.Args, os.Stdout, os.Stderr, os.Environ(), wd))
}

// tuneGC trades memory the run has to spare for CPU the machine has not: a
// backfill allocates a message's worth of garbage per message, and with
// Go's default GOGC=100 collection costs about a tenth of its CPU on a
// machine the backfill keeps busy. Collecting only as the heap nears a
// fixed 100 MiB (GOGC off, GOMEMLIMIT 100 MiB) costs least and keeps peak
// RSS the same whatever the mailbox size (measured: 105 MB at 10,000 and at
// 50,000 messages); what is live is a few batches, about 20 MB. Should a
// huge message make more live, the runtime caps the collector at half the
// CPU rather than fail. GOGC or GOMEMLIMIT in the environment win.
func tuneGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(-1)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(100 << 20)
	}
}

// signalError is the cancellation cause when a signal stops the run.
type signalError struct{ sig syscall.Signal }

func (s signalError) Error() string { return "interrupted by " + s.sig.String() }

func (s signalError) code() int {
	if s.sig == syscall.SIGTERM {
		return exitTerminated
	}
	return exitInterrupted
}

// exitError carries an exit code chosen by a command to run.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// usageError is bad usage or configuration: exit 2 with a hint.
func usageError(format string, args ...any) error {
	return &exitError{code: exitFatal, err: fmt.Errorf(format, args...)}
}

// run is main without the process: tests call it directly.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, environ []string, dir string) int {
	app := newApp(stdout, stderr, environ, dir)
	err := app.RunContext(ctx, args)
	code := exitCode(ctx, err)
	if err != nil && code != exitOK {
		var shown *shownError
		if !errors.As(err, &shown) {
			fmt.Fprintf(stderr, "❌ %v\n", err)
		}
	}
	return code
}

// shownError is an error the command already reported in its own output.
type shownError struct{ err error }

func (e *shownError) Error() string { return e.err.Error() }
func (e *shownError) Unwrap() error { return e.err }

// exitCode maps an outcome to the documented exit codes.
func exitCode(ctx context.Context, err error) int {
	var sig signalError
	if errors.As(context.Cause(ctx), &sig) {
		return sig.code()
	}
	if err == nil {
		return exitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	if errlog.Classify(err) == errlog.Message {
		return exitPartial
	}
	return exitFatal
}

func newApp(stdout, stderr io.Writer, environ []string, dir string) *cli.App {
	a := &appEnv{stdout: stdout, stderr: stderr, environ: environ, dir: dir}
	app := &cli.App{
		Name:  "backfill",
		Usage: "copy the mail already in an IMAP mailbox into PostgreSQL, without duplicates",
		UsageText: `backfill --inbox NAME [--folders LIST | --all-folders] [--limit N] [--batch-size N] [--workers N] [--dry-run] [--verbose]
backfill migrate [--dry-run]
backfill status [--inbox NAME] [--json]
backfill errors [--operation ID] [--limit N]
backfill inboxes [list] [--check] [--json]
backfill inboxes add NAME URL [--password-command CMD | --password-env VAR | --token-command CMD] [--folders LIST | --all-folders] [--max-download SIZE/PERIOD]
backfill inboxes remove NAME
backfill watch --inbox NAME [--inbox NAME ...] [--folders LIST | --all-folders] [--flags server|keep] [--listen ADDR]
backfill enqueue (--inbox NAME ... | --all-inboxes) [--folders LIST | --all-folders] [--every DURATION]
backfill dequeue (--inbox NAME ... | --all-inboxes) [--folders LIST]
backfill worker [--concurrency N] [--listen ADDR] [--max-job-time DURATION]
backfill --version`,
		Description: `Inboxes: BACKFILL_INBOX_<NAME>=imaps://user%40example.com@host:993/INBOX plus
   BACKFILL_INBOX_<NAME>_PASSWORD, or for OAuth2 BACKFILL_INBOX_<NAME>_TOKEN_COMMAND,
   a command that prints an access token. BACKFILL_INBOX_<NAME>_FOLDERS=INBOX,sent sets the
   folders an inbox reads by default (--folders wins). customer_support (SMTP_PASSWORD) and payments
   (PAYMENT_EMAIL_ADDRESS, PAYMENT_EMAIL_PASSWORD) work from the seed's variables.
   Or register an inbox in the database, without its secret: backfill inboxes add sales
   imaps://sales%40example.com@imap.example.com:993/INBOX --password-command 'pass show mail/sales'
   (or --password-env VAR, --token-command CMD), run where backfill runs; a name registered
   there wins over the environment's.
   A .env in the working directory is read; the real environment wins.`,
		CustomAppHelpTemplate: cli.AppHelpTemplate + "\n" + exitCodesHelp + "\n",
		Writer:                stdout,
		ErrWriter:             stderr,
		Flags:                 append(append(runFlags(), globalFlags()...), helpFlag(), versionFlag()),
		Action:                withHelp(a.withVersion(a.runBackfill)),
		Commands: []*cli.Command{
			a.migrateCommand(),
			a.statusCommand(),
			a.errorsCommand(),
			a.inboxesCommand(),
			a.watchCommand(),
			a.enqueueCommand(),
			a.dequeueCommand(),
			a.workerCommand(),
			a.versionCommand(),
		},
		// Usage errors exit 2, not urfave's default 1, which means "some
		// messages failed" here.
		OnUsageError: func(_ *cli.Context, err error, _ bool) error {
			return usageError("%v (see backfill --help)", err)
		},
		ExitErrHandler:  func(*cli.Context, error) {},
		HideHelp:        true,
		HideHelpCommand: true,
	}
	for _, cmd := range app.Commands {
		tame(cmd, cmd.Name)
	}
	return app
}

// tame gives a command, and its subcommands, the app's ways: a bad flag
// said once, on stderr, exit 2 (urfave/cli would print "Incorrect Usage"
// and the command's help to stdout first, then our line), and our --help.
// Subcommands also take flags after their arguments (see interspersed).
func tame(cmd *cli.Command, path string) {
	cmd.OnUsageError = func(_ *cli.Context, err error, _ bool) error {
		return usageError("%v (see backfill %s --help)", err, path)
	}
	cmd.HideHelp = true
	cmd.Flags = append(cmd.Flags, helpFlag())
	cmd.Action = withHelp(cmd.Action)
	for _, sub := range cmd.Subcommands {
		tame(sub, path+" "+sub.Name)
		interspersed(sub)
	}
}

// interspersed makes cmd read its flags wherever they are among its
// arguments, as in `backfill inboxes add NAME URL --password-env VAR`:
// urfave/cli v2 stops reading flags at the first argument and would take
// the rest as arguments. The arguments are parsed here instead, with the
// command's own flags, into a context like the one urfave/cli makes.
func interspersed(cmd *cli.Command) {
	action := cmd.Action
	cmd.SkipFlagParsing = true
	cmd.Action = func(c *cli.Context) error {
		set := flag.NewFlagSet(cmd.Name, flag.ContinueOnError)
		set.SetOutput(io.Discard)
		for _, f := range cmd.Flags {
			if err := f.Apply(set); err != nil {
				return err
			}
		}
		var args []string
		rest := c.Args().Slice()
		for len(rest) > 0 {
			if err := set.Parse(rest); err != nil {
				return cmd.OnUsageError(c, err, true)
			}
			next := set.Args()
			if len(next) == 0 {
				break
			}
			if len(next) < len(rest) && rest[len(rest)-len(next)-1] == "--" {
				args = append(args, next...) // after "--" everything is an argument
				break
			}
			args, rest = append(args, next[0]), next[1:]
		}
		if err := set.Parse(append([]string{"--"}, args...)); err != nil {
			return cmd.OnUsageError(c, err, true)
		}
		nc := cli.NewContext(c.App, set, c.Lineage()[1])
		nc.Command = c.Command
		return action(nc)
	}
}

// helpFlag is a fresh --help per app and command. urfave/cli's own is one
// package-level flag that every app writes to while parsing, which races
// when the CLI runs more than once in a process, as the tests run it.
func helpFlag() cli.Flag {
	return &cli.BoolFlag{Name: "help", Aliases: []string{"h"}, Usage: "show help"}
}

// withHelp shows help instead of running action when --help is given.
func withHelp(action cli.ActionFunc) cli.ActionFunc {
	return func(c *cli.Context) error {
		if c.Bool("help") {
			if c.Command != nil && c.Command.Name != "" && c.Command.Name != c.App.Name {
				return cli.ShowCommandHelp(c.Lineage()[1], c.Command.Name)
			}
			return cli.ShowAppHelp(c)
		}
		return action(c)
	}
}

// appEnv is what every command needs from the process.
type appEnv struct {
	stdout, stderr io.Writer
	environ        []string
	dir            string
}

func globalFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "database-url", Usage: "PostgreSQL `URL` (default: $DATABASE_URL)"},
	}
}

// loadEnv reads the environment and .env.
func (a *appEnv) env() (env, error) {
	e, err := loadEnv(a.environ, a.dir)
	if err != nil {
		return e, usageError("%v", err)
	}
	return e, nil
}

// envAndDatabase reads the environment and the database URL, which a
// command that cannot work without a database needs first.
func (a *appEnv) envAndDatabase(c *cli.Context) (env, string, error) {
	e, err := a.env()
	if err != nil {
		return e, "", err
	}
	dbURL, err := a.databaseURL(c, e)
	return e, dbURL, err
}

// databaseURL returns --database-url or DATABASE_URL, or a usage error.
func (a *appEnv) databaseURL(c *cli.Context, e env) (string, error) {
	if u := c.String("database-url"); u != "" {
		return u, nil
	}
	if u := e.get("DATABASE_URL"); u != "" {
		return u, nil
	}
	return "", usageError("no database: set DATABASE_URL (in the environment or .env) or pass --database-url")
}
