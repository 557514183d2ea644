package watch

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/myhibachi/backfill/imapsrc"
)

// Mode says how a folder is watched for news.
type Mode int

const (
	// Own: a connection of the folder's own, idling (IDLE) or, on a server
	// without IDLE, asking (NOOP) every poll interval.
	Own Mode = iota
	// Notified: the inbox's one NOTIFY connection (RFC 5465) hears of
	// every such folder.
	Notified
	// Polled: the inbox's one STATUS poller asks for every such folder's
	// counts each poll interval. STATUS shows new mail and expunges; flag
	// changes only with CONDSTORE (HIGHESTMODSEQ), otherwise they are
	// found by the full comparison at each IdleRefresh.
	Polled
)

// How says how a folder is followed, for the output.
type How struct {
	Mode      Mode
	Idle      bool          // Own: IDLE rather than NOOP polls
	CondStore bool          // flag changes are asked for by mod-sequence
	Poll      time.Duration // Polled, and Own without IDLE
}

// String is how the output says it: "IDLE", "polling", "NOTIFY" or
// "STATUS poll every 1m0s", then ", CONDSTORE" when it applies.
func (h How) String() string {
	s := "polling"
	switch {
	case h.Mode == Notified:
		s = "NOTIFY"
	case h.Mode == Polled:
		s = fmt.Sprintf("STATUS poll every %s", h.Poll)
	case h.Idle:
		s = "IDLE"
	}
	if h.CondStore {
		s += ", CONDSTORE"
	}
	return s
}

// Via names the mode in the JSON log: idle, poll, notify or status_poll.
func (h How) Via() string {
	switch {
	case h.Mode == Notified:
		return "notify"
	case h.Mode == Polled:
		return "status_poll"
	case h.Idle:
		return "idle"
	}
	return "poll"
}

// defaultOwn is how many folders get a connection of their own on a
// server whose connection cap we do not know. With the default 4 sync
// workers and the shared poller that is 10 connections: Dovecot's default
// mail_max_userip_connections, the most common cap there is.
const defaultOwn = 5

// followPlan is how an inbox's folders are followed within its
// connection cap.
type followPlan struct {
	modes   []Mode // one per folder, in the order given
	workers int    // the sync's workers, lowered to fit the cap
	// conns is the most IMAP connections the watch holds at once: the
	// folders' own, the shared one (NOTIFY or poller), and a sync's
	// workers. A catch-up of a folder without its own connection borrows
	// one in turn with the syncs (watcher.syncing), so it adds none.
	conns int
}

// planFollow decides how each folder is followed. Folders get connections
// of their own, INBOX first, then the \Sent folder, then the rest by
// name, while the cap allows: limit (the provider's, 0 when
// unknown) less the sync's workers and the shared connection, or
// defaultOwn on an unknown server. The rest are watched on one shared
// connection: by NOTIFY where the server offers it, otherwise by STATUS
// polls. NOTIFY is not preferred to IDLE: Dovecot 2.3.19 sent no
// notification for one new message in 12 to 60 (see notifyLook),
// where IDLE never missed one. It lowers workers only when the cap leaves
// no room.
func planFollow(folders []imapsrc.Folder, notify bool, limit, workers int) followPlan {
	p := followPlan{modes: make([]Mode, len(folders)), workers: workers}
	n := len(folders)
	own := min(n, defaultOwn)
	if limit > 0 {
		switch {
		case n+workers <= limit:
			own = n
		default:
			p.workers = max(1, min(workers, limit-2))
			own = max(0, min(n, limit-p.workers-1))
			if own == n {
				// No poller needed: its place goes to the sync.
				p.workers = max(1, limit-n)
			}
		}
	}
	shared := Polled
	if notify {
		shared = Notified
	}
	for i := range p.modes {
		p.modes[i] = shared
	}
	for _, i := range priority(folders)[:own] {
		p.modes[i] = Own
	}
	p.conns = own + p.workers
	if own < n {
		p.conns++ // the poller
	}
	return p
}

// priority orders folder indexes by who deserves a connection of its own:
// INBOX, then \Sent, then the others by name.
func priority(folders []imapsrc.Folder) []int {
	rank := func(f imapsrc.Folder) int {
		switch {
		case f.Name == "INBOX":
			return 0
		case f.SpecialUse == imap.MailboxAttrSent:
			return 1
		}
		return 2
	}
	out := make([]int, len(folders))
	for i := range out {
		out[i] = i
	}
	// By name after INBOX and \Sent: the same folders keep their
	// connections from one start to the next, whatever order the server
	// lists them in.
	slices.SortStableFunc(out, func(a, b int) int {
		return cmp.Or(cmp.Compare(rank(folders[a]), rank(folders[b])), strings.Compare(folders[a].Name, folders[b].Name))
	})
	return out
}
