package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
	"time"

	"github.com/google/uuid"
	"github.com/myhibachi/backfill/errlog"
	"github.com/myhibachi/backfill/fleet"
	"github.com/myhibachi/backfill/imapsrc"
	"github.com/myhibachi/backfill/pgsink"
	"github.com/myhibachi/backfill/pipeline"
	"github.com/myhibachi/backfill/serve"
	"github.com/urfave/cli/v2"
)

// lockRetry is how long a job waits when another run holds its inbox's
// run lock: another folder's job of the same inbox, a watch, a one-shot.
const lockRetry = 30 * time.Second

// workerSkips are the run flags that mean nothing to a worker: what a job
// reads is the queue's and the inbox's to say, and it logs a line per job.
var workerSkips = []string{"inbox", "limit", "folders", "all-folders", "dry-run", "verbose", "cpuprofile", "max-download"}

func (a *appEnv) workerCommand() *cli.Command {
	return &cli.Command{
		Name:      "worker",
		Usage:     "run queued backfill jobs (backfill enqueue) until stopped; any number of workers on any number of machines",
		UsageText: "backfill worker [--concurrency N] [--listen ADDR] [--max-job-time DURATION] [--workers N]",
		Flags: withRunFlags([]cli.Flag{dbFlag(),
			&cli.IntFlag{Name: "concurrency", Value: 4, Usage: "`N` jobs at once in this process (a job is one folder of one inbox; one inbox runs one job at a time)"},
			&cli.StringFlag{Name: "listen", Usage: "`ADDR` (host:port) to serve /healthz and /metrics on"},
			&cli.DurationFlag{Name: "max-job-time", Value: 10 * time.Minute, Usage: "a job runs at most this `DURATION` at a stretch, then commits and continues later on any worker; a job whose worker died is taken over after about this plus 2m"},
			&cli.DurationFlag{Name: "rescue-grace", Value: 2 * time.Minute, Hidden: true, Usage: "time a cut job has to commit before River may hand it to another worker"},
		}, workerSkips),
		Action: a.runWorker,
	}
}

