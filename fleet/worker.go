package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
)

// Job is what a Runner is asked to do: one run of the pipeline for a
// folder of an inbox.
type Job struct {
	ID      int64
	Inbox   string
	Folder  string // AllFolders for every folder
	Attempt int
}

// Outcome is how a run ended, as far as the queue cares.
type Outcome struct {
	// RetryAt, when set, is when the job should run again without counting
	// an attempt: the download budget frees up then, or another run holds
	// the inbox's run lock.
	RetryAt time.Time
	// Summary is kept as the job's output (River's metadata "output"),
	// where `backfill status` reads it.
	Summary Summary
}

// Summary counts what a job's runs did; runs cut short by MaxJobTime add
// up, so a finished job tells its whole story.
type Summary struct {
	Stored  int    `json:"stored"`
	Skipped int    `json:"skipped"`
	Failed  int    `json:"failed"`
	Left    int    `json:"left,omitempty"`
	Runs    int    `json:"runs"`
	Status  string `json:"status"`
	// Operations are the runs' operation ids, as in error_logs.
	Operations []string `json:"operations,omitempty"`
}

// add counts the job's earlier stretches into s, the latest. What they
// stored, this one found stored: it is theirs, not "already stored" when
// the job began. Failures are the latest's: each run retries the earlier
// ones.
func (s Summary) add(prev Summary) Summary {
	s.Skipped = max(s.Skipped-prev.Stored, 0)
	s.Stored += prev.Stored
	s.Runs += prev.Runs
	s.Operations = append(append([]string(nil), prev.Operations...), s.Operations...)
	if n := len(s.Operations); n > 20 {
		s.Operations = s.Operations[n-20:]
	}
	return s
}

// Runner runs one job's pipeline. The context is cancelled when the job
// has run MaxJobTime, the worker stops or River times the job out; the
// Runner commits what is in flight and returns. An error wrapped with
// Fatal cancels the job without retries; any other error is retried with
// backoff.
type Runner interface {
	Run(ctx context.Context, job Job) (Outcome, error)
}

// fatalError is an error no retry can mend: a wrong password, an inbox
// nobody configured.
type fatalError struct{ err error }

func (e *fatalError) Error() string { return e.err.Error() }
func (e *fatalError) Unwrap() error { return e.err }

// Fatal marks err as one that retrying cannot mend: the job is cancelled
// and says why.
func Fatal(err error) error { return &fatalError{err} }

// errTimeUp cuts a run at MaxJobTime.
var errTimeUp = errors.New("job ran its --max-job-time: continued later")

// errDequeued is why a job cancelled by backfill dequeue stopped.
var errDequeued = errors.New("taken off the queue by backfill dequeue")

// Options configure a worker process.
type Options struct {
	// Concurrency is how many jobs run at once in this process.
	Concurrency int
	// MaxJobTime bounds one stretch of a job: then it commits, gives the
	// job back to the queue and continues later, on any worker. It bounds
	// how long a job whose worker died waits: River rescues a job running
	// longer than MaxJobTime plus Grace.
	MaxJobTime time.Duration
	// Grace is how long a cut run has to commit what is in flight.
	Grace time.Duration
	// ID names this process among the fleet's (River's client id); empty
	// means host name and start time.
	ID     string
	Logger *slog.Logger
	// Events, when set, hears of each job's start and end.
	Events func(Event)
}

// Event is a job starting or ending in this process.
type Event struct {
	Job     Job
	Start   bool
	Elapsed time.Duration
	Outcome Outcome
	// Result is "completed", "continued", "snoozed", "cancelled",
	// "retry" or "interrupted"; Err is why, for the last three.
	Result string
	Err    error
}

// NewWorker makes the River client of a worker process: Start runs jobs,
// Stop gives back those in flight.
func NewWorker(pool *pgxpool.Pool, run Runner, opts Options) (*river.Client[pgx.Tx], error) {
	if opts.Concurrency < 1 {
		opts.Concurrency = 1
	}
	if opts.MaxJobTime <= 0 {
		opts.MaxJobTime = 10 * time.Minute
	}
	if opts.Grace <= 0 {
		opts.Grace = 2 * time.Minute
	}
	workers := river.NewWorkers()
	if err := river.AddWorkerSafely(workers, &folderWorker{pool: pool, run: run, opts: opts}); err != nil {
		return nil, err
	}
	timeout := opts.MaxJobTime + opts.Grace
	return river.NewClient(riverpgxv5.New(pool), &river.Config{
		ID:                   opts.ID,
		Queues:               map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: opts.Concurrency}},
		Workers:              workers,
		JobTimeout:           timeout,
		RescueStuckJobsAfter: timeout,
		Logger:               opts.Logger,
		// Finished jobs are what `backfill status` shows of the past week.
		CompletedJobRetentionPeriod: 7 * 24 * time.Hour,
		CancelledJobRetentionPeriod: 30 * 24 * time.Hour,
		DiscardedJobRetentionPeriod: 30 * 24 * time.Hour,
	})
}

