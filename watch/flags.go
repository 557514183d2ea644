package watch

import (
	"context"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/myhibachi/backfill/message"
	"github.com/myhibachi/backfill/pgsink"
)

// flags records the server's flags: of every message when full, else,
// with CONDSTORE, of those changed since the last look. The mapping from
// IMAP flags to columns is a run's (message.SetFlags, and on Gmail
// AddGmailLabels), so a flag change leaves a row as a fresh run would have
// stored it.
func (s *session) flags(ctx context.Context, full bool) (int, error) {
	ms := &s.f.modSeq
	if ms.uidValidity != s.mbox.UIDValidity {
		// Mod-sequences of another numbering say nothing of this one.
		*ms = modSeqMark{uidValidity: s.mbox.UIDValidity}
		full = true
	}
	since := ms.modSeq
	if full {
		since = 0
		// What changes while the whole list streams in is asked for again
		// next time, from the mod-sequence the SELECT reported.
		ms.modSeq = max(ms.modSeq, s.mbox.HighestModSeq)
	}
	got, err := s.conn.FlagsSince(ctx, since, s.features.CondStore)
	if err != nil {
		return 0, err
	}
	states := make([]pgsink.FlagState, len(got))
	var m message.Message
	for i, g := range got {
		m.SetFlags(g.Flags)
		m.AddGmailLabels(g.GmailLabels)
		states[i] = pgsink.FlagState{UID: g.UID, IsRead: m.IsRead, IsStarred: m.IsStarred, Labels: m.Labels}
		ms.modSeq = max(ms.modSeq, g.ModSeq)
	}
	w := s.f.w
	dctx, cancel := context.WithTimeout(ctx, dbTimeout)
	defer cancel()
	return w.sink.UpdateFlags(dctx, w.cfg.Run.Inbox, s.f.folder, s.mbox.UIDValidity, states)
}

// backoffTimer is the wait between a follower's failed attempts: growing
// from a second to max, with jitter, and never giving up.
type backoffTimer struct{ b *backoff.ExponentialBackOff }

func newBackoff(maxWait time.Duration) *backoffTimer {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = time.Second
	b.MaxInterval = maxWait
	b.MaxElapsedTime = 0 // never stop
	b.Reset()
	return &backoffTimer{b: b}
}

// Next is the next wait.
func (t *backoffTimer) Next() time.Duration { return t.b.NextBackOff() }

// Reset starts again from the shortest wait.
func (t *backoffTimer) Reset() { t.b.Reset() }
