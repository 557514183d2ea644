package pgsink

import "time"

// SetLockCheck makes s check its run locks every d, so tests need not wait
// for lockCheckEvery.
func SetLockCheck(s *Sink, d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lockCheck = d
}

// ExistingSQL is the dry run's Message-ID look-up, for a plan test.
const ExistingSQL = existingSQL
