package imapsrc

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/myhibachi/backfill/internal/gmailtest"
	"github.com/myhibachi/backfill/internal/imaptest"
)

// Issue 10 (Gmail): on a server with X-GM-EXT-1, whole and lean fetches
// both bring each message's X-GM-MSGID, X-GM-THRID and X-GM-LABELS (non-ASCII
// labels in UTF-8), the same in All Mail as in a label's folder; a message
// in several labels is in All Mail once.
func TestFetchGmailItems(t *testing.T) {
	srv := gmailtest.Start(t)
	date := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	type want struct {
		msgID, threadID uint64
		labels          []string
	}
	wants := map[string]want{} // by Subject
	var first uint64
	for i, labels := range [][]string{
		{`\Inbox`, `\Important`, "Été/Réservations"},
		{`\Sent`},
		{`\Inbox`, `\Starred`, "Muy Importante"},
		{},
	} {
		m := gmailtest.Message{Raw: testMail(i, i%2 == 0), Date: date, Labels: labels, Flags: []imap.Flag{imap.FlagSeen}}
		if i == 1 {
			m.ThreadID = first // a reply in the first message's thread
		}
		id := srv.Add(t, m)
		if i == 0 {
			first = id
		}
		w := want{msgID: id, threadID: m.ThreadID, labels: labels}
		if w.threadID == 0 {
			w.threadID = id
		}
		wants[fmt.Sprintf("test %d", i)] = w
	}

	for _, folder := range []string{gmailtest.AllMail, "Été/Réservations"} {
		for _, lean := range []bool{false, true} {
			c := dialFolder(t, srv.URL(folder), srv.Password, folder)
			if !c.gmail {
				t.Fatal("X-GM-EXT-1 not detected")
			}
			uids, err := c.ListUIDs(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			got := 0
			var sections int
			_, err = (&Fetcher{Lean: lean, UIDValidity: 1}).Fetch(context.Background(), c, uids, func(f Fetched) error {
				got++
				subject := ""
				if f.Message != nil {
					sections++
					subject = f.Message.Subject
				} else {
					subject = subjectOf(f.Body)
				}
				w, ok := wants[subject]
				if !ok {
					return fmt.Errorf("UID %d: unexpected subject %q", f.UID, subject)
				}
				if f.GmailMsgID != w.msgID || f.GmailThreadID != w.threadID || !slices.Equal(f.GmailLabels, w.labels) {
					t.Errorf("%s, lean %t, %s: X-GM-MSGID %d X-GM-THRID %d X-GM-LABELS %q; want %d %d %q",
						folder, lean, subject, f.GmailMsgID, f.GmailThreadID, f.GmailLabels, w.msgID, w.threadID, w.labels)
				}
				if !slices.Equal(f.Flags, []string{`\Seen`}) {
					t.Errorf("%s: flags %q", subject, f.Flags)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			wantN := map[string]int{gmailtest.AllMail: 4, "Été/Réservations": 1}[folder]
			if got != wantN {
				t.Errorf("%s: %d messages, want %d", folder, got, wantN)
			}
			if lean && folder == gmailtest.AllMail && sections == 0 {
				t.Errorf("lean fetch of %s fetched nothing as sections: the test must cover them", folder)
			}
		}
	}
}

// A server without X-GM-EXT-1 is asked for no Gmail item: go-imap's own
// server would answer BAD.
func TestFetchNotGmail(t *testing.T) {
	srv := imaptest.Start(t)
	srv.Append(t, testMail(1, false), time.Now())
	c := dialTest(t, srv)
	if c.gmail {
		t.Fatal("X-GM-EXT-1 detected on go-imap's server")
	}
	for _, lean := range []bool{false, true} {
		var got []Fetched
		_, err := (&Fetcher{Lean: lean}).Fetch(context.Background(), c, []uint32{1}, func(f Fetched) error {
			got = append(got, f)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || got[0].GmailMsgID != 0 || got[0].GmailThreadID != 0 || got[0].GmailLabels != nil {
			t.Errorf("lean %t: %+v", lean, got)
		}
	}
}

func dialFolder(t *testing.T, url, password, folder string) *Conn {
	t.Helper()
	cfg, err := ParseURL(url, false)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Password = password
	c, err := Dial(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := c.SelectReadOnly(context.Background(), folder); err != nil {
		t.Fatal(err)
	}
	return c
}

// subjectOf is the Subject of a testMail.
func subjectOf(raw []byte) string {
	var i int
	if _, err := fmt.Sscanf(string(raw), "From: Ana <ana@example.com>\r\nTo: cs@myhibachichef.com\r\nSubject: test %d", &i); err != nil {
		return ""
	}
	return fmt.Sprintf("test %d", i)
}

// Issue 10 (Gmail): watch's flag look-ups carry X-GM-LABELS too, so that
// following a Gmail account's changes keeps its labels.
func TestFlagsSinceGmailLabels(t *testing.T) {
	srv := gmailtest.Start(t)
	srv.Add(t, gmailtest.Message{Raw: testMail(0, false), Labels: []string{`\Inbox`, "Été"}, Flags: []imap.Flag{imap.FlagSeen}})
	c := dialFolder(t, srv.URL(gmailtest.AllMail), srv.Password, gmailtest.AllMail)
	got, err := c.FlagsSince(context.Background(), 0, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || !slices.Equal(got[0].Flags, []string{`\Seen`}) || !slices.Equal(got[0].GmailLabels, []string{`\Inbox`, "Été"}) {
		t.Fatalf("FlagsSince: %+v", got)
	}
}
