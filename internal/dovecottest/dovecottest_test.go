package dovecottest

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"iter"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/myhibachi/backfill/internal/procgroup"
)

var (
	alice = User{Name: "alice@example.com", Password: "alice secret"}
	bob   = User{Name: "bob@example.org", Password: "bob-secret"}
)

func TestLoadMaildirFetch(t *testing.T) {
	t.Parallel()
	s := NewServer(t, []User{alice, bob})

	// Dates across zones and a DST change: INTERNALDATE is an instant.
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		t.Fatal(err)
	}
	const n = 25
	var raws [][]byte
	var dates []time.Time
	for i := range n {
		raws = append(raws, message(i, 200))
		dates = append(dates, time.Date(2024, 3, 30, 20, i*7, 13, 0, paris))
	}
	if err := s.LoadMaildir(alice.Name, pairs(raws, dates)); err != nil {
		t.Fatal(err)
	}

	c := login(t, s, alice)
	sel, err := c.Select("INBOX", nil).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if sel.NumMessages != n {
		t.Fatalf("SELECT INBOX: %d messages, want %d", sel.NumMessages, n)
	}
	body := &imap.FetchItemBodySection{Peek: true}
	var all imap.UIDSet
	all.AddRange(1, 0) // 1:*
	msgs, err := c.Fetch(all, &imap.FetchOptions{UID: true, InternalDate: true, RFC822Size: true, BodySection: []*imap.FetchItemBodySection{body}}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != n {
		t.Fatalf("FETCH 1:*: %d messages, want %d", len(msgs), n)
	}
	for i, m := range msgs {
		if m.UID != imap.UID(i+1) {
			t.Errorf("message %d: UID %d, want %d (the load order)", i, m.UID, i+1)
		}
		if got := m.FindBodySection(body); !bytes.Equal(got, raws[i]) {
			t.Errorf("message %d: body differs:\n%q\nwant\n%q", i, got, raws[i])
		}
		if m.RFC822Size != int64(len(raws[i])) {
			t.Errorf("message %d: RFC822.SIZE %d, want %d", i, m.RFC822Size, len(raws[i]))
		}
		if !m.InternalDate.Equal(dates[i]) {
			t.Errorf("message %d: INTERNALDATE %v, want %v", i, m.InternalDate, dates[i])
		}
	}

	// Each user has a mailbox of their own.
	cb := login(t, s, bob)
	if sel, err := cb.Select("INBOX", nil).Wait(); err != nil || sel.NumMessages != 0 {
		t.Fatalf("bob's INBOX: %+v, %v; want empty", sel, err)
	}
}

func TestLoadMaildirAppendsToIndexedMailbox(t *testing.T) {
	t.Parallel()
	s := NewServer(t, []User{alice})
	load(t, s, alice, 0, 3)
	c := login(t, s, alice)
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	load(t, s, alice, 3, 2)
	// A new SELECT syncs the Maildir and sees the new files, with higher UIDs.
	sel, err := c.Select("INBOX", nil).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if sel.NumMessages != 5 || sel.UIDNext != 6 {
		t.Fatalf("after a second load: %d messages, UIDNEXT %d; want 5 and 6", sel.NumMessages, sel.UIDNext)
	}
}

func TestResetMailboxChangesUIDValidity(t *testing.T) {
	t.Parallel()
	s := NewServer(t, []User{alice})
	load(t, s, alice, 0, 3)

	open := login(t, s, alice)
	first, err := open.Select("INBOX", nil).Wait()
	if err != nil {
		t.Fatal(err)
	}

	if err := s.ResetMailbox(alice.Name); err != nil {
		t.Fatal(err)
	}
	select {
	case <-open.Closed():
	case <-time.After(5 * time.Second):
		t.Error("the session open during ResetMailbox was not disconnected")
	}

	c := login(t, s, alice)
	second, err := c.Select("INBOX", nil).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if second.NumMessages != 0 {
		t.Errorf("after reset: %d messages, want 0", second.NumMessages)
	}
	if second.UIDValidity == first.UIDValidity {
		t.Errorf("UIDVALIDITY %d unchanged by reset", first.UIDValidity)
	}

	// Within the same second, a second reset still changes it.
	if err := s.ResetMailbox(alice.Name); err != nil {
		t.Fatal(err)
	}
	load(t, s, alice, 0, 2)
	c = login(t, s, alice)
	third, err := c.Select("INBOX", nil).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if third.UIDValidity == second.UIDValidity || third.UIDValidity == first.UIDValidity {
		t.Errorf("UIDVALIDITY after two resets: %d, %d, %d; want three values", first.UIDValidity, second.UIDValidity, third.UIDValidity)
	}
	if third.NumMessages != 2 || third.UIDNext != 3 {
		t.Errorf("reloaded after reset: %d messages, UIDNEXT %d; want 2 and 3", third.NumMessages, third.UIDNext)
	}
}

