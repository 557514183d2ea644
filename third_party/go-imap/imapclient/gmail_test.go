package imapclient_test

import (
	"bufio"
	"errors"
	"net"
	"reflect"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"
)

// TestFetch_gmailTranscript feeds the client a response as Gmail sends it:
// system labels both as flags and quoted with an escaped backslash, a
// modified UTF-7 label, a label in a literal.
func TestFetch_gmailTranscript(t *testing.T) {
	clientConn, serverConn := net.Pipe()
	defer clientConn.Close()
	defer serverConn.Close()

	asked := make(chan string, 1)
	go func() {
		br := bufio.NewReader(serverConn)
		serverConn.Write([]byte("* OK Gimap ready for requests\r\n"))
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		asked <- line
		tag, _, _ := strings.Cut(line, " ")
		serverConn.Write([]byte("* 1 FETCH (UID 4 X-GM-THRID 1278455344230334865 X-GM-MSGID 18446744073709551615 " +
			`X-GM-LABELS (\Inbox "\\Important" "Muy Importante" &AMk-t&AOk- {5}` + "\r\n" + `foo b))` + "\r\n" +
			tag + " OK Success\r\n"))
	}()

	client := imapclient.New(clientConn, nil)
	defer client.Close()
	msgs, err := client.Fetch(imap.UIDSetNum(4), &imap.FetchOptions{
		GmailMsgID:    true,
		GmailThreadID: true,
		GmailLabels:   true,
	}).Collect()
	if err != nil {
		t.Fatalf("Fetch().Collect() = %v", err)
	}
	line := <-asked
	for _, item := range []string{"X-GM-MSGID", "X-GM-THRID", "X-GM-LABELS"} {
		if !strings.Contains(line, item) {
			t.Errorf("command %q does not ask for %s", line, item)
		}
	}
	if len(msgs) != 1 {
		t.Fatalf("len(msgs) = %d, want 1", len(msgs))
	}
	msg := msgs[0]
	if msg.GmailMsgID != 18446744073709551615 || msg.GmailThreadID != 1278455344230334865 {
		t.Errorf("GmailMsgID, GmailThreadID = %d, %d", msg.GmailMsgID, msg.GmailThreadID)
	}
	want := []string{`\Inbox`, `\Important`, "Muy Importante", "Été", "foo b"}
	if !reflect.DeepEqual(msg.GmailLabels, want) {
		t.Errorf("GmailLabels = %q, want %q", msg.GmailLabels, want)
	}
}

// gmailSession answers FETCH with Gmail's items for UID 1.
type gmailSession struct {
	*imapmemserver.UserSession
}

func (s gmailSession) Fetch(w *imapserver.FetchWriter, numSet imap.NumSet, options *imap.FetchOptions) error {
	rw := w.CreateMessage(1)
	rw.WriteUID(1)
	if options.GmailMsgID {
		rw.WriteGmailMsgID(1278455344230334865)
	}
	if options.GmailThreadID {
		rw.WriteGmailThreadID(1266894439832287888)
	}
	if options.GmailLabels {
		rw.WriteGmailLabels([]string{`\Inbox`, `\Starred`, "Muy Importante", "Été", "[Gmail]/Sent Mail"})
	}
	return rw.Close()
}

func newGmailPair(t *testing.T, caps imap.CapSet) *imapclient.Client {
	t.Helper()
	user := imapmemserver.NewUser(testUsername, testPassword)
	if err := user.Create("INBOX", nil); err != nil {
		t.Fatal(err)
	}
	server := imapserver.New(&imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return gmailSession{imapmemserver.NewUserSession(user)}, nil, nil
		},
		Caps:         caps,
		InsecureAuth: true,
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("net.Listen() = %v", err)
	}
	go server.Serve(ln)
	t.Cleanup(func() { server.Close() })
	clientConn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatalf("net.Dial() = %v", err)
	}
	client := imapclient.New(clientConn, nil)
	t.Cleanup(func() { client.Close() })
	if err := client.Login(testUsername, testPassword).Wait(); err != nil {
		t.Fatalf("Login() = %v", err)
	}
	if _, err := client.Select("INBOX", nil).Wait(); err != nil {
		t.Fatalf("Select() = %v", err)
	}
	return client
}

func TestFetch_gmailRoundTrip(t *testing.T) {
	client := newGmailPair(t, imap.CapSet{imap.CapIMAP4rev1: {}, imap.CapGmailExt1: {}})
	if !client.Caps().Has(imap.CapGmailExt1) {
		t.Errorf("server does not advertise %s", imap.CapGmailExt1)
	}
	msgs, err := client.Fetch(imap.UIDSetNum(1), &imap.FetchOptions{
		GmailMsgID:    true,
		GmailThreadID: true,
		GmailLabels:   true,
	}).Collect()
	if err != nil {
		t.Fatalf("Fetch().Collect() = %v", err)
	}
	if len(msgs) != 1 {
		t.Fatalf("len(msgs) = %d, want 1", len(msgs))
	}
	msg := msgs[0]
	if msg.GmailMsgID != 1278455344230334865 || msg.GmailThreadID != 1266894439832287888 {
		t.Errorf("GmailMsgID, GmailThreadID = %d, %d", msg.GmailMsgID, msg.GmailThreadID)
	}
	want := []string{`\Inbox`, `\Starred`, "Muy Importante", "Été", "[Gmail]/Sent Mail"}
	if !reflect.DeepEqual(msg.GmailLabels, want) {
		t.Errorf("GmailLabels = %q, want %q", msg.GmailLabels, want)
	}
}

func TestFetch_gmailWithoutCapability(t *testing.T) {
	client := newGmailPair(t, imap.CapSet{imap.CapIMAP4rev1: {}})
	_, err := client.Fetch(imap.UIDSetNum(1), &imap.FetchOptions{GmailLabels: true}).Collect()
	var imapErr *imap.Error
	if !errors.As(err, &imapErr) || imapErr.Type != imap.StatusResponseTypeBad {
		t.Errorf("Fetch(X-GM-LABELS) without X-GM-EXT-1 = %v, want BAD", err)
	}
}
