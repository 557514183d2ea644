package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/mattn/go-isatty"
	"github.com/myhibachi/backfill/errlog"
	"github.com/myhibachi/backfill/imapsrc"
	"github.com/myhibachi/backfill/pgsink"
	"github.com/myhibachi/backfill/pipeline"
	"github.com/urfave/cli/v2"
)

func runFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "inbox", Usage: "the `NAME` of the inbox to backfill (list them: backfill inboxes)"},
		&cli.IntFlag{Name: "limit", Usage: "sync only the `N` most recent messages (highest UIDs); 0 means all"},
		&cli.IntFlag{Name: "batch-size", Value: 100, Usage: "`N` messages per batch: one database transaction each; a worker fetches up to four waiting batches per round trip"},
		&cli.IntFlag{Name: "workers", Value: 4, Usage: "`N` IMAP connections fetching in parallel (providers cap them per account)"},
		&cli.StringFlag{Name: "folders", Usage: "`LIST` of folders to read, comma-separated, named as mail programs show them (Projekte/Über); sent means the folder marked \\Sent, whatever its name. Default: INBOX, or BACKFILL_INBOX_<NAME>_FOLDERS"},
		&cli.BoolFlag{Name: "all-folders", Usage: "read every folder but those marked \\Junk or \\Trash (unless named in --folders); on Gmail, [Gmail]/All Mail alone, once, as every label is a view on it"},
		&cli.BoolFlag{Name: "dry-run", Usage: "connect and count what is new; write nothing anywhere"},
		&cli.BoolFlag{Name: "no-flags", Usage: "store new rows unread, not starred, without labels, instead of with the server's \\Seen, \\Flagged and keywords"},
		&cli.BoolFlag{Name: "verbose", Usage: "print one line per message"},
		&cli.StringFlag{Name: "log-format", Value: "text", Usage: "`FORMAT`: text, or json (one JSON object per line)"},
		&cli.BoolFlag{Name: "allow-plaintext", Usage: "allow imap:// without STARTTLS to a non-loopback host"},
		&cli.Int64Flag{Name: "max-message-size", Value: 50 << 20, Usage: "`BYTES`: larger messages are logged with their UID and skipped"},
		&cli.IntFlag{Name: "max-consecutive-failures", Value: 100, Usage: "abort after `N` messages fail in a row (0: never)"},
		&cli.Float64Flag{Name: "max-failure-rate", Value: 0.5, Usage: "abort when more than this `SHARE` of the last 200 messages failed (0: never)"},
		&cli.StringFlag{Name: "fetch", Value: "auto", Usage: "`MODE`: lean leaves large attachments on the server (their name, type and size are still stored); full downloads every message whole; auto times the first messages, fetched whole, and goes lean only on a slow link (under 20 MB/s)"},
		&cli.DurationFlag{Name: "imap-timeout", Value: 60 * time.Second, Usage: "drop an IMAP connection whose server sends nothing for this `DURATION` while an answer is due"},
		&cli.StringFlag{Name: "cpuprofile", Hidden: true, Usage: "write a CPU profile to `FILE` (for make bench and profiling)"},
		&cli.StringFlag{Name: "max-download", Usage: "download at most SIZE from the inbox in any PERIOD, earlier runs included: `SIZE/PERIOD` like 2500MB/24h (MB = 10^6 bytes, MiB = 2^20); when it is used up the run commits what it fetched and exits 75. imap.gmail.com defaults to 2500MB/24h; none: no cap"},
		&cli.DurationFlag{Name: "retry-for", Value: 2 * time.Minute, Usage: "how long (a `DURATION` like 2m) one operation is retried on transient errors"},
	}
}

