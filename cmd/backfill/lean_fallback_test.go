package main

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/myhibachi/backfill/internal/imaptest"
	"github.com/myhibachi/backfill/internal/mailgen"
)

// TestLeanFallbacks drives each way lean fetching falls back on purpose,
// with a server that misbehaves in one way at a time, and checks that the
// rows are those a full fetch stores, that the messages concerned were
// fetched whole (or not fetched twice), and what error_logs says.
func TestLeanFallbacks(t *testing.T) {
	t.Parallel()
	corpus := fallbackCorpus()
	full := newFixture(t)
	for _, raw := range corpus {
		full.imap.Append(t, raw, fallbackDate)
	}
	full.migrate()
	full.mustRun(0, "--inbox", "demo", "--fetch", "full")
	want := full.dump()
	wholeAfterSections := func(t *testing.T, lf *leanFaults) {
		t.Helper()
		if len(lf.sections) < 5 {
			t.Fatalf("only %d messages were fetched as sections: the fault was not exercised", len(lf.sections))
		}
		for uid := range lf.sections {
			if lf.whole[uid] == 0 {
				t.Errorf("UID %d: its sections could not be used, yet it was not fetched whole", uid)
			}
		}
	}
	cases := []struct {
		name    string
		faults  *leanFaults
		retried int
		check   func(t *testing.T, f *fixture, lf *leanFaults, out string)
	}{{
		// A server whose structure says a part is whole lines shorter
		// than it is: its tail then looks like a proper end.
		name: "sizes reported short", faults: &leanFaults{shrink: 13 * 78},
		check: func(t *testing.T, _ *fixture, lf *leanFaults, _ string) { wholeAfterSections(t, lf) },
	}, {
		name: "sizes counted in LF, served in CRLF", faults: &leanFaults{lfSizes: true},
		check: func(t *testing.T, _ *fixture, lf *leanFaults, _ string) { wholeAfterSections(t, lf) },
	}, {
		name: "server refuses sections", faults: &leanFaults{refuse: true},
		check: func(t *testing.T, _ *fixture, lf *leanFaults, _ string) { wholeAfterSections(t, lf) },
	}, {
		name: "server refuses structures", faults: &leanFaults{refuseStructures: true},
		check: func(t *testing.T, _ *fixture, lf *leanFaults, _ string) {
			if len(lf.sections) > 0 || len(lf.whole) != len(lf.raws) {
				t.Errorf("%d messages fetched as sections, %d of %d whole; want all whole", len(lf.sections), len(lf.whole), len(lf.raws))
			}
		},
	}, {
		name: "sections missing from the answer", faults: &leanFaults{omitText: true},
		check: func(t *testing.T, _ *fixture, lf *leanFaults, _ string) { wholeAfterSections(t, lf) },
	}, {
		name: "section sent as NIL", faults: &leanFaults{nilText: true},
		check: func(t *testing.T, _ *fixture, lf *leanFaults, _ string) { wholeAfterSections(t, lf) },
	}, {
		// The connection dies inside the third section answer: the two
		// messages that arrived whole before it are kept, not asked for
		// again, and nothing is fetched whole for it.
		name: "message cut mid-section", faults: &leanFaults{cutSection: 3}, retried: 1,
		check: func(t *testing.T, _ *fixture, lf *leanFaults, _ string) {
			var twice []imap.UID
			for uid, n := range lf.sections {
				if n > 1 {
					twice = append(twice, uid)
				}
			}
			if len(twice) != 1 || lf.dropped != 1 {
				t.Errorf("sections asked again for UIDs %v after %d cuts, want the one cut (sections %v whole %v)", twice, lf.dropped, lf.sections, lf.whole)
			}
			for _, uid := range lf.firstSections {
				if lf.whole[uid] > 0 || lf.sections[uid] > 1 {
					t.Errorf("UID %d arrived before the cut but was fetched again", uid)
				}
			}
		},
	}, {
		// Ordinary network drops during four structure fetches: retried,
		// never counted against lean fetching.
		name: "network drops during structure fetches", faults: &leanFaults{dropStructures: 4}, retried: 4,
		check: func(t *testing.T, f *fixture, lf *leanFaults, out string) {
			if lf.dropped != 4 {
				t.Fatalf("%d structure fetches dropped, want 4", lf.dropped)
			}
			wantLean(t, f, out)
		},
	}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			lf := c.faults
			lf.raws = map[imap.UID][]byte{}
			lf.sections, lf.whole = map[imap.UID]int{}, map[imap.UID]int{}
			f := newFixture(t, imaptest.WithSession(func(s imapserver.SessionIMAP4rev2, conn *imapserver.Conn) imapserver.SessionIMAP4rev2 {
				return &faultySession{SessionIMAP4rev2: s, conn: conn, lf: lf}
			}))
			for _, raw := range corpus {
				lf.raws[f.imap.Append(t, raw, fallbackDate)] = raw
			}
			f.migrate()
			out := f.mustRun(0, "--inbox", "demo", "--fetch", "lean", "--workers", "1", "--batch-size", "4", "--retry-for", "20s")
			f.wantLine(out, fmt.Sprintf("Downloaded:    %d message bodies", len(corpus)))
			got := f.dump()
			if len(got) != len(want) {
				t.Fatalf("lean stored %d rows, full %d\n%s", len(got), len(want), out)
			}
			for i := range want {
				if want[i] != got[i] {
					t.Errorf("row %d differs from full fetch:%s", i, jsonDiff(want[i], got[i]))
				}
			}
			if n := f.count(`SELECT count(*) FROM error_logs WHERE error_type = 'fetch_retried'`); n != c.retried {
				t.Errorf("%d fetch_retried warnings, want %d\n%s", n, c.retried, out)
			}
			if n := f.count(`SELECT count(*) FROM error_logs WHERE severity <> 'warning' OR error_type = 'lean_fetch_disabled'`); n != 0 {
				t.Errorf("%d errors or lean_fetch_disabled in error_logs, want none\n%s", n, out)
			}
			lf.mu.Lock()
			defer lf.mu.Unlock()
			c.check(t, f, lf, out)
		})
	}
}

