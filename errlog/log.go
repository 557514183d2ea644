package errlog

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"
)

// Entry is one error_logs row.
type Entry struct {
	OperationID uuid.UUID      `json:"operation_id"`
	OccurredAt  time.Time      `json:"occurred_at"`
	Severity    Severity       `json:"severity"`
	Category    Category       `json:"category"`
	Inbox       string         `json:"inbox"`
	UID         uint32         `json:"imap_uid,omitempty"`
	MessageID   string         `json:"message_id,omitempty"`
	ErrorType   string         `json:"error_type"`
	Message     string         `json:"error_message"`
	Attempts    int            `json:"attempts"`
	Context     map[string]any `json:"context,omitempty"`
}

// Store writes entries to error_logs; pgsink implements it.
type Store interface {
	InsertErrorLogs(ctx context.Context, entries []Entry) error
}

// Log collects a run's failures, writes them in batches and keeps the
// per-type summary. It is safe for concurrent use.
type Log struct {
	opID     uuid.UUID
	inbox    string
	store    Store // nil: nothing is written to the database (dry run)
	fallback string

	mu           sync.Mutex
	pending      []Entry
	groups       map[string]*Group
	failures     int
	warnings     int
	fallbackUsed bool
}

// Group is the summary of one error type.
type Group struct {
	Type        string   `json:"type"`
	Severity    Severity `json:"severity"`
	Count       int      `json:"count"`
	ExampleUIDs []uint32 `json:"example_uids,omitempty"`
	Example     string   `json:"example"`
}

const maxExampleUIDs = 5

// New returns a Log for one operation. fallbackPath is the JSON-lines file
// used when store refuses entries.
func New(opID uuid.UUID, inbox string, store Store, fallbackPath string) *Log {
	return &Log{opID: opID, inbox: inbox, store: store, fallback: fallbackPath, groups: map[string]*Group{}}
}

// Add records an entry; it is written at the next Flush.
func (l *Log) Add(e Entry) {
	e.OperationID = l.opID
	e.Inbox = l.inbox
	if e.OccurredAt.IsZero() {
		e.OccurredAt = time.Now()
	}
	if e.Attempts == 0 {
		e.Attempts = 1
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.pending = append(l.pending, e)
	if e.Severity == SeverityWarning {
		l.warnings++
	} else {
		l.failures++
	}
	g := l.groups[e.ErrorType]
	if g == nil {
		g = &Group{Type: e.ErrorType, Severity: e.Severity, Example: e.Message}
		l.groups[e.ErrorType] = g
	}
	g.Count++
	if e.UID != 0 && len(g.ExampleUIDs) < maxExampleUIDs {
		g.ExampleUIDs = append(g.ExampleUIDs, e.UID)
	}
}

// Flush writes pending entries to the store, or to the fallback file when the
// store fails, so that no failure is lost silently.
func (l *Log) Flush(ctx context.Context) error {
	l.mu.Lock()
	batch := l.pending
	l.pending = nil
	l.mu.Unlock()
	if len(batch) == 0 || l.store == nil {
		return nil
	}
	err := l.store.InsertErrorLogs(ctx, batch)
	if err == nil {
		return nil
	}
	if ferr := l.writeFallback(batch); ferr != nil {
		return fmt.Errorf("write error_logs (%w) and fallback %s: %w", err, l.fallback, ferr)
	}
	return nil
}

func (l *Log) writeFallback(batch []Entry) error {
	f, err := os.OpenFile(l.fallback, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(f)
	for _, e := range batch {
		if err := enc.Encode(e); err != nil {
			f.Close()
			return err
		}
	}
	if err := f.Close(); err != nil {
		return err
	}
	l.mu.Lock()
	l.fallbackUsed = true
	l.mu.Unlock()
	return nil
}

// Summary is what the closing block reports.
type Summary struct {
	Failures     int     // entries of severity error or critical
	Warnings     int     // parser warnings on stored messages
	Groups       []Group // by count, largest first
	FallbackFile string  // set when some entries went to the JSON-lines file
}

// Summary returns the run's errors grouped by type.
func (l *Log) Summary() Summary {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := Summary{Failures: l.failures, Warnings: l.warnings}
	for _, g := range l.groups {
		s.Groups = append(s.Groups, *g)
	}
	slices.SortFunc(s.Groups, func(a, b Group) int {
		if a.Count != b.Count {
			return b.Count - a.Count
		}
		if a.Type < b.Type {
			return -1
		}
		return 1
	})
	if l.fallbackUsed {
		s.FallbackFile = l.fallback
	}
	return s
}
