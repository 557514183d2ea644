// Package watch keeps the database a live copy of a mailbox: it backfills
// what is missing as a run does, then follows each folder (IMAP IDLE or
// polling on a connection of its own, or with the others on one NOTIFY or
// STATUS-polling connection, within the provider's connection cap) and
// records new mail, flag changes and expunges as they happen, retrying
// every failure for as long as it is asked to run.
package watch

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"
	"time"

	"github.com/myhibachi/backfill/errlog"
	"github.com/myhibachi/backfill/imapsrc"
	"github.com/myhibachi/backfill/pgsink"
	"github.com/myhibachi/backfill/pipeline"
	"golang.org/x/sync/errgroup"
)

// FlagPolicy says whether flags changed on the server overwrite the stored
// ones.
type FlagPolicy int

const (
	// FlagsServer: the server wins; is_read, is_starred and labels follow it.
	FlagsServer FlagPolicy = iota
	// FlagsKeep: stored flags are never overwritten (the backend owns them).
	FlagsKeep
)

// Config is one inbox's watch.
type Config struct {
	// Run is every sync's run: the initial backfill and each catch-up on
	// new mail. Run.IMAP.Mailbox is set to each folder in turn, and
	// Run.OperationID is the watch's, for all its syncs and errors.
	Run pipeline.Config
	// Folders are the folders to follow as users name them (or
	// imapsrc.SentKeyword), and with AllFolders every selectable one but
	// \Junk and \Trash (see imapsrc.SelectFolders); planFollow says how
	// each is followed. Neither means Run.IMAP.Mailbox alone.
	Folders    []string
	AllFolders bool
	// Poll is how often a server without IDLE is asked for news, and
	// the STATUS poller asks for its folders' counts; 0: 60 s.
	Poll time.Duration
	// IdleRefresh is how long one IDLE lasts before it is ended and
	// begun again, under the 29 minutes after which servers may drop an
	// idle client; 0: 25 minutes. Folders without a connection of their
	// own are compared in full as often.
	IdleRefresh time.Duration
	Flags       FlagPolicy
	// MaxBackoff caps the wait between attempts after a failure; 0: 1 min.
	MaxBackoff time.Duration
	// Observe, when set, wraps each sync's observer (metrics).
	Observe func(folder string, next pipeline.Observer) pipeline.Observer
}

// Events is what a watch reports as it goes, for its log stream and
// metrics. Calls may come from several goroutines at once.
type Events interface {
	// Starting says a folder's follower begins: it backfills, and is not
	// following yet.
	Starting(folder string)
	// Backfilled reports a folder's initial backfill.
	Backfilled(folder string, res pipeline.Result)
	// Stored reports a later sync that stored or failed messages.
	Stored(folder string, res pipeline.Result)
	// Following says a folder is connected and caught up, and how it is
	// followed.
	Following(folder string, how How)
	// Lost says a folder is not followed until Following says so again:
	// the shared connection watching it was lost (Failed says why).
	Lost(folder string)
	// CaughtUp says the folder is current as of now: whatever the server
	// reported is recorded.
	CaughtUp(folder string)
	// Changed reports flag changes and expunges recorded.
	Changed(folder string, flags, deleted int)
	// Waiting says a sync waits for another run to release the inbox.
	Waiting(folder string, err error)
	// Failed says the folder's follower failed and tries again after wait.
	Failed(folder string, err error, wait time.Duration)
	// Note is a one-off remark (what the tables cannot record).
	Note(text string)
	pipeline.Observer
}