// wantLean fails unless the run left attachments on the server.
func wantLean(t *testing.T, f *fixture, out string) {
	t.Helper()
	m := transferred.FindStringSubmatch(out)
	if m == nil || !strings.Contains(out, "large attachments stay on the server") {
		t.Fatalf("the run did not fetch lean:\n%s", out)
	}
}

var fallbackDate = time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)

// fallbackCorpus is the lean test's edge cases (but for the structure
// go-imap's server cannot write, which has a test of its own), messages
// whose attachments are whole lines of base64, a 7bit one, and generated
// mail.
func fallbackCorpus() [][]byte {
	edges := edgeMails()
	corpus := append(edges[:7:7], edges[8:]...)
	head := func(i int) string {
		return fmt.Sprintf("From: Ana <ana@example.com>\r\nTo: cs@myhibachichef.com\r\nSubject: lines %d\r\n"+
			"Date: Sun, 1 Mar 2026 10:00:00 +0000\r\nMessage-ID: <lines-%d@test.example>\r\nMIME-Version: 1.0\r\n"+
			"Content-Type: multipart/mixed; boundary=\"L\"\r\n\r\n--L\r\nContent-Type: text/plain\r\n\r\nattached\r\n--L\r\n", i, i)
	}
	for i, n := range []int{57 * 700, 57 * 1001, 57 * 333} {
		corpus = append(corpus, []byte(head(i)+"Content-Type: application/pdf; name=\"w.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\n"+
			b64(noise(uint64(40+i), n), 76)+"--L--\r\n"))
	}
	corpus = append(corpus, []byte(head(3)+"Content-Type: application/octet-stream; name=app.log\r\nContent-Transfer-Encoding: 7bit\r\n\r\n"+
		strings.Repeat("2026-03-01 10:00:00 INFO ok\r\n", 900)+"--L--\r\n"))
	opts := mailgen.DefaultOptions()
	opts.DuplicateRatio = 0
	return append(corpus, rawMails(opts.Generate(31, 40))...)
}

