package main

import (
	"context"
	"encoding/base64"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/jackc/pgx/v5"
	"github.com/myhibachi/backfill/internal/dovecottest"
)

// flagged is one test message and the flags the server holds for it.
type flagged struct {
	id    string
	flags []imap.Flag
	large bool // with a 40 KB attachment, so that --fetch lean fetches it as sections
}

// flaggedMails covers unread, read, starred, keywords and a system flag
// (\Answered) that is not stored, in whole and lean fetches.
var flaggedMails = []flagged{
	{id: "unread@flags.test"},
	{id: "read@flags.test", flags: []imap.Flag{imap.FlagSeen}},
	{id: "starred@flags.test", flags: []imap.Flag{imap.FlagFlagged, "$Label1", "Invoice"}},
	{id: "all@flags.test", flags: []imap.Flag{imap.FlagSeen, imap.FlagFlagged, imap.FlagAnswered, "Invoice"}},
	{id: "lean-unread@flags.test", flags: []imap.Flag{"$Label1"}, large: true},
	{id: "lean-read@flags.test", flags: []imap.Flag{imap.FlagSeen, imap.FlagFlagged}, large: true},
}

func (m flagged) raw(i int) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "Message-ID: <%s>\r\nFrom: Guest %d <guest%d@example.com>\r\nTo: support@example.com\r\n", m.id, i, i)
	fmt.Fprintf(&b, "Subject: Booking %d\r\nDate: Mon, 3 Nov 2025 10:%02d:00 +0000\r\nMIME-Version: 1.0\r\n", i, i)
	if !m.large {
		b.WriteString("Content-Type: text/plain; charset=utf-8\r\n\r\nHello.\r\n")
		return []byte(b.String())
	}
	b.WriteString("Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nSee attached.\r\n")
	b.WriteString("--b\r\nContent-Type: application/pdf; name=\"menu.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\n")
	enc := base64.StdEncoding.EncodeToString([]byte(strings.Repeat("%PDF menu ", 4000)))
	for len(enc) > 76 {
		b.WriteString(enc[:76] + "\r\n")
		enc = enc[76:]
	}
	b.WriteString(enc + "\r\n--b--\r\n")
	return []byte(b.String())
}