// Run watches one inbox until ctx ends: it then returns nil once what was
// in flight is committed. It returns an error early only for a
// configuration error, which retrying cannot cure: a folder named that
// the server does not have, or an initial backfill refused its login,
// mailbox or schema.
func Run(ctx context.Context, cfg Config, sink *pgsink.Sink, ev Events) error {
	cfg = withDefaults(cfg)
	w := &watcher{cfg: cfg, sink: sink, ev: ev}
	w.followFlags, w.followDeletions = sink.Follows()
	if !w.followDeletions {
		ev.Note("email_messages has no deleted_at column: expunged messages are not recorded (run `backfill migrate`, or add the column)")
	}
	if !w.followFlags && cfg.Flags == FlagsServer {
		ev.Note("email_messages has no flag columns backfill can write: flag changes are not recorded")
	}
	folders, feats, err := w.folders(ctx)
	if err != nil || ctx.Err() != nil {
		return err
	}
	limit := imapsrc.ConnectionCap(cfg.Run.IMAP.Host)
	plan := planFollow(folders, feats.Notify, limit, cfg.Run.Workers)
	if plan.workers < cfg.Run.Workers {
		ev.Note(fmt.Sprintf("--workers lowered to %d: %s admits %d connections per account, %d of them following",
			plan.workers, cfg.Run.IMAP.Host, limit, plan.conns-plan.workers))
	}
	w.cfg.Run.Workers = plan.workers
	followers := make([]*follower, len(folders))
	var shared []*follower
	for i, folder := range folders {
		followers[i] = &follower{w: w, folder: folder.Name, mode: plan.modes[i], news: imapsrc.NewChanges()}
		if followers[i].mode != Own {
			shared = append(shared, followers[i])
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	if len(shared) > 0 {
		w.hub = newHub(w, shared, shared[0].mode == Notified, feats.CondStore)
		g.Go(func() error { return w.hub.run(gctx) })
	}
	for _, f := range followers {
		g.Go(func() error { return f.run(gctx) })
	}
	err = g.Wait()
	if ctx.Err() != nil {
		return nil
	}
	return err
}

func withDefaults(cfg Config) Config {
	if cfg.Poll <= 0 {
		cfg.Poll = 60 * time.Second
	}
	if cfg.IdleRefresh <= 0 {
		cfg.IdleRefresh = 25 * time.Minute
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = time.Minute
	}
	return cfg
}

// watcher is one inbox's shared state.
type watcher struct {
	cfg  Config
	sink *pgsink.Sink
	ev   Events
	// followFlags and followDeletions say what the tables can record.
	followFlags, followDeletions bool
	// hub watches the folders without a connection of their own; nil
	// when every folder has one.
	hub *hub

	// syncing serialises the inbox's syncs (they share its run lock) and
	// the connections that catch-ups borrow: one of those takes the place
	// of a sync's workers within the connection cap (see followPlan).
	syncing sync.Mutex
}

// folders resolves the folders to follow against the server's list, as a
// run resolves its own, retrying what is transient, and says what the
// server offers; a folder that does not exist or a refused login is an
// error. One folder named by the inbox's URL needs no listing: it gets a
// connection of its own whatever the server offers.
func (w *watcher) folders(ctx context.Context) ([]imapsrc.Folder, imapsrc.Features, error) {
	if len(w.cfg.Folders) == 0 && !w.cfg.AllFolders {
		return []imapsrc.Folder{{Name: w.cfg.Run.IMAP.Mailbox}}, imapsrc.Features{}, nil
	}
	b := newBackoff(w.cfg.MaxBackoff)
	for {
		sel, feats, err := w.selectFolders(ctx)
		if err == nil {
			if sel.Note != "" {
				w.ev.Note(sel.Note)
			}
			return sel.Folders, feats, nil
		}
		if errlog.Classify(err) != errlog.Transient {
			return nil, feats, err
		}
		d := b.Next()
		w.ev.Failed("", err, d)
		select {
		case <-ctx.Done():
			return nil, feats, nil
		case <-time.After(d):
		}
	}
}

func (w *watcher) selectFolders(ctx context.Context) (imapsrc.Selection, imapsrc.Features, error) {
	conn, err := imapsrc.Dial(ctx, w.cfg.Run.IMAP)
	if err != nil {
		return imapsrc.Selection{}, imapsrc.Features{}, err
	}
	defer conn.Close()
	list, err := conn.ListFolders(ctx)
	if err != nil {
		return imapsrc.Selection{}, imapsrc.Features{}, err
	}
	sel, err := imapsrc.SelectFolders(list, w.cfg.Folders, w.cfg.AllFolders, conn.Gmail())
	return sel, conn.Features(), err
}

// lockWait is how long a sync waits before trying again for a run lock
// another run holds.
const lockWait = 2 * time.Second

// sync stores what is new in folder exactly as a run does, under the
// inbox's run lock. A one-shot run holding the lock is waited for: what
// it stores is what the sync would have. UIDs in skip are not fetched;
// the UIDs of the messages that failed are returned. from, when not
// zero, narrows the run's listing to the UIDs above from.UID
// (pipeline.Config.MinUID).
func (w *watcher) sync(ctx context.Context, folder string, skip map[uint32]bool, from mark) (pipeline.Result, map[uint32]bool, error) {
	w.syncing.Lock()
	defer w.syncing.Unlock()
	inbox := w.cfg.Run.Inbox
	var release func()
	for {
		var err error
		release, err = w.sink.Lock(ctx, inbox)
		if err == nil {
			break
		}
		if !errors.Is(err, pgsink.ErrLocked) {
			return pipeline.Result{}, nil, fmt.Errorf("take the run lock: %w", err)
		}
		w.ev.Waiting(folder, err)
		select {
		case <-ctx.Done():
			return pipeline.Result{}, nil, ctx.Err()
		case <-time.After(lockWait):
		}
	}
	defer release()
	cfg := w.cfg.Run
	cfg.IMAP.Mailbox = folder
	if len(skip) > 0 {
		cfg.Skip = func(uid uint32) bool { return skip[uid] }
	}
	if from.uid > 0 {
		cfg.MinUID, cfg.MinUIDValidity = from.uid+1, from.uidValidity
	}
	failures := &failedUIDs{Observer: w.ev, uids: map[uint32]bool{}}
	var obs pipeline.Observer = failures
	if w.cfg.Observe != nil {
		obs = w.cfg.Observe(folder, obs)
	}
	log := errlog.New(cfg.OperationID, inbox, w.sink, cfg.FallbackPath)
	res, err := pipeline.Run(ctx, cfg, w.sink, log, obs)
	return res, failures.taken(), err
}

// failedUIDs notes the UIDs of the messages a sync failed to store.
type failedUIDs struct {
	pipeline.Observer
	mu   sync.Mutex
	uids map[uint32]bool
}

func (f *failedUIDs) BatchDone(rep pipeline.BatchReport) {
	f.mu.Lock()
	for _, m := range rep.Messages {
		if m.Outcome == pipeline.Failed {
			f.uids[m.UID] = true
		}
	}
	f.mu.Unlock()
	f.Observer.BatchDone(rep)
}

// taken returns the UIDs noted; the sync is over, nothing adds to them.
func (f *failedUIDs) taken() map[uint32]bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.uids
}

// record writes one follower failure to error_logs (or the fallback file
// when the database is what failed).
func (w *watcher) record(ctx context.Context, folder string, err error, attempts int) {
	log := errlog.New(w.cfg.Run.OperationID, w.cfg.Run.Inbox, w.sink, w.cfg.Run.FallbackPath)
	cat := errlog.Classify(err)
	sev := errlog.SeverityError
	if cat == errlog.Critical {
		sev = errlog.SeverityCritical
	}
	log.Add(errlog.Entry{Severity: sev, Category: cat, ErrorType: "watch_" + failureType(err),
		Message: fmt.Sprintf("%s: %v", folder, err), Attempts: attempts,
		Context: map[string]any{"folder": folder}})
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	_ = log.Flush(fctx) // a refused store goes to the fallback file
}

// failureType names a failure for error_logs: the critical type when it
// has one, else its class (transient: a lost connection, a database
// outage).
func failureType(err error) string {
	var ce *errlog.CriticalError
	switch {
	case errors.As(err, &ce):
		return ce.Type
	case errors.Is(err, errRenumbered):
		return "uidvalidity_changed"
	}
	return string(errlog.Classify(err))
}

// fatalAtStart reports a failure of the initial backfill that no retry can
// cure: the configuration is wrong, and a deployment should see exit 2.
func fatalAtStart(err error) bool {
	var ce *errlog.CriticalError
	if !errors.As(err, &ce) {
		return false
	}
	switch ce.Type {
	case "login_failed", "mailbox_missing", "tls_failed", "token_command_failed",
		"schema_missing", "schema_incompatible", "bad_database_url":
		return true
	}
	return false
}

// follower follows one folder.
type follower struct {
	w      *watcher
	folder string
	mode   Mode
	// news gathers what the hub saw change in the folder (modes other
	// than Own).
	news *imapsrc.Changes
	// modSeq is the mod-sequence after which flag changes are not yet
	// recorded (CONDSTORE), kept across sessions and borrowed
	// connections so that a catch-up asks only for what changed since
	// the last one.
	modSeq modSeqMark
	// failed are the UIDs whose messages failed at the last full sync and
	// since: later syncs skip them (pipeline.Config.Skip), the next full
	// one tries them again. Only the follower's goroutine uses it.
	failed map[uint32]bool
	// listed is the highest UID a sync has handed to its run: stored,
	// settled, or failed and in failed. A sync on news lists only the
	// UIDs above it; full ones list every UID, which also finds what a
	// narrow listing cannot (a row deleted from the database).
	listed mark
}

// mark is a UID under the UIDVALIDITY that gives it its meaning.
type mark struct{ uid, uidValidity uint32 }

// modSeqMark is a mod-sequence under the UIDVALIDITY it belongs to.
type modSeqMark struct {
	modSeq      uint64
	uidValidity uint32
}

// handed notes the UIDs a successful sync's run listed.
func (f *follower) handed(res pipeline.Result) {
	if res.Left > 0 {
		// The download budget left messages unfetched: the next sync
		// lists them again.
		return
	}
	if res.UIDValidity != f.listed.uidValidity {
		f.listed = mark{uidValidity: res.UIDValidity}
	}
	f.listed.uid = max(f.listed.uid, res.LastUID)
}

// run backfills the folder, then follows it session after session: a
// session ends with its connection or with a failure, and the next one
// begins after a backoff that grows while they keep failing.
func (f *follower) run(ctx context.Context) error {
	f.w.ev.Starting(f.folder)
	b := newBackoff(f.w.cfg.MaxBackoff)
	for attempt := 1; ; attempt++ {
		res, failed, err := f.w.sync(ctx, f.folder, nil, mark{})
		if ctx.Err() != nil {
			return nil
		}
		if err == nil {
			f.failed = failed
			f.handed(res)
			f.w.ev.Backfilled(f.folder, res)
			break
		}
		if fatalAtStart(err) {
			return fmt.Errorf("%s: %w", f.folder, err)
		}
		if !f.wait(ctx, b, err, attempt) {
			return nil
		}
	}
	b.Reset()
	for attempt := 1; ; attempt++ {
		var caughtUp bool
		var err error
		if f.mode == Own {
			s := &session{f: f}
			err = s.run(ctx)
			caughtUp = s.caughtUp
		} else {
			caughtUp, err = f.watched(ctx)
		}
		if ctx.Err() != nil {
			return nil
		}
		if caughtUp {
			// It worked for a while: the next failure starts afresh.
			b.Reset()
			attempt = 1
		}
		if !f.wait(ctx, b, err, attempt) {
			return nil
		}
	}
}

// wait records a failure and waits the backoff's next interval; false when
// ctx ended meanwhile.
func (f *follower) wait(ctx context.Context, b *backoffTimer, err error, attempt int) bool {
	d := b.Next()
	f.w.ev.Failed(f.folder, err, d)
	f.w.record(ctx, f.folder, err, attempt)
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}

// dbTimeout bounds one database statement of a follower: a stalled server
// ends the session, which begins again after a backoff.
const dbTimeout = time.Minute

// session is one connection's worth of following: the folder's own
// connection, or one a catch-up borrows (see open).
type session struct {
	f        *follower
	conn     *imapsrc.Conn
	mbox     imapsrc.Mailbox
	features imapsrc.Features
	caughtUp bool // the session caught up at least once
	// release ends a borrowed connection; nil for the folder's own.
	release func()
}

// all is every kind of change: what a new session must assume happened
// while nobody looked.
const all = imapsrc.NewMail | imapsrc.Expunged | imapsrc.FlagsChanged

func (s *session) run(ctx context.Context) error {
	w, folder := s.f.w, s.f.folder
	changes := imapsrc.NewChanges()
	cfg := w.cfg.Run.IMAP
	cfg.Mailbox, cfg.Changes = folder, changes
	conn, err := imapsrc.Dial(ctx, cfg)
	if err != nil {
		return err
	}
	defer conn.Close()
	s.conn = conn
	s.features = conn.Features()
	if s.mbox, err = conn.SelectFollow(ctx, folder, s.features.CondStore); err != nil {
		return err
	}
	changes.Take() // SELECT's own EXISTS is no news
	pending, full := all, true
	for {
		pending |= changes.Take()
		if pending != 0 {
			if err := s.catchUp(ctx, pending, full); err != nil {
				return err
			}
			w.ev.CaughtUp(folder)
			if !s.caughtUp {
				s.caughtUp = true
				w.ev.Following(folder, How{Mode: Own, Idle: s.features.Idle, CondStore: s.features.CondStore, Poll: w.cfg.Poll})
			}
			pending, full = 0, false
		}
		if s.features.Idle {
			if err := conn.Idle(ctx, w.cfg.IdleRefresh); err != nil {
				return err
			}
			if pending = changes.Take(); pending == 0 {
				// A refresh with no news: compare everything once, in
				// case a notification was lost. It costs a listing and
				// one flag fetch per IdleRefresh.
				pending, full = all, true
			}
			continue
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(w.cfg.Poll):
		}
		if err := conn.Noop(ctx); err != nil {
			return err
		}
		// Not every server reports news on NOOP: look anyway. The sync
		// lists the UIDs above those already handled and fetches only
		// unsettled ones, so a poll with no news costs a short listing.
		pending = all
		full = !s.features.CondStore
	}
}

// errRenumbered ends a session whose folder got a new UIDVALIDITY: the
// next one selects it afresh, under the numbering the sync stored.
var errRenumbered = errors.New("the folder's UIDVALIDITY changed: following it afresh")

// catchUp records what changed: new mail first (stored by a sync, which
// settles its UIDs), then expunges and flags, found by UID. full compares
// every UID and every message's flags; otherwise only what pending names:
// new mail above the UIDs already handled, and with CONDSTORE only flags
// changed since the last look.
func (s *session) catchUp(ctx context.Context, pending imapsrc.Change, full bool) error {
	w, folder := s.f.w, s.f.folder
	if pending&imapsrc.NewMail != 0 {
		skip, from := s.f.failed, s.f.listed
		if full {
			// A full sync tries every failure again and lists every UID.
			skip, from = nil, mark{}
		}
		res, failed, err := w.sync(ctx, folder, skip, from)
		if err != nil {
			return fmt.Errorf("store new mail: %w", err)
		}
		s.f.handed(res)
		if full {
			s.f.failed = failed
		} else if len(failed) > 0 {
			if s.f.failed == nil {
				s.f.failed = map[uint32]bool{}
			}
			maps.Copy(s.f.failed, failed)
		}
		if res.Created+res.Failed > 0 {
			w.ev.Stored(folder, res)
		}
		if s.conn != nil && res.UIDValidity != 0 && res.UIDValidity != s.mbox.UIDValidity {
			return errRenumbered
		}
	}
	wantDeleted := w.followDeletions && (full || pending&imapsrc.Expunged != 0)
	wantFlags := w.followFlags && w.cfg.Flags == FlagsServer && (full || pending&imapsrc.FlagsChanged != 0)
	if !wantDeleted && !wantFlags {
		return nil
	}
	if err := s.open(ctx); err != nil {
		return err
	}
	var deleted, flagged int
	var err error
	if wantDeleted {
		if deleted, err = s.expunges(ctx); err != nil {
			return err
		}
	}
	if wantFlags {
		// Without CONDSTORE flags can only be compared all at once.
		if flagged, err = s.flags(ctx, full || !s.features.CondStore); err != nil {
			return err
		}
	}
	if deleted+flagged > 0 {
		w.ev.Changed(folder, flagged, deleted)
	}
	return nil
}

// expunges compares the UIDs settled in the database with the server's:
// settled ones the server no longer has were expunged. The database is
// read first: a UID settled after that was on the server when listed, so
// only UIDs really gone are missing from the later listing.
func (s *session) expunges(ctx context.Context) (int, error) {
	w := s.f.w
	dctx, cancel := context.WithTimeout(ctx, dbTimeout)
	defer cancel()
	settled, err := w.sink.SettledUIDs(dctx, w.cfg.Run.Inbox, s.f.folder, s.mbox.UIDValidity)
	if err != nil {
		return 0, err
	}
	if len(settled) == 0 {
		return 0, nil
	}
	live, err := s.conn.ListUIDs(ctx)
	if err != nil {
		return 0, err
	}
	gone := missing(settled, live)
	return w.sink.MarkExpunged(dctx, w.cfg.Run.Inbox, s.f.folder, s.mbox.UIDValidity, gone)
}

// missing returns the elements of want absent from have; both ascending.
func missing(want, have []uint32) []uint32 {
	var out []uint32
	i := 0
	for _, u := range want {
		for i < len(have) && have[i] < u {
			i++
		}
		if i == len(have) || have[i] != u {
			out = append(out, u)
		}
	}
	return out
}