func (a *appEnv) runBackfill(c *cli.Context) error {
	if err := checkInboxName(c.String("inbox")); err != nil {
		return err
	}
	if c.Args().Present() {
		return usageError("unknown command %q (commands: migrate, status, errors, inboxes, watch, enqueue, dequeue, worker, version; see backfill --help)", c.Args().First())
	}
	if err := validateRunFlags(c); err != nil {
		return err
	}
	inbox := c.String("inbox")
	e, err := a.env()
	if err != nil {
		return err
	}
	dbURL, dbErr := a.databaseURL(c, e)
	dryRun := c.Bool("dry-run")
	ctx := c.Context
	// The database is opened first: the inbox may be registered in it.
	// Whether it can be written is checked later, once the run has
	// started, as before; a dry run goes on without it.
	var sink *pgsink.Sink
	var sinkErr error
	defer func() {
		if sink != nil {
			sink.Close()
		}
	}()
	if dbErr == nil {
		// At most this many: the provider's connection cap can only
		// lower --workers.
		sink, sinkErr = pgsink.Open(ctx, dbURL, c.Int("workers")+4)
	}
	spec, err := a.resolveInboxSpec(ctx, poolOf(sink), e, inbox, c.Bool("allow-plaintext"))
	if err != nil {
		var unknown *unknownInboxError
		if errors.As(err, &unknown) && sinkErr != nil {
			return usageError("%v; the database, which may register it, could not be read: %v", err, sinkErr)
		}
		return err
	}
	imapCfg := spec.IMAP
	imapCfg.Silence = c.Duration("imap-timeout")
	budget, budgetNotice, err := inboxBudget(c.String("max-download"), c.IsSet("max-download"), e, spec)
	if err != nil {
		return err
	}
	folders, allFolders, err := runFolders(c, spec)
	if err != nil {
		return err
	}
	if dbErr != nil && !dryRun {
		return dbErr
	}

	if path := c.String("cpuprofile"); path != "" {
		stop, err := startCPUProfile(path)
		if err != nil {
			return usageError("--cpuprofile: %v", err)
		}
		defer stop()
	}

	opID := uuid.New()
	out := newReporter(a.stdout, c.String("log-format"), c.Bool("verbose"), isTerminal(a.stdout))
	out.folders = len(folders) > 0 || allFolders
	out.version = currentVersion()
	out.start(inbox, opID, dryRun)
	workers := c.Int("workers")
	if limit := imapsrc.ConnectionCap(imapCfg.Host); limit > 0 && workers > limit {
		out.note(fmt.Sprintf("--workers %d lowered to %d: %s admits at most %d simultaneous connections per account",
			workers, limit, imapCfg.Host, limit))
		workers = limit
	}
	if budgetNotice != "" {
		out.note(budgetNotice)
	}

	if dbErr == nil {
		err := sinkErr
		if err == nil {
			err = sink.CheckSchema(ctx)
		}
		if err != nil {
			if sink != nil {
				sink.Close()
				sink = nil
			}
			if !dryRun {
				return out.fatal(err)
			}
			// A dry run still connects and counts without a database.
			out.note("database not usable (" + err.Error() + "): counting only")
		}
	}
	if sink != nil && !dryRun {
		release, err := sink.Lock(ctx, inbox)
		if err != nil {
			return out.fatal(err)
		}
		defer release()
	}

	var store errlog.Store
	if sink != nil && !dryRun {
		store = sink
	}
	log := errlog.New(opID, inbox, store, a.fallbackPath(opID))
	cfg := a.pipelineConfig(c, inbox, imapCfg, workers, opID)
	cfg.Folders, cfg.AllFolders = folders, allFolders
	cfg.Limit, cfg.DryRun, cfg.Budget = c.Int("limit"), dryRun, budget
	res, runErr := pipeline.Run(ctx, cfg, sink, log, out)
	res.Warnings = log.Summary().Warnings
	out.finish(res, log.Summary(), opID, workers, runErr, ctx.Err() != nil)
	switch {
	case ctx.Err() != nil:
		return &shownError{context.Cause(ctx)}
	case runErr != nil:
		return &shownError{&exitError{code: exitFatal, err: runErr}}
	case res.Status == "budget_exhausted":
		return &shownError{&exitError{code: exitBudget, err: fmt.Errorf("download budget used up; %d messages left for a later run", res.Left)}}
	case res.Failed > 0:
		return &shownError{&exitError{code: exitPartial, err: fmt.Errorf("%d messages failed", res.Failed)}}
	}
	return nil
}

// pipelineConfig is a run of inbox with the flags a run, watch and a
// worker share; each sets what is its own (folders, limit, budget...).
func (a *appEnv) pipelineConfig(c *cli.Context, inbox string, imapCfg imapsrc.Config, workers int, opID uuid.UUID) pipeline.Config {
	return pipeline.Config{
		Inbox:          inbox,
		IMAP:           imapCfg,
		OperationID:    opID,
		BatchSize:      c.Int("batch-size"),
		Workers:        workers,
		MaxMessageSize: c.Int64("max-message-size"),
		Fetch:          fetchMode(c.String("fetch")),
		NoFlags:        c.Bool("no-flags"),
		RetryFor:       c.Duration("retry-for"),
		FallbackPath:   a.fallbackPath(opID),

		MaxConsecutiveFailures: c.Int("max-consecutive-failures"),
		MaxFailureRate:         c.Float64("max-failure-rate"),
	}
}

