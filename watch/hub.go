package watch

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/myhibachi/backfill/imapsrc"
)

// hub watches the folders that have no connection of their own, on one
// connection for them all: NOTIFY where the server offers it, otherwise a
// STATUS for each every poll interval. It wakes a folder's follower when
// the folder's counts changed; the follower catches up on a borrowed
// connection. A lost connection is dialled again after a backoff; what
// changed meanwhile shows in the counts taken on the new one.
type hub struct {
	w         *watcher
	folders   []string
	followers map[string]*follower
	// ready is closed once the first connection has looked at every
	// folder: from then on, news of them is heard.
	ready     chan struct{}
	readyOnce sync.Once

	mu        sync.Mutex
	notify    bool // NOTIFY, until the server refuses it: then STATUS polls
	condStore bool
	last      map[string]imapsrc.FolderStatus // what each folder's counts were
	announced map[string]bool                 // folders whose follower said it follows
	// notified are the folders a notification named since the last look
	// at them (see session).
	notified map[string]bool
}

func newHub(w *watcher, followers []*follower, notify, condStore bool) *hub {
	h := &hub{w: w, followers: map[string]*follower{}, ready: make(chan struct{}), notify: notify, condStore: condStore,
		last: map[string]imapsrc.FolderStatus{}, announced: map[string]bool{}, notified: map[string]bool{}}
	for _, f := range followers {
		h.folders = append(h.folders, f.folder)
		h.followers[f.folder] = f
	}
	return h
}

// how says how the hub follows its folders now.
func (h *hub) how() How {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.notify {
		return How{Mode: Notified, CondStore: h.condStore}
	}
	return How{Mode: Polled, CondStore: h.condStore, Poll: h.w.cfg.Poll}
}

// announce reports folder as followed, now and after each reconnection.
func (h *hub) announce(folder string) {
	h.mu.Lock()
	h.announced[folder] = true
	h.mu.Unlock()
	h.w.ev.Following(folder, h.how())
}

// run follows until ctx ends, connection after connection.
func (h *hub) run(ctx context.Context) error {
	b := newBackoff(h.w.cfg.MaxBackoff)
	for attempt := 1; ; attempt++ {
		up, err := h.session(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if up {
			b.Reset()
			attempt = 1
		}
		err = fmt.Errorf("the connection watching %d folders: %w", len(h.folders), err)
		d := b.Next()
		for _, folder := range h.announcedFolders() {
			h.w.ev.Lost(folder)
		}
		h.w.ev.Failed("", err, d)
		h.w.record(ctx, "", err, attempt)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(d):
		}
	}
}

// notifyLook is how often every folder NOTIFY watches is looked at all
// the same: for one new message in 12 to 60 Dovecot 2.3.19 sent no
// notification (BenchmarkWatchLatencyFolders), and this bounds how long
// such a message waits. A STATUS per folder costs Dovecot an index read.
const notifyLook = 10 * time.Second

