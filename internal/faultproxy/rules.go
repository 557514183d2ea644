package faultproxy

import (
	"cmp"
	"errors"
	"slices"
	"sync/atomic"
	"time"
)

// Direction is which way the bytes a rule counts flow.
type Direction int

const (
	// ServerToClient counts the target's answers: IMAP literals, query
	// results. It is the default.
	ServerToClient Direction = iota
	// ClientToServer counts what the client sends: a PostgreSQL COPY, an
	// IMAP APPEND.
	ClientToServer
)

func (d Direction) String() string {
	if d == ClientToServer {
		return "client→server"
	}
	return "server→client"
}

// Rule is a fault applied to the connections its selector matches. Build
// rules with ResetAfter, Stall, Delay and RefuseConnections; the zero Rule
// is invalid.
type Rule struct {
	kind  ruleKind
	bytes int64
	d     time.Duration
	dir   Direction
	which func(conn int) bool
	times int // 0: unlimited; see Times

	// budget counts the faults still allowed under Times. New gives every
	// rule of a proxy its own, so a Rule value can serve several proxies.
	budget *atomic.Int64
}

type ruleKind int

const (
	kindNone ruleKind = iota
	kindReset
	kindStall
	kindDelay
	kindRefuse
	kindRate
)

// ResetAfter cuts a matching connection once n bytes have been forwarded
// server→client (see Rule.In for the other way): both sides are closed with
// an RST, as when a provider drops a session mid-answer. The receiver reads
// exactly n bytes and then an error such as ECONNRESET: on Linux the reset
// waits (up to 2 s) until it has acknowledged them, as an RST discards data
// still in flight. A nil which matches every connection.
func ResetAfter(n int64, which func(conn int) bool) Rule {
	return Rule{kind: kindReset, bytes: n, which: which}
}

// Stall stops forwarding server→client (see Rule.In) for d once n bytes have
// gone through, then resumes, as a congested link or a server busy with a
// slow disk does. Bytes sent meanwhile are queued, up to a bound past which
// the sender is pushed back by TCP flow control. A nil which matches every
// connection.
func Stall(n int64, d time.Duration, which func(conn int) bool) Rule {
	return Rule{kind: kindStall, bytes: n, d: d, which: which}
}

// Delay holds every chunk d in each direction before forwarding it, as a
// distant server would: latency, not a bandwidth limit, as chunks in flight
// overlap. A nil which matches every connection.
func Delay(d time.Duration, which func(conn int) bool) Rule {
	return Rule{kind: kindDelay, d: d, which: which}
}

// RefuseConnections accepts a matching connection and closes it at once,
// before dialling the target: the client reads EOF before any byte, as from a
// server shedding load. A nil which matches every connection.
func RefuseConnections(which func(conn int) bool) Rule {
	return Rule{kind: kindRefuse, which: which}
}

// Rate lets at most bytesPerSec through server→client (see Rule.In) on a
// matching connection, as a slow link does: each write is followed by the
// time the link would take to carry it, and time spent idle is not saved
// up for a burst later. A nil which matches every connection.
func Rate(bytesPerSec int64, which func(conn int) bool) Rule {
	return Rule{kind: kindRate, bytes: bytesPerSec, which: which}
}

// In returns the rule counting bytes in direction dir. It matters to
// ResetAfter, Stall and Rate only.
func (r Rule) In(dir Direction) Rule {
	r.dir = dir
	return r
}

// Times limits the rule to n connections: the first n matching ones to reach
// the fault (for RefuseConnections and Delay, the first n matching ones
// accepted). With From(2), ResetAfter(...).Times(1) cuts whichever
// connection carries the traffic first, when a pool's use of its
// connections is not known in advance.
func (r Rule) Times(n int) Rule {
	r.times = n
	if n <= 0 {
		r.times = -1 // invalid: New says so
	}
	return r
}

func (r Rule) validate() error {
	switch {
	case r.kind == kindNone:
		return errors.New("zero Rule; build one with ResetAfter, Stall, Delay, Rate or RefuseConnections")
	case r.bytes < 0:
		return errors.New("negative byte count")
	case r.kind == kindRate && r.bytes == 0:
		return errors.New("Rate needs a positive number of bytes per second")
	case r.d < 0:
		return errors.New("negative duration")
	case r.dir != ServerToClient && r.dir != ClientToServer:
		return errors.New("unknown direction")
	case r.times < 0:
		return errors.New("the count given to Times must be positive")
	}
	return nil
}

// withBudget returns the rule with a budget of its own when Times limits it.
func (r Rule) withBudget() Rule {
	if r.times > 0 {
		r.budget = new(atomic.Int64)
		r.budget.Store(int64(r.times))
	}
	return r
}

func (r Rule) matches(conn int) bool { return r.which == nil || r.which(conn) }

// take spends one of the rule's faults; false when Times has used them up.
func (r Rule) take() bool { return r.budget == nil || r.budget.Add(-1) >= 0 }

// All matches every connection.
func All(int) bool { return true }

// EveryOther matches even-numbered connections (2, 4, 6, ...): the first
// connection, often the one that logs in and lists, goes through.
func EveryOther(conn int) bool { return conn%2 == 0 }

// First matches connections 1 to n.
func First(n int) func(conn int) bool {
	return func(conn int) bool { return conn <= n }
}

// Nth matches connection n only.
func Nth(n int) func(conn int) bool {
	return func(conn int) bool { return conn == n }
}

// From matches connection n and every later one.
func From(n int) func(conn int) bool {
	return func(conn int) bool { return conn >= n }
}

// Only matches the connections listed.
func Only(conns ...int) func(conn int) bool {
	conns = slices.Clone(conns)
	return func(conn int) bool { return slices.Contains(conns, conn) }
}

// plan is what the rules say about one connection.
type plan struct {
	refuse bool
	delay  time.Duration
	dirs   [2]dirPlan // by Direction
}

// dirPlan is one direction's faults by byte offset, consumed as bytes go
// through.
type dirPlan struct {
	resets []fault
	stalls []fault
	rate   int64 // bytes per second; 0: unlimited
}

type fault struct {
	at   int64
	d    time.Duration
	rule Rule // whose budget the fault spends
}

// newPlan combines the rules matching connection n: resets and stalls apply
// in byte order (the first reset that its budget allows ends the
// connection), delays add up.
func newPlan(n int, rules []Rule) plan {
	var pl plan
	for _, r := range rules {
		if !r.matches(n) {
			continue
		}
		dp := &pl.dirs[r.dir]
		switch r.kind {
		case kindRefuse:
			if r.take() {
				pl.refuse = true
			}
		case kindDelay:
			if r.take() {
				pl.delay += r.d
			}
		case kindReset:
			dp.resets = append(dp.resets, fault{at: r.bytes, rule: r})
		case kindStall:
			dp.stalls = append(dp.stalls, fault{at: r.bytes, d: r.d, rule: r})
		case kindRate:
			if r.take() && (dp.rate == 0 || r.bytes < dp.rate) {
				dp.rate = r.bytes // the slowest link wins
			}
		}
	}
	byOffset := func(a, b fault) int { return cmp.Compare(a.at, b.at) }
	for i := range pl.dirs {
		slices.SortStableFunc(pl.dirs[i].resets, byOffset)
		slices.SortStableFunc(pl.dirs[i].stalls, byOffset)
	}
	return pl
}
