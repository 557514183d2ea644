package main

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/myhibachi/backfill/fleet"
	"github.com/myhibachi/backfill/imapsrc"
	"github.com/myhibachi/backfill/pgsink"
	"github.com/urfave/cli/v2"
)

func (a *appEnv) enqueueCommand() *cli.Command {
	return &cli.Command{
		Name:      "enqueue",
		Usage:     "queue backfill jobs, one per folder of each inbox, for `backfill worker` processes to run",
		UsageText: "backfill enqueue (--inbox NAME ... | --all-inboxes) [--folders LIST | --all-folders] [--every DURATION]",
		Flags: []cli.Flag{dbFlag(),
			&cli.StringSliceFlag{Name: "inbox", Usage: "`NAME` of an inbox to queue (repeat for more)"},
			&cli.BoolFlag{Name: "all-inboxes", Usage: "every inbox registered with backfill inboxes add"},
			&cli.StringFlag{Name: "folders", Usage: "`LIST` of folders, one job each (default: the inbox's own folder list, or INBOX)"},
			&cli.BoolFlag{Name: "all-folders", Usage: "one job per inbox that reads every folder, as backfill --all-folders does"},
			&cli.DurationFlag{Name: "every", Usage: "run each job again this `DURATION` after it completes (an incremental re-run), until cancelled"},
		},
		Action: a.runEnqueue,
	}
}

func (a *appEnv) runEnqueue(c *cli.Context) error {
	names := c.StringSlice("inbox")
	switch {
	case c.Args().Present():
		return usageError("backfill enqueue takes no arguments, got %q (inboxes are given with --inbox NAME)", c.Args().First())
	case len(names) == 0 && !c.Bool("all-inboxes"):
		return usageError("say which inboxes: --inbox NAME (repeatable) or --all-inboxes")
	case len(names) > 0 && c.Bool("all-inboxes"):
		return usageError("--inbox and --all-inboxes exclude each other")
	case c.IsSet("folders") && c.Bool("all-folders"):
		return usageError("--folders and --all-folders exclude each other")
	case c.IsSet("folders") && len(splitFolders(c.String("folders"))) == 0:
		return usageError("--folders names no folder: give a comma-separated list, e.g. --folders INBOX,sent")
	case c.IsSet("every") && c.Duration("every") < 10*time.Second:
		return usageError("--every must be at least 10s, got %s", c.Duration("every"))
	}
	for _, n := range names {
		if err := checkInboxName(n); err != nil {
			return err
		}
	}
	e, dbURL, err := a.envAndDatabase(c)
	if err != nil {
		return err
	}
	ctx := c.Context
	sink, err := pgsink.Open(ctx, dbURL, 4)
	if err != nil {
		return err
	}
	defer sink.Close()
	if ok, err := fleet.Ready(ctx, sink.Pool()); err != nil {
		return err
	} else if !ok {
		return usageError("the job queue's tables (river_job) are missing: run backfill migrate")
	}
	if c.Bool("all-inboxes") {
		if names, err = registeredInboxes(ctx, sink); err != nil {
			return err
		}
		if len(names) == 0 {
			return usageError("no inbox is registered: add them with backfill inboxes add NAME URL ...")
		}
	}
	var targets []fleet.Target
	for _, name := range slices.Compact(slices.Sorted(slices.Values(names))) {
		folders, err := a.jobFolders(ctx, c, sink, e, name)
		if err != nil {
			return err
		}
		for i, f := range folders {
			// One job per folder: a folder named twice would also be
			// refused by the database (one insert cannot meet its own
			// unique key twice).
			if !slices.Contains(folders[:i], f) {
				targets = append(targets, fleet.Target{Inbox: name, Folder: f})
			}
		}
	}
	client, err := fleet.NewInserter(sink.Pool())
	if err != nil {
		return err
	}
	queued, err := fleet.Enqueue(ctx, client, targets, c.Duration("every"))
	if err != nil {
		return err
	}
	for _, q := range queued {
		every := ""
		if q.Every > 0 {
			every = ", every " + q.Every.String()
		}
		if q.New {
			fmt.Fprintf(a.stdout, "➕ queued %s/%s (job %d%s)\n", q.Inbox, q.Folder, q.JobID, every)
		} else {
			fmt.Fprintf(a.stdout, "✅ %s/%s already queued (job %d, %s%s)\n", q.Inbox, q.Folder, q.JobID, q.State, every)
		}
	}
	return nil
}

