package pipeline

import (
	"context"
	"sync"
	"time"

	"github.com/myhibachi/backfill/pgsink"
)

// Budget caps what a run downloads from its inbox's server: at most Bytes
// in any Period, counting what earlier runs downloaded (the ledger in
// email_downloads), so the cap holds across runs. Zero Bytes means no cap.
type Budget struct {
	Bytes  int64
	Period time.Duration
}

// BudgetReport is where a run left its inbox's download budget.
type BudgetReport struct {
	Budget
	// Used is what the window held when the run ended (a dry run: when it
	// started), this run's downloads included.
	Used int64
	// FreesAt is when enough of Used will have left the window for the
	// next message the run turned away; zero when it turned none away.
	FreesAt time.Time
	// Need is the size of the first message turned away (1 when the
	// window was full before any size was asked for).
	Need int64
}

// ledgerKeep is how long ledger rows are kept at least, whatever the
// period: a budget raised to a longer period still finds the downloads
// that count against it.
const ledgerKeep = 7 * 24 * time.Hour

// budget is a run's view of its download budget. Workers ask it, before
// each fetch round, how many of the round's messages fit (take), by their
// RFC822.SIZE, and reserve that; once the round has been fetched, what
// really came over the wire replaces the reservation (settle). A round
// never starts beyond the budget, so a run goes over only by what the
// sizes understated (a lean message fetched whole after its sections
// failed), or by a message larger than the whole budget, which is fetched
// alone once the window is otherwise empty: the alternative is never.
type budget struct {
	Budget
	mu       sync.Mutex
	ledger   []pgsink.Download // this window's downloads, oldest first
	reserved int64             // sizes of the rounds being fetched
	stopped  bool              // a message was turned away
	need     int64             // the first message turned away
}

// newBudget returns nil for no budget; every method takes a nil budget
// for one that never stops a run.
func newBudget(b Budget) *budget {
	if b.Bytes <= 0 || b.Period <= 0 {
		return nil
	}
	return &budget{Budget: b}
}

// usedLocked drops the downloads that have left the window and returns
// what is left in it.
func (b *budget) usedLocked(now time.Time) int64 {
	start := now.Add(-b.Period)
	i := 0
	for i < len(b.ledger) && !b.ledger[i].At.After(start) {
		i++
	}
	b.ledger = b.ledger[i:]
	var used int64
	for _, d := range b.ledger {
		used += d.Bytes
	}
	return used
}

