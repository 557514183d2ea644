package errlog

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgconn"
)

func TestClassify(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want Category
	}{
		{"connection reset", fmt.Errorf("fetch: %w", syscall.ECONNRESET), Transient},
		{"unexpected EOF", fmt.Errorf("read body: %w", io.ErrUnexpectedEOF), Transient},
		{"IMAP BYE", &imap.Error{Type: imap.StatusResponseTypeBye, Text: "shutting down"}, Transient},
		{"IMAP LIMIT", &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeLimit}, Transient},
		{"IMAP auth failed", &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeAuthenticationFailed}, Critical},
		{"IMAP no such mailbox", &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeNonExistent}, Critical},
		{"serialization failure", &pgconn.PgError{Code: "40001"}, Transient},
		{"deadlock", &pgconn.PgError{Code: "40P01"}, Transient},
		{"admin shutdown", &pgconn.PgError{Code: "57P01"}, Transient},
		{"connection exception", &pgconn.PgError{Code: "08006"}, Transient},
		{"bad UTF-8 in a row", &pgconn.PgError{Code: "22021"}, Message},
		{"undefined table", &pgconn.PgError{Code: "42P01"}, Critical},
		{"critical error", fmt.Errorf("run: %w", &CriticalError{Type: "schema_missing", Err: errors.New("x")}), Critical},
		{"cancelled", fmt.Errorf("fetch: %w", context.Canceled), Critical},
	}
	for _, tt := range tests {
		if got := Classify(tt.err); got != tt.want {
			t.Errorf("%s: Classify(%v) = %q, want %q", tt.name, tt.err, got, tt.want)
		}
	}
}

type failingStore struct{ calls int }

func (s *failingStore) InsertErrorLogs(context.Context, []Entry) error {
	s.calls++
	return errors.New("database gone")
}

// When error_logs cannot be written, entries go to the JSON-lines file and
// the summary names it: nothing is lost silently.
func TestFlushFallsBackToFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "errors.jsonl")
	op := uuid.New()
	store := &failingStore{}
	l := New(op, "support", store, path)
	l.Add(Entry{Severity: SeverityError, Category: Message, UID: 7, ErrorType: "oversized", Message: "too big"})
	l.Add(Entry{Severity: SeverityWarning, Category: Message, UID: 8, ErrorType: "parse_warning", Message: "bad charset"})
	l.Add(Entry{Severity: SeverityError, Category: Message, UID: 9, ErrorType: "oversized", Message: "too big"})
	if err := l.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if store.calls != 1 {
		t.Fatalf("store called %d times, want 1", store.calls)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var uids []uint32
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var e Entry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatal(err)
		}
		if e.OperationID != op || e.Inbox != "support" || e.Attempts != 1 {
			t.Fatalf("entry %+v lacks operation, inbox or attempts", e)
		}
		uids = append(uids, e.UID)
	}
	if len(uids) != 3 {
		t.Fatalf("fallback file has UIDs %v, want 7, 8, 9", uids)
	}
	s := l.Summary()
	if s.Failures != 2 || s.Warnings != 1 || s.FallbackFile != path {
		t.Fatalf("summary = %+v", s)
	}
	if g := s.Groups[0]; g.Type != "oversized" || g.Count != 2 || len(g.ExampleUIDs) != 2 {
		t.Fatalf("largest group = %+v, want oversized x2 with UIDs 7 and 9", g)
	}
	if err := l.Flush(context.Background()); err != nil || store.calls != 1 {
		t.Fatalf("second flush with nothing pending: err %v, store calls %d", err, store.calls)
	}
}
