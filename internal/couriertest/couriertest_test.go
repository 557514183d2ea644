package couriertest

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"iter"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/myhibachi/backfill/internal/debtree"
)

// TestServesLoadedMail loads a few messages, settles the mailbox, and reads
// them back as a client would: UIDs in load order, INTERNALDATE from the
// file, LF files served with CRLF, and the same UIDVALIDITY in every later
// read-only session.
func TestServesLoadedMail(t *testing.T) {
	t.Parallel()
	s := Start(t)
	base := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	if err := s.LoadMaildir(messages(0, 3, base)); err != nil {
		t.Fatal(err)
	}
	if err := s.Settle(); err != nil {
		t.Fatal(err)
	}
	var validity uint32
	for range 2 {
		c := login(t, s)
		sel, err := c.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait()
		if err != nil {
			t.Fatal(err)
		}
		if sel.NumMessages != 3 {
			t.Fatalf("EXAMINE INBOX: %d messages, want 3", sel.NumMessages)
		}
		if validity != 0 && sel.UIDValidity != validity {
			t.Fatalf("UIDVALIDITY changed from %d to %d after Settle", validity, sel.UIDValidity)
		}
		validity = sel.UIDValidity
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
			want := message(i)
			if got := m.FindBodySection(&imap.FetchItemBodySection{}); !bytes.Equal(got, want) {
				t.Errorf("UID %d: body %q, want %q", m.UID, got, want)
			}
			if want := base.Add(time.Duration(i) * time.Hour); !m.InternalDate.Equal(want) {
				t.Errorf("UID %d: INTERNALDATE %v, want %v", m.UID, m.InternalDate, want)
			}
		}
	}
}

// TestReadOnlySessionsChangeUIDValidity pins the Courier behaviour that
// issue 14 found: a Maildir no session has opened read-write gets a new
// UIDVALIDITY in every EXAMINE. The value is the time in seconds, so
// sessions within one second share it.
func TestReadOnlySessionsChangeUIDValidity(t *testing.T) {
	t.Parallel()
	s := Start(t)
	if err := s.LoadMaildir(messages(0, 2, time.Time{})); err != nil {
		t.Fatal(err)
	}
	var seen []uint32
	for i := range 2 {
		if i > 0 {
			time.Sleep(1100 * time.Millisecond)
		}
		sel, err := login(t, s).Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait()
		if err != nil {
			t.Fatal(err)
		}
		seen = append(seen, sel.UIDValidity)
	}
	if seen[0] == seen[1] {
		t.Fatalf("two read-only sessions of an unsettled Maildir had UIDVALIDITY %d both: Courier changed", seen[0])
	}
}

