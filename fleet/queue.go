package fleet

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
)

// Target is a folder of an inbox to queue a job for.
type Target struct {
	Inbox  string `json:"inbox"`
	Folder string `json:"folder"`
}

// Queued is what Enqueue did for a target: a new job, or the job that was
// already waiting or running for it.
type Queued struct {
	Target
	JobID int64  `json:"job_id"`
	New   bool   `json:"new"`
	State string `json:"state"`
	// Every is the job's interval between runs (0: runs once); for a job
	// already queued, the one it was queued with.
	Every time.Duration `json:"every_ns,omitempty"`
}

// Enqueue queues one job per target in one transaction, so a failure
// queues none. A target whose job is already waiting or running gets no
// second one. every > 0 makes each new job run again that long after each
// completed run.
func Enqueue(ctx context.Context, client *river.Client[pgx.Tx], targets []Target, every time.Duration) ([]Queued, error) {
	params := make([]river.InsertManyParams, len(targets))
	for i, t := range targets {
		params[i] = river.InsertManyParams{Args: FolderArgs{Inbox: t.Inbox, Folder: t.Folder, Every: every}}
	}
	res, err := client.InsertMany(ctx, params)
	if err != nil {
		return nil, fmt.Errorf("queue jobs: %w", err)
	}
	out := make([]Queued, len(res))
	for i, r := range res {
		q := Queued{Target: targets[i], JobID: r.Job.ID, New: !r.UniqueSkippedAsDuplicate, State: string(r.Job.State), Every: every}
		if !q.New {
			q.Every = argsOf(r.Job.EncodedArgs).Every
		}
		out[i] = q
	}
	return out, nil
}

// InboxJobs counts an inbox's jobs by what they are doing.
type InboxJobs struct {
	Inbox string `json:"inbox"`
	// Queued jobs wait to run: new, snoozed (budget, lock, continued
	// later) or waiting to retry.
	Queued  int `json:"queued"`
	Running int `json:"running"`
	Done    int `json:"done"`
	// Failed jobs were cancelled by a fatal error (wrong password) or
	// discarded after their last retry.
	Failed int `json:"failed"`
	// Cancelled jobs were taken off the queue by backfill dequeue.
	Cancelled int `json:"cancelled"`
	// NextRun is the earliest time a snoozed or retrying job runs.
	NextRun *time.Time `json:"next_run,omitempty"`
	// LastError is the newest error of the inbox's jobs, if any.
	LastError *string `json:"last_error,omitempty"`
}

// Jobs counts the jobs per inbox (one inbox if inbox is not empty). It
// returns nil when River's tables do not exist.
func Jobs(ctx context.Context, pool *pgxpool.Pool, inbox string) ([]InboxJobs, error) {
	if ok, err := Ready(ctx, pool); err != nil || !ok {
		return nil, err
	}
	rows, err := pool.Query(ctx, `
SELECT args->>'inbox',
       count(*) FILTER (WHERE state IN ('available', 'scheduled', 'retryable', 'pending')),
       count(*) FILTER (WHERE state = 'running'),
       count(*) FILTER (WHERE state = 'completed'),
       count(*) FILTER (WHERE state = 'discarded' OR state = 'cancelled' AND NOT metadata ? 'cancel_attempted_at'),
       count(*) FILTER (WHERE state = 'cancelled' AND metadata ? 'cancel_attempted_at'),
       min(scheduled_at) FILTER (WHERE state IN ('scheduled', 'retryable')),
       (array_agg(errors[array_length(errors, 1)]->>'error' ORDER BY coalesce(finalized_at, attempted_at, created_at) DESC)
          FILTER (WHERE array_length(errors, 1) > 0 AND state <> 'completed'))[1]
FROM river_job
WHERE kind = $1 AND ($2 = '' OR args->>'inbox' = $2)
GROUP BY 1 ORDER BY 1`, Kind, inbox)
	if err != nil {
		return nil, fmt.Errorf("count jobs: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (InboxJobs, error) {
		var j InboxJobs
		err := r.Scan(&j.Inbox, &j.Queued, &j.Running, &j.Done, &j.Failed, &j.Cancelled, &j.NextRun, &j.LastError)
		return j, err
	})
}

// Cancel takes the jobs of the given inboxes (every inbox's when inboxes
// is empty), and of the given folders (all when empty), off the queue:
// waiting ones at once, running ones as soon as their run has committed
// what is in flight. A periodic job's chain ends with it.
func Cancel(ctx context.Context, client *river.Client[pgx.Tx], inboxes, folders []string) ([]Queued, error) {
	params := river.NewJobListParams().Kinds(Kind).First(10_000).States(
		rivertype.JobStateAvailable, rivertype.JobStatePending, rivertype.JobStateRetryable,
		rivertype.JobStateScheduled, rivertype.JobStateRunning)
	if len(inboxes) > 0 {
		params = params.Where("args->>'inbox' = any(@inboxes::text[])", river.NamedArgs{"inboxes": inboxes})
	}
	if len(folders) > 0 {
		params = params.Where("args->>'folder' = any(@folders::text[])", river.NamedArgs{"folders": folders})
	}
	var out []Queued
	for {
		res, err := client.JobList(ctx, params)
		if err != nil {
			return out, fmt.Errorf("list jobs: %w", err)
		}
		for _, job := range res.Jobs {
			if _, err := client.JobCancel(ctx, job.ID); err != nil && !errors.Is(err, river.ErrNotFound) {
				return out, fmt.Errorf("cancel job %d: %w", job.ID, err)
			}
			a := argsOf(job.EncodedArgs)
			out = append(out, Queued{Target: Target{Inbox: a.Inbox, Folder: a.Folder}, JobID: job.ID, State: string(job.State), Every: a.Every})
		}
		if len(res.Jobs) < 10_000 {
			return out, nil
		}
		params = params.After(res.LastCursor)
	}
}