// NewInserter makes a River client that only inserts and lists jobs.
func NewInserter(pool *pgxpool.Pool) (*river.Client[pgx.Tx], error) {
	workers := river.NewWorkers()
	if err := river.AddWorkerSafely(workers, &folderWorker{}); err != nil {
		return nil, err
	}
	return river.NewClient(riverpgxv5.New(pool), &river.Config{Workers: workers})
}

type folderWorker struct {
	river.WorkerDefaults[FolderArgs]
	pool *pgxpool.Pool
	run  Runner
	opts Options
}

// Timeout lets a job run its stretch and commit; River's one-minute
// default would cut every backfill of size.
func (w *folderWorker) Timeout(*river.Job[FolderArgs]) time.Duration {
	return w.opts.MaxJobTime + w.opts.Grace
}

func (w *folderWorker) Work(ctx context.Context, rj *river.Job[FolderArgs]) error {
	job := Job{ID: rj.ID, Inbox: rj.Args.Inbox, Folder: rj.Args.Folder, Attempt: rj.Attempt}
	w.emit(Event{Job: job, Start: true})
	began := time.Now()

	runCtx, cut := context.WithCancelCause(ctx)
	defer cut(nil)
	timer := time.AfterFunc(w.opts.MaxJobTime, func() { cut(errTimeUp) })
	out, err := w.run.Run(runCtx, job)
	timer.Stop()
	timeUp := errors.Is(context.Cause(runCtx), errTimeUp)

	out.Summary = out.Summary.add(previousSummary(rj.Metadata))
	if rerr := river.RecordOutput(ctx, out.Summary); rerr != nil {
		err = errors.Join(err, rerr)
	}
	ev := Event{Job: job, Elapsed: time.Since(began), Outcome: out}
	var fatal *fatalError
	switch {
	case errors.Is(context.Cause(ctx), river.ErrJobCancelledRemotely):
		ev.Result, ev.Err = "cancelled", errDequeued
		w.emit(ev)
		return ctx.Err()
	case ctx.Err() != nil:
		// The worker is stopping (River puts the job back as it was) or
		// River timed the job out (an attempt, retried).
		ev.Result, ev.Err = "interrupted", context.Cause(ctx)
		w.emit(ev)
		return ctx.Err()
	case errors.As(err, &fatal):
		ev.Result, ev.Err = "cancelled", err
		w.emit(ev)
		return river.JobCancel(err)
	case timeUp:
		ev.Result = "continued"
		w.emit(ev)
		return river.JobSnooze(0)
	case err != nil:
		ev.Result, ev.Err = "retry", err
		w.emit(ev)
		return err
	case !out.RetryAt.IsZero():
		ev.Result = "snoozed"
		w.emit(ev)
		return river.JobSnooze(max(time.Until(out.RetryAt), 0))
	}
	if every := rj.Args.Every; every > 0 {
		if err := w.completeAndRequeue(ctx, rj, every); err != nil {
			ev.Result, ev.Err = "retry", err
			w.emit(ev)
			return err
		}
	}
	ev.Result = "completed"
	w.emit(ev)
	return nil
}

// completeAndRequeue completes a periodic job and queues its next run in
// one transaction: no gap in the chain, and no second link. (Queueing the
// next before completing would be refused as a duplicate of this one.)
func (w *folderWorker) completeAndRequeue(ctx context.Context, rj *river.Job[FolderArgs], every time.Duration) error {
	tx, err := w.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("queue the next run: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // a no-op after Commit
	if _, err := river.JobCompleteTx[*riverpgxv5.Driver](ctx, tx, rj); err != nil {
		return fmt.Errorf("complete job %d: %w", rj.ID, err)
	}
	next := time.Now().Add(every)
	if _, err := river.ClientFromContext[pgx.Tx](ctx).InsertTx(ctx, tx, rj.Args, &river.InsertOpts{ScheduledAt: next, UniqueOpts: unique}); err != nil {
		return fmt.Errorf("queue the next run: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("queue the next run: %w", err)
	}
	return nil
}

func (w *folderWorker) emit(ev Event) {
	if w.opts.Events != nil {
		w.opts.Events(ev)
	}
}

// previousSummary is what the job's earlier stretches recorded.
func previousSummary(metadata []byte) Summary {
	var md struct {
		Output Summary `json:"output"`
	}
	_ = json.Unmarshal(metadata, &md) // none yet, or not ours: start from zero
	md.Output.Status = ""
	return md.Output
}
