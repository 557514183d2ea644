package pipeline

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/myhibachi/backfill/errlog"
	"github.com/myhibachi/backfill/imapsrc"
	"github.com/myhibachi/backfill/message"
)

// worker owns one IMAP connection and turns batches of UIDs into parsed
// messages.
type worker struct {
	r           *runner
	id          int           // for the fetch chooser
	conn        *imapsrc.Conn // nil until dialled, and again after a failure
	uidValidity uint32
}

func (w *worker) close() {
	if w.conn != nil {
		w.conn.Close()
	}
}

func (w *worker) run(ctx context.Context, in <-chan *batch, out chan<- *batch) error {
	// A worker fetches up to batchesPerRound batches in one round trip, and
	// in lean mode holds the next round's batches and has their structures
	// asked for while it downloads the current one: over a slow link each
	// round trip is otherwise paid for every batch.
	var held []*batch
	var heldOutlines *imapsrc.Outlines
	for {
		if w.r.budget.exhausted() {
			return w.drain(in, held)
		}
		// Connect before taking a batch, so a worker the server will not
		// admit can step aside without holding work.
		if w.conn == nil && len(held) == 0 {
			err := w.join(ctx)
			if errors.Is(err, errRetired) {
				return nil
			}
			if err != nil {
				return err
			}
		}
		round := held
		outlines := heldOutlines
		held, heldOutlines = nil, nil
		if len(round) == 0 {
			select {
			case next, ok := <-in:
				if !ok {
					return ctx.Err()
				}
				round = takeMore(in, []*batch{next}, batchesPerRound)
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		round, reserved, err := w.ration(ctx, round)
		if err != nil {
			return err
		}
		if len(round) == 0 {
			return w.drain(in, held)
		}
		if w.conn != nil && w.r.lean() {
			if held = takeMore(in, nil, batchesPerRound); len(held) > 0 {
				var uids []uint32
				for _, b := range held {
					uids = append(uids, b.uids...)
				}
				heldOutlines = w.conn.StartOutlines(uids)
			}
		}
		err = w.fetch(ctx, round, outlines)
		if rerr := w.r.recordDownload(ctx, round, reserved); err == nil {
			err = rerr
		}
		if err != nil {
			return err
		}
		for _, b := range round {
			select {
			case out <- b:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
}

// batchesPerRound is how many batches a worker fetches per round trip when
// they are waiting: one command per batch would leave a worker idle for a
// round trip every 100 messages.
const batchesPerRound = 4

// takeMore adds batches that are ready in in to round, up to n in all,
// without waiting.
func takeMore(in <-chan *batch, round []*batch, n int) []*batch {
	for len(round) < n {
		select {
		case next, ok := <-in:
			if !ok {
				return round
			}
			round = append(round, next)
		default:
			return round
		}
	}
	return round
}

// join gets the worker a connection (see conns.join).
func (w *worker) join(ctx context.Context) error {
	conn, err := w.r.conns.join(ctx, w.uidValidity)
	if err != nil {
		return err
	}
	w.conn = conn
	return nil
}

// connect dials, logs in and selects the mailbox read-only, under the
// UIDVALIDITY the run listed (see conns.openAt).
func (w *worker) connect(ctx context.Context) error {
	conn, err := w.r.conns.openAt(ctx, w.uidValidity)
	if err != nil {
		return err
	}
	w.conn = conn
	return nil
}

// uidValidityChanged is the critical error of a run whose mailbox changed
// its UIDVALIDITY under it. The run is aborted rather than listed again:
// batches other workers still fetch on connections opened before the change
// are consistent and commit, and the next run does what any run does after
// a change (lists under the new UIDVALIDITY, downloads what it cannot
// match, recognises stored mail by Message-ID), with a clean status row
// and no UIDs of two numberings in one run's accounting.
func uidValidityChanged(mailbox string, was, now uint32) error {
	return &errlog.CriticalError{Type: "uidvalidity_changed", Err: fmt.Errorf(
		"mailbox %s changed its UIDVALIDITY from %d to %d during the run (the server renumbered its messages); "+
			"stopped fetching by the old UIDs, kept what was committed; run backfill again to continue", mailbox, was, now)}
}

// fetch downloads and parses a round of batches. A dropped connection is
// re-dialled and only the UIDs not yet received are asked for again; UIDs
// the server leaves out are asked for once more, then logged. How each
// message is fetched, and fetched again when its sections fail, is the
// imapsrc.Fetcher's business.
func (w *worker) fetch(ctx context.Context, round []*batch, outlines *imapsrc.Outlines) error {
	owner := map[uint32]*batch{}
	var remaining []uint32
	for _, b := range round {
		b.results = make(map[uint32]*MessageResult, len(b.uids))
		for _, u := range b.uids {
			owner[u] = b
		}
		remaining = append(remaining, b.uids...)
	}
	done := func(u uint32) bool { return owner[u].results[u] != nil }
	received := func() (n int) {
		for _, b := range round {
			n += len(b.results)
		}
		return n
	}
	askedAgain := map[uint32]bool{}
	fetcher := &imapsrc.Fetcher{MaxSize: w.r.cfg.MaxMessageSize, UIDValidity: w.uidValidity, Outlines: outlines}
	return w.r.retryOp(ctx, "IMAP fetch", w.r.cfg.RetryFor, func(a *attempts) error {
		for len(remaining) > 0 {
			if w.conn == nil {
				// Holding a batch, this worker may not retire: it reconnects
				// for as long as --retry-for allows.
				if err := w.connect(ctx); err != nil {
					return err
				}
			}
			// While the run measures the link (see chooser), a few messages
			// at a time are fetched whole and timed.
			ask, probing := remaining, w.r.choice.probing()
			if probing {
				ask = remaining[:min(len(remaining), probeMessages)]
			}
			fetcher.Lean = w.r.lean()
			var p probe
			var held []imapsrc.Fetched // a probe's messages, parsed once it is timed
			accept := func(f imapsrc.Fetched) {
				if b := owner[f.UID]; b != nil {
					w.accept(b, f, a.n)
				}
			}
			before := received()
			missing, err := fetcher.Fetch(ctx, w.conn, ask, func(f imapsrc.Fetched) error {
				if !probing {
					accept(f)
					return nil
				}
				// Parsing while the clock runs would time this machine's CPU,
				// not the link: the link fills the socket's buffer meanwhile.
				p.arrived(f)
				f.Body = slices.Clone(f.Body)
				held = append(held, f)
				return nil
			})
			for _, f := range held {
				accept(f)
			}
			if err != nil {
				w.conn.Close()
				w.conn = nil
				if ctx.Err() != nil {
					return ctx.Err()
				}
				progress := received() > before
				var se *imapsrc.StructureError
				if errors.As(err, &se) {
					// A structure that cannot be read: the fetcher fetches
					// that message whole from now on, which is progress too.
					// Only these count towards turning lean fetching off; a
					// network failure on the way does not.
					progress = true
					w.r.structureFailed(err)
					err = retryable{err}
				} else if errlog.Classify(err) != errlog.Transient {
					return err
				}
				if progress {
					// The attempt made progress: the retry budget is for a
					// server that keeps failing, not for a long download that
					// failed once.
					a.progressed()
				}
				w.r.log.Add(errlog.Entry{
					Severity: errlog.SeverityWarning, Category: errlog.Transient, ErrorType: "fetch_retried",
					Message: err.Error(), Attempts: a.n, Context: map[string]any{"uids": len(remaining)},
				})
				remaining = slices.DeleteFunc(slices.Clone(remaining), done)
				return err
			}
			if probing {
				w.r.choice.observe(w.id, p)
			}
			remaining = slices.Clone(remaining[len(ask):])
			// UIDs the server left out are asked for once more, then logged.
			for _, u := range missing {
				if askedAgain[u] {
					w.fail(owner[u], u, "", "not_returned", fmt.Errorf("server did not return UID %d (expunged meanwhile?)", u), a.n, nil)
					continue
				}
				askedAgain[u] = true
				remaining = append(remaining, u)
			}
		}
		return nil
	})
}

// retryable is an error to retry whatever its cause, with its message
// kept: it hides its cause from errlog.Classify on purpose.
type retryable struct{ err error }

func (e retryable) Error() string { return e.err.Error() }

// accept parses one fetched message into the batch: a message fetched as
// sections comes parsed, a whole one is parsed here.
func (w *worker) accept(b *batch, f imapsrc.Fetched, attempts int) {
	// Every byte received counts, even for a response that is not used:
	// the closing block says what was downloaded. (Sections that could
	// not be used count with the whole message fetched instead.)
	if !f.Oversized {
		b.transferred += f.Transferred
	}
	if b.results[f.UID] != nil {
		return // a duplicate response after a resume
	}
	if f.Oversized {
		// Not downloaded, or (fetched whole) read and thrown away.
		b.oversized++
		b.oversizedBytes += f.Transferred
		w.fail(b, f.UID, "", "oversized",
			fmt.Errorf("message is %d bytes, over --max-message-size %d", f.Size, w.r.cfg.MaxMessageSize),
			attempts, map[string]any{"size": f.Size})
		return
	}
	m := f.Message
	if m != nil {
		b.fetchedLean++
	} else {
		m = message.Parse(f.Body, message.Meta{UID: f.UID, UIDValidity: w.uidValidity, InternalDate: f.InternalDate, Size: f.Size})
	}
	if !w.r.cfg.NoFlags {
		m.SetFlags(f.Flags)
		m.AddGmailLabels(f.GmailLabels)
	}
	// Gmail's ids are the message's identity, not flags: --no-flags keeps
	// them, and the folders its labels stand for.
	m.GmailMsgID, m.GmailThreadID = f.GmailMsgID, f.GmailThreadID
	if w.r.labelFolders != nil {
		m.Folders = imapsrc.GmailFolders(w.r.labelFolders, f.GmailLabels)
	}
	b.fetched++
	b.messageBytes += f.Size
	if len(m.Warnings) > 0 {
		w.r.log.Add(errlog.Entry{
			Severity: errlog.SeverityWarning, Category: errlog.Message, UID: f.UID, MessageID: m.MessageID,
			ErrorType: "parse_warning", Message: m.Warnings[0],
			Context: map[string]any{"size": f.Size, "warnings": m.Warnings},
		})
	}
	b.msgs = append(b.msgs, m)
	b.results[f.UID] = &MessageResult{UID: f.UID, MessageID: m.MessageID, Subject: m.Subject}
}

func (w *worker) fail(b *batch, uid uint32, msgID, typ string, err error, attempts int, ctx map[string]any) {
	b.results[uid] = &MessageResult{UID: uid, MessageID: msgID, Outcome: Failed, Reason: err.Error()}
	w.r.log.Add(errlog.Entry{
		Severity: errlog.SeverityError, Category: errlog.Message, UID: uid, MessageID: msgID,
		ErrorType: typ, Message: err.Error(), Attempts: attempts, Context: ctx,
	})
}
