package main

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/myhibachi/backfill/internal/imaptest"
)

// searchLog records the UID sets of the server's SEARCH commands, "ALL"
// for a search of every message: what a server's log would show.
type searchLog struct {
	mu       sync.Mutex
	searches []string
}

func (l *searchLog) since(n int) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.searches[n:])
}

func (l *searchLog) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.searches)
}

type searchRecorder struct {
	imapserver.SessionIMAP4rev2
	log *searchLog
}

func (s *searchRecorder) Search(kind imapserver.NumKind, criteria *imap.SearchCriteria, options *imap.SearchOptions) (*imap.SearchData, error) {
	what := "ALL"
	if len(criteria.UID) > 0 {
		sets := make([]string, len(criteria.UID))
		for i, set := range criteria.UID {
			sets[i] = set.String()
		}
		what = "UID " + strings.Join(sets, " ")
	}
	s.log.mu.Lock()
	s.log.searches = append(s.log.searches, what)
	s.log.mu.Unlock()
	return s.SessionIMAP4rev2.Search(kind, criteria, options)
}

// TestWatchListsOnlyNewMail follows an IDLE server after a backfill of 30
// messages: new mail, several messages at once and then one more, is
// stored, each downloaded once, and the syncs it wakes list only the UIDs
// above those already handled (UID SEARCH UID 31:*), not the mailbox.
func TestWatchListsOnlyNewMail(t *testing.T) {
	t.Parallel()
	searches := &searchLog{}
	f := newFixture(t, imaptest.WithSession(func(s imapserver.SessionIMAP4rev2, _ *imapserver.Conn) imapserver.SessionIMAP4rev2 {
		return &searchRecorder{SessionIMAP4rev2: s, log: searches}
	}))
	date := time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)
	const loaded = 30
	for i := range loaded {
		f.imap.Append(t, liveMail(fmt.Sprintf("old-%d", i)), date)
	}
	f.migrate()
	p := startWatch(t, buildBinary(t), f.dir, f.environ, "--inbox", "demo", "--max-backoff", "500ms", "--fetch", "full")
	p.waitLines("👀 demo/INBOX: following (IDLE)", 1)
	if n := f.count(`SELECT count(*) FROM email_messages`); n != loaded {
		t.Fatalf("after the backfill email_messages has %d rows, want %d", n, loaded)
	}
	before := searches.len()
	wholeBefore, _ := f.imap.BodiesAsked()

	// Several at once, then one more once they are stored.
	for i := range 3 {
		f.imap.Append(t, liveMail(fmt.Sprintf("burst-%d", i)), date)
	}
	f.eventually("the burst stored", func() bool {
		return f.count(`SELECT count(*) FROM email_messages WHERE message_id LIKE 'burst-%'`) == 3
	})
	f.imap.Append(t, liveMail("last"), date)
	f.eventually("the last message stored", func() bool {
		return f.count(`SELECT count(*) FROM email_messages WHERE message_id = 'last@example.com'`) == 1
	})

	if n := f.count(`SELECT count(*) FROM email_sync_uids`); n != loaded+4 {
		t.Fatalf("%d UIDs settled, want %d", n, loaded+4)
	}
	if whole, _ := f.imap.BodiesAsked(); whole-wholeBefore != 4 {
		t.Fatalf("%d messages downloaded for 4 new ones", whole-wholeBefore)
	}
	got := searches.since(before)
	if len(got) == 0 || got[0] != fmt.Sprintf("UID %d:*", loaded+1) {
		t.Fatalf("the first wake-up searched %q, want UID %d:* (searches since following: %q)", got, loaded+1, got)
	}
	for _, s := range got {
		var first int
		if _, err := fmt.Sscanf(s, "UID %d:*", &first); err != nil || first <= loaded {
			t.Fatalf("a wake-up searched %q: it lists UIDs already handled (searches since following: %q)", s, got)
		}
	}
	p.terminate()
}