// jobFolders are the folders an inbox's jobs read, one job each: --folders,
// else --all-folders (one job, fleet.AllFolders), else the inbox's own
// list, else the mailbox its URL names. The inbox must be configured here,
// though not logged in to: its credentials are the workers'.
func (a *appEnv) jobFolders(ctx context.Context, c *cli.Context, sink *pgsink.Sink, e env, name string) ([]string, error) {
	mailbox, folders, all, err := inboxTargets(ctx, sink, e, name)
	if err != nil {
		return nil, err
	}
	switch {
	case c.IsSet("folders"):
		return splitFolders(c.String("folders")), nil
	case c.Bool("all-folders") || all:
		return []string{fleet.AllFolders}, nil
	case len(folders) > 0:
		return folders, nil
	}
	return []string{mailbox}, nil
}

// inboxTargets reads what an inbox is configured to read, without running
// its credential commands: the registry's entry, else the environment's.
func inboxTargets(ctx context.Context, sink *pgsink.Sink, e env, name string) (mailbox string, folders []string, all bool, err error) {
	reg, ok, err := pgsink.GetInbox(ctx, sink.Pool(), name)
	if err != nil {
		return "", nil, false, err
	}
	if ok {
		cfg, err := registeredConfig(e, reg, true)
		if err != nil {
			return "", nil, false, usageError("inbox %s (registered in the database): %v", name, err)
		}
		return cfg.Mailbox, reg.Folders, reg.AllFolders, nil
	}
	raw := e.get(inboxVar(name))
	if raw == "" {
		if _, ok := builtins[name]; !ok {
			list, err := pgsink.ListInboxes(ctx, sink.Pool())
			if err != nil {
				return "", nil, false, err
			}
			return "", nil, false, &exitError{code: exitFatal, err: unknownInbox(e, name, registeredNames(list))}
		}
		return "INBOX", inboxFolders(e, name), false, nil
	}
	cfg, err := imapsrc.ParseURL(raw, true)
	if err != nil {
		return "", nil, false, usageError("inbox %s (%s): %v", name, inboxVar(name), err)
	}
	return cfg.Mailbox, inboxFolders(e, name), false, nil
}

// registeredInboxes lists the registry's inbox names.
func registeredInboxes(ctx context.Context, sink *pgsink.Sink) ([]string, error) {
	list, err := pgsink.ListInboxes(ctx, sink.Pool())
	return registeredNames(list), err
}

func (a *appEnv) dequeueCommand() *cli.Command {
	return &cli.Command{
		Name:      "dequeue",
		Usage:     "take inboxes' waiting and running jobs off the queue (a running one stops after committing what is in flight); ends --every chains",
		UsageText: "backfill dequeue (--inbox NAME ... | --all-inboxes) [--folders LIST]",
		Flags: []cli.Flag{dbFlag(),
			&cli.StringSliceFlag{Name: "inbox", Usage: "`NAME` of an inbox whose jobs to cancel (repeat for more)"},
			&cli.BoolFlag{Name: "all-inboxes", Usage: "every job in the queue"},
			&cli.StringFlag{Name: "folders", Usage: "only these folders' jobs: a comma-separated `LIST` (* is an --all-folders job)"},
		},
		Action: a.runDequeue,
	}
}

func (a *appEnv) runDequeue(c *cli.Context) error {
	names := c.StringSlice("inbox")
	switch {
	case c.Args().Present():
		return usageError("backfill dequeue takes no arguments, got %q (inboxes are given with --inbox NAME)", c.Args().First())
	case len(names) == 0 && !c.Bool("all-inboxes"):
		return usageError("say whose jobs: --inbox NAME (repeatable) or --all-inboxes")
	case len(names) > 0 && c.Bool("all-inboxes"):
		return usageError("--inbox and --all-inboxes exclude each other")
	}
	sink, err := a.openSink(c)
	if err != nil {
		return err
	}
	defer sink.Close()
	ctx := c.Context
	if ok, err := fleet.Ready(ctx, sink.Pool()); err != nil {
		return err
	} else if !ok {
		return usageError("the job queue's tables (river_job) are missing: run backfill migrate")
	}
	n, err := a.cancelJobs(ctx, sink, names, splitFolders(c.String("folders")))
	if err != nil {
		return err
	}
	if n == 0 {
		fmt.Fprintln(a.stdout, "Nothing queued or running to cancel.")
	}
	return nil
}

// cancelJobs takes the inboxes' jobs (of folders, all when empty) off the
// queue, a line each, and says how many it cancelled.
func (a *appEnv) cancelJobs(ctx context.Context, sink *pgsink.Sink, inboxes, folders []string) (int, error) {
	client, err := fleet.NewInserter(sink.Pool())
	if err != nil {
		return 0, err
	}
	cancelled, err := fleet.Cancel(ctx, client, inboxes, folders)
	for _, q := range cancelled {
		fmt.Fprintf(a.stdout, "🛑 cancelled %s/%s (job %d, was %s)\n", q.Inbox, q.Folder, q.JobID, q.State)
	}
	return len(cancelled), err
}
