package cyrustest

import (
	"bytes"
	"fmt"
	"iter"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/myhibachi/backfill/internal/debtree"
)

// TestServesLoadedMail loads messages and reads them back as a client
// would: UIDs in load order, INTERNALDATE as given, bytes unchanged, and a
// message with bare LF line ends stored with CRLF.
func TestServesLoadedMail(t *testing.T) {
	t.Parallel()
	s := Start(t)
	base := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	lf := bytes.ReplaceAll(message(2), []byte("\r\n"), []byte("\n"))
	refused, err := s.Load(seq([][]byte{message(0), message(1), lf}, base))
	if err != nil || len(refused) != 0 {
		t.Fatalf("Load: refused %v, %v", refused, err)
	}
	c := login(t, s)
	sel, err := c.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if sel.NumMessages != 3 {
		t.Fatalf("EXAMINE INBOX: %d messages, want 3", sel.NumMessages)
	}
	msgs, err := c.Fetch(imap.UIDSetNum(1, 2, 3), &imap.FetchOptions{
		UID: true, InternalDate: true, BodySection: []*imap.FetchItemBodySection{{Peek: true}},
	}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 3 {
		t.Fatalf("fetched %d messages, want 3", len(msgs))
	}
	for i, m := range msgs {
		if got := m.FindBodySection(&imap.FetchItemBodySection{}); !bytes.Equal(got, message(i)) {
			t.Errorf("UID %d: body %q, want %q", m.UID, got, message(i))
		}
		if want := base.Add(time.Duration(i) * time.Hour); !m.InternalDate.Equal(want) {
			t.Errorf("UID %d: INTERNALDATE %v, want %v", m.UID, m.InternalDate, want)
		}
	}
}

// TestLoadListsRefusals gives Cyrus a message it refuses (a NUL byte) between
// two it takes: Load stores the others and names the refused one.
func TestLoadListsRefusals(t *testing.T) {
	t.Parallel()
	s := Start(t)
	bad := bytes.Replace(message(1), []byte("Body"), []byte("B\x00dy"), 1)
	refused, err := s.Load(seq([][]byte{message(0), bad, message(2)}, time.Time{}))
	if err != nil {
		t.Fatal(err)
	}
	if len(refused) != 1 || refused[0].Index != 1 {
		t.Fatalf("refused %v, want message 1 only", refused)
	}
	t.Logf("Cyrus refused a NUL byte: %v", refused[0].Err)
	sel, err := login(t, s).Select("INBOX", nil).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if sel.NumMessages != 2 {
		t.Fatalf("INBOX has %d messages, want 2", sel.NumMessages)
	}
}

func TestWrongPasswordRefused(t *testing.T) {
	t.Parallel()
	s := Start(t)
	c, err := imapclient.DialInsecure(s.Addr(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(s.User, "not-"+s.Password).Wait(); err == nil {
		t.Fatal("logged in with a wrong password")
	}
}

func TestStopLeavesNoProcess(t *testing.T) {
	t.Parallel()
	s := Start(t)
	c := login(t, s)
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if n := len(debtree.GroupProcesses(s.Pid())); n < 2 {
		t.Fatalf("expected master and imapd in group %d, found %d processes", s.Pid(), n)
	}
	// Pinned, the namespace keeps its name after its last process, so the
	// look below cannot find another test's server under it.
	pin, err := debtree.PinNamespace(s.Pid(), s.Proc().Namespace())
	if err != nil {
		t.Fatal(err)
	}
	defer pin.Close()
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if pids := s.Proc().NamespaceProcesses(); len(pids) != 0 {
		t.Errorf("processes left after Stop: %v", pids)
	}
	if conn, err := net.DialTimeout("tcp", s.Addr(), time.Second); err == nil {
		conn.Close()
		t.Errorf("%s still accepts connections after Stop", s.Addr())
	}
}

func login(tb testing.TB, s *Server) *imapclient.Client {
	tb.Helper()
	c, err := imapclient.DialInsecure(s.Addr(), nil)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	if err := c.Login(s.User, s.Password).Wait(); err != nil {
		tb.Fatalf("login: %v", err)
	}
	return c
}

// seq yields raws an hour apart from base (all now when base is zero).
func seq(raws [][]byte, base time.Time) iter.Seq2[[]byte, time.Time] {
	return func(yield func([]byte, time.Time) bool) {
		for i, raw := range raws {
			date := base
			if !base.IsZero() {
				date = base.Add(time.Duration(i) * time.Hour)
			}
			if !yield(raw, date) {
				return
			}
		}
	}
}

// message is a small message with CRLF line ends.
func message(i int) []byte {
	return []byte(strings.Join([]string{
		fmt.Sprintf("From: Sender %d <sender%d@example.net>", i, i),
		"To: cs@myhibachichef.com",
		fmt.Sprintf("Subject: Test message %d", i),
		fmt.Sprintf("Message-ID: <%d@cyrustest.example>", i),
		"Date: Tue, 14 Nov 2023 22:13:20 +0000",
		"",
		fmt.Sprintf("Body of message %d.", i),
		"",
	}, "\r\n"))
}