// take reserves the longest prefix of sizes that fits and returns its
// length. Once it turns a message away, it turns every later one away
// too: the run stops rather than pick smaller messages out of order, which
// would leave holes a re-run must list again.
func (b *budget) take(sizes []int64) (n int, reserved int64) {
	if b == nil {
		return len(sizes), 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.stopped {
		return 0, 0
	}
	used := b.usedLocked(time.Now()) + b.reserved
	for _, s := range sizes {
		if used+reserved+s > b.Bytes && !(n == 0 && used == 0) {
			break
		}
		reserved += s
		n++
	}
	if n < len(sizes) {
		b.stopped, b.need = true, max(sizes[n], 1)
	}
	b.reserved += reserved
	return n, reserved
}

// full reports a window with no room left at all: a run can tell
// without asking the server for sizes.
func (b *budget) full() bool {
	if b == nil {
		return false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.stopped || b.usedLocked(time.Now())+b.reserved >= b.Bytes
}

// stop turns every message away from now on, the next of them need bytes.
func (b *budget) stop(need int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.stopped {
		b.stopped, b.need = true, need
	}
}

// exhausted reports whether the budget has turned a message away.
func (b *budget) exhausted() bool {
	if b == nil {
		return false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.stopped
}

// settle replaces a round's reservation with what it downloaded.
func (b *budget) settle(reserved, downloaded int64, at time.Time) {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.reserved -= reserved
	if downloaded > 0 {
		b.ledger = append(b.ledger, pgsink.Download{At: at, Bytes: downloaded})
	}
}

// load reads the downloads of the window from the ledger.
func (b *budget) load(ctx context.Context, sink *pgsink.Sink, inbox string) error {
	if b == nil || sink == nil {
		return nil
	}
	ledger, err := sink.Downloads(ctx, inbox, b.Period)
	if err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.ledger = ledger
	return nil
}

// report says where the budget stands at now.
func (b *budget) report(now time.Time) *BudgetReport {
	if b == nil {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	rep := &BudgetReport{Budget: b.Budget, Used: b.usedLocked(now) + b.reserved}
	if !b.stopped {
		return rep
	}
	rep.Need = b.need
	// The room the next message needs; one larger than the whole budget
	// is fetched once the window is empty (see take).
	target := max(b.Bytes-b.need, 0)
	rep.FreesAt = now
	used := rep.Used
	for _, d := range b.ledger {
		if used <= target {
			break
		}
		used -= d.Bytes
		rep.FreesAt = d.At.Add(b.Period)
	}
	return rep
}

// loadBudget prunes the inbox's old ledger rows (not in a dry run, which
// writes nothing) and reads the budget's window.
func (r *runner) loadBudget(ctx context.Context) error {
	if r.sink == nil {
		return nil
	}
	return r.retry(ctx, "read download ledger", func(ctx context.Context) error {
		if !r.cfg.DryRun {
			if err := r.sink.PruneDownloads(ctx, r.cfg.Inbox, max(r.cfg.Budget.Period, ledgerKeep)); err != nil {
				return err
			}
		}
		return r.budget.load(ctx, r.sink, r.cfg.Inbox)
	})
}

// leave counts uids as left for a later run by the download budget: they
// are accounted for, though neither stored nor failed, and stay unsettled.
func (r *runner) leave(uids []uint32) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, u := range uids {
		r.accounted.add(u)
	}
	r.res.Left += len(uids)
}

// recordDownload settles a fetched round with the budget and adds what it
// downloaded to the ledger, whatever became of its messages: the provider
// counted the bytes. It is written even when the run is being
// interrupted, within the grace in-flight batches get.
func (r *runner) recordDownload(ctx context.Context, round []*batch, reserved int64) error {
	var n int64
	for _, b := range round {
		n += b.transferred + b.oversizedBytes
	}
	r.budget.settle(reserved, n, time.Now())
	if n == 0 || r.sink == nil {
		return nil
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), interruptGrace)
	defer cancel()
	return r.retry(rctx, "record download", func(ctx context.Context) error {
		return r.sink.RecordDownload(ctx, r.cfg.Inbox, r.cfg.OperationID, n)
	})
}

// ration asks the server the sizes of a round's messages and keeps of the
// round what the budget has room for; the rest is left for a later run.
// Without a budget it returns the round as it is.
func (w *worker) ration(ctx context.Context, round []*batch) ([]*batch, int64, error) {
	if w.r.budget == nil {
		return round, 0, nil
	}
	var uids []uint32
	for _, b := range round {
		uids = append(uids, b.uids...)
	}
	sizes, err := w.sizes(ctx, uids)
	if err != nil {
		return nil, 0, err
	}
	list := make([]int64, len(uids))
	for i, u := range uids {
		list[i] = sizes[u] // 0 for one expunged meanwhile: the fetch reports it
	}
	n, reserved := w.r.budget.take(list)
	if n == len(uids) {
		return round, reserved, nil
	}
	var kept []*batch
	for _, b := range round {
		switch {
		case n >= len(b.uids):
			kept = append(kept, b)
			n -= len(b.uids)
		case n > 0:
			w.r.leave(b.uids[n:])
			b.uids = b.uids[:n]
			kept = append(kept, b)
			n = 0
		default:
			w.r.leave(b.uids)
		}
	}
	return kept, reserved, nil
}

// sizes fetches the RFC822.SIZE of uids, reconnecting as a fetch does.
func (w *worker) sizes(ctx context.Context, uids []uint32) (map[uint32]int64, error) {
	var sizes map[uint32]int64
	err := w.r.retryOp(ctx, "IMAP size fetch", w.r.cfg.RetryFor, func(*attempts) error {
		if w.conn == nil {
			if err := w.connect(ctx); err != nil {
				return err
			}
		}
		s, err := w.conn.Sizes(ctx, uids)
		if err != nil {
			w.conn.Close()
			w.conn = nil
			return err
		}
		sizes = s
		return nil
	})
	return sizes, err
}

// drain leaves every batch still to come, and those held, for a later run:
// once the budget turned a message away, this worker fetches nothing more.
func (w *worker) drain(in <-chan *batch, held []*batch) error {
	for _, b := range held {
		w.r.leave(b.uids)
	}
	for b := range in {
		w.r.leave(b.uids)
	}
	return nil
}
