package pipeline

import (
	"sync"
	"time"

	"github.com/myhibachi/backfill/imapsrc"
)

// serialObserver serialises calls to an Observer with a lock of its own,
// so that the runner never calls out while holding its mutex: a slow
// terminal must not hold up workers asking whether to fetch lean or to
// retire. It numbers batches as it reports them, so numbers and lines stay
// in the same order.
type serialObserver struct {
	mu   sync.Mutex
	obs  Observer
	done int // batches reported
}

func (s *serialObserver) Connecting(cfg imapsrc.Config) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.obs.Connecting(cfg)
}

// Listed starts a folder's listing: its batches are numbered from 1.
func (s *serialObserver) Listed(l Listing) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.done = 0
	s.obs.Listed(l)
}

func (s *serialObserver) FoldersSelected(sel imapsrc.Selection) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if fo, ok := s.obs.(FolderObserver); ok {
		fo.FoldersSelected(sel)
	}
}

func (s *serialObserver) FolderDone(f FolderResult) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if fo, ok := s.obs.(FolderObserver); ok {
		fo.FolderDone(f)
	}
}

// BatchDone reports rep with Number set to its place in completion order.
func (s *serialObserver) BatchDone(rep BatchReport) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.done++
	rep.Number = s.done
	s.obs.BatchDone(rep)
}

func (s *serialObserver) Retrying(what string, err error, attempt int, wait time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.obs.Retrying(what, err, attempt, wait)
}
