package message

import (
	"bytes"
	"testing"

	"github.com/myhibachi/backfill/internal/realmail"
)

// realWorldMail returns the real-world corpus (internal/realmail: mail from
// Go modules and Debian and npm packages, fetched into a cache, never
// committed). It logs how many messages each source gave and fails the
// test when there are fewer than realWorldMinimum. With -short it returns
// none: reading and parsing them all takes seconds.
func realWorldMail(tb testing.TB) []realmail.Message {
	tb.Helper()
	if testing.Short() {
		tb.Log("-short: the real-world corpus is not read")
		return nil
	}
	return realmail.Load(tb, realWorldMinimum)
}

// raceSample returns every nth message under the race detector, which
// makes parsing several times slower: make test runs with -race, and then
// runs the real-world tests once more without it, on the whole corpus.
func raceSample(tb testing.TB, msgs []realmail.Message, n int) []realmail.Message {
	tb.Helper()
	if !realmail.RaceEnabled {
		return msgs
	}
	tb.Logf("-race: every %dth of the %d messages", n, len(msgs))
	return realmail.Sample(msgs, n)
}

// TestParseRealWorldMail checks that every message of the corpus is stored:
// no panic, clean strings, an id, with CRLF or LF line ends and cut in half.
// enmime itself refuses some of them.
func TestParseRealWorldMail(t *testing.T) {
	for _, msg := range raceSample(t, realWorldMail(t), 10) {
		t.Run(msg.Source+"/"+msg.Name, func(t *testing.T) {
			for _, form := range [][]byte{msg.Raw, bytes.ReplaceAll(msg.Raw, []byte("\n"), []byte("\r\n"))} {
				parse(t, string(form))
				// A message cut anywhere is still stored.
				parse(t, string(form[:len(form)/2]))
			}
		})
	}
}

// FuzzParse checks the storage invariants on arbitrary input, and that
// whenever the message's sections are accepted by ParseSections (lean
// fetching) they give the same row.
func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		alternative,
		"From: a@x\nSubject: =?koi8-r?B?8NLJ18XU?=\nContent-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain; charset=iso-8859-1\nContent-Transfer-Encoding: quoted-printable\n\nK=F6ln\n--b\nContent-Type: application/pdf\nContent-Disposition: attachment; filename*0*=UTF-8''a%C3%AF; filename*1=.pdf\nContent-Transfer-Encoding: base64\n\nJVBERi0=\n--b--\n",
		"To: Team: x@y, <z@w>;\nDate: Tue Jun  3 09:15:00 2025\n\n\x00\xff",
		"Content-Type: multipart/alternative\n\n--zz\n\nhi\n--zz--",
		"",
	} {
		f.Add([]byte(seed))
	}
	// Some 150 small real messages: enough variety, and a seed corpus the
	// fuzzer reads through quickly before it starts.
	var small [][]byte
	for _, msg := range realWorldMail(f) {
		if len(msg.Raw) < 8<<10 {
			small = append(small, msg.Raw)
		}
	}
	step := max(1, len(small)/150)
	for i := 0; i < len(small); i += step {
		f.Add(small[i])
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		m := Parse(raw, Meta{})
		checkParsed(t, m)
		if m.SizeBytes != int64(len(raw)) {
			t.Errorf("SizeBytes = %d, want %d", m.SizeBytes, len(raw))
		}
		checkSectionsAgree(t, raw)
	})
}
