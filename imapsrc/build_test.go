package imapsrc

import (
	"encoding/base64"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// TestBuildProvesWhatItElides answers a plan's requests with sections as a
// server would, then as servers that lie or leave out do, and checks that
// build takes only a tree whose elided part ends where the structure says.
func TestBuildProvesWhatItElides(t *testing.T) {
	data := strings.Repeat("0123456789abcdefghi", 3000) // 57000 bytes: whole 76-digit lines
	var enc strings.Builder
	for s := base64.StdEncoding.EncodeToString([]byte(data)); len(s) > 0; {
		n := min(76, len(s))
		enc.WriteString(s[:n] + "\r\n")
		s = s[n:]
	}
	part := enc.String()
	text := "see attached\r\n"
	structure := func(octets int) imap.BodyStructure {
		return &imap.BodyStructureMultiPart{Subtype: "mixed", Children: []imap.BodyStructure{
			&imap.BodyStructureSinglePart{Type: "text", Subtype: "plain", Encoding: "7bit", Size: uint32(len(text))},
			&imap.BodyStructureSinglePart{Type: "application", Subtype: "pdf", Encoding: "base64", Size: uint32(octets)},
		}}
	}
	// answer serves the plan's items from the real part, as a server does:
	// a partial item gets what there is of the range.
	answer := func(plan *leanPart, edit func(*imap.FetchItemBodySection, []byte) []byte) *imapclient.FetchMessageBuffer {
		buf := &imapclient.FetchMessageBuffer{}
		for _, it := range plan.sections() {
			var b []byte
			switch {
			case it.Specifier != imap.PartSpecifierNone:
				b = []byte("Content-Type: x/y\r\n\r\n")
			case it.Part[0] == 1:
				b = []byte(text)
			default:
				end := min(int64(len(part)), it.Partial.Offset+it.Partial.Size)
				b = []byte(part[min(it.Partial.Offset, end):end])
			}
			// A nil answer stands for NIL: FetchBodySection keeps it so.
			buf.BodySection = append(buf.BodySection, imapclient.FetchBodySectionBuffer{Section: it, Bytes: edit(it, b)})
		}
		return buf
	}
	keep := func(_ *imap.FetchItemBodySection, b []byte) []byte { return b }
	isTail := func(it *imap.FetchItemBodySection) bool { return it.Partial != nil }
	isText := func(it *imap.FetchItemBodySection) bool {
		return it.Specifier == imap.PartSpecifierNone && len(it.Part) == 1 && it.Part[0] == 1
	}
	cases := []struct {
		name   string
		octets int // what the structure says
		edit   func(*imap.FetchItemBodySection, []byte) []byte
		ok     bool
	}{
		{"honest server", len(part), keep, true},
		{"part whole lines longer than reported", len(part) - 13*78, keep, false},
		{"part shorter than reported", len(part) + 1000, keep, false},
		{"LF counted, CRLF served", len(part) - strings.Count(part, "\n"), keep, false},
		{"tail sent as NIL", len(part), func(it *imap.FetchItemBodySection, b []byte) []byte {
			if isTail(it) {
				return nil
			}
			return b
		}, false},
		{"text sent as NIL", len(part), func(it *imap.FetchItemBodySection, b []byte) []byte {
			if isText(it) {
				return nil
			}
			return b
		}, false},
		{"text empty", len(part), func(it *imap.FetchItemBodySection, b []byte) []byte {
			if isText(it) {
				return []byte{}
			}
			return b
		}, true},
	}
	for _, c := range cases {
		plan := planLean(structure(c.octets))
		if plan == nil {
			t.Fatalf("%s: not planned lean", c.name)
		}
		tree, ok := plan.build(answer(plan, c.edit))
		if ok != c.ok {
			t.Errorf("%s: build ok %v, want %v", c.name, ok, c.ok)
			continue
		}
		if ok && c.name == "honest server" && tree.Parts[1].Size != int64(len(data)) {
			t.Errorf("%s: size %d, want %d", c.name, tree.Parts[1].Size, len(data))
		}
	}
}

// TestBuildProvesSevenBitSizes checks that a 7bit part, whose size is its
// length, is taken only when its last byte is where the structure says.
func TestBuildProvesSevenBitSizes(t *testing.T) {
	log := strings.Repeat("2026-03-01 INFO ok\r\n", 1000)
	for _, c := range []struct {
		octets int
		ok     bool
	}{{len(log), true}, {len(log) - 1000, false}, {len(log) + 1, false}, {len(log) - strings.Count(log, "\n"), false}} {
		plan := planLean(&imap.BodyStructureMultiPart{Subtype: "mixed", Children: []imap.BodyStructure{
			&imap.BodyStructureSinglePart{Type: "text", Subtype: "plain", Encoding: "7bit", Size: 4},
			&imap.BodyStructureSinglePart{Type: "application", Subtype: "octet-stream", Encoding: "7bit", Size: uint32(c.octets)},
		}})
		buf := &imapclient.FetchMessageBuffer{}
		for _, it := range plan.sections() {
			b := []byte("Content-Type: x/y\r\n\r\n")
			if it.Partial != nil {
				end := min(int64(len(log)), it.Partial.Offset+it.Partial.Size)
				b = []byte(log[min(it.Partial.Offset, end):end])
			} else if it.Specifier == imap.PartSpecifierNone {
				b = []byte("text")
			}
			buf.BodySection = append(buf.BodySection, imapclient.FetchBodySectionBuffer{Section: it, Bytes: b})
		}
		tree, ok := plan.build(buf)
		if ok != c.ok {
			t.Errorf("structure says %d of %d bytes: build ok %v, want %v", c.octets, len(log), ok, c.ok)
		}
		if ok && tree.Parts[1].Size != int64(len(log)) {
			t.Errorf("size %d, want %d", tree.Parts[1].Size, len(log))
		}
	}
}
