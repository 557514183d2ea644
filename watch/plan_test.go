package watch

import (
	"fmt"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/myhibachi/backfill/imapsrc"
)

// testFolders is INBOX, then n-1 others, the \Sent one last in the listing.
func testFolders(n int) []imapsrc.Folder {
	out := []imapsrc.Folder{{Name: "INBOX"}}
	for i := 1; i < n-1; i++ {
		out = append(out, imapsrc.Folder{Name: fmt.Sprintf("F%02d", i)})
	}
	if n > 1 {
		out = append(out, imapsrc.Folder{Name: "Sent", SpecialUse: imap.MailboxAttrSent})
	}
	return out
}

// TestPlanFollowWithinCap plans how folders are followed: whatever the
// number of folders, every one is followed and the connections stay
// within the provider's cap, INBOX and \Sent keeping their own.
func TestPlanFollowWithinCap(t *testing.T) {
	for _, c := range []struct {
		name                  string
		folders               int
		notify                bool
		limit, workers        int
		own, polled, notified int
		wantWorkers, maxConns int
	}{
		{"Gmail, 30 folders", 30, false, 15, 4, 10, 20, 0, 4, 15},
		{"Gmail, 30 folders, NOTIFY", 30, true, 15, 4, 10, 0, 20, 4, 15},
		{"Microsoft 365, 6 folders, NOTIFY", 6, true, 4, 4, 1, 0, 5, 2, 4},
		{"Gmail, 2 folders", 2, false, 15, 4, 2, 0, 0, 4, 6},
		{"Gmail, 12 folders, 13 workers", 12, false, 15, 13, 1, 11, 0, 13, 15},
		{"Microsoft 365, INBOX", 1, false, 4, 4, 1, 0, 0, 3, 4},
		{"Microsoft 365, 6 folders", 6, false, 4, 4, 1, 5, 0, 2, 4},
		{"unknown server, 12 folders", 12, false, 0, 4, 5, 7, 0, 4, 10},
		{"unknown server, 3 folders", 3, false, 0, 4, 3, 0, 0, 4, 7},
		{"unknown server, 12 folders, NOTIFY", 12, true, 0, 2, 5, 0, 7, 2, 8},
		{"unknown server, 3 folders, NOTIFY", 3, true, 0, 4, 3, 0, 0, 4, 7},
		{"one folder, NOTIFY", 1, true, 0, 4, 1, 0, 0, 4, 5},
	} {
		t.Run(c.name, func(t *testing.T) {
			folders := testFolders(c.folders)
			p := planFollow(folders, c.notify, c.limit, c.workers)
			count := map[Mode]int{}
			for _, m := range p.modes {
				count[m]++
			}
			if len(p.modes) != len(folders) || count[Own] != c.own || count[Polled] != c.polled || count[Notified] != c.notified {
				t.Errorf("modes: %d own, %d polled, %d notified; want %d, %d, %d", count[Own], count[Polled], count[Notified], c.own, c.polled, c.notified)
			}
			if p.workers != c.wantWorkers {
				t.Errorf("workers %d, want %d", p.workers, c.wantWorkers)
			}
			// Every connection counted: own ones, the shared one, a sync's workers.
			conns := count[Own] + p.workers
			if count[Polled]+count[Notified] > 0 {
				conns++
			}
			if p.conns != conns || conns > c.maxConns || c.limit > 0 && conns > c.limit {
				t.Errorf("%d connections (plan says %d), want at most %d within the cap %d", conns, p.conns, c.maxConns, c.limit)
			}
			if count[Own] >= 2 && (p.modes[0] != Own || p.modes[len(folders)-1] != Own) {
				t.Errorf("INBOX or Sent without a connection of its own: %v", p.modes)
			}
		})
	}
}

// TestNews derives what changed in a folder from its STATUS counts.
func TestNews(t *testing.T) {
	n := func(v uint32) *uint32 { return &v }
	base := imapsrc.FolderStatus{Folder: "A", Messages: n(5), UIDNext: 10, UIDValidity: 7, HighestModSeq: 100}
	for _, c := range []struct {
		name string
		seen bool
		st   imapsrc.FolderStatus
		want imapsrc.Change
	}{
		{"first look", false, base, all},
		{"nothing changed", true, base, 0},
		{"new mail", true, imapsrc.FolderStatus{Messages: n(6), UIDNext: 11, HighestModSeq: 101}, imapsrc.NewMail | imapsrc.FlagsChanged},
		{"new mail, no CONDSTORE", true, imapsrc.FolderStatus{Messages: n(6), UIDNext: 11}, imapsrc.NewMail},
		{"expunge", true, imapsrc.FolderStatus{Messages: n(4), UIDNext: 10}, imapsrc.Expunged},
		{"new and expunged", true, imapsrc.FolderStatus{Messages: n(5), UIDNext: 11}, imapsrc.NewMail | imapsrc.Expunged},
		{"flags (Dovecot's NOTIFY)", true, imapsrc.FolderStatus{Unseen: n(0), HighestModSeq: 101}, imapsrc.FlagsChanged},
		{"renumbered", true, imapsrc.FolderStatus{Messages: n(5), UIDNext: 10, UIDValidity: 8}, all},
	} {
		if got := news(base, c.seen, c.st); got != c.want {
			t.Errorf("%s: news = %b, want %b", c.name, got, c.want)
		}
	}
}