// leanFaults is how faultySession misbehaves, and what it saw.
type leanFaults struct {
	shrink           uint32 // report large non-text leaves this many bytes short
	lfSizes          bool   // report their sizes counting LF, not CRLF
	refuse           bool   // answer NO to every section fetch
	refuseStructures bool   // answer NO to every structure fetch
	omitText         bool   // leave fetched-whole leaves out of section answers
	nilText          bool   // send fetched-whole leaves as NIL in section answers
	cutSection       int    // cut the connection inside the nth section answer
	dropStructures   int    // drop the connection at this many structure fetches, each for other UIDs

	mu              sync.Mutex
	raws            map[imap.UID][]byte
	sections, whole map[imap.UID]int // fetches per UID
	sectionFetches  int
	firstSections   []imap.UID // answered in full before the cut
	dropped         int
	droppedAt       []imap.UID // first UID of each dropped structure fetch
}

// faultySession is go-imap's server with leanFaults in front of FETCH.
type faultySession struct {
	imapserver.SessionIMAP4rev2
	conn *imapserver.Conn
	lf   *leanFaults
}

func (s *faultySession) Fetch(w *imapserver.FetchWriter, numSet imap.NumSet, options *imap.FetchOptions) error {
	set, _ := numSet.(imap.UIDSet)
	uids, _ := set.Nums()
	lf := s.lf
	lf.mu.Lock()
	defer lf.mu.Unlock()
	whole := len(options.BodySection) == 1 && options.BodySection[0].Specifier == imap.PartSpecifierNone &&
		len(options.BodySection[0].Part) == 0 && options.BodySection[0].Partial == nil
	switch {
	case options.BodyStructure != nil:
		return s.structures(w, uids, options)
	case whole:
		for _, u := range uids {
			lf.whole[u]++
		}
	case len(options.BodySection) > 0 && len(uids) == 1:
		return s.sections(w, uids[0], options)
	}
	return s.SessionIMAP4rev2.Fetch(w, numSet, options)
}

func (s *faultySession) structures(w *imapserver.FetchWriter, uids []imap.UID, options *imap.FetchOptions) error {
	lf := s.lf
	if lf.refuseStructures {
		return &imap.Error{Type: imap.StatusResponseTypeNo, Text: "structures refused by the test"}
	}
	drop := lf.dropped < lf.dropStructures && !slices.Contains(lf.droppedAt, uids[0])
	if drop {
		lf.dropped++
		lf.droppedAt = append(lf.droppedAt, uids[0])
		return s.drop()
	}
	if lf.shrink == 0 && !lf.lfSizes {
		return s.SessionIMAP4rev2.Fetch(w, uidSetOf(uids), options)
	}
	for _, u := range uids {
		raw := lf.raws[u]
		bs := imapserver.ExtractBodyStructure(bytes.NewReader(raw))
		lf.lie(bs, raw, nil)
		mw := w.CreateMessage(uint32(u)) // only appended to: sequence numbers are UIDs
		mw.WriteUID(u)
		mw.WriteInternalDate(fallbackDate)
		mw.WriteRFC822Size(int64(len(raw)))
		mw.WriteBodyStructure(bs)
		if err := mw.Close(); err != nil {
			return err
		}
	}
	return nil
}

