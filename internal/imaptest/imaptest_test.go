package imaptest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/myhibachi/backfill/internal/mailgen"
)

// dial logs in and selects INBOX, and closes the client when the test ends.
func dial(t *testing.T, s *Server) (*imapclient.Client, *imap.SelectData) {
	t.Helper()
	c, err := imapclient.DialInsecure(s.Addr(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Login(s.Username, s.Password).Wait(); err != nil {
		t.Fatalf("login: %v", err)
	}
	sel, err := c.Select(Inbox, nil).Wait()
	if err != nil {
		t.Fatalf("select: %v", err)
	}
	return c, sel
}

var fetchAll = &imap.FetchOptions{
	UID:          true,
	Flags:        true,
	InternalDate: true,
	RFC822Size:   true,
	BodySection:  []*imap.FetchItemBodySection{{Peek: true}},
}

func TestFetchReturnsAppendedMessages(t *testing.T) {
	t.Parallel()
	s := Start(t)
	mails := mailgen.Generate(1, 40)
	uids := s.AppendMails(t, mails)
	if !slices.Equal(uids, []imap.UID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20,
		21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40}) {
		t.Fatalf("UIDs %v", uids)
	}

	c, sel := dial(t, s)
	if got := sel.NumMessages; got != 40 {
		t.Errorf("SELECT says %d messages, want 40", got)
	}
	if got := sel.UIDValidity; got == 0 || got != s.UIDValidity(t, Inbox) {
		t.Errorf("SELECT says UIDVALIDITY %d, Status %d", got, s.UIDValidity(t, Inbox))
	}
	search, err := c.UIDSearch(&imap.SearchCriteria{}, nil).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if got := search.AllUIDs(); !slices.Equal(got, uids) {
		t.Fatalf("UID SEARCH ALL = %v, want %v", got, uids)
	}

	var set imap.UIDSet
	set.AddRange(1, 40)
	msgs, err := c.Fetch(set, fetchAll).Collect()
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 40 {
		t.Fatalf("fetched %d messages, want 40", len(msgs))
	}
	for _, m := range msgs {
		want := mails[m.UID-1]
		if body := m.FindBodySection(&imap.FetchItemBodySection{}); !bytes.Equal(body, want.Raw) {
			t.Errorf("UID %d: body differs from the appended bytes (%d vs %d bytes)", m.UID, len(body), len(want.Raw))
		}
		if !m.InternalDate.Equal(want.InternalDate) {
			t.Errorf("UID %d: INTERNALDATE %v, want %v", m.UID, m.InternalDate, want.InternalDate)
		}
		if m.RFC822Size != int64(len(want.Raw)) {
			t.Errorf("UID %d: RFC822.SIZE %d, want %d", m.UID, m.RFC822Size, len(want.Raw))
		}
		var flags []string
		for _, f := range m.Flags {
			flags = append(flags, string(f))
		}
		slices.Sort(flags)
		wantFlags := slices.Sorted(slices.Values(want.Flags))
		if !slices.Equal(flags, wantFlags) {
			t.Errorf("UID %d: flags %v, want %v (BODY.PEEK must not set \\Seen)", m.UID, flags, wantFlags)
		}
	}
	if s.Fetches() != 1 {
		t.Errorf("Fetches() = %d, want 1", s.Fetches())
	}
}

func TestURLAndLogin(t *testing.T) {
	t.Parallel()
	s := Start(t)
	want := "imap://support%40example.com@" + s.Addr() + "/INBOX"
	if got := s.URL(Inbox); got != want {
		t.Errorf("URL = %q, want %q", got, want)
	}
	if !strings.HasPrefix(s.Addr(), "127.0.0.1:") {
		t.Errorf("listening on %s, want loopback", s.Addr())
	}
	if s.Password == "" {
		t.Error("empty random password")
	}

	c, err := imapclient.DialInsecure(s.Addr(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(s.Username, s.Password+"x").Wait(); err == nil {
		t.Error("login with a wrong password succeeded")
	}

	s2 := Start(t, WithUser("payments@example.com", "secret"))
	c2, err := imapclient.DialInsecure(s2.Addr(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if err := c2.Login("payments@example.com", "secret").Wait(); err != nil {
		t.Errorf("login with WithUser credentials: %v", err)
	}
}

func TestRecreateMailboxChangesUIDValidity(t *testing.T) {
	t.Parallel()
	s := Start(t)
	mails := mailgen.Generate(2, 5)
	s.AppendMails(t, mails)
	before := s.UIDValidity(t, Inbox)
	after := s.RecreateMailbox(t, Inbox)
	if after == before {
		t.Fatalf("UIDVALIDITY stayed %d", before)
	}
	// Re-appending gives UIDs from 1 again, under the new UIDVALIDITY.
	if uids := s.AppendMails(t, mails[:2]); !slices.Equal(uids, []imap.UID{1, 2}) {
		t.Errorf("UIDs after recreation %v, want [1 2]", uids)
	}
	_, got := dial(t, s)
	if got.UIDValidity != after || got.NumMessages != 2 {
		t.Errorf("SELECT after recreation: UIDVALIDITY %d, %d messages; want %d, 2", got.UIDValidity, got.NumMessages, after)
	}
}

func TestFailFetchDropsTheConnection(t *testing.T) {
	t.Parallel()
	s := Start(t, FailFetch(2))
	s.AppendMails(t, mailgen.Generate(3, 10))
	var all imap.UIDSet
	all.AddRange(1, 10)

	c, _ := dial(t, s)
	if msgs, err := c.Fetch(all, fetchAll).Collect(); err != nil || len(msgs) != 10 {
		t.Fatalf("first FETCH: %d messages, %v", len(msgs), err)
	}
	cmd := c.Fetch(all, fetchAll)
	n, err := readBodies(cmd)
	if err == nil {
		t.Fatalf("second FETCH read %d bodies without error, want a dropped connection", n)
	}
	select {
	case <-c.Closed():
	case <-time.After(5 * time.Second):
		t.Fatal("client connection still open after the dropped FETCH")
	}
	// Only now, with the client's reader goroutine gone, may the command be
	// drained: see readBodies.
	if err := cmd.Close(); err == nil {
		t.Error("the dropped FETCH completed without error")
	}

	// The fault fires once: a reconnecting client gets everything.
	c2, _ := dial(t, s)
	if msgs, err := c2.Fetch(all, fetchAll).Collect(); err != nil || len(msgs) != 10 {
		t.Fatalf("FETCH after reconnecting: %d messages, %v", len(msgs), err)
	}
	if s.Fetches() != 3 {
		t.Errorf("Fetches() = %d, want 3", s.Fetches())
	}
}

// readBodies reads every body literal of a FETCH and stops at the first
// short or failed one without touching the command again. Two traps of
// go-imap v2.0.0-beta.8 that an importer must avoid the same way:
//   - A literal cut short by the server closing the connection reads as a
//     short body with a nil error (io.EOF from an io.LimitReader), so the
//     byte count must be checked against Literal.Size().
//   - After that, Next, Collect or Close on the command read the client's
//     shared buffer while its reader goroutine does too (the race detector
//     reports it); wait for Client.Closed before draining the command.
func readBodies(cmd *imapclient.FetchCommand) (int, error) {
	n := 0
	for {
		msg := cmd.Next()
		if msg == nil {
			return n, nil
		}
		for item := msg.Next(); item != nil; item = msg.Next() {
			body, ok := item.(imapclient.FetchItemDataBodySection)
			if !ok || body.Literal == nil {
				continue
			}
			got, err := io.Copy(io.Discard, body.Literal)
			if err != nil {
				return n, err
			}
			if got != body.Literal.Size() {
				return n, fmt.Errorf("body of message %d: %d of %d bytes: %w", msg.SeqNum, got, body.Literal.Size(), io.ErrUnexpectedEOF)
			}
			n++
		}
	}
}

func TestFetchHookAnswersNO(t *testing.T) {
	t.Parallel()
	s := Start(t, WithFetchHook(func(n int) error {
		if n == 1 {
			return errors.New("temporary failure")
		}
		return nil
	}))
	s.Append(t, mailgen.Generate(4, 1)[0].Raw, time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC))
	c, _ := dial(t, s)
	var all imap.UIDSet
	all.AddRange(1, 1)
	_, err := c.Fetch(all, fetchAll).Collect()
	var imapErr *imap.Error
	if !errors.As(err, &imapErr) || imapErr.Type != imap.StatusResponseTypeNo || !strings.Contains(imapErr.Text, "temporary failure") {
		t.Fatalf("FETCH error %v, want NO temporary failure", err)
	}
	// The connection survives a NO.
	msgs, err := c.Fetch(all, fetchAll).Collect()
	if err != nil || len(msgs) != 1 {
		t.Fatalf("FETCH after NO: %d messages, %v", len(msgs), err)
	}
	if !msgs[0].InternalDate.Equal(time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)) {
		t.Errorf("INTERNALDATE %v", msgs[0].InternalDate)
	}
}

func TestAppendGenerated(t *testing.T) {
	t.Parallel()
	s := Start(t)
	got := s.AppendGenerated(t, 5, 200)
	want := mailgen.Generate(5, 200)
	for i, a := range got {
		if a.UID != imap.UID(i+1) || a.Mail.Raw != nil || a.Mail.Want.MessageID != want[i].Want.MessageID {
			t.Fatalf("entry %d: UID %d, Raw kept %v, Message-ID %q; want UID %d, no Raw, %q",
				i, a.UID, a.Mail.Raw != nil, a.Mail.Want.MessageID, i+1, want[i].Want.MessageID)
		}
	}
	_, sel := dial(t, s)
	if n := sel.NumMessages; n != 200 {
		t.Errorf("INBOX has %d messages, want 200", n)
	}
}

func TestIMAP4rev1Only(t *testing.T) {
	t.Parallel()
	s := Start(t, WithCaps(imap.CapSet{imap.CapIMAP4rev1: {}}))
	s.AppendMails(t, mailgen.Generate(6, 3))
	c, _ := dial(t, s)
	if c.Caps().Has(imap.CapIMAP4rev2) || c.Caps().Has(imap.CapESearch) {
		t.Fatalf("capabilities %v, want IMAP4rev1 without ESEARCH", c.Caps())
	}
	data, err := c.UIDSearch(&imap.SearchCriteria{}, nil).Wait()
	if err != nil || len(data.AllUIDs()) != 3 {
		t.Fatalf("UID SEARCH ALL: %v, %v", data, err)
	}
}

func TestNewStandalone(t *testing.T) {
	t.Parallel()
	for _, addr := range []string{"0.0.0.0:0", ":0", "192.0.2.1:0", "example.com:143", "nonsense"} {
		if s, err := NewStandalone(addr, "u", "p"); err == nil {
			s.Close()
			t.Errorf("NewStandalone(%q) accepted a non-loopback address", addr)
		}
	}
	s, err := NewStandalone("127.0.0.1:0", "demo@example.com", "demo")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.AppendMail(Inbox, mailgen.Generate(1, 1)[0]); err != nil {
		t.Fatal(err)
	}
	c, err := imapclient.DialInsecure(s.Addr(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login("demo@example.com", "demo").Wait(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestCheckLoopback(t *testing.T) {
	t.Parallel()
	for addr, ok := range map[string]bool{
		"127.0.0.1:0": true, "127.0.0.2:143": true, "[::1]:1143": true, "localhost:0": true,
		"0.0.0.0:0": false, ":143": false, "10.0.0.1:143": false, "[::]:0": false, "myhost:143": false, "127.0.0.1": false,
	} {
		if err := CheckLoopback(addr); (err == nil) != ok {
			t.Errorf("CheckLoopback(%q) = %v, want ok=%v", addr, err, ok)
		}
	}
}

func ExampleServer_URL() {
	s, err := NewStandalone("127.0.0.1:0", "support@example.com", "demo")
	if err != nil {
		panic(err)
	}
	defer s.Close()
	fmt.Println(strings.Replace(s.URL(Inbox), s.Addr(), "127.0.0.1:PORT", 1))
	// Output: imap://support%40example.com@127.0.0.1:PORT/INBOX
}

// TestIdleSendsWhatChangedBefore appends a message while a client is
// selected but not idling: its EXISTS comes as soon as IDLE begins, as
// Dovecot sends it, not only with the next change (watch would miss it).
func TestIdleSendsWhatChangedBefore(t *testing.T) {
	s := Start(t)
	exists := make(chan uint32, 8)
	c, err := imapclient.DialInsecure(s.Addr(), &imapclient.Options{
		UnilateralDataHandler: &imapclient.UnilateralDataHandler{
			Mailbox: func(d *imapclient.UnilateralDataMailbox) {
				if d.NumMessages != nil {
					exists <- *d.NumMessages
				}
			},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(s.Username, s.Password).Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Select(Inbox, nil).Wait(); err != nil {
		t.Fatal(err)
	}
	s.Append(t, []byte("Subject: between commands\r\n\r\nbody\r\n"), time.Now())
	idle, err := c.Idle()
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	select {
	case n := <-exists:
		if n != 1 {
			t.Fatalf("EXISTS %d, want 1", n)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no EXISTS for a message appended before IDLE began")
	}
}
