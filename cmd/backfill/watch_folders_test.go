package main

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/myhibachi/backfill/internal/dovecottest"
	"github.com/myhibachi/backfill/internal/mailgen"
)

// manyFolders are INBOX's companions in the folder tests: Sent and ten
// more, twelve folders in all.
func manyFolders() []dovecottest.Folder {
	out := []dovecottest.Folder{{Name: "Sent", SpecialUse: `\Sent`}}
	for i := 1; i <= 10; i++ {
		out = append(out, dovecottest.Folder{Name: fmt.Sprintf("Project %02d", i)})
	}
	return out
}

// followsManyFolders waits until watch follows the twelve folders of
// manyFolders on a server whose connection cap it does not know: five
// idling on connections of their own, INBOX and Sent among them, and
// seven watched as shared says.
func followsManyFolders(t *testing.T, p *watchProc, shared string) {
	t.Helper()
	const idle = "(IDLE, CONDSTORE)"
	p.waitLines("👀 demo/INBOX: following "+idle, 1)
	p.waitLines("👀 demo/Sent: following "+idle, 1)
	p.waitLines("👀 demo/Project 10: following "+shared, 1)
	p.waitLines("👀 demo/", len(manyFolders())+1)
	if n, m := strings.Count(p.output(), idle), strings.Count(p.output(), shared); n != 5 || m != 7 {
		t.Fatalf("%d folders idling and %d %s, want 5 and 7 (the budget of an unknown server)", n, m, shared)
	}
}

// stopRefusingNothing stops watch with SIGTERM, which must exit 143, and
// checks that Dovecot refused none of its connections.
func stopRefusingNothing(t *testing.T, w *dovecotWatch, p *watchProc) {
	t.Helper()
	p.terminate()
	if r := refusals(t, w.srv); len(r) > 0 || strings.Contains(p.output(), "Maximum number of connections") {
		t.Fatalf("Dovecot refused connections:\n%s", strings.Join(r, "\n"))
	}
}

// refusals returns Dovecot's log lines saying it refused a connection over
// mail_max_userip_connections.
func refusals(t *testing.T, srv *dovecottest.Server) []string {
	t.Helper()
	b, err := os.ReadFile(srv.LogFile())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, "Maximum number of connections") {
			out = append(out, l)
		}
	}
	return out
}

