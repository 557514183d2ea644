package imapclient_test

import (
	"bufio"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// TestNotify_transcript sends NOTIFY SET and NOTIFY NONE to a scripted
// server that answers as Dovecot does: STATUS responses for mailboxes that
// are not selected, some with only the items that changed. Those no
// command asked for reach UnilateralDataHandler.Status; a STATUS command
// still gets its own answer, and a second response for its mailbox is
// unilateral.
func TestNotify_transcript(t *testing.T) {
	clientConn, serverConn := net.Pipe()
	defer clientConn.Close()
	defer serverConn.Close()

	asked := make(chan string, 4)
	go func() {
		br := bufio.NewReader(serverConn)
		serverConn.Write([]byte("* OK [CAPABILITY IMAP4rev1 NOTIFY] ready\r\n"))
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			asked <- strings.TrimRight(line, "\r\n")
			tag, rest, _ := strings.Cut(line, " ")
			switch {
			case strings.HasPrefix(rest, "NOTIFY SET"):
				serverConn.Write([]byte(tag + " OK NOTIFY completed\r\n" +
					"* STATUS Sent (MESSAGES 3 UIDNEXT 9 HIGHESTMODSEQ 12)\r\n"))
			case strings.HasPrefix(rest, "STATUS"):
				serverConn.Write([]byte("* STATUS Sent (MESSAGES 3 UIDNEXT 9)\r\n" +
					"* STATUS Sent (UNSEEN 0 HIGHESTMODSEQ 13)\r\n" +
					tag + " OK Status completed\r\n"))
			default:
				serverConn.Write([]byte(tag + " OK done\r\n"))
			}
		}
	}()

	unilateral := make(chan *imap.StatusData, 4)
	client := imapclient.New(clientConn, &imapclient.Options{
		UnilateralDataHandler: &imapclient.UnilateralDataHandler{
			Status: func(data *imap.StatusData) { unilateral <- data },
		},
	})
	defer client.Close()

	err := client.Notify(&imap.NotifyOptions{Items: []imap.NotifyItem{{
		Mailboxes: []string{"INBOX", "Sent", "Über"},
		Events:    []imap.NotifyEvent{imap.NotifyEventMessageNew, imap.NotifyEventMessageExpunge, imap.NotifyEventFlagChange},
	}}}).Wait()
	if err != nil {
		t.Fatalf("Notify().Wait() = %v", err)
	}
	if line, want := <-asked, `NOTIFY SET (MAILBOXES (INBOX "Sent" "&ANw-ber") (MessageNew MessageExpunge FlagChange))`; !strings.HasSuffix(line, " "+want) {
		t.Errorf("command %q, want %q", line, want)
	}
	got := receive(t, unilateral)
	if got.Mailbox != "Sent" || got.NumMessages == nil || *got.NumMessages != 3 || got.UIDNext != 9 || got.HighestModSeq != 12 {
		t.Errorf("unilateral STATUS = %+v", got)
	}

	data, err := client.Status("Sent", &imap.StatusOptions{NumMessages: true, UIDNext: true}).Wait()
	if err != nil || data.NumMessages == nil || *data.NumMessages != 3 || data.UIDNext != 9 {
		t.Fatalf("Status().Wait() = %+v, %v", data, err)
	}
	<-asked
	got = receive(t, unilateral)
	if got.Mailbox != "Sent" || got.NumMessages != nil || got.HighestModSeq != 13 {
		t.Errorf("second STATUS response for a pending command's mailbox = %+v, want it unilateral", got)
	}

	if err := client.NotifyNone().Wait(); err != nil {
		t.Fatalf("NotifyNone().Wait() = %v", err)
	}
	if line := <-asked; !strings.HasSuffix(line, " NOTIFY NONE") {
		t.Errorf("command %q, want NOTIFY NONE", line)
	}
	if err := client.Notify(&imap.NotifyOptions{}).Wait(); err == nil {
		t.Error("Notify without items: no error")
	}
}

func receive(t *testing.T, ch <-chan *imap.StatusData) *imap.StatusData {
	t.Helper()
	select {
	case data := <-ch:
		return data
	case <-time.After(5 * time.Second):
		t.Fatal("no unilateral STATUS within 5 s")
		return nil
	}
}
