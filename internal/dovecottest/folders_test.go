package dovecottest

import (
	"slices"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// Folders with special uses and a nested non-ASCII name: LIST shows them
// as configured, mail loaded into them is there with its flags, and a
// folder's UIDVALIDITY can be changed alone.
func TestFolders(t *testing.T) {
	t.Parallel()
	u := User{Name: "alice@example.com", Password: "secret"}
	s := NewServer(t, []User{u}, WithFolders(Folder{Name: "Gesendet", SpecialUse: `\Sent`},
		Folder{Name: "Trash", SpecialUse: `\Trash`}, Folder{Name: "Projekte/Über"}))
	date := time.Unix(1_700_000_000, 0)
	if err := s.LoadFolder(u.Name, "Projekte/Über", "FS", pairs([][]byte{message(1, 100), message(2, 100)}, []time.Time{date, date})); err != nil {
		t.Fatal(err)
	}
	if err := s.LoadFolder(u.Name, "Gesendet", "", pairs([][]byte{message(3, 100)}, []time.Time{date})); err != nil {
		t.Fatal(err)
	}
	if got := modifiedUTF7("Projekte.Über & Co"); got != "Projekte.&ANw-ber &- Co" {
		t.Errorf("modifiedUTF7 = %q", got)
	}

	c := login(t, s, u)
	list, err := c.List("", "*", &imap.ListOptions{ReturnSpecialUse: true}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	uses := map[string][]imap.MailboxAttr{}
	for _, l := range list {
		uses[l.Mailbox] = l.Attrs
	}
	for name, want := range map[string]imap.MailboxAttr{"Gesendet": imap.MailboxAttrSent, "Trash": imap.MailboxAttrTrash, "Projekte/Über": "", "INBOX": ""} {
		attrs, ok := uses[name]
		if !ok || want != "" && !slices.Contains(attrs, want) {
			t.Errorf("LIST: %s has %v (listed: %v), want %s", name, attrs, ok, want)
		}
	}
	data, err := c.Select("Projekte/Über", &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil || data.NumMessages != 2 {
		t.Fatalf("select Projekte/Über: %v, %v; want 2 messages", data, err)
	}
	msgs, err := c.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{Flags: true}).Collect()
	if err != nil || len(msgs) != 1 || !slices.Contains(msgs[0].Flags, imap.FlagSeen) || !slices.Contains(msgs[0].Flags, imap.FlagFlagged) {
		t.Fatalf("flags of the loaded message: %v, %v; want \\Seen and \\Flagged", msgs, err)
	}
	sentBefore := status(t, c, "Gesendet")
	inboxBefore := status(t, c, "INBOX")
	c.Close()

	if err := s.SetUIDValidity(u.Name, "Gesendet", sentBefore+1000); err != nil {
		t.Fatal(err)
	}
	c = login(t, s, u)
	if got := status(t, c, "Gesendet"); got != sentBefore+1000 {
		t.Errorf("Gesendet's UIDVALIDITY = %d, want %d", got, sentBefore+1000)
	}
	if got := status(t, c, "INBOX"); got != inboxBefore {
		t.Errorf("INBOX's UIDVALIDITY changed with Gesendet's: %d, was %d", got, inboxBefore)
	}
}

func status(tb testing.TB, c *imapclient.Client, name string) uint32 {
	tb.Helper()
	data, err := c.Status(name, &imap.StatusOptions{UIDValidity: true}).Wait()
	if err != nil {
		tb.Fatalf("status %s: %v", name, err)
	}
	return data.UIDValidity
}
