package pipeline

import (
	"context"
	"crypto/md5"
	"fmt"
	"strings"

	"github.com/myhibachi/backfill/errlog"
	"github.com/myhibachi/backfill/message"
	"github.com/myhibachi/backfill/pgsink"
)

// dedup drops messages whose Message-ID was already seen earlier in this
// run (a message delivered twice). Messages stored by earlier runs are not
// looked up here: the insert skips them (pgsink.Store reports which), and a
// look-up per batch cost more than everything else the database does in a
// first backfill, where there is nothing to find.
func (r *runner) dedup(ctx context.Context, in <-chan *batch, out chan<- *batch) error {
	// Message-IDs seen in this run, by their MD5 (the key of the unique
	// index): 20 bytes an entry rather than the id itself.
	seen := map[[md5.Size]byte]uint32{}
	for b := range in {
		keep := b.msgs[:0]
		for _, m := range b.msgs {
			key := md5.Sum([]byte(m.MessageID))
			if first, dup := seen[key]; dup {
				res := b.results[m.UID]
				res.Outcome, res.Reason = Skipped, fmt.Sprintf("same Message-ID as UID %d", first)
				b.done = append(b.done, pgsink.Settled{UID: m.UID, MessageID: m.MessageID, Folders: m.Folders})
				continue
			}
			seen[key] = m.UID
			keep = append(keep, m)
		}
		b.msgs = keep
		select {
		case out <- b:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// store commits one batch, retrying transient failures whole (the
// transaction guarantees nothing was half-written). A batch refused for its
// data is split in halves until the offending message is isolated and
// logged; the rest is stored.
func (r *runner) store(ctx context.Context, uidValidity uint32, b *batch) error {
	// Values over the limits of a backend's varchar columns are cut, as
	// they will be stored, and the message says so.
	for _, m := range b.msgs {
		if cut := r.sink.Fit(m); len(cut) > 0 {
			r.log.Add(errlog.Entry{Severity: errlog.SeverityWarning, Category: errlog.Message, UID: m.UID,
				MessageID: m.MessageID, ErrorType: "value_cut", Message: strings.Join(cut, "; ")})
		}
	}
	if err := r.storeSplit(ctx, uidValidity, b, b.msgs, b.done); err != nil {
		return err
	}
	return r.report(ctx, b)
}

func (r *runner) storeSplit(ctx context.Context, uidValidity uint32, b *batch, msgs []*message.Message, done []pgsink.Settled) error {
	inserted, attempts, err := r.storeRetry(ctx, pgsink.Batch{Inbox: r.cfg.Inbox, Folder: r.cfg.IMAP.Mailbox, UIDValidity: uidValidity, Messages: msgs, Done: done})
	if err == nil {
		for i, m := range msgs {
			if inserted[i] {
				b.results[m.UID].Outcome = Created
			} else {
				b.results[m.UID].Outcome, b.results[m.UID].Reason = Skipped, "already exists"
			}
		}
		return nil
	}
	if errlog.Classify(err) != errlog.Message {
		return err
	}
	if len(msgs) > 1 {
		half := len(msgs) / 2
		if err := r.storeSplit(ctx, uidValidity, b, msgs[:half], done); err != nil {
			return err
		}
		return r.storeSplit(ctx, uidValidity, b, msgs[half:], nil)
	}
	if len(msgs) == 1 {
		m := msgs[0]
		b.results[m.UID].Outcome, b.results[m.UID].Reason = Failed, err.Error()
		r.log.Add(errlog.Entry{
			Severity: errlog.SeverityError, Category: errlog.Message, UID: m.UID, MessageID: m.MessageID,
			ErrorType: "rejected_by_database", Message: err.Error(), Attempts: attempts,
			Context: map[string]any{"size": m.SizeBytes},
		})
		if len(done) > 0 {
			return r.storeSplit(ctx, uidValidity, b, nil, done)
		}
		return nil
	}
	return err
}

func (r *runner) storeRetry(ctx context.Context, pb pgsink.Batch) ([]bool, int, error) {
	var inserted []bool
	attempts := 0
	err := r.retry(ctx, "store batch", func(ctx context.Context) (err error) {
		attempts++
		// A failed attempt may have committed with only its acknowledgement
		// lost: a retry must count the rows it wrote as stored, not skipped.
		pb.Retry = attempts > 1
		inserted, err = r.sink.Store(ctx, pb)
		return err
	})
	return inserted, attempts, err
}

// report folds a committed batch into the totals, tells the observer and
// feeds the circuit breaker, whose trip is returned.
func (r *runner) report(ctx context.Context, b *batch) error {
	rep := BatchReport{}
	for _, u := range b.uids {
		res := b.results[u]
		if res == nil || res.Outcome == "" {
			res = r.unaccounted(u)
		}
		switch res.Outcome {
		case Created:
			rep.Created++
		case Skipped:
			rep.Skipped++
		case Failed:
			rep.Failed++
		}
		rep.Messages = append(rep.Messages, *res)
	}
	r.mu.Lock()
	for _, u := range b.uids {
		r.accounted.add(u)
	}
	rep.Of = r.listing.Batches
	r.res.Fetched += b.fetched
	r.res.FetchedLean += b.fetchedLean
	r.res.Oversized += b.oversized
	r.res.OversizedBytes += b.oversizedBytes
	r.res.Transferred += b.transferred
	r.res.MessageBytes += b.messageBytes
	r.res.Created += rep.Created
	r.res.Skipped += rep.Skipped
	r.res.Failed += rep.Failed
	var tripped error
	for _, m := range rep.Messages {
		if err := r.breaker.record(m.Outcome == Failed); err != nil && tripped == nil {
			tripped = err
		}
	}
	r.mu.Unlock()
	r.obs.BatchDone(rep)
	if err := r.log.Flush(ctx); err != nil {
		// The fallback file failed too; the summary still counts them.
		r.log.Add(errlog.Entry{Severity: errlog.SeverityError, Category: errlog.Critical, ErrorType: "error_log_unwritable", Message: err.Error()})
	}
	return tripped
}

// unaccounted records a UID that ended neither stored, skipped nor logged:
// a silently dropped response or a bug. It is counted as a failure so the
// run cannot exit 0 having lost a message.
func (r *runner) unaccounted(uid uint32) *MessageResult {
	msg := fmt.Sprintf("UID %d was listed but neither stored, skipped as present, nor logged as failed", uid)
	r.log.Add(errlog.Entry{Severity: errlog.SeverityError, Category: errlog.Message, UID: uid,
		ErrorType: "unaccounted", Message: msg})
	return &MessageResult{UID: uid, Outcome: Failed, Reason: msg}
}

// reconcile runs after a run that reported no error: every UID it set out to
// fetch must have been accounted for by a committed batch.
func (r *runner) reconcile(todo []uint32) {
	for _, u := range todo {
		if !r.accounted.has(u) {
			r.unaccounted(u)
			r.res.Failed++
		}
	}
}