// wantFlags is the row each message should get: is_read, is_starred,
// labels, as "message_id read starred [labels]". lower is for go-imap's
// server, which keeps keywords lowercased (IMAP keywords ignore case).
func wantFlags(serverFlags, lower bool) []string {
	var out []string
	for _, m := range flaggedMails {
		read, starred, labels := false, false, []string{}
		if serverFlags {
			read, starred = slices.Contains(m.flags, imap.FlagSeen), slices.Contains(m.flags, imap.FlagFlagged)
			for _, f := range m.flags {
				if !strings.HasPrefix(string(f), `\`) {
					if lower {
						f = imap.Flag(strings.ToLower(string(f)))
					}
					labels = append(labels, string(f))
				}
			}
			slices.Sort(labels)
		}
		out = append(out, fmt.Sprintf("%s %t %t %v", m.id, read, starred, labels))
	}
	slices.Sort(out)
	return out
}

// storedFlags reads the flags of every row as wantFlags spells them; labels
// may be text[] or a jsonb array.
func (f *fixture) storedFlags(labels string) []string {
	f.t.Helper()
	rows, err := f.pool.Query(context.Background(), `SELECT message_id, is_read, is_starred, `+labels+` FROM email_messages WHERE inbox = 'demo' ORDER BY 1`)
	if err != nil {
		f.t.Fatal(err)
	}
	got, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (string, error) {
		var id string
		var read, starred bool
		var ls []string
		err := r.Scan(&id, &read, &starred, &ls)
		return fmt.Sprintf("%s %t %t %v", id, read, starred, ls), err
	})
	if err != nil {
		f.t.Fatal(err)
	}
	return got
}

// serverFlags reads every message's flags over IMAP, read-only (EXAMINE),
// so that looking does not change them.
func serverFlags(t *testing.T, addr, user, password string) map[string][]imap.Flag {
	t.Helper()
	c, err := imapclient.DialInsecure(addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(user, password).Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		t.Fatal(err)
	}
	var all imap.SeqSet
	all.AddRange(1, 0)
	msgs, err := c.Fetch(all, &imap.FetchOptions{Flags: true, Envelope: true}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]imap.Flag{}
	for _, m := range msgs {
		fl := slices.DeleteFunc(slices.Clone(m.Flags), func(f imap.Flag) bool { return f == "\\Recent" })
		slices.Sort(fl)
		out[m.Envelope.MessageID] = fl
	}
	return out
}

// Issue 10 (Flags): a new row takes \Seen, \Flagged and keywords as the
// server has them, in whole and lean fetches; the server's flags are not
// changed (an unread message stays unread); a re-run keeps what the
// dashboard changed; --no-flags stores the guide's defaults.
func TestFlagsStoredAsServerHasThem(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	for i, m := range flaggedMails {
		f.imap.Append(t, m.raw(i), time.Date(2025, 11, 3, 10, i, 0, 0, time.UTC), m.flags...)
	}
	before := serverFlags(t, f.imap.Addr(), f.imap.Username, f.imap.Password)
	f.migrate()
	f.mustRun(0, "--inbox", "demo", "--fetch", "lean")
	if whole, pieces := f.imap.BodiesAsked(); whole == 0 || pieces == 0 {
		t.Fatalf("UIDs asked whole %d, as sections %d: the test must cover both", whole, pieces)
	}
	if got, want := f.storedFlags("labels"), wantFlags(true, true); !slices.Equal(got, want) {
		t.Fatalf("stored flags:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if after := serverFlags(t, f.imap.Addr(), f.imap.Username, f.imap.Password); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("the run changed the server's flags:\nbefore %v\nafter  %v", before, after)
	}

	// The dashboard marks a message read and unstars another; re-runs,
	// also after forgetting which UIDs were settled, leave the rows.
	f.mustExec(`UPDATE email_messages SET is_read = true, labels = '{Done}' WHERE message_id = 'unread@flags.test'`)
	f.mustExec(`UPDATE email_messages SET is_starred = false WHERE message_id = 'starred@flags.test'`)
	edited := f.storedFlags("labels")
	f.mustRun(0, "--inbox", "demo", "--fetch", "full")
	f.mustExec(`DELETE FROM email_sync_uids`)
	f.mustRun(0, "--inbox", "demo", "--fetch", "full")
	if got := f.storedFlags("labels"); !slices.Equal(got, edited) {
		t.Fatalf("a re-run changed the rows' flags:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(edited, "\n"))
	}

	f.mustExec(`TRUNCATE email_messages, email_threads, email_sync_uids`)
	f.mustRun(0, "--inbox", "demo", "--fetch", "lean", "--no-flags")
	if got, want := f.storedFlags("labels"), wantFlags(false, true); !slices.Equal(got, want) {
		t.Fatalf("--no-flags stored:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// Issue 10 (Flags): a backend's own table, with labels as jsonb and flag
// columns that have defaults, gets the server's flags too.
func TestFlagsAdoptedTable(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	for i, m := range flaggedMails {
		f.imap.Append(t, m.raw(i), time.Date(2025, 11, 3, 10, i, 0, 0, time.UTC), m.flags...)
	}
	f.mustExec(backendSchemas[0].ddl)
	f.migrate()
	f.mustRun(0, "--inbox", "demo")
	labels := `ARRAY(SELECT jsonb_array_elements_text(labels))`
	if got, want := f.storedFlags(labels), wantFlags(true, true); !slices.Equal(got, want) {
		t.Fatalf("stored flags:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// Issue 10 (Flags) on Dovecot: flags and keywords set by APPEND are
// stored, and the run leaves every message's flags on the server as they
// were.
func TestFlagsDovecot(t *testing.T) {
	t.Parallel()
	user := dovecottest.User{Name: "support@myhibachichef.com", Password: "pw"}
	srv := dovecottest.NewServer(t, []dovecottest.User{user})
	c, err := imapclient.DialInsecure(srv.Addr(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(user.Name, user.Password).Wait(); err != nil {
		t.Fatal(err)
	}
	for i, m := range flaggedMails {
		raw := m.raw(i)
		cmd := c.Append("INBOX", int64(len(raw)), &imap.AppendOptions{Flags: m.flags, Time: time.Date(2025, 11, 3, 10, i, 0, 0, time.UTC)})
		if _, err := cmd.Write(raw); err != nil {
			t.Fatal(err)
		}
		if err := cmd.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := cmd.Wait(); err != nil {
			t.Fatal(err)
		}
	}
	before := serverFlags(t, srv.Addr(), user.Name, user.Password)
	f := newFixture(t)
	f.environ = append(f.environ, "BACKFILL_INBOX_DEMO="+srv.URL(user.Name, "INBOX"), "BACKFILL_INBOX_DEMO_PASSWORD="+user.Password)
	f.migrate()
	f.mustRun(0, "--inbox", "demo", "--fetch", "lean")
	if got, want := f.storedFlags("labels"), wantFlags(true, false); !slices.Equal(got, want) {
		t.Fatalf("stored flags:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if after := serverFlags(t, srv.Addr(), user.Name, user.Password); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("the run changed the server's flags:\nbefore %v\nafter  %v", before, after)
	}
}