func TestRestartKeepsMailAndPort(t *testing.T) {
	t.Parallel()
	s := NewServer(t, []User{alice})
	load(t, s, alice, 0, 3)
	open := login(t, s, alice)
	before, err := open.Select("INBOX", nil).Wait()
	if err != nil {
		t.Fatal(err)
	}
	addr := s.Addr()

	if err := s.Restart(t.Context()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-open.Closed():
	case <-time.After(5 * time.Second):
		t.Error("a session survived the restart")
	}
	if s.Addr() != addr {
		t.Errorf("address changed from %s to %s", addr, s.Addr())
	}
	after, err := login(t, s, alice).Select("INBOX", nil).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if after.NumMessages != 3 || after.UIDValidity != before.UIDValidity {
		t.Errorf("after restart: %d messages, UIDVALIDITY %d; want 3 and %d", after.NumMessages, after.UIDValidity, before.UIDValidity)
	}
}

func TestMaxUserIPConnections(t *testing.T) {
	t.Parallel()
	s := NewServer(t, []User{alice}, WithMaxUserIPConnections(2))
	login(t, s, alice)
	login(t, s, alice)

	c, err := imapclient.DialInsecure(s.Addr(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(alice.Name, alice.Password).Wait(); err == nil {
		t.Fatal("third session logged in, past mail_max_userip_connections = 2")
	}
}

func TestLoginRefusedWithWrongPassword(t *testing.T) {
	t.Parallel()
	s := NewServer(t, []User{alice})
	c, err := imapclient.DialInsecure(s.Addr(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(alice.Name, "wrong").Wait(); err == nil {
		t.Fatal("logged in with a wrong password")
	}
}

func TestStopLeavesNoProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test skipped in -short mode")
	}
	if err := Available(); err != nil {
		t.Fatal(err)
	}
	t.Parallel()
	// A long directory, as t.TempDir gives long test names: base_dir moves
	// out of it to keep socket paths short.
	dir := t.TempDir() + "/" + strings.Repeat("long-directory-name-", 5)
	s, err := Start(t.Context(), dir, []User{alice})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Stop() })
	c := login(t, s, alice) // so that an imap process runs too
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if len(procgroup.Processes(s.pid)) < 3 {
		t.Fatalf("expected Dovecot's processes in group %d, found %v", s.pid, procgroup.Processes(s.pid))
	}

	start := time.Now()
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	t.Logf("Stop took %v", time.Since(start))
	if pids := procgroup.Processes(s.pid); len(pids) != 0 {
		t.Errorf("processes left after Stop: %v", pids)
	}
	if conn, err := net.DialTimeout("tcp", s.Addr(), time.Second); err == nil {
		conn.Close()
		t.Errorf("%s still accepts connections after Stop", s.Addr())
	}
	select {
	case <-c.Closed():
	case <-time.After(5 * time.Second):
		t.Error("the client's session outlived Stop")
	}
	if _, err := os.Stat(s.baseDir); !os.IsNotExist(err) {
		t.Errorf("base_dir %s outside dir not removed: %v", s.baseDir, err)
	}
	if err := s.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
}

