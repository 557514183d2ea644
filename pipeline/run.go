package pipeline

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/myhibachi/backfill/errlog"
	"github.com/myhibachi/backfill/imapsrc"
	"github.com/myhibachi/backfill/message"
	"github.com/myhibachi/backfill/pgsink"
	"golang.org/x/sync/errgroup"
)

// Run performs one backfill. sink may be nil only for a dry run without a
// database. The returned error is fatal (exit 2); per-message failures are
// counted in Result.Failed and recorded in log.
func Run(ctx context.Context, cfg Config, sink *pgsink.Sink, log *errlog.Log, obs Observer) (Result, error) {
	start := time.Now()
	cfg = withDefaults(cfg)
	r := &runner{cfg: cfg, sink: sink, log: log, obs: &serialObserver{obs: obs},
		breaker: newBreaker(cfg.MaxConsecutiveFailures, cfg.MaxFailureRate, cfg.FailureWindow),
		budget:  newBudget(cfg.Budget)}
	r.conns = r.newConns(cfg.IMAP)
	r.choice = newChooser(cfg.Fetch)
	if sink != nil && !cfg.DryRun {
		// A run that lost its lock to another must stop: they would race.
		var stop context.CancelFunc
		ctx, stop = sink.WatchLock(ctx, cfg.Inbox)
		defer stop()
	}
	res, err := r.run(ctx)
	if !cfg.DryRun {
		res.FetchMode, res.FetchReason = r.choice.outcome()
	}
	r.conns.closeSpares()
	if sink != nil {
		res.Budget = r.budget.report(time.Now())
	}
	res.Elapsed = time.Since(start)
	return res, err
}

// newConns makes the connections of one folder.
func (r *runner) newConns(cfg imapsrc.Config) *conns {
	return &conns{cfg: cfg, workers: r.cfg.Workers, log: r.log,
		retry: func(ctx context.Context, what string, op func(*attempts) error) error {
			return r.retryOp(ctx, what, r.cfg.RetryFor, op)
		}}
}

func withDefaults(cfg Config) Config {
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 100
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 4
	}
	if cfg.Inserters <= 0 {
		cfg.Inserters = 2
	}
	if cfg.RetryFor <= 0 {
		cfg.RetryFor = 2 * time.Minute
	}
	if cfg.FailureWindow <= 0 {
		cfg.FailureWindow = 200
	}
	return cfg
}

type runner struct {
	cfg  Config
	sink *pgsink.Sink
	log  *errlog.Log
	obs  *serialObserver

	mu      sync.Mutex // guards res, accounted and breaker
	res     Result
	listing Listing // of the folder being read
	lastUID uint32  // highest UID selected in the folder being read
	// labelFolders is the account's folders while the run reads Gmail's
	// \All folder: a message there is stored in the folders its labels
	// stand for (imapsrc.GmailFolders). nil otherwise.
	labelFolders []imapsrc.Folder
	// listed is set once the run listed the account's folders.
	listed bool
	// announced is set once the observer was told how the run connects.
	announced bool
	// dryRunSeen holds the Message-IDs a dry run counted, across folders:
	// a message in two folders is stored once.
	dryRunSeen map[string]bool
	// accounted holds every UID a committed batch reported on, for the
	// end-of-run reconciliation.
	accounted accountedSet
	// structureFailures counts BODYSTRUCTURE fetches that broke off; past
	// maxStructureFailures the run stops fetching lean (see lean).
	structureFailures int
	breaker           *breaker
	conns             *conns
	choice            *chooser // whole or lean
	budget            *budget  // nil without --max-download
}

// batch is a unit of work as it moves down the pipeline.
type batch struct {
	uids                 []uint32
	msgs                 []*message.Message // parsed, to store
	results              map[uint32]*MessageResult
	done                 []pgsink.Settled // skipped as duplicates: settled without storing
	fetched, fetchedLean int
	// transferred and messageBytes add up Fetched.Transferred and Size.
	transferred, messageBytes int64
	oversized                 int
	oversizedBytes            int64
}