// TestCRLFFilesAreServedWithCRCRLF pins the other behaviour issue 14 found:
// Courier adds a CR before every LF of a Maildir file.
func TestCRLFFilesAreServedWithCRCRLF(t *testing.T) {
	t.Parallel()
	s := Start(t)
	if err := s.LoadMaildirRaw(messages(0, 1, time.Time{})); err != nil {
		t.Fatal(err)
	}
	c := login(t, s)
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	msgs, err := c.Fetch(imap.UIDSetNum(1), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{Peek: true}}}).Collect()
	if err != nil || len(msgs) != 1 {
		t.Fatalf("fetch: %d messages, %v", len(msgs), err)
	}
	got := msgs[0].FindBodySection(&imap.FetchItemBodySection{})
	if want := bytes.ReplaceAll(message(0), []byte("\r\n"), []byte("\r\r\n")); !bytes.Equal(got, want) {
		t.Fatalf("served %q, want %q", got, want)
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
	c := login(t, s) // so that an imapd runs too
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if n := len(debtree.GroupProcesses(s.Pid())); n < 3 {
		t.Fatalf("expected couriertcpd, authdaemond and imapd in group %d, found %d processes", s.Pid(), n)
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
	if pids := debtree.GroupProcesses(s.Pid()); len(pids) != 0 {
		t.Errorf("processes left after Stop: %v", pids)
	}
	if pids := s.Proc().NamespaceProcesses(); len(pids) != 0 {
		var cmds []string
		for _, pid := range pids {
			b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
			cmds = append(cmds, string(b))
		}
		t.Errorf("processes left in the mount namespace after Stop: %q", cmds)
	}
	if conn, err := net.DialTimeout("tcp", s.Addr(), time.Second); err == nil {
		conn.Close()
		t.Errorf("%s still accepts connections after Stop", s.Addr())
	}
	if err := s.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
}

// TestServerDiesWithTestProcess checks that a test binary that dies without
// cleaning up, as on a test timeout, leaves no Courier process behind, not
// even gam_server, which leaves the process group.
func TestServerDiesWithTestProcess(t *testing.T) {
	if os.Getenv("COURIERTEST_ORPHAN") != "" {
		s := Start(t)
		c := login(t, s)
		if _, err := c.Select("INBOX", nil).Wait(); err != nil { // starts gam_server
			t.Fatal(err)
		}
		fmt.Println("ns", s.Proc().Namespace(), s.Pid())
		// Killed by the test while it waits, with no Stop, like a
		// process killed by a timeout.
		_, _ = io.Copy(io.Discard, os.Stdin)
		os.Exit(0)
	}
	t.Parallel()
	if testing.Short() {
		t.Skip("end-to-end test skipped in -short mode")
	}
	if err := debtree.CanRun(); err != nil {
		t.Skip(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestServerDiesWithTestProcess$")
	cmd.Env = append(os.Environ(), "COURIERTEST_ORPHAN=1")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cmd.StdinPipe(); err != nil { // held open: the helper waits on it
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()         //nolint:errcheck // killed on purpose
	defer cmd.Process.Kill() //nolint:errcheck // already dead when the test went well
	line, err := bufio.NewReader(stdout).ReadString('\n')
	var ns string
	var pid int
	if _, serr := fmt.Sscanf(line, "ns %s %d", &ns, &pid); err != nil || serr != nil {
		t.Fatalf("helper process: %v, %v: %q", err, serr, line)
	}
	// Pinned, the namespace keeps its name after its last process, so the
	// look below cannot find another test's server under it.
	pin, err := debtree.PinNamespace(pid, ns)
	if err != nil {
		t.Fatal(err)
	}
	defer pin.Close()
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		pids := debtree.NamespaceProcesses(ns)
		if len(pids) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("processes %v still run 10s after their test process died", pids)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestLoadTenThousand is the scale the re-run measurement needs.
func TestLoadTenThousand(t *testing.T) {
	if os.Getenv("COURIERTEST_LARGE") == "" {
		t.Skip("set COURIERTEST_LARGE=1 to load 10,000 messages")
	}
	s := Start(t)
	start := time.Now()
	if err := s.LoadMaildir(messages(0, 10_000, time.Time{})); err != nil {
		t.Fatal(err)
	}
	loaded := time.Since(start)
	start = time.Now()
	if err := s.Settle(); err != nil {
		t.Fatal(err)
	}
	t.Logf("loaded 10,000 messages in %v; first SELECT took %v", loaded, time.Since(start))
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

// messages yields count messages from first, an hour apart from base.
func messages(first, count int, base time.Time) iter.Seq2[[]byte, time.Time] {
	return func(yield func([]byte, time.Time) bool) {
		for i := first; i < first+count; i++ {
			date := base
			if !base.IsZero() {
				date = base.Add(time.Duration(i) * time.Hour)
			}
			if !yield(message(i), date) {
				return
			}
		}
	}
}

// message is a small message with CRLF line ends, as IMAP serves them.
func message(i int) []byte {
	return []byte(strings.Join([]string{
		fmt.Sprintf("From: Sender %d <sender%d@example.net>", i, i),
		"To: cs@myhibachichef.com",
		fmt.Sprintf("Subject: Test message %d", i),
		fmt.Sprintf("Message-ID: <%d@couriertest.example>", i),
		"Date: Tue, 14 Nov 2023 22:13:20 +0000",
		"",
		fmt.Sprintf("Body of message %d.", i),
		"",
	}, "\r\n"))
}
