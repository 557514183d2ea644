package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/myhibachi/backfill/internal/dovecottest"
	"github.com/myhibachi/backfill/internal/realmail"
	"github.com/myhibachi/backfill/message"
)

// realWorldMinimum is how many distinct real-world messages the corpus must
// have (scripts/realmail.sh fetches about 6,700) for the sample below to
// be the one this test was written for.
const realWorldMinimum = 5000

// TestLeanFetchStoresWhatFullFetchStoresOnRealMail runs real-world mail
// (internal/realmail) through Dovecot with --fetch full and --fetch lean and
// compares every column of every row: mail nobody here wrote, with its
// broken structures, odd charsets and attachments, must come out the same
// whether attachments stay on the server or not.
func TestLeanFetchStoresWhatFullFetchStoresOnRealMail(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the real-world corpus is not loaded into Dovecot")
	}
	t.Parallel()
	msgs := realmail.Load(t, realWorldMinimum)
	if realmail.RaceEnabled {
		// The race detector makes a run several times slower; make test
		// runs this test again without it, on the whole sample.
		msgs = realmail.Sample(msgs, 4)
	}
	corpus := realWorldSample(t, msgs)
	t.Logf("%d messages, one per Message-ID, loaded into Dovecot", len(corpus))

	user := dovecottest.User{Name: "realworld@myhibachichef.com", Password: "pw"}
	srv := dovecottest.NewServer(t, []dovecottest.User{user})
	date := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	err := srv.LoadMaildir(user.Name, func(yield func([]byte, time.Time) bool) {
		for _, raw := range corpus {
			if !yield(raw, date) {
				return
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	full, lean := newFixture(t), newFixture(t)
	for i, f := range []*fixture{full, lean} {
		f.environ = append(f.environ, "BACKFILL_INBOX_DEMO="+srv.URL(user.Name, "INBOX"), "BACKFILL_INBOX_DEMO_PASSWORD="+user.Password)
		f.migrate()
		f.mustRun(0, "--inbox", "demo", "--fetch", []string{"full", "lean"}[i], "--batch-size", "50")
	}
	want, got := full.dump(), lean.dump()
	if len(want) != len(corpus) || len(got) != len(corpus) {
		t.Fatalf("full fetch stored %d rows, lean %d, of %d messages", len(want), len(got), len(corpus))
	}
	differ := 0
	for i := range want {
		if want[i] != got[i] {
			if differ++; differ <= 20 {
				t.Errorf("row %d differs:%s", i, jsonDiff(want[i], got[i]))
			}
		}
	}
	if differ > 20 {
		t.Errorf("... %d rows differ in all", differ)
	}
}

// realWorldSample picks the messages for Dovecot, in CRLF form as IMAP
// serves them: every message with a multipart structure or an encoded part
// (what lean fetching elides or must fall back on), and every fourth of the
// others, keeping about half the corpus so that two runs stay well under a
// minute. Of messages sharing a Message-ID only the first is kept: which
// copy a run stores would depend on batch timing.
func realWorldSample(t *testing.T, msgs []realmail.Message) [][]byte {
	t.Helper()
	seen := map[string]bool{}
	var out [][]byte
	plain := 0
	for _, msg := range msgs {
		raw := bytes.ReplaceAll(bytes.ReplaceAll(msg.Raw, []byte("\r\n"), []byte("\n")), []byte("\n"), []byte("\r\n"))
		lower := strings.ToLower(string(raw))
		if !strings.Contains(lower, "multipart/") && !strings.Contains(lower, "base64") {
			if plain++; plain%4 != 0 {
				continue
			}
		}
		id := message.Parse(raw, message.Meta{}).MessageID
		if seen[id] {
			continue
		}
		seen[id] = true
		out = append(out, raw)
	}
	return out
}