func (r *runner) run(ctx context.Context) (Result, error) {
	if r.cfg.DryRun {
		r.res.Status = "dry_run"
		if err := r.loadBudget(ctx); err != nil {
			return r.res, err
		}
		err := r.eachFolder(ctx, func(ctx context.Context) error {
			return r.list(ctx, func(conn *imapsrc.Conn, _ imapsrc.Mailbox, todo []uint32) error {
				return r.dryRun(ctx, conn, todo)
			})
		})
		return r.res, err
	}
	// The run is recorded before connecting, so that a refused login or a
	// missing mailbox also leaves "aborted" in email_sync_status.
	var abandoned uuid.UUID
	if err := r.retry(ctx, "record run start", func(ctx context.Context) (err error) {
		abandoned, err = r.sink.BeginRun(ctx, r.cfg.Inbox, r.cfg.OperationID)
		return err
	}); err != nil {
		return r.res, err
	}
	if abandoned != uuid.Nil {
		// Nothing of it is lost (its committed batches stay and this run
		// fetches the rest), but its status row said "running" for ever.
		r.log.Add(errlog.Entry{Severity: errlog.SeverityWarning, Category: errlog.Transient, ErrorType: "previous_run_abandoned",
			Message: fmt.Sprintf("the previous run (operation %s) never recorded how it ended (killed, or lost its lock); recorded as abandoned", abandoned),
			Context: map[string]any{"abandoned_operation_id": abandoned.String()}})
	}
	// email_sync_status keeps the first folder's UIDVALIDITY and last UID:
	// INBOX's, unless the run was told otherwise.
	var mbox imapsrc.Mailbox
	var lastUID uint32
	err := r.loadBudget(ctx)
	if err == nil {
		err = r.eachFolder(ctx, func(ctx context.Context) error {
			return r.list(ctx, func(conn *imapsrc.Conn, mb imapsrc.Mailbox, todo []uint32) error {
				if mbox.Name == "" {
					mbox, lastUID = mb, r.lastUID
				}
				if r.res.Connections == 0 {
					r.res.Connections = r.cfg.Workers
				}
				r.accounted = newAccountedSet(todo)
				if len(todo) > 0 && r.budget.full() {
					// Nothing fits: no worker need log in to learn it.
					r.budget.stop(1)
					conn.Close()
					r.leave(todo)
					return nil
				}
				if err := r.pipeline(ctx, conn, mb.UIDValidity, todo); err != nil {
					return err
				}
				r.reconcile(todo)
				return nil
			})
		})
	}
	if cause := context.Cause(ctx); errors.Is(cause, pgsink.ErrLockLost) {
		err = cause // not the cancellations it caused in the stages
	}
	r.res.Status = r.status(ctx, err)
	if err != nil && !interrupted(ctx) {
		r.log.Add(errlog.Entry{Severity: errlog.SeverityCritical, Category: errlog.Critical,
			ErrorType: criticalType(err), Message: err.Error()})
	}
	// The outcome is recorded even when ctx is cancelled: the status row must
	// say the run was interrupted.
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	flushErr := r.log.Flush(fctx)
	finishErr := r.retry(fctx, "record run result", func(fctx context.Context) error {
		return r.sink.FinishRun(fctx, pgsink.RunResult{
			Inbox: r.cfg.Inbox, OperationID: r.cfg.OperationID, UIDValidity: mbox.UIDValidity,
			LastUID: lastUID, Status: r.res.Status, Errors: r.log.Summary().Groups,
		})
	})
	return r.res, errors.Join(err, flushErr, finishErr)
}

