package main

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/myhibachi/backfill/internal/dovecottest"
	"github.com/myhibachi/backfill/internal/imaptest"
	"github.com/myhibachi/backfill/pgsink"
	"github.com/myhibachi/backfill/threading"
)

// folderMail is a small message for folder tests.
func folderMail(id, from, to, subject string) []byte {
	return []byte(fmt.Sprintf("From: %s\r\nTo: %s\r\nSubject: %s\r\nMessage-ID: <%s>\r\n"+
		"Date: Mon, 3 Nov 2025 10:00:00 +0000\r\n\r\nAbout %s.\r\n", from, to, subject, id, subject))
}

// folders returns each stored message's folders, by Message-ID.
func (f *fixture) folders() map[string][]string {
	f.t.Helper()
	rows, err := f.pool.Query(context.Background(), `SELECT message_id, folders FROM email_messages`)
	if err != nil {
		f.t.Fatal(err)
	}
	defer rows.Close()
	out := map[string][]string{}
	for rows.Next() {
		var id string
		var fs []string
		if err := rows.Scan(&id, &fs); err != nil {
			f.t.Fatal(err)
		}
		out[id] = fs
	}
	return out
}

func (f *fixture) wantFolders(want map[string][]string) {
	f.t.Helper()
	got := f.folders()
	for id, fs := range want {
		if !slices.Equal(got[id], fs) {
			f.t.Errorf("%s: folders = %q, want %q", id, got[id], fs)
		}
	}
	if len(got) != len(want) {
		f.t.Errorf("%d rows stored (%v), want %d", len(got), got, len(want))
	}
}

