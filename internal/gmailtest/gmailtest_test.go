package gmailtest

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// The account looks as Google documents Gmail: the capability, special-use
// attributes in plain LIST answers, a message in each of its labels'
// folders and once in All Mail (unless in Spam or Trash), X-GM items in
// FETCH.
func TestServerLooksLikeGmail(t *testing.T) {
	srv := Start(t)
	raw := func(i int) []byte {
		return fmt.Appendf(nil, "Message-ID: <%d@gmail.test>\r\nSubject: %d\r\n\r\nHello.\r\n", i, i)
	}
	date := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	many := srv.Add(t, Message{Raw: raw(1), Date: date, Labels: []string{`\Inbox`, `\Starred`, "Clients/Été"}})
	srv.Add(t, Message{Raw: raw(2), Date: date, Labels: []string{`\Spam`}})
	srv.Add(t, Message{Raw: raw(3), Date: date, Labels: []string{`\Sent`}, ThreadID: many})

	c, err := imapclient.DialInsecure(srv.Addr(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(srv.Username, srv.Password).Wait(); err != nil {
		t.Fatal(err)
	}
	if !c.Caps().Has(imap.CapGmailExt1) {
		t.Errorf("capabilities %v lack X-GM-EXT-1", c.Caps())
	}
	list, err := c.List("", "*", nil).Collect()
	if err != nil {
		t.Fatal(err)
	}
	attrs := map[string][]imap.MailboxAttr{}
	for _, l := range list {
		attrs[l.Mailbox] = l.Attrs
	}
	for name, want := range map[string]imap.MailboxAttr{
		"[Gmail]": imap.MailboxAttrNoSelect, AllMail: imap.MailboxAttrAll, SentMail: imap.MailboxAttrSent,
		Spam: imap.MailboxAttrJunk, Trash: imap.MailboxAttrTrash, Starred: imap.MailboxAttrFlagged,
		"Clients/Été": imap.MailboxAttrHasNoChildren,
	} {
		if !slices.Contains(attrs[name], want) {
			t.Errorf("LIST %s: attributes %v, want %s among them", name, attrs[name], want)
		}
	}

	for folder, want := range map[string][]string{
		AllMail: {"1", "3"}, Inbox: {"1"}, Starred: {"1"}, "Clients/Été": {"1"}, Spam: {"2"}, SentMail: {"3"}, Trash: nil,
	} {
		if _, err := c.Select(folder, &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
			t.Fatalf("select %s: %v", folder, err)
		}
		var all imap.UIDSet
		all.AddRange(1, 0)
		subject := &imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader, HeaderFields: []string{"Subject"}, Peek: true}
		msgs, err := c.Fetch(all, &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{subject},
			GmailMsgID: true, GmailThreadID: true, GmailLabels: true}).Collect()
		if err != nil {
			t.Fatalf("fetch %s: %v", folder, err)
		}
		var got []string
		for _, m := range msgs {
			s := strings.TrimSpace(strings.TrimPrefix(string(m.FindBodySection(subject)), "Subject: "))
			got = append(got, s)
			if s == "1" && (m.GmailMsgID != many || m.GmailThreadID != many ||
				!slices.Equal(m.GmailLabels, []string{`\Inbox`, `\Starred`, "Clients/Été"})) {
				t.Errorf("%s: message 1 has X-GM-MSGID %d X-GM-THRID %d X-GM-LABELS %q", folder, m.GmailMsgID, m.GmailThreadID, m.GmailLabels)
			}
			if s == "3" && m.GmailThreadID != many {
				t.Errorf("%s: message 3 is in thread %d, want %d", folder, m.GmailThreadID, many)
			}
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s holds %q, want %q", folder, got, want)
		}
	}
}