// list connects, selects the mailbox read-only, lists its UIDs, drops those
// earlier runs settled at this UIDVALIDITY and hands the rest to next
// together with the connection, which next may keep (the pipeline makes it
// a worker's) and must close.
func (r *runner) list(ctx context.Context, next func(*imapsrc.Conn, imapsrc.Mailbox, []uint32) error) error {
	// Whether STARTTLS is offered is known only once connected: the line
	// that says how the run connects waits for it, so as to stay true.
	settle := r.cfg.IMAP.Security == imapsrc.StartTLSIfOffered
	if !settle {
		r.announce(r.cfg.IMAP)
	}
	conn, mbox, uids, err := r.connectAndList(ctx)
	if err != nil {
		return err
	}
	if settle {
		cfg := r.cfg.IMAP
		cfg.Security = conn.Security()
		r.announce(cfg)
	}
	handedOff := false
	defer func() {
		if !handedOff {
			conn.Close()
		}
	}()
	l := Listing{Mailbox: mbox.Name, UIDValidity: mbox.UIDValidity, Total: len(uids)}
	if r.cfg.Limit > 0 && len(uids) > r.cfg.Limit {
		uids = uids[len(uids)-r.cfg.Limit:]
	}
	l.Selected = len(uids)
	if len(uids) > 0 {
		r.lastUID = uids[len(uids)-1]
	}
	l.LastUID = r.lastUID
	todo := uids
	if r.sink != nil {
		var seen map[uint32]bool
		err := r.retry(ctx, "read synced UIDs", func(ctx context.Context) (err error) {
			l.PreviousUIDValidity, err = r.sink.ForgetOtherUIDValidities(ctx, r.cfg.Inbox, mbox.Name, mbox.UIDValidity, r.cfg.DryRun)
			if err != nil {
				return err
			}
			seen, err = r.sink.SeenUIDsFrom(ctx, r.cfg.Inbox, mbox.Name, mbox.UIDValidity, r.minUID(mbox))
			return err
		})
		if err != nil {
			return err
		}
		todo = slices.DeleteFunc(slices.Clone(uids), func(u uint32) bool {
			return seen[u] || r.cfg.Skip != nil && r.cfg.Skip(u)
		})
	}
	l.AlreadySynced = len(uids) - len(todo)
	l.ToFetch = len(todo)
	l.Batches = (len(todo) + r.cfg.BatchSize - 1) / r.cfg.BatchSize
	r.listing = l
	r.mu.Lock()
	if r.res.Mailbox == "" {
		r.res.Listing = l
	} else {
		r.res.Total += l.Total
		r.res.Selected += l.Selected
		r.res.AlreadySynced += l.AlreadySynced
		r.res.ToFetch += l.ToFetch
		r.res.Batches += l.Batches
	}
	r.res.Skipped += l.AlreadySynced
	r.mu.Unlock()
	r.obs.Listed(l)
	// A real run's pipeline makes the connection a worker's, which closes it.
	handedOff = !r.cfg.DryRun
	return next(conn, mbox, todo)
}

// interruptGrace bounds how long in-flight batches may take to commit once
// the run is interrupted or aborted.
const interruptGrace = 30 * time.Second

func (r *runner) status(ctx context.Context, err error) string {
	switch {
	case interrupted(ctx):
		return "interrupted"
	case err != nil:
		return "aborted"
	case r.budget.exhausted():
		return "budget_exhausted"
	case r.res.Failed > 0:
		return "completed_with_errors"
	}
	return "completed"
}

// interrupted tells a signal's cancellation from a lost run lock's, which
// aborts the run like any critical error.
func interrupted(ctx context.Context) bool {
	return ctx.Err() != nil && !errors.Is(context.Cause(ctx), pgsink.ErrLockLost)
}

// pipeline runs the stages. The first connection becomes worker 0's, so a
// run with one worker logs in once.
func (r *runner) pipeline(ctx context.Context, first *imapsrc.Conn, uidValidity uint32, todo []uint32) error {
	g, gctx := errgroup.WithContext(ctx)
	batches := make(chan *batch, r.cfg.Workers)
	parsed := make(chan *batch, r.cfg.Workers)
	filtered := make(chan *batch, r.cfg.Inserters)

	g.Go(func() error {
		defer close(batches)
		for chunk := range slices.Chunk(todo, r.cfg.BatchSize) {
			select {
			case batches <- &batch{uids: chunk}:
			case <-gctx.Done():
				return gctx.Err()
			}
		}
		return nil
	})

	// A worker beyond the number of batches would only log in and wait:
	// with nothing to fetch, the lister's connection is the run's only one.
	n := min(r.cfg.Workers, (len(todo)+r.cfg.BatchSize-1)/r.cfg.BatchSize)
	if n == 0 {
		first.Close()
		return nil
	}
	var workers sync.WaitGroup
	r.conns.start(n)
	r.choice.start(n)
	for i := range n {
		var conn *imapsrc.Conn
		if i == 0 {
			conn = first
		}
		workers.Add(1)
		g.Go(func() error {
			defer workers.Done()
			w := &worker{r: r, id: i, conn: conn, uidValidity: uidValidity}
			defer w.close()
			return w.run(gctx, batches, parsed)
		})
	}
	defer func() {
		r.mu.Lock()
		r.res.Connections = min(r.res.Connections, r.cfg.Workers-r.conns.retirements())
		r.mu.Unlock()
	}()
	g.Go(func() error {
		workers.Wait()
		close(parsed)
		return nil
	})

	g.Go(func() error {
		defer close(filtered)
		return r.dedup(gctx, parsed, filtered)
	})

	// Inserters finish what they were handed even after cancellation, so an
	// interrupt commits in-flight batches instead of throwing them away; a
	// database that does not answer within the grace period is given up on.
	storeCtx, stopStore := context.WithCancel(context.WithoutCancel(gctx))
	defer stopStore()
	stopGrace := context.AfterFunc(gctx, func() { time.AfterFunc(interruptGrace, stopStore) })
	defer stopGrace()
	for range r.cfg.Inserters {
		g.Go(func() error {
			for b := range filtered {
				if err := r.store(storeCtx, uidValidity, b); err != nil {
					return err
				}
			}
			return nil
		})
	}
	return g.Wait()
}