// The folder paths against the in-process server: --folders with sent
// found by its special use, a reply in INBOX and Sent stored once,
// --all-folders without Trash, the _FOLDERS variable, one folder's new
// UIDVALIDITY re-reading only it, and unknown names refused with exit 2.
func TestFoldersInProcess(t *testing.T) {
	t.Parallel()
	f := newFixture(t, imaptest.WithCaps(imap.CapSet{imap.CapIMAP4rev1: {}, imap.CapIMAP4rev2: {}, imap.CapSpecialUse: {}}))
	date := time.Date(2025, 11, 3, 10, 0, 0, 0, time.UTC)
	question := folderMail("q@example.com", "alice@example.com", "cs@myhibachichef.com", "Payment Question")
	reply := folderMail("r@example.com", "cs@myhibachichef.com", "alice@example.com", "RE: Payment Question")
	plan := folderMail("p@example.com", "bob@example.org", "cs@myhibachichef.com", "Über den Plan")
	junk := folderMail("t@example.com", "spam@example.net", "cs@myhibachichef.com", "Win")
	f.imap.CreateSpecialMailbox(t, "Gesendet", imap.MailboxAttrSent)
	f.imap.CreateSpecialMailbox(t, "Trash", imap.MailboxAttrTrash)
	f.imap.CreateMailbox(t, "Projekte/Über")
	for _, m := range []struct {
		box   string
		raw   []byte
		flags []imap.Flag
	}{
		{"INBOX", question, nil}, {"INBOX", reply, []imap.Flag{imap.FlagSeen}},
		{"Gesendet", reply, []imap.Flag{imap.FlagSeen}}, {"Projekte/Über", plan, nil}, {"Trash", junk, nil},
	} {
		if _, err := f.imap.AppendRaw(m.box, m.raw, date, m.flags...); err != nil {
			t.Fatal(err)
		}
	}
	f.migrate()

	out := f.mustRun(0, "--inbox", "demo", "--folders", "INBOX,sent")
	f.wantLine(out, `📁 Folders: INBOX, Gesendet (\Sent)`)
	f.wantLine(out, "📁 Folder INBOX: 2 emails, 2 new")
	f.wantLine(out, `📁 Folder Gesendet (\Sent): 1 emails, 0 new, 1 already stored`)
	f.wantLine(out, "Total synced:  2 ✅")
	f.wantFolders(map[string][]string{"q@example.com": {"INBOX"}, "r@example.com": {"INBOX", "Gesendet"}})
	thread := threading.ID("Payment Question", "alice@example.com", []string{"cs@myhibachichef.com"})
	if n := f.count(`SELECT message_count FROM email_threads WHERE thread_id = $1`, thread); n != 2 {
		t.Errorf("thread message_count = %d, want 2 (the reply in Sent is counted once)", n)
	}
	if n := f.count(`SELECT count(*) FROM email_messages WHERE message_id = 'r@example.com' AND is_read`); n != 1 {
		t.Error("the reply is not stored read, as the server has it")
	}

	out = f.mustRun(0, "--inbox", "demo", "--folders", "INBOX,sent")
	f.wantLine(out, "Downloaded:    0 message bodies")

	out = f.mustRun(0, "--inbox", "demo", "--all-folders")
	f.wantLine(out, `📁 Folders: INBOX, Gesendet (\Sent), Projekte/Über`)
	f.wantLine(out, "📁 Folder Projekte/Über: 1 emails, 1 new")
	f.wantLine(out, "Downloaded:    1 message bodies")
	f.wantFolders(map[string][]string{"q@example.com": {"INBOX"}, "r@example.com": {"INBOX", "Gesendet"},
		"p@example.com": {"Projekte/Über"}})

	// The nested folder renumbered: only it is read again.
	inboxSettled := f.count(`SELECT count(*) FROM email_sync_uids WHERE folder = 'INBOX'`)
	f.imap.RecreateMailbox(t, "Projekte/Über")
	if _, err := f.imap.AppendRaw("Projekte/Über", plan, date); err != nil {
		t.Fatal(err)
	}
	out = f.mustRun(0, "--inbox", "demo", "--all-folders", "--log-format", "json")
	var folderEvents []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var ev map[string]any
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("%v: %s", err, line)
		}
		if ev["event"] == "folder" {
			folderEvents = append(folderEvents, ev)
		}
		if ev["event"] == "summary" && ev["fetched"] != float64(1) {
			t.Errorf("summary fetched %v, want 1 (the renumbered folder's message)", ev["fetched"])
		}
	}
	if len(folderEvents) != 3 || folderEvents[2]["folder"] != "Projekte/Über" || folderEvents[2]["to_fetch"] != float64(1) ||
		folderEvents[0]["to_fetch"] != float64(0) {
		t.Errorf("folder events = %v, want three, only Projekte/Über with one to fetch", folderEvents)
	}
	if n := f.count(`SELECT count(*) FROM email_sync_uids WHERE folder = 'INBOX'`); n != inboxSettled {
		t.Errorf("INBOX's settled UIDs: %d, want %d (untouched by another folder's UIDVALIDITY)", n, inboxSettled)
	}

	// Trash when named; an inbox's own default list.
	f.mustRun(0, "--inbox", "demo", "--all-folders", "--folders", "Trash")
	if got := f.folders()["t@example.com"]; !slices.Equal(got, []string{"Trash"}) {
		t.Errorf("Trash named with --all-folders: folders = %q, want [Trash]", got)
	}
	f.environ = append(f.environ, "BACKFILL_INBOX_DEMO_FOLDERS=sent, Projekte/Über")
	out = f.mustRun(0, "--inbox", "demo")
	f.wantLine(out, `📁 Folders: Gesendet (\Sent), Projekte/Über`)
	out = f.mustRun(0, "--inbox", "demo", "--folders", "INBOX") // the flag wins
	f.wantLine(out, "📁 Folders: INBOX")

	var sts []pgsink.InboxStatus
	if err := json.Unmarshal([]byte(f.mustRun(0, "status", "--inbox", "demo", "--json")), &sts); err != nil {
		t.Fatal(err)
	}
	if len(sts) != 1 || len(sts[0].Folders) != 4 || sts[0].Folders[0].Folder != "INBOX" {
		t.Fatalf("status --json folders = %+v, want INBOX, Gesendet, Projekte/Über, Trash", sts)
	}
	out = f.mustRun(0, "status", "--inbox", "demo")
	f.wantLine(out, "INBOX  FOLDER")
	if !strings.Contains(out, "Projekte/Über") {
		t.Errorf("status does not list the folders:\n%s", out)
	}

	out = f.mustRun(2, "--inbox", "demo", "--folders", "INBOX,Outbox")
	if !strings.Contains(out, `no folder "Outbox"`) || !strings.Contains(out, `"Gesendet" \Sent`) {
		t.Errorf("unknown folder: want the name and the server's folders in the message:\n%s", out)
	}
}

