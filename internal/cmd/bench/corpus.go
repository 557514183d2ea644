package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/myhibachi/backfill/internal/dovecottest"
	"github.com/myhibachi/backfill/internal/mailgen"
)

// corpus is the generated mailbox every contender copies.
type corpus struct {
	seed     int64
	messages int
	bytes    int64
	loadTime time.Duration
}

// MB is the corpus size in megabytes (10^6 bytes), as MB/s is reckoned.
func (c corpus) MB() float64 { return float64(c.bytes) / 1e6 }

// errStopLoad ends generation early when loading failed.
var errStopLoad = errors.New("load stopped")

// loadCorpus writes n generated messages straight into the user's Maildir,
// far faster than APPEND, so that a 50,000-message corpus takes a minute
// rather than the benchmark's whole budget. The same seed and n give the same
// bytes on every machine.
func loadCorpus(ctx context.Context, srv *dovecottest.Server, user string, seed int64, n int) (corpus, error) {
	c := corpus{seed: seed}
	start := time.Now()
	var genErr error
	mails := func(yield func([]byte, time.Time) bool) {
		genErr = mailgen.Each(seed, n, func(m mailgen.Mail) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			c.messages++
			c.bytes += int64(len(m.Raw))
			if !yield(m.Raw, m.InternalDate) {
				return errStopLoad
			}
			return nil
		})
	}
	if err := srv.LoadMaildir(user, mails); err != nil {
		return c, fmt.Errorf("load corpus: %w", err)
	}
	if genErr != nil {
		return c, fmt.Errorf("generate corpus: %w", genErr)
	}
	c.loadTime = time.Since(start)
	return c, nil
}
