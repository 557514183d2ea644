package main

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/jackc/pgx/v5"

	"github.com/myhibachi/backfill/internal/dovecottest"
	"github.com/myhibachi/backfill/internal/gmailtest"
)

// gmailLabels are the X-GM-LABELS of flaggedMails on the Gmail test server:
// system labels, a nested non-ASCII user label, a keyword beside labels, and
// a message starred by its \Starred label alone (lean-unread), and an
// archived message without labels.
var gmailLabels = [][]string{
	{`\Inbox`, `\Important`},
	{`\Sent`},
	{`\Inbox`, "Été/Réservations"},
	{`\Inbox`, `\Starred`},
	{`\Starred`, "Muy Importante"},
	nil,
}

// gmailFolders are the folders Gmail shows each of flaggedMails in, by
// their gmailLabels, as a row's folders should list them.
var gmailFolders = map[string][]string{
	"unread@flags.test":      {"INBOX", gmailtest.Important},
	"read@flags.test":        {gmailtest.SentMail},
	"starred@flags.test":     {"INBOX", "Été/Réservations"},
	"all@flags.test":         {"INBOX", gmailtest.Starred},
	"lean-unread@flags.test": {"Muy Importante", gmailtest.Starred},
	"lean-read@flags.test":   {gmailtest.AllMail},
}

// startGmail loads flaggedMails into a Gmail test server with gmailLabels;
// the second message replies in the first one's Gmail thread. It returns
// each message's X-GM-MSGID and X-GM-THRID by Message-ID.
func startGmail(t *testing.T) (*gmailtest.Server, map[string][2]uint64) {
	t.Helper()
	srv := gmailtest.Start(t)
	ids := map[string][2]uint64{}
	var first uint64
	for i, m := range flaggedMails {
		gm := gmailtest.Message{Raw: m.raw(i), Date: time.Date(2025, 11, 3, 10, i, 0, 0, time.UTC), Flags: m.flags, Labels: gmailLabels[i]}
		if i == 1 {
			gm.ThreadID = first
		}
		id := srv.Add(t, gm)
		if i == 0 {
			first = id
		}
		thread := id
		if gm.ThreadID != 0 {
			thread = gm.ThreadID
		}
		ids[m.id] = [2]uint64{id, thread}
	}
	return srv, ids
}