// lie changes the sizes of the leaves lean fetching would leave on the
// server.
func (lf *leanFaults) lie(bs imap.BodyStructure, raw []byte, path []int) {
	switch bs := bs.(type) {
	case *imap.BodyStructureMultiPart:
		for i, c := range bs.Children {
			lf.lie(c, raw, append(slices.Clone(path), i+1))
		}
	case *imap.BodyStructureSinglePart:
		if len(path) == 0 || bs.Size < 4096 || bs.Type == "message" || bs.Type == "text" && (bs.Subtype == "plain" || bs.Subtype == "html") {
			return
		}
		if lf.shrink > 0 {
			bs.Size -= lf.shrink
		}
		if lf.lfSizes {
			body := imapserver.ExtractBodySection(bytes.NewReader(raw), &imap.FetchItemBodySection{Part: path})
			bs.Size -= uint32(bytes.Count(body, []byte("\n")))
		}
	}
}

func (s *faultySession) sections(w *imapserver.FetchWriter, uid imap.UID, options *imap.FetchOptions) error {
	lf := s.lf
	lf.sections[uid]++
	lf.sectionFetches++
	items := options.BodySection
	isText := func(it *imap.FetchItemBodySection) bool {
		return it.Specifier == imap.PartSpecifierNone && it.Partial == nil && len(it.Part) > 0
	}
	switch {
	case lf.refuse:
		return &imap.Error{Type: imap.StatusResponseTypeNo, Text: "sections refused by the test"}
	case lf.cutSection > 0 && lf.sectionFetches == lf.cutSection:
		lf.dropped++
		return s.writeRaw(uid, items, func(*imap.FetchItemBodySection) bool { return false }, true)
	case lf.cutSection > 0 && lf.sectionFetches < lf.cutSection:
		lf.firstSections = append(lf.firstSections, uid)
	case lf.omitText:
		options.BodySection = slices.DeleteFunc(slices.Clone(items), isText)
	case lf.nilText:
		return s.writeRaw(uid, items, isText, false)
	}
	return s.SessionIMAP4rev2.Fetch(w, uidSetOf([]imap.UID{uid}), options)
}

// writeRaw answers a section fetch itself, on the wire: go-imap's server
// cannot send NIL for a section, nor stop inside a literal. Each answer is
// flushed when written, so nothing of the server's own is pending. nilFor
// says which sections go as NIL; cut stops half-way through the first
// literal and drops the connection.
func (s *faultySession) writeRaw(uid imap.UID, items []*imap.FetchItemBodySection, nilFor func(*imap.FetchItemBodySection) bool, cut bool) error {
	raw := s.lf.raws[uid]
	var b bytes.Buffer
	fmt.Fprintf(&b, "* %d FETCH (UID %d", uid, uid)
	for _, it := range items {
		b.WriteString(" " + sectionName(it) + " ")
		if nilFor(it) {
			b.WriteString("NIL")
			continue
		}
		data := imapserver.ExtractBodySection(bytes.NewReader(raw), it)
		fmt.Fprintf(&b, "{%d}\r\n", len(data))
		if cut {
			b.Write(data[:len(data)/2])
			s.conn.NetConn().Write(b.Bytes()) //nolint:errcheck // the connection is dropped next
			return s.drop()
		}
		b.Write(data)
	}
	b.WriteString(")\r\n")
	if _, err := s.conn.NetConn().Write(b.Bytes()); err != nil {
		return err
	}
	return nil
}

// drop closes the connection, as a network failure would.
func (s *faultySession) drop() error {
	s.conn.NetConn().Close()
	return &imap.Error{Type: imap.StatusResponseTypeNo, Text: "connection dropped by the test"}
}

func sectionName(it *imap.FetchItemBodySection) string {
	var parts []string
	for _, p := range it.Part {
		parts = append(parts, fmt.Sprint(p))
	}
	if it.Specifier != imap.PartSpecifierNone {
		parts = append(parts, string(it.Specifier))
	}
	name := "BODY[" + strings.Join(parts, ".") + "]"
	if it.Partial != nil {
		name += fmt.Sprintf("<%d>", it.Partial.Offset)
	}
	return name
}

func uidSetOf(uids []imap.UID) imap.UIDSet {
	var set imap.UIDSet
	for _, u := range uids {
		set.AddNum(u)
	}
	return set
}