// fallbackPath is where an operation's error_logs entries go that the
// database refuses.
func (a *appEnv) fallbackPath(opID uuid.UUID) string {
	return filepath.Join(a.dir, fmt.Sprintf("backfill-errors-%s.jsonl", opID))
}

// runFolders is the folders a run or watch reads: --folders (with
// --all-folders, as given), else --all-folders, else the inbox's own
// (BACKFILL_INBOX_<NAME>_FOLDERS or its registration's). No list and not
// all means the inbox URL's mailbox, INBOX.
func runFolders(c *cli.Context, spec inboxSpec) (folders []string, all bool, err error) {
	if c.IsSet("folders") {
		list := splitFolders(c.String("folders"))
		if len(list) == 0 {
			return nil, false, usageError("--folders names no folder: give a comma-separated list, e.g. --folders INBOX,sent")
		}
		return list, c.Bool("all-folders"), nil
	}
	if c.Bool("all-folders") {
		return nil, true, nil
	}
	return spec.Folders, spec.AllFolders, nil
}

// poolOf is the sink's pool, nil without a sink.
func poolOf(s *pgsink.Sink) *pgxpool.Pool {
	if s == nil {
		return nil
	}
	return s.Pool()
}

// splitFolders reads a comma-separated folder list; spaces around a name
// are not part of it.
func splitFolders(s string) []string {
	var list []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			list = append(list, f)
		}
	}
	return list
}

// fetchMode reads --fetch, which validateRunFlags checked.
func fetchMode(s string) pipeline.FetchMode {
	switch s {
	case "lean":
		return pipeline.FetchLean
	case "full":
		return pipeline.FetchFull
	}
	return pipeline.FetchAuto
}

// checkInboxName refuses a name that could not be part of the variable
// BACKFILL_INBOX_<NAME>, which no shell could set, before anything reads
// the environment or connects. An empty name is validateRunFlags' to report.
func checkInboxName(name string) error {
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_') {
			return usageError("--inbox %q: an inbox name is letters, digits and _ only (it names the variables BACKFILL_INBOX_<NAME> and BACKFILL_INBOX_<NAME>_PASSWORD)", name)
		}
	}
	return nil
}

// validateRunFlags checks a run's flags before anything connects.
func validateRunFlags(c *cli.Context) error {
	switch {
	case c.String("inbox") == "":
		return usageError("--inbox is required: backfill --inbox NAME (see `backfill inboxes`)")
	case c.Int("limit") < 0:
		return usageError("--limit must be 0 (all) or more, got %d", c.Int("limit"))
	}
	if err := validateFetchFlags(c); err != nil {
		return err
	}
	if c.IsSet("max-download") {
		if _, err := parseMaxDownload(c.String("max-download")); err != nil {
			return usageError("--max-download %v", err)
		}
	}
	return nil
}

// validateFetchFlags checks the flags a run and watch share: how they
// fetch, store, give up and log.
func validateFetchFlags(c *cli.Context) error {
	switch {
	case c.Int("batch-size") < 1 || c.Int("batch-size") > 10000:
		return usageError("--batch-size must be between 1 and 10000, got %d", c.Int("batch-size"))
	case c.Int("workers") < 1 || c.Int("workers") > 64:
		return usageError("--workers must be between 1 and 64, got %d", c.Int("workers"))
	case c.Int("max-consecutive-failures") < 0:
		return usageError("--max-consecutive-failures must be 0 (never) or more")
	case c.Float64("max-failure-rate") < 0 || c.Float64("max-failure-rate") > 1:
		return usageError("--max-failure-rate must be between 0 (never) and 1")
	case !slices.Contains([]string{"auto", "lean", "full"}, c.String("fetch")):
		return usageError("--fetch %q: want auto, lean or full", c.String("fetch"))
	case c.Duration("imap-timeout") < time.Second:
		return usageError("--imap-timeout must be at least 1s")
	case c.Int64("max-message-size") < 1024:
		return usageError("--max-message-size must be at least 1024 bytes")
	case c.String("log-format") != "text" && c.String("log-format") != "json":
		return usageError("--log-format must be text or json, got %q", c.String("log-format"))
	}
	return nil
}

func isTerminal(w any) bool {
	f, ok := w.(*os.File)
	return ok && (isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd()))
}

// startCPUProfile writes a pprof CPU profile until the returned func runs.
func startCPUProfile(path string) (func(), error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}