// TestDovecotDiesWithTestProcess checks that a test binary that dies without
// cleaning up, as on a test timeout, leaves no Dovecot behind.
func TestDovecotDiesWithTestProcess(t *testing.T) {
	if dir := os.Getenv("DOVECOTTEST_ORPHAN_DIR"); dir != "" {
		s, err := Start(context.Background(), dir, []User{alice})
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		fmt.Println("pid", s.pid)
		os.Exit(0) // no Stop, like a process killed by a timeout
	}
	if testing.Short() {
		t.Skip("end-to-end test skipped in -short mode")
	}
	t.Parallel()
	cmd := exec.Command(os.Args[0], "-test.run=^TestDovecotDiesWithTestProcess$")
	cmd.Env = append(os.Environ(), "DOVECOTTEST_ORPHAN_DIR="+t.TempDir())
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helper process: %v: %s", err, out)
	}
	line, _, _ := bufio.NewReader(bytes.NewReader(out)).ReadLine()
	pid, err := strconv.Atoi(strings.TrimPrefix(string(line), "pid "))
	if err != nil {
		t.Fatalf("helper process said %q", out)
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(procgroup.Processes(pid)) > 0 {
		if time.Now().After(deadline) {
			_ = syscall.Kill(-pid, syscall.SIGKILL)
			t.Fatalf("Dovecot %d still runs 10s after its test process died", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestLoadTenThousand is the scale benchmarks rely on: ten thousand messages
// loaded and indexed in seconds.
func TestLoadTenThousand(t *testing.T) {
	t.Parallel()
	s := NewServer(t, []User{alice})
	const n = 10_000
	start := time.Now()
	load(t, s, alice, 0, n)
	loaded := time.Since(start)

	c := login(t, s, alice)
	start = time.Now()
	sel, err := c.Select("INBOX", nil).Wait()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("loaded %d messages in %v; first SELECT (indexing) took %v", n, loaded, time.Since(start))
	if sel.NumMessages != n || sel.UIDNext != n+1 {
		t.Fatalf("SELECT INBOX: %d messages, UIDNEXT %d; want %d and %d", sel.NumMessages, sel.UIDNext, n, n+1)
	}
}

func TestURL(t *testing.T) {
	s := &Server{addr: "127.0.0.1:10143"}
	for _, tc := range []struct{ user, mailbox, want string }{
		{"alice@example.com", "INBOX", "imap://alice%40example.com@127.0.0.1:10143/INBOX"},
		{"bob", "Sent Items", "imap://bob@127.0.0.1:10143/Sent%20Items"},
	} {
		if got := s.URL(tc.user, tc.mailbox); got != tc.want {
			t.Errorf("URL(%q, %q) = %q, want %q", tc.user, tc.mailbox, got, tc.want)
		}
	}
}

func TestStartRejectsBadUsers(t *testing.T) {
	for _, u := range []User{{Name: ""}, {Name: "a:b"}, {Name: "../x"}, {Name: "ok", Password: "a:b"}} {
		if err := validUser(u); err == nil {
			t.Errorf("validUser(%+v) accepted", u)
		}
	}
}

func login(tb testing.TB, s *Server, u User) *imapclient.Client {
	tb.Helper()
	c, err := imapclient.DialInsecure(s.Addr(), nil)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	if err := c.Login(u.Name, u.Password).Wait(); err != nil {
		tb.Fatalf("login %s: %v", u.Name, err)
	}
	return c
}

// load adds count messages numbered from first, an hour apart.
func load(tb testing.TB, s *Server, u User, first, count int) {
	tb.Helper()
	seq := func(yield func([]byte, time.Time) bool) {
		for i := first; i < first+count; i++ {
			if !yield(message(i, 500), time.Unix(1_700_000_000+int64(i)*3600, 0)) {
				return
			}
		}
	}
	if err := s.LoadMaildir(u.Name, seq); err != nil {
		tb.Fatal(err)
	}
}

func pairs(raws [][]byte, dates []time.Time) iter.Seq2[[]byte, time.Time] {
	return func(yield func([]byte, time.Time) bool) {
		for i := range raws {
			if !yield(raws[i], dates[i]) {
				return
			}
		}
	}
}

// message makes a small RFC 5322 message with CRLF line ends, as IMAP
// serves them.
func message(i, bodySize int) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: Sender %d <sender%d@example.net>\r\n", i, i)
	b.WriteString("To: alice@example.com\r\n")
	fmt.Fprintf(&b, "Subject: Test message %d\r\n", i)
	fmt.Fprintf(&b, "Message-ID: <%d@dovecottest.example>\r\n", i)
	b.WriteString("Date: Tue, 14 Nov 2023 22:13:20 +0000\r\n")
	b.WriteString("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n")
	for b.Len() < bodySize {
		fmt.Fprintf(&b, "Line of message %d, to give it some body.\r\n", i)
	}
	return b.Bytes()
}