// session is one connection's worth: up says its first look at every
// folder worked.
func (h *hub) session(ctx context.Context) (up bool, err error) {
	h.mu.Lock()
	notify := h.notify
	h.mu.Unlock()
	changes := imapsrc.NewChanges()
	if notify {
		changes.OnStatus(func(st imapsrc.FolderStatus) {
			h.observe(st, true)
			h.mu.Lock()
			h.notified[st.Folder] = true
			h.mu.Unlock()
			changes.Add(imapsrc.NewMail) // ends IDLE, for a look at the folder
		})
	}
	cfg := h.w.cfg.Run.IMAP
	cfg.Changes = changes
	conn, err := imapsrc.Dial(ctx, cfg)
	if err != nil {
		return false, err
	}
	defer conn.Close()
	feats := conn.Features()
	h.mu.Lock()
	h.condStore = feats.CondStore
	h.mu.Unlock()
	if notify {
		// Asked before the first look, so that nothing falls between.
		if err := conn.Notify(ctx, h.folders); err != nil {
			var refused *imap.Error
			if !errors.As(err, &refused) {
				return false, err
			}
			h.mu.Lock()
			h.notify, notify = false, false
			h.mu.Unlock()
			h.w.ev.Note(fmt.Sprintf("the server refused NOTIFY (%v): polling %d folders with STATUS every %s instead",
				refused, len(h.folders), h.w.cfg.Poll))
		}
	}
	next := h.w.cfg.Poll // until the next look
	if notify {
		next = min(h.w.cfg.IdleRefresh, h.w.cfg.Poll, notifyLook)
	}
	if err := h.look(ctx, conn, feats.CondStore, next); err != nil {
		return false, err
	}
	h.readyOnce.Do(func() { close(h.ready) })
	h.reannounce()
	for {
		if notify {
			// Dovecot 2.3 was seen to stop notifying of a folder after a
			// few notifications while its mail was read on other
			// connections, until a STATUS asked for the folder again:
			// each notification is followed by one, and every folder is
			// looked at every notifyLook (or poll interval, if shorter),
			// in case one was lost all the same.
			if err := conn.Idle(ctx, next); err != nil {
				return true, err
			}
			if changes.Take() != 0 {
				if err := h.lookNotified(ctx, conn, feats.CondStore, next); err != nil {
					return true, err
				}
				continue
			}
		} else {
			select {
			case <-ctx.Done():
				return true, ctx.Err()
			case <-time.After(h.w.cfg.Poll):
			}
		}
		if err := h.look(ctx, conn, feats.CondStore, next); err != nil {
			return true, err
		}
	}
}

// look asks for every folder's counts. A folder the server refuses (gone
// since the start) is reported and left out of this look, not the others.
func (h *hub) look(ctx context.Context, conn *imapsrc.Conn, condStore bool, next time.Duration) error {
	for _, folder := range h.folders {
		if err := h.lookAt(ctx, conn, folder, condStore, next); err != nil {
			return err
		}
	}
	return nil
}

func (h *hub) lookAt(ctx context.Context, conn *imapsrc.Conn, folder string, condStore bool, next time.Duration) error {
	st, err := conn.Status(ctx, folder, condStore)
	var refused *imap.Error
	if errors.As(err, &refused) && ctx.Err() == nil {
		h.w.ev.Failed(folder, err, next)
		return nil
	}
	if err != nil {
		return err
	}
	h.observe(st, false)
	return nil
}

// lookNotified looks at the folders notifications named since the last
// look at them.
func (h *hub) lookNotified(ctx context.Context, conn *imapsrc.Conn, condStore bool, next time.Duration) error {
	h.mu.Lock()
	folders := make([]string, 0, len(h.notified))
	for folder := range h.notified {
		folders = append(folders, folder)
	}
	clear(h.notified)
	h.mu.Unlock()
	for _, folder := range folders {
		if err := h.lookAt(ctx, conn, folder, condStore, next); err != nil {
			return err
		}
	}
	return nil
}

// reannounce says again that the folders announced before are followed:
// the connection watching them is back.
func (h *hub) reannounce() {
	how := h.how()
	for _, folder := range h.announcedFolders() {
		h.w.ev.Following(folder, how)
	}
}

// announcedFolders are the folders whose follower said it follows.
func (h *hub) announcedFolders() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, folder := range h.folders {
		if h.announced[folder] {
			out = append(out, folder)
		}
	}
	return out
}

// observe compares a folder's counts with those seen before and wakes its
// follower when they changed. notified marks a notification, which the
// server sends only when something changed.
func (h *hub) observe(st imapsrc.FolderStatus, notified bool) {
	f := h.followers[st.Folder]
	if f == nil {
		return // a folder not followed
	}
	h.mu.Lock()
	prev, seen := h.last[st.Folder]
	h.last[st.Folder] = merge(prev, st)
	h.mu.Unlock()
	ch := news(prev, seen, st)
	if ch == 0 && notified {
		// Something changed that the counts do not show (flags, on a
		// server that sends no HIGHESTMODSEQ).
		ch = imapsrc.FlagsChanged
	}
	if ch != 0 {
		f.news.Add(ch)
	}
}