// criticalType names what stopped a run, for error_logs and the summary.
func criticalType(err error) string {
	var ce *errlog.CriticalError
	if errors.As(err, &ce) {
		return ce.Type
	}
	return "run_failed"
}

// accountedSet records which of a run's UIDs were accounted for: one bit per
// UID to fetch, so that it costs 6 KB at 50,000 messages, not megabytes.
type accountedSet struct {
	uids []uint32 // the run's UIDs, ascending
	bits []uint64
}

func newAccountedSet(todo []uint32) accountedSet {
	return accountedSet{uids: todo, bits: make([]uint64, (len(todo)+63)/64)}
}

func (a accountedSet) index(u uint32) (int, bool) {
	return slices.BinarySearch(a.uids, u)
}

func (a accountedSet) add(u uint32) {
	if i, ok := a.index(u); ok {
		a.bits[i/64] |= 1 << (i % 64)
	}
}

func (a accountedSet) has(u uint32) bool {
	i, ok := a.index(u)
	return ok && a.bits[i/64]&(1<<(i%64)) != 0
}

// maxStructureFailures is how many broken BODYSTRUCTURE fetches a run takes
// before it fetches every message whole: each costs a reconnect, and a
// server that keeps sending structures go-imap cannot parse is better read
// the plain way.
const maxStructureFailures = 3

// lean reports whether workers should fetch lean: as chosen, unless
// structures could not be read.
func (r *runner) lean() bool {
	if !r.choice.fetchLean() {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.structureFailures < maxStructureFailures
}

// structureFailed counts a broken BODYSTRUCTURE fetch and says, once, when
// the run stops fetching lean.
func (r *runner) structureFailed(err error) {
	r.mu.Lock()
	r.structureFailures++
	last := r.structureFailures == maxStructureFailures
	r.mu.Unlock()
	if last {
		r.log.Add(errlog.Entry{
			Severity: errlog.SeverityWarning, Category: errlog.Transient, ErrorType: "lean_fetch_disabled",
			Message: fmt.Sprintf("the server sent %d body structures that could not be read (last: %v); fetching every message whole from now on", maxStructureFailures, err),
		})
	}
}

// predialCount is how many connections to dial while the first one lists
// the mailbox: as many as there are sure to be batches for, less the
// first's. The mailbox holds mbox.Messages UIDs and at most settled of
// them are settled, so at least the difference is left to fetch. A
// mailbox earlier runs settled gets none, so that a re-run with nothing to
// fetch logs in once; when there is more work than the count promises,
// the workers dial their own connections.
func (r *runner) predialCount(ctx context.Context, mbox imapsrc.Mailbox) int {
	if r.sink == nil || r.budget.full() || r.minUID(mbox) > 0 {
		// A narrowed listing holds what is new since a run moments ago:
		// few messages, and counting the folder's settlements would cost
		// what narrowing saves.
		return 0
	}
	settled, err := r.sink.SettledCount(ctx, r.cfg.Inbox, mbox.Name, mbox.UIDValidity)
	if err != nil {
		return 0 // the listing's own look-up retries and reports it
	}
	selected := int(mbox.Messages)
	if r.cfg.Limit > 0 {
		selected = min(selected, r.cfg.Limit)
	}
	unsettled := selected - settled
	if unsettled <= 0 {
		return 0
	}
	return min(r.cfg.Workers, (unsettled+r.cfg.BatchSize-1)/r.cfg.BatchSize) - 1
}

// minUID is the lowest UID to list in mbox (see Config.MinUID); 0 lists
// every UID.
func (r *runner) minUID(mbox imapsrc.Mailbox) uint32 {
	if r.cfg.MinUID > 1 && mbox.UIDValidity == r.cfg.MinUIDValidity {
		return r.cfg.MinUID
	}
	return 0
}