// logSize is how long Dovecot's log is now.
func logSize(t *testing.T, srv *dovecottest.Server) int64 {
	t.Helper()
	fi, err := os.Stat(srv.LogFile())
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// bytesSent returns how many bytes Dovecot sent each session that logged
// out after the log was from bytes long (its "Logged out ... out=N").
func bytesSent(t *testing.T, srv *dovecottest.Server, from int64) []int {
	t.Helper()
	b, err := os.ReadFile(srv.LogFile())
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	for _, l := range strings.Split(string(b[from:]), "\n") {
		_, rest, ok := strings.Cut(l, "Logged out ")
		if !ok {
			continue
		}
		for _, f := range strings.Fields(rest) {
			if v, ok := strings.CutPrefix(f, "out="); ok {
				n, err := strconv.Atoi(v)
				if err != nil {
					t.Fatalf("log line %q: %v", l, err)
				}
				out = append(out, n)
			}
		}
	}
	return out
}

// uidOf waits for the message of liveMail(id) to be stored and returns its
// UID in folder.
func (w *dovecotWatch) uidOf(id, folder string) uint32 {
	w.t.Helper()
	w.eventually(id+" stored", func() bool { return w.rowCount(id, "true") == 1 })
	var uid uint32
	if err := w.pool.QueryRow(context.Background(), `SELECT uid FROM email_sync_uids WHERE folder = $1 AND message_id = $2`,
		folder, id+"@example.com").Scan(&uid); err != nil {
		w.t.Fatal(err)
	}
	return uid
}

// TestWatchNotifyFollowsAllFolders follows twelve folders of a Dovecot
// that offers NOTIFY and admits eight connections per user: five folders
// idle on connections of their own (INBOX and Sent among them), one
// NOTIFY connection watches the other seven, so every folder is followed,
// mail delivered to those is stored, a flag change and an expunge in a
// folder nobody has selected are recorded, the NOTIFY connection is made
// again after Dovecot restarts, and Dovecot refused no connection.
func TestWatchNotifyFollowsAllFolders(t *testing.T) {
	t.Parallel()
	folders := manyFolders()
	w := newDovecotWatch(t, 5, watchSetup{dovecot: []dovecottest.Option{
		dovecottest.WithFolders(folders...),
		dovecottest.WithConfig("mailbox_list_index = yes"), // Dovecot offers NOTIFY with it
		dovecottest.WithMaxUserIPConnections(8),
	}})
	big := mailgen.Generate(7, 300)
	if err := w.srv.LoadFolder(w.user, "Project 07", "", mails(big)); err != nil {
		t.Fatal(err)
	}
	// Every folder is looked at every 10 s too, in case Dovecot dropped a
	// notification (see notifyLook): well within the test's patience.
	p := w.start("--all-folders", "--workers", "2")
	const notified = "(NOTIFY, CONDSTORE)"
	followsManyFolders(t, p, notified)
	for _, f := range []string{"Project 07", "Project 08", "Project 09", "Project 10"} {
		if !strings.Contains(p.output(), "👀 demo/"+f+": following "+notified) {
			t.Fatalf("%s is not watched by NOTIFY: the test's folders below prove nothing", f)
		}
	}

	for _, f := range []string{"Project 08", "Project 09", "Project 10"} {
		id := "to-" + strings.ReplaceAll(f, " ", "-")
		if err := w.srv.Deliver(w.user, f, liveMail(id)); err != nil {
			t.Fatal(err)
		}
		w.eventually("mail delivered to "+f+" stored", func() bool { return w.rowCount(id, fmt.Sprintf("folders = ARRAY['%s']", f)) == 1 })
	}

	uid := w.uidOf("to-Project-09", "Project 09")
	if err := w.srv.AddFlags(w.user, "Project 09", uid, `\Seen`, `\Flagged`); err != nil {
		t.Fatal(err)
	}
	w.eventually("the flag change in Project 09 recorded", func() bool { return w.rowCount("to-Project-09", "is_read AND is_starred") == 1 })
	if err := w.srv.Expunge(w.user, "Project 09", uid); err != nil {
		t.Fatal(err)
	}
	w.eventually("the expunge in Project 09 recorded", func() bool { return w.rowCount("to-Project-09", "deleted_at IS NOT NULL") == 1 })

	// A flag change in a folder of 300 messages: the woken catch-up asks
	// for the flags changed since the last one (CHANGEDSINCE), not all
	// 300, as the bytes Dovecot sent its connection show.
	var id string
	var last uint32
	if err := w.pool.QueryRow(context.Background(), `SELECT message_id, uid FROM email_sync_uids
		WHERE folder = 'Project 07' ORDER BY uid DESC LIMIT 1`).Scan(&id, &last); err != nil {
		t.Fatal(err)
	}
	logged := logSize(t, w.srv)
	if err := w.srv.AddFlags(w.user, "Project 07", last, `\Flagged`); err != nil {
		t.Fatal(err)
	}
	w.eventually("the flag change in Project 07 recorded", func() bool {
		return w.count(`SELECT count(*) FROM email_messages WHERE message_id = $1 AND is_starred`, id) == 1
	})
	var sent []int
	w.eventually("the catch-up's connection logged out", func() bool {
		sent = bytesSent(t, w.srv, logged)
		return len(sent) > 0
	})
	t.Logf("bytes sent to the connections that logged out after the flag change: %v", sent)
	if slices.Max(sent) > 4000 {
		t.Fatalf("a catch-up connection was sent %d bytes after one flag change: all 300 messages' flags fetched?", slices.Max(sent))
	}

	// The NOTIFY connection is lost with the server, and made again.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := w.srv.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	p.waitLines("👀 demo/Project 07: following (NOTIFY", 2)
	if err := w.srv.Deliver(w.user, "Project 07", liveMail("after-restart")); err != nil {
		t.Fatal(err)
	}
	w.eventually("mail delivered after Dovecot's restart stored", func() bool { return w.rowCount("after-restart", "true") == 1 })

	stopRefusingNothing(t, w, p)
}

// TestWatchPollsFoldersWithinCap follows twelve folders of a Dovecot
// without NOTIFY that admits eight connections per user: some folders
// idle on their own connection (INBOX and Sent among them), the others
// are polled with STATUS on one shared connection, and mail delivered to
// a polled folder is stored, its flag change recorded, with no connection
// refused.
func TestWatchPollsFoldersWithinCap(t *testing.T) {
	t.Parallel()
	folders := manyFolders()
	w := newDovecotWatch(t, 5, watchSetup{dovecot: []dovecottest.Option{
		dovecottest.WithFolders(folders...),
		dovecottest.WithConfig("mailbox_list_index = no"), // no NOTIFY then
		dovecottest.WithMaxUserIPConnections(8),
	}})
	p := w.start("--all-folders", "--workers", "2", "--poll", "200ms")
	const polled = "(STATUS poll every 200ms, CONDSTORE)"
	followsManyFolders(t, p, polled)

	if err := w.srv.Deliver(w.user, "Project 10", liveMail("polled")); err != nil {
		t.Fatal(err)
	}
	w.eventually("mail delivered to a polled folder stored", func() bool { return w.rowCount("polled", "folders = '{Project 10}'") == 1 })
	uid := w.uidOf("polled", "Project 10")
	if err := w.srv.AddFlags(w.user, "Project 10", uid, `\Seen`); err != nil {
		t.Fatal(err)
	}
	w.eventually("the flag change in a polled folder recorded", func() bool { return w.rowCount("polled", "is_read") == 1 })

	stopRefusingNothing(t, w, p)
}

// TestWatchPollsWhenNotifyRefused follows twelve folders of a Dovecot
// that advertises NOTIFY but refuses the command (without its mailbox
// list index): watch says so and polls the folders without a connection
// of their own with STATUS instead, and mail delivered to one is stored.
func TestWatchPollsWhenNotifyRefused(t *testing.T) {
	t.Parallel()
	folders := manyFolders()
	w := newDovecotWatch(t, 3, watchSetup{dovecot: []dovecottest.Option{
		dovecottest.WithFolders(folders...),
		dovecottest.WithConfig("mailbox_list_index = no\nimap_capability = +NOTIFY"),
	}})
	p := w.start("--all-folders", "--poll", "200ms")
	p.waitLines("⚠️  demo: the server refused NOTIFY", 1)
	const polled = "(STATUS poll every 200ms, CONDSTORE)"
	followsManyFolders(t, p, polled)
	if strings.Contains(p.output(), "(NOTIFY") {
		t.Fatal("a folder is said to be followed by NOTIFY, which the server refused")
	}
	if err := w.srv.Deliver(w.user, "Project 10", liveMail("refused")); err != nil {
		t.Fatal(err)
	}
	w.eventually("mail delivered to Project 10 stored", func() bool { return w.rowCount("refused", "true") == 1 })
	p.terminate()
}

// BenchmarkWatchLatencyFolders is BenchmarkWatchLatency for a folder
// without a connection of its own, among twelve (five idle on their own):
// BENCH_WATCH_VIA=notify (the default) hears of it by NOTIFY, =poll by
// STATUS polls every 200 ms (Dovecot without its mailbox list index). Each new
// message's catch-up logs in for the folder, which IDLE on the folder's
// own connection does not. BENCH_WATCH_N messages are in the folder.
func BenchmarkWatchLatencyFolders(b *testing.B) {
	n := envInt("BENCH_WATCH_N", 2000)
	opts := []dovecottest.Option{dovecottest.WithFolders(manyFolders()...)}
	args := []string{"--all-folders"}
	if envString("BENCH_WATCH_VIA", "notify") == "poll" {
		opts = append(opts, dovecottest.WithConfig("mailbox_list_index = no"))
		args = append(args, "--poll", "200ms")
	}
	w := newDovecotWatch(b, 0, watchSetup{dovecot: opts})
	if err := w.srv.LoadFolder(w.user, "Project 10", "", mails(mailgen.Generate(41, n))); err != nil {
		b.Fatal(err)
	}
	p := w.start(args...)
	p.waitLines("👀 demo/Project 10: following", 1)
	b.ResetTimer()
	_, fromEnd := deliverAndWait(b, w, "Project 10")
	b.StopTimer()
	b.ReportMetric(pct(fromEnd, 50), "ms-saved-to-row-p50")
	b.ReportMetric(pct(fromEnd, 95), "ms-saved-to-row-p95")
	b.ReportMetric(float64(n), "folder-msgs")
	p.stop(syscall.SIGTERM)
}