func (a *appEnv) runWorker(c *cli.Context) error {
	if c.Args().Present() {
		return usageError("backfill worker takes no arguments, got %q", c.Args().First())
	}
	if err := validateFetchFlags(c); err != nil {
		return err
	}
	switch {
	case c.Int("concurrency") < 1 || c.Int("concurrency") > 1000:
		return usageError("--concurrency must be between 1 and 1000, got %d", c.Int("concurrency"))
	case c.Duration("max-job-time") < time.Second:
		return usageError("--max-job-time must be at least 1s")
	case c.Duration("rescue-grace") < time.Second:
		return usageError("--rescue-grace must be at least 1s")
	}
	e, dbURL, err := a.envAndDatabase(c)
	if err != nil {
		return err
	}
	out := &watchLog{w: a.stdout, json: c.String("log-format") == "json"}
	fail := func(err error) error {
		out.emit("fatal", map[string]any{"error": err.Error()}, "❌ %v", err)
		return &shownError{&exitError{code: exitFatal, err: err}}
	}
	ctx := c.Context
	concurrency := c.Int("concurrency")
	if os.Getenv("GOMEMLIMIT") == "" {
		// tuneGC's 100 MiB suits one run, and up to four jobs at once
		// (measured: 121 MB peak at --concurrency 4). Each job holds its
		// own batches in flight: past four, a fixed limit would leave the
		// collector running without pause (GOGC is off), so it grows with
		// the jobs, 100 MiB per four.
		debug.SetMemoryLimit(int64((concurrency+3)/4) * 100 << 20)
	}
	// Each job: its run lock, inserters and error log; River: its
	// listener, fetches and the leader's maintenance.
	sink, err := pgsink.Open(ctx, dbURL, concurrency*6+10)
	if err == nil {
		if err = sink.CheckSchema(ctx); err != nil {
			sink.Close()
		}
	}
	if err != nil {
		return fail(err)
	}
	defer sink.Close()
	if ok, err := fleet.Ready(ctx, sink.Pool()); err != nil {
		return fail(err)
	} else if !ok {
		return fail(errors.New("the job queue's tables (river_job) are missing: run backfill migrate"))
	}

	var metrics *serve.Metrics
	jobMetrics := fleet.NewMetrics(sink.Pool())
	if addr := c.String("listen"); addr != "" {
		stop, m, err := listen(ctx, addr, dbURL, jobMetrics.Collectors()...)
		if err != nil {
			return fail(err)
		}
		defer stop()
		metrics = m
		out.emit("listening", map[string]any{"listen": addr}, "🌐 Serving /healthz and /metrics on http://%s", addr)
	}

	runner := &jobRunner{a: a, c: c, e: e, sink: sink, metrics: metrics}
	client, err := fleet.NewWorker(sink.Pool(), runner, fleet.Options{
		Concurrency: concurrency,
		MaxJobTime:  c.Duration("max-job-time"),
		Grace:       c.Duration("rescue-grace"),
		Logger:      slog.New(slog.NewTextHandler(a.stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		Events: func(ev fleet.Event) {
			jobMetrics.Observe(ev)
			printJobEvent(out, ev)
		},
	})
	if err != nil {
		return fail(err)
	}
	// River's own context outlives the signal, so that a stop is soft:
	// jobs see the signal through their own contexts, which River cancels
	// on StopAndCancel, commit what is in flight and are given back.
	if err := client.Start(context.WithoutCancel(ctx)); err != nil {
		return fail(fmt.Errorf("start worker: %w", err))
	}
	out.emit("start", map[string]any{"concurrency": concurrency, "client_id": client.ID(), "version": currentVersion()},
		"🚀 Worker %s running up to %d jobs at once", client.ID(), concurrency)
	<-ctx.Done()
	stopCtx, cancel := context.WithTimeout(context.Background(), c.Duration("rescue-grace"))
	defer cancel()
	if err := client.StopAndCancel(stopCtx); err != nil {
		out.emit("stop_error", map[string]any{"error": err.Error()}, "⚠️  stopping: %v", err)
	}
	out.emit("stopped", map[string]any{"reason": context.Cause(ctx).Error()},
		"⏹️  WORKER STOPPED (%v): what was in flight is committed; its jobs are queued again", context.Cause(ctx))
	return &shownError{context.Cause(ctx)}
}

// jobRunner runs a job as `backfill --inbox NAME --folders FOLDER` would,
// with the worker's flags.
type jobRunner struct {
	a       *appEnv
	c       *cli.Context
	e       env
	sink    *pgsink.Sink
	metrics *serve.Metrics // nil without --listen
}

func (r *jobRunner) Run(ctx context.Context, job fleet.Job) (fleet.Outcome, error) {
	c := r.c
	spec, err := r.a.resolveInboxSpec(ctx, r.sink.Pool(), r.e, job.Inbox, c.Bool("allow-plaintext"))
	if err != nil {
		var ee *exitError
		if errors.As(err, &ee) {
			return fleet.Outcome{}, fleet.Fatal(err)
		}
		return fleet.Outcome{}, err
	}
	imapCfg := spec.IMAP
	imapCfg.Silence = c.Duration("imap-timeout")
	budget, _, err := inboxBudget("", false, r.e, spec)
	if err != nil {
		return fleet.Outcome{}, fleet.Fatal(err)
	}
	workers := c.Int("workers")
	if limit := imapsrc.ConnectionCap(imapCfg.Host); limit > 0 && workers > limit {
		workers = limit
	}
	release, err := r.sink.Lock(ctx, job.Inbox)
	if errors.Is(err, pgsink.ErrLocked) {
		return fleet.Outcome{RetryAt: time.Now().Add(lockRetry), Summary: fleet.Summary{Status: "locked"}}, nil
	}
	if err != nil {
		return fleet.Outcome{}, err
	}
	defer release()

	opID := uuid.New()
	log := errlog.New(opID, job.Inbox, r.sink, r.a.fallbackPath(opID))
	cfg := r.a.pipelineConfig(c, job.Inbox, imapCfg, workers, opID)
	cfg.Budget = budget
	switch job.Folder {
	case fleet.AllFolders:
		cfg.AllFolders = true
	case imapCfg.Mailbox:
		// The URL's own mailbox: read as a plain run reads it, without
		// listing the account's folders first (a round trip per job).
	default:
		cfg.Folders = []string{job.Folder}
	}
	var obs pipeline.Observer = nopObserver{}
	if r.metrics != nil {
		obs = r.metrics.Observer(job.Inbox, job.Folder, obs)
	}
	res, runErr := pipeline.Run(ctx, cfg, r.sink, log, obs)
	if r.metrics != nil {
		r.metrics.Downloaded(job.Inbox, res.Transferred)
	}
	out := fleet.Outcome{Summary: fleet.Summary{Stored: res.Created, Skipped: res.Skipped, Failed: res.Failed,
		Left: res.Left, Runs: 1, Status: res.Status, Operations: []string{opID.String()}}}
	switch {
	case ctx.Err() != nil:
		return out, nil // the worker decides: continued later, or given back
	case runErr != nil && errlog.Classify(runErr) == errlog.Critical:
		return out, fleet.Fatal(runErr)
	case runErr != nil:
		return out, runErr
	case res.Status == "budget_exhausted":
		out.RetryAt = time.Now().Add(time.Hour)
		if res.Budget != nil && !res.Budget.FreesAt.IsZero() {
			out.RetryAt = res.Budget.FreesAt
		}
	}
	return out, nil
}

// nopObserver hears a job's progress and says nothing: a worker logs a
// line per job, not per batch.
type nopObserver struct{}

func (nopObserver) Connecting(imapsrc.Config)                  {}
func (nopObserver) Listed(pipeline.Listing)                    {}
func (nopObserver) BatchDone(pipeline.BatchReport)             {}
func (nopObserver) Retrying(string, error, int, time.Duration) {}

// printJobEvent writes one line per job started or ended.
func printJobEvent(out *watchLog, ev fleet.Event) {
	j := ev.Job
	name := j.Inbox + "/" + j.Folder
	fields := map[string]any{"job_id": j.ID, "inbox": j.Inbox, "folder": j.Folder, "attempt": j.Attempt}
	if ev.Start {
		out.emit("job_start", fields, "▶️  %s: started (job %d, attempt %d)", name, j.ID, j.Attempt)
		return
	}
	s := ev.Outcome.Summary
	fields["result"], fields["elapsed_ms"] = ev.Result, ev.Elapsed.Milliseconds()
	fields["stored"], fields["skipped"], fields["failed"] = s.Stored, s.Skipped, s.Failed
	if ev.Err != nil {
		fields["error"] = ev.Err.Error()
	}
	took := ev.Elapsed.Round(100 * time.Millisecond)
	switch ev.Result {
	case "completed":
		out.emit("job_end", fields, "✅ %s: %d new, %d already stored, %d failed (job %d, %s)", name, s.Stored, s.Skipped, s.Failed, j.ID, took)
	case "continued":
		out.emit("job_end", fields, "⏸️  %s: %d new so far; ran --max-job-time, continues later (job %d)", name, s.Stored, j.ID)
	case "snoozed":
		at := ev.Outcome.RetryAt.UTC().Format("2006-01-02 15:04:05 UTC")
		fields["retry_at"] = at
		why := "the download budget is used up"
		if s.Status == "locked" {
			why = "another run holds the inbox's run lock"
		}
		out.emit("job_end", fields, "💤 %s: %s; runs again at %s (job %d)", name, why, at, j.ID)
	case "cancelled":
		out.emit("job_end", fields, "❌ %s: cancelled, not retried: %v (job %d)", name, ev.Err, j.ID)
	case "retry":
		out.emit("job_end", fields, "⚠️  %s: %v; retried later (job %d, attempt %d)", name, ev.Err, j.ID, j.Attempt)
	default:
		out.emit("job_end", fields, "⏹️  %s: stopped with the worker after %d new; queued again (job %d)", name, s.Stored, j.ID)
	}
}