// merge returns prev updated with what st reports.
func merge(prev, st imapsrc.FolderStatus) imapsrc.FolderStatus {
	prev.Folder = st.Folder
	if st.Messages != nil {
		prev.Messages = st.Messages
	}
	if st.UIDNext != 0 {
		prev.UIDNext = st.UIDNext
	}
	if st.UIDValidity != 0 {
		prev.UIDValidity = st.UIDValidity
	}
	if st.HighestModSeq != 0 {
		prev.HighestModSeq = st.HighestModSeq
	}
	if st.Unseen != nil {
		prev.Unseen = st.Unseen
	}
	return prev
}

// news is what changed in a folder whose counts were prev (none when not
// seen) and now report st. A folder seen for the first time may have
// changed in any way since its follower last looked. Messages fewer than
// the new UIDs explain mean expunges.
func news(prev imapsrc.FolderStatus, seen bool, st imapsrc.FolderStatus) imapsrc.Change {
	if !seen || st.UIDValidity != 0 && st.UIDValidity != prev.UIDValidity {
		return all
	}
	var ch imapsrc.Change
	added := uint32(0)
	if st.UIDNext != 0 && st.UIDNext != prev.UIDNext {
		ch |= imapsrc.NewMail
		if st.UIDNext > prev.UIDNext {
			added = st.UIDNext - prev.UIDNext
		}
	}
	if st.Messages != nil && (prev.Messages == nil || uint64(*st.Messages) != uint64(*prev.Messages)+uint64(added)) {
		ch |= imapsrc.Expunged
	}
	if st.HighestModSeq != 0 && st.HighestModSeq != prev.HighestModSeq ||
		st.Unseen != nil && (prev.Unseen == nil || *st.Unseen != *prev.Unseen) {
		ch |= imapsrc.FlagsChanged
	}
	return ch
}

// watched follows a folder the hub watches: it catches up once in full,
// then whenever the hub sees news and, comparing everything, at each
// IdleRefresh (flag changes STATUS cannot show are found so). Each
// catch-up borrows a connection. It ends only with a failure; caughtUp
// says it caught up at least once.
func (f *follower) watched(ctx context.Context) (caughtUp bool, err error) {
	w := f.w
	select {
	case <-w.hub.ready: // so that Following says how it is followed, truly
	case <-ctx.Done():
		return false, ctx.Err()
	}
	f.news.Take() // news from before this full catch-up is in it
	pending, full := all, true
	refresh := time.NewTicker(w.cfg.IdleRefresh)
	defer refresh.Stop()
	for {
		if pending != 0 {
			s := &session{f: f}
			err := s.catchUp(ctx, pending, full)
			s.close()
			if err != nil {
				return caughtUp, err
			}
			w.ev.CaughtUp(f.folder)
			if !caughtUp {
				caughtUp = true
				w.hub.announce(f.folder)
			}
			pending, full = 0, false
		}
		select {
		case <-ctx.Done():
			return caughtUp, ctx.Err()
		case <-f.news.Wake():
			pending = f.news.Take()
		case <-refresh.C:
			pending, full = all, true
		}
	}
}

// open gives a session without a connection of its own (a catch-up of a
// folder the hub watches) a short-lived one: dialled, the folder selected,
// logged out by close. It waits its turn with the syncs, whose place it
// takes within the connection cap.
func (s *session) open(ctx context.Context) error {
	if s.conn != nil {
		return nil
	}
	w := s.f.w
	w.syncing.Lock()
	cfg := w.cfg.Run.IMAP
	cfg.Mailbox = s.f.folder
	conn, err := imapsrc.Dial(ctx, cfg)
	if err != nil {
		w.syncing.Unlock()
		return err
	}
	s.conn, s.features = conn, conn.Features()
	s.release = func() {
		conn.Close()
		w.syncing.Unlock()
	}
	s.mbox, err = conn.SelectFollow(ctx, s.f.folder, s.features.CondStore)
	return err
}

// close ends a borrowed connection.
func (s *session) close() {
	if s.release != nil {
		s.release()
		s.release, s.conn = nil, nil
	}
}