// wantGmail is the row each of flaggedMails should get from the Gmail
// server, as gmailRows spells it.
func wantGmail(ids map[string][2]uint64, flags bool) []string {
	var out []string
	for i, m := range flaggedMails {
		read, starred, labels := false, false, []string{}
		if flags {
			read = slices.Contains(m.flags, imap.FlagSeen)
			starred = slices.Contains(m.flags, imap.FlagFlagged) || slices.Contains(gmailLabels[i], `\Starred`)
			for _, f := range m.flags {
				if !strings.HasPrefix(string(f), `\`) {
					labels = append(labels, string(f))
				}
			}
			labels = append(labels, gmailLabels[i]...)
			slices.Sort(labels)
		}
		out = append(out, fmt.Sprintf("%s %t %t %q %d %d", m.id, read, starred, labels, ids[m.id][0], ids[m.id][1]))
	}
	slices.Sort(out)
	return out
}

// gmailRows reads every row's flags, labels and Gmail ids; NULL ids read
// as 0.
func (f *fixture) gmailRows() []string {
	f.t.Helper()
	rows, err := f.pool.Query(context.Background(), `SELECT message_id, is_read, is_starred, labels,
		coalesce(gmail_msgid, 0), coalesce(gmail_thread_id, 0) FROM email_messages WHERE inbox = 'demo' ORDER BY 1`)
	if err != nil {
		f.t.Fatal(err)
	}
	got, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (string, error) {
		var id string
		var read, starred bool
		var labels []string
		var msgID, threadID int64
		err := r.Scan(&id, &read, &starred, &labels, &msgID, &threadID)
		return fmt.Sprintf("%s %t %t %q %d %d", id, read, starred, labels, uint64(msgID), uint64(threadID)), err
	})
	if err != nil {
		f.t.Fatal(err)
	}
	return got
}

// Issue 10 (Gmail): backfilling [Gmail]/All Mail stores each message's
// X-GM-MSGID and X-GM-THRID, its X-GM-LABELS merged with its keywords as
// labels, starred by \Flagged or \Starred; lean and full fetches store the
// same rows; --no-flags keeps the ids and drops the labels.
func TestGmailAllMail(t *testing.T) {
	t.Parallel()
	srv, ids := startGmail(t)
	full, lean := newFixture(t), newFixture(t)
	for i, f := range []*fixture{full, lean} {
		f.environ = append(f.environ, "BACKFILL_INBOX_DEMO="+srv.URL(gmailtest.AllMail), "BACKFILL_INBOX_DEMO_PASSWORD="+srv.Password)
		f.migrate()
		mode := []string{"full", "lean"}[i]
		out := f.mustRun(0, "--inbox", "demo", "--fetch", mode)
		if got, want := f.gmailRows(), wantGmail(ids, true); !slices.Equal(got, want) {
			t.Fatalf("--fetch %s stored:\n%s\nwant:\n%s\n%s", mode, strings.Join(got, "\n"), strings.Join(want, "\n"), out)
		}
	}
	if got, want := full.dumpExcept(), lean.dumpExcept(); !slices.Equal(got, want) {
		t.Fatalf("full and lean fetches stored different rows:\n%s\n\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// The lean run must have fetched some messages as sections, or it
	// proved nothing about them.
	if n := srv.Bodies(); n >= 2*len(flaggedMails) {
		t.Fatalf("%d whole bodies sent for two runs of %d messages: the lean run fetched none as sections", n, len(flaggedMails))
	}

	full.mustExec(`TRUNCATE email_messages, email_threads, email_sync_uids`)
	full.mustRun(0, "--inbox", "demo", "--no-flags")
	if got, want := full.gmailRows(), wantGmail(ids, false); !slices.Equal(got, want) {
		t.Fatalf("--no-flags stored:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// Issue 10 (Gmail): a server without X-GM-EXT-1, go-imap's or Dovecot,
// leaves the Gmail columns NULL and the labels to the keywords.
func TestGmailColumnsNullElsewhere(t *testing.T) {
	t.Parallel()
	noGmail := func(f *fixture) {
		f.t.Helper()
		f.migrate()
		f.mustRun(0, "--inbox", "demo", "--fetch", "lean")
		if n := f.count(`SELECT count(*) FROM email_messages`); n != len(flaggedMails) {
			f.t.Fatalf("%d rows, want %d", n, len(flaggedMails))
		}
		if n := f.count(`SELECT count(*) FROM email_messages WHERE gmail_msgid IS NOT NULL OR gmail_thread_id IS NOT NULL`); n != 0 {
			f.t.Fatalf("%d rows with Gmail ids from a server that is not Gmail", n)
		}
	}
	t.Run("go-imap", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		for i, m := range flaggedMails {
			f.imap.Append(t, m.raw(i), time.Date(2025, 11, 3, 10, i, 0, 0, time.UTC), m.flags...)
		}
		noGmail(f)
	})
	t.Run("dovecot", func(t *testing.T) {
		t.Parallel()
		user := dovecottest.User{Name: "support@myhibachichef.com", Password: "pw"}
		srv := dovecottest.NewServer(t, []dovecottest.User{user})
		err := srv.LoadMaildir(user.Name, func(yield func([]byte, time.Time) bool) {
			for i, m := range flaggedMails {
				if !yield(m.raw(i), time.Date(2025, 11, 3, 10, i, 0, 0, time.UTC)) {
					return
				}
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		f := newFixture(t)
		f.environ = append(f.environ, "BACKFILL_INBOX_DEMO="+srv.URL(user.Name, "INBOX"), "BACKFILL_INBOX_DEMO_PASSWORD="+user.Password)
		noGmail(f)
	})
}

// Issue 10 (Gmail): a backend's own email_messages is never altered; it
// gets Gmail's ids only when it has columns for them.
func TestGmailAdoptedTable(t *testing.T) {
	t.Parallel()
	srv, ids := startGmail(t)
	for _, withColumns := range []bool{false, true} {
		f := newFixture(t)
		f.environ = append(f.environ, "BACKFILL_INBOX_DEMO="+srv.URL(gmailtest.AllMail), "BACKFILL_INBOX_DEMO_PASSWORD="+srv.Password)
		f.mustExec(backendSchemas[0].ddl)
		if withColumns {
			f.mustExec(`ALTER TABLE email_messages ADD COLUMN gmail_msgid bigint, ADD COLUMN gmail_thread_id numeric(20)`)
		}
		f.migrate()
		f.mustRun(0, "--inbox", "demo")
		cols := f.count(`SELECT count(*) FROM information_schema.columns WHERE table_name = 'email_messages' AND column_name LIKE 'gmail%'`)
		if want := map[bool]int{false: 0, true: 2}[withColumns]; cols != want {
			t.Fatalf("with columns %t: email_messages has %d Gmail columns, want %d: an adopted table was altered", withColumns, cols, want)
		}
		if !withColumns {
			continue
		}
		for id, want := range ids {
			var msgID, threadID int64
			if err := f.pool.QueryRow(context.Background(), `SELECT gmail_msgid, gmail_thread_id FROM email_messages WHERE message_id = $1`, id).
				Scan(&msgID, &threadID); err != nil {
				t.Fatalf("%s: %v", id, err)
			}
			if uint64(msgID) != want[0] || uint64(threadID) != want[1] {
				t.Errorf("%s: Gmail ids %d %d, want %d %d", id, msgID, threadID, want[0], want[1])
			}
		}
	}
}

// Issue 10 (Gmail): --all-folders on a Gmail server reads [Gmail]/All Mail
// alone, so each message is downloaded once however many labels it has,
// with its labels from X-GM-LABELS; a re-run downloads nothing.
func TestGmailAllFolders(t *testing.T) {
	t.Parallel()
	srv, ids := startGmail(t)
	f := newFixture(t)
	f.environ = append(f.environ, "BACKFILL_INBOX_DEMO="+srv.URL("INBOX"), "BACKFILL_INBOX_DEMO_PASSWORD="+srv.Password)
	f.migrate()
	out := f.mustRun(0, "--inbox", "demo", "--all-folders", "--fetch", "full")
	if n := srv.Bodies(); n != len(flaggedMails) {
		t.Errorf("the server sent %d whole messages for %d in the account", n, len(flaggedMails))
	}
	f.wantLine(out, fmt.Sprintf("Downloaded:    %d message bodies", len(flaggedMails)))
	f.wantLine(out, `📁 Folders: [Gmail]/All Mail (\All)`)
	if got, want := f.gmailRows(), wantGmail(ids, true); !slices.Equal(got, want) {
		t.Fatalf("stored:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	out = f.mustRun(0, "--inbox", "demo", "--all-folders")
	f.wantLine(out, "Downloaded:    0 message bodies")
}

// Issue 10 (Gmail): a message read through [Gmail]/All Mail lists the
// folders Gmail shows it in (its labels'), not All Mail, which every
// message is in; an archived one lists All Mail. Reading the labels'
// folders themselves gives the same rows, in either order.
func TestGmailAllMailFolders(t *testing.T) {
	t.Parallel()
	srv, _ := startGmail(t)
	all, named := newFixture(t), newFixture(t)
	for _, f := range []*fixture{all, named} {
		f.environ = append(f.environ, "BACKFILL_INBOX_DEMO="+srv.URL("INBOX"), "BACKFILL_INBOX_DEMO_PASSWORD="+srv.Password)
		f.migrate()
	}
	wantFolders := func(f *fixture, run string, want map[string][]string) {
		t.Helper()
		if got := f.folders(); !maps.EqualFunc(got, want, slices.Equal) {
			t.Fatalf("after %s, folders by Message-ID:\n%v\nwant:\n%v", run, got, want)
		}
	}
	all.mustRun(0, "--inbox", "demo", "--all-folders")
	wantFolders(all, "--all-folders", gmailFolders)

	// --folders INBOX,sent stores the messages Gmail shows there, each
	// listing the ones of the two it is in.
	named.mustRun(0, "--inbox", "demo", "--folders", "INBOX,sent")
	read := map[string][]string{}
	for id, folders := range gmailFolders {
		if in := slices.DeleteFunc(slices.Clone(folders), func(f string) bool { return f != "INBOX" && f != gmailtest.SentMail }); len(in) > 0 {
			read[id] = in
		}
	}
	wantFolders(named, "--folders INBOX,sent", read)
	// All Mail then adds the other labels' folders to the stored rows,
	// and stores the rest.
	named.mustRun(0, "--inbox", "demo", "--all-folders")
	wantFolders(named, "--folders INBOX,sent and --all-folders", gmailFolders)
	// And the labels' own folders add nothing more.
	named.mustRun(0, "--inbox", "demo", "--folders", "INBOX,sent,Été/Réservations,Muy Importante,"+gmailtest.Starred+","+gmailtest.Important)
	wantFolders(named, "reading every label's folder", gmailFolders)

	// An inbox whose URL names All Mail gets the same folders.
	url := newFixture(t)
	url.environ = append(url.environ, "BACKFILL_INBOX_DEMO="+srv.URL(gmailtest.AllMail), "BACKFILL_INBOX_DEMO_PASSWORD="+srv.Password)
	url.migrate()
	url.mustRun(0, "--inbox", "demo")
	wantFolders(url, "reading the URL's All Mail", gmailFolders)
}

// Issue 10 (Gmail): watch following All Mail (--all-folders) stores a
// message that arrives there in the folders its labels stand for.
func TestGmailWatchAllMailFolders(t *testing.T) {
	t.Parallel()
	srv, _ := startGmail(t)
	f := newFixture(t)
	f.environ = append(f.environ, "BACKFILL_INBOX_DEMO="+srv.URL("INBOX"), "BACKFILL_INBOX_DEMO_PASSWORD="+srv.Password)
	f.migrate()
	p := startWatch(t, buildBinary(t), f.dir, f.environ, "--inbox", "demo", "--all-folders", "--max-backoff", "500ms")
	p.waitLines("👀 demo/"+gmailtest.AllMail+": following", 1)
	if got := f.folders(); !maps.EqualFunc(got, gmailFolders, slices.Equal) {
		t.Fatalf("after watch's backfill, folders by Message-ID:\n%v\nwant:\n%v", got, gmailFolders)
	}
	srv.Add(t, gmailtest.Message{Raw: liveMail("gm-live"), Date: time.Now(), Labels: []string{`\Inbox`, "Muy Importante"}})
	f.eventually("the new message stored with its labels' folders", func() bool {
		return f.count(`SELECT count(*) FROM email_messages WHERE message_id = 'gm-live@example.com' AND folders = '{INBOX,Muy Importante}'`) == 1
	})
	p.terminate()
}