// Issue 10's done-when test, on Dovecot: INBOX, Sent (special use \Sent,
// named Gesendet, so sent must resolve by its use), a nested folder with a
// non-ASCII name and Trash. --folders INBOX,sent and --all-folders store
// each message once, with its folders and flags; Trash only when named; a
// re-run fetches nothing; one folder's new UIDVALIDITY re-reads only it.
func TestFoldersDovecot(t *testing.T) {
	t.Parallel()
	user := dovecottest.User{Name: "cs@myhibachichef.com", Password: "pw"}
	srv := dovecottest.NewServer(t, []dovecottest.User{user}, dovecottest.WithFolders(
		dovecottest.Folder{Name: "Gesendet", SpecialUse: `\Sent`}, dovecottest.Folder{Name: "Trash", SpecialUse: `\Trash`},
		dovecottest.Folder{Name: "Projekte/Über"}))
	date := time.Date(2025, 11, 3, 10, 0, 0, 0, time.UTC)
	load := func(folder, flags string, raws ...[]byte) {
		t.Helper()
		err := srv.LoadFolder(user.Name, folder, flags, func(yield func([]byte, time.Time) bool) {
			for i, raw := range raws {
				if !yield(raw, date.Add(time.Duration(i)*time.Minute)) {
					return
				}
			}
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	question := folderMail("q@example.com", "alice@example.com", "cs@myhibachichef.com", "Payment Question")
	reply := folderMail("r@example.com", "cs@myhibachichef.com", "alice@example.com", "RE: Payment Question")
	sentOnly := folderMail("s@example.com", "cs@myhibachichef.com", "bob@example.org", "Your booking")
	plan := folderMail("p@example.com", "bob@example.org", "cs@myhibachichef.com", "Über den Plan")
	junk := folderMail("t@example.com", "spam@example.net", "cs@myhibachichef.com", "Win")
	load("INBOX", "", question)
	load("INBOX", "S", reply)
	load("Gesendet", "S", reply, sentOnly)
	load("Projekte/Über", "F", plan)
	load("Trash", "", junk)

	f := newFixture(t)
	f.environ = append(f.environ, "BACKFILL_INBOX_DEMO="+srv.URL(user.Name, "INBOX"), "BACKFILL_INBOX_DEMO_PASSWORD="+user.Password)
	f.migrate()

	out := f.mustRun(0, "--inbox", "demo", "--folders", "INBOX,sent")
	f.wantLine(out, `📁 Folders: INBOX, Gesendet (\Sent)`)
	f.wantLine(out, "📁 Folder INBOX: 2 emails, 2 new")
	f.wantLine(out, `📁 Folder Gesendet (\Sent): 2 emails, 1 new, 1 already stored`)
	f.wantLine(out, "Total synced:  3 ✅")
	f.wantFolders(map[string][]string{"q@example.com": {"INBOX"}, "r@example.com": {"INBOX", "Gesendet"},
		"s@example.com": {"Gesendet"}})
	out = f.mustRun(0, "--inbox", "demo", "--folders", "INBOX,sent")
	f.wantLine(out, "Downloaded:    0 message bodies")

	out = f.mustRun(0, "--inbox", "demo", "--all-folders")
	f.wantLine(out, `📁 Folders: INBOX, Gesendet (\Sent), Projekte/Über`)
	f.wantLine(out, "📁 Folder Projekte/Über: 1 emails, 1 new")
	f.wantLine(out, "Downloaded:    1 message bodies")
	f.wantFolders(map[string][]string{"q@example.com": {"INBOX"}, "r@example.com": {"INBOX", "Gesendet"},
		"s@example.com": {"Gesendet"}, "p@example.com": {"Projekte/Über"}})
	flags := strings.Join(f.strings(`SELECT message_id || ' ' || is_read || ' ' || is_starred FROM email_messages ORDER BY 1`), "; ")
	if want := "p@example.com false true; q@example.com false false; r@example.com true false; s@example.com true false"; flags != want {
		t.Errorf("stored flags (read, starred): %s, want %s", flags, want)
	}
	thread := threading.ID("Payment Question", "alice@example.com", []string{"cs@myhibachichef.com"})
	if n := f.count(`SELECT message_count FROM email_threads WHERE thread_id = $1`, thread); n != 2 {
		t.Errorf("thread message_count = %d, want 2 (the reply in INBOX and Sent is one message)", n)
	}
	if n := f.count(`SELECT sum(message_count) FROM email_threads`); n != 4 {
		t.Errorf("threads count %d messages, want 4", n)
	}

	// Sent renumbered: only it is read again, and nothing is stored twice.
	const settledInbox = `SELECT uidvalidity || ':' || uid FROM email_sync_uids WHERE folder = 'INBOX' ORDER BY 1`
	inboxSettled := f.strings(settledInbox)
	var sentUV int64
	if err := f.pool.QueryRow(context.Background(), `SELECT uidvalidity FROM email_sync_folders WHERE folder = 'Gesendet'`).Scan(&sentUV); err != nil {
		t.Fatal(err)
	}
	if err := srv.SetUIDValidity(user.Name, "Gesendet", uint32(sentUV)+1000); err != nil {
		t.Fatal(err)
	}
	out = f.mustRun(0, "--inbox", "demo", "--all-folders")
	f.wantLine(out, "⚠️  UIDVALIDITY changed since the last run")
	f.wantLine(out, "Downloaded:    2 message bodies")
	f.wantLine(out, `📁 Folder Gesendet (\Sent): 2 emails, 0 new, 2 already stored`)
	f.wantLine(out, "📁 Folder INBOX: 2 emails, 0 new, 2 already stored")
	if n := f.count(`SELECT count(*) FROM email_messages`); n != 4 {
		t.Errorf("%d rows after Sent renumbered, want 4", n)
	}
	if got := f.strings(settledInbox); len(inboxSettled) != 2 || !slices.Equal(got, inboxSettled) {
		t.Errorf("INBOX's settled UIDs %q became %q with Sent's new UIDVALIDITY", inboxSettled, got)
	}

	// Trash when named.
	f.mustRun(0, "--inbox", "demo", "--all-folders", "--folders", "Trash")
	if got := f.folders()["t@example.com"]; !slices.Equal(got, []string{"Trash"}) {
		t.Errorf("Trash named: folders = %q, want [Trash]", got)
	}

	// The inbox's own list, and a name the server does not have.
	f.environ = append(f.environ, "BACKFILL_INBOX_DEMO_FOLDERS=Projekte/Über,sent")
	out = f.mustRun(0, "--inbox", "demo", "--dry-run")
	f.wantLine(out, `📁 Folders: Projekte/Über, Gesendet (\Sent)`)
	f.wantLine(out, "📁 Folder Projekte/Über: 1 emails, would process 0")
	out = f.mustRun(2, "--inbox", "demo", "--folders", "INBOX,Projekte/Uber")
	if !strings.Contains(out, `no folder "Projekte/Uber"`) || !strings.Contains(out, `"Projekte/Über"`) {
		t.Errorf("unknown folder: want the name and the server's folders in the message:\n%s", out)
	}
}

// refuseSelect answers NO to SELECT and EXAMINE of one mailbox, as a server
// does for a folder deleted or renamed after the run listed it.
type refuseSelect struct {
	imapserver.SessionIMAP4rev2
	mailbox string
}

func (s refuseSelect) Select(mailbox string, options *imap.SelectOptions) (*imap.SelectData, error) {
	if mailbox == s.mailbox {
		return nil, &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeNonExistent, Text: "Mailbox doesn't exist: " + mailbox}
	}
	return s.SessionIMAP4rev2.Select(mailbox, options)
}

// A folder that vanishes between the listing of folders and its turn is a
// critical error naming it: the other folders are still read, and the run
// exits 2.
func TestFolderMissingMidRun(t *testing.T) {
	t.Parallel()
	f := newFixture(t, imaptest.WithCaps(imap.CapSet{imap.CapIMAP4rev1: {}, imap.CapIMAP4rev2: {}, imap.CapSpecialUse: {}}),
		imaptest.WithSession(func(s imapserver.SessionIMAP4rev2, _ *imapserver.Conn) imapserver.SessionIMAP4rev2 {
			return refuseSelect{SessionIMAP4rev2: s, mailbox: "Archiv"}
		}))
	f.imap.CreateMailbox(t, "Archiv")
	f.imap.CreateSpecialMailbox(t, "Gesendet", imap.MailboxAttrSent)
	date := time.Date(2025, 11, 3, 10, 0, 0, 0, time.UTC)
	for box, id := range map[string]string{"INBOX": "a@x", "Archiv": "b@x", "Gesendet": "c@x"} {
		if _, err := f.imap.AppendRaw(box, folderMail(id, "alice@example.com", "cs@example.com", "Hello "+id), date); err != nil {
			t.Fatal(err)
		}
	}
	f.migrate()
	out := f.mustRun(2, "--inbox", "demo", "--all-folders")
	f.wantLine(out, `📁 Folders: INBOX, Archiv, Gesendet (\Sent)`)
	f.wantLine(out, `🛑 BACKFILL ABORTED: select mailbox "Archiv"`)
	f.wantLine(out, `📁 Folder Gesendet (\Sent): 1 emails, 1 new`)
	f.wantFolders(map[string][]string{"a@x": {"INBOX"}, "c@x": {"Gesendet"}})
	if n := f.count(`SELECT count(*) FROM error_logs WHERE severity = 'critical' AND error_type = 'mailbox_missing'`); n != 1 {
		t.Errorf("error_logs has %d critical mailbox_missing rows, want 1", n)
	}
	if n := f.count(`SELECT count(*) FROM email_sync_folders WHERE folder = 'Archiv' AND last_status = 'aborted'`); n != 1 {
		t.Errorf("email_sync_folders does not record Archiv as aborted")
	}
}
