package imapsrc

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/myhibachi/backfill/errlog"
)

func TestSelectFolders(t *testing.T) {
	dovecot := []Folder{
		{Name: "INBOX", Delim: '/'},
		{Name: "Archiv", Delim: '/', SpecialUse: imap.MailboxAttrArchive},
		{Name: "Gesendet", Delim: '/', SpecialUse: imap.MailboxAttrSent},
		{Name: "Projekte", Delim: '/', NoSelect: true},
		{Name: "Projekte/Über", Delim: '/'},
		{Name: "Spam", Delim: '/', SpecialUse: imap.MailboxAttrJunk},
		{Name: "Trash", Delim: '/', SpecialUse: imap.MailboxAttrTrash},
	}
	dotted := []Folder{{Name: "INBOX", Delim: '.'}, {Name: "INBOX.Projekte.Über", Delim: '.'}, {Name: "Sent", Delim: '.'}}
	gmail := []Folder{
		{Name: "INBOX", Delim: '/'},
		{Name: "[Gmail]", Delim: '/', NoSelect: true},
		{Name: "[Gmail]/All Mail", Delim: '/', SpecialUse: imap.MailboxAttrAll},
		{Name: "[Gmail]/Sent Mail", Delim: '/', SpecialUse: imap.MailboxAttrSent},
		{Name: "[Gmail]/Spam", Delim: '/', SpecialUse: imap.MailboxAttrJunk},
		{Name: "[Gmail]/Trash", Delim: '/', SpecialUse: imap.MailboxAttrTrash},
		{Name: "Payments", Delim: '/'},
	}
	for _, tc := range []struct {
		name    string
		list    []Folder
		named   []string
		all     bool
		gmail   bool
		want    []string
		wantErr string
	}{
		{name: "sent by its use", list: dovecot, named: []string{"inbox", "sent"}, want: []string{"INBOX", "Gesendet"}},
		{name: "INBOX first, each once", list: dovecot, named: []string{"Projekte/Über", "Gesendet", "INBOX", "sent"},
			want: []string{"INBOX", "Projekte/Über", "Gesendet"}},
		{name: "all but junk and trash", list: dovecot, all: true, want: []string{"INBOX", "Archiv", "Gesendet", "Projekte/Über"}},
		{name: "all with trash named", list: dovecot, all: true, named: []string{"Trash"},
			want: []string{"INBOX", "Trash", "Archiv", "Gesendet", "Projekte/Über"}},
		{name: "slash for another separator", list: dotted, named: []string{"INBOX/Projekte/Über"}, want: []string{"INBOX.Projekte.Über"}},
		{name: "sent by name without special use", list: dotted, named: []string{"sent"}, want: []string{"Sent"}},
		{name: "gmail all mail once", list: gmail, all: true, gmail: true, want: []string{"[Gmail]/All Mail"}},
		{name: "gmail spam when named", list: gmail, all: true, gmail: true, named: []string{"[Gmail]/Spam", "Payments"},
			want: []string{"[Gmail]/All Mail", "[Gmail]/Spam"}},
		{name: "gmail named labels without all", list: gmail, gmail: true, named: []string{"sent", "Payments"},
			want: []string{"[Gmail]/Sent Mail", "Payments"}},
		{name: "unknown", list: dovecot, named: []string{"Outbox"}, wantErr: `no folder "Outbox"; the server's folders: "INBOX", "Archiv" \Archive, "Gesendet" \Sent`},
		{name: "no sent", list: dovecot[:2], named: []string{"sent"}, wantErr: `marks no folder as \Sent`},
		{name: "noselect", list: dovecot, named: []string{"Projekte"}, wantErr: `only holds other folders`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sel, err := SelectFolders(tc.list, tc.named, tc.all, tc.gmail)
			if tc.wantErr != "" {
				var ce *errlog.CriticalError
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !errors.As(err, &ce) || ce.Type != "folder_unknown" {
					t.Fatalf("err = %v, want a folder_unknown error containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, f := range sel.Folders {
				got = append(got, f.Name)
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("folders = %q, want %q", got, tc.want)
			}
			if tc.gmail && tc.all && !strings.Contains(sel.Note, "every label is a view on it") {
				t.Fatalf("note = %q, want it to say why All Mail alone is read", sel.Note)
			}
		})
	}
}

func TestGmailFolders(t *testing.T) {
	list := []Folder{
		{Name: "Inbox", Delim: '/'},
		{Name: "Muy Importante", Delim: '/'},
		{Name: "[Gmail]", Delim: '/', NoSelect: true},
		{Name: "[Gmail]/All Mail", Delim: '/', SpecialUse: imap.MailboxAttrAll},
		{Name: "[Gmail]/Drafts", Delim: '/', SpecialUse: imap.MailboxAttrDrafts},
		{Name: "[Gmail]/Important", Delim: '/', SpecialUse: imap.MailboxAttrImportant},
		{Name: "[Gmail]/Sent Mail", Delim: '/', SpecialUse: imap.MailboxAttrSent},
		{Name: "[Gmail]/Starred", Delim: '/', SpecialUse: imap.MailboxAttrFlagged},
		{Name: "Été", Delim: '/', NoSelect: true},
		{Name: "Été/Réservations", Delim: '/'},
	}
	// An account that shows no Starred or Important folder in IMAP.
	bare := []Folder{{Name: "INBOX", Delim: '/'}, {Name: "[Gmail]/Alle Nachrichten", Delim: '/', SpecialUse: imap.MailboxAttrAll}}
	for _, tc := range []struct {
		list   []Folder
		labels []string
		want   []string
	}{
		{list, []string{`\Important`, `\Inbox`}, []string{"INBOX", "[Gmail]/Important"}},
		{list, []string{`\Sent`}, []string{"[Gmail]/Sent Mail"}},
		{list, []string{`\starred`, "Muy Importante", `\Draft`}, []string{"Muy Importante", "[Gmail]/Drafts", "[Gmail]/Starred"}},
		{list, []string{"Été/Réservations", `\Inbox`}, []string{"INBOX", "Été/Réservations"}},
		// Archived: no label, or only labels without a folder.
		{list, nil, []string{"[Gmail]/All Mail"}},
		{list, []string{"Hidden from IMAP", "Été", `\Unknown`}, []string{"[Gmail]/All Mail"}},
		{bare, []string{`\Starred`, `\Important`}, []string{"[Gmail]/Alle Nachrichten"}},
		{bare, []string{`\Inbox`, `\Starred`}, []string{"INBOX"}},
	} {
		if got := GmailFolders(tc.list, tc.labels); !slices.Equal(got, tc.want) {
			t.Errorf("GmailFolders(%q) = %q, want %q", tc.labels, got, tc.want)
		}
	}
}
