package message

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// sectionsOf cuts raw into the sections an IMAP server would serve for it,
// as lean fetching asks for them: headers, text parts whole, and base64
// attachments elided with their size worked out from their last 512 bytes.
// The structure is Parse's own reading of the message, standing in for the
// server's BODYSTRUCTURE.
func sectionsOf(raw []byte) *Section {
	p := &parser{}
	root := p.parseEntity(raw, "", "text/plain", 0, true)
	head, _, _ := splitHeader(raw, true)
	return toSection(root, append(bytes.Clone(head), "\r\n"...))
}

func toSection(e *entity, header []byte) *Section {
	s := &Section{MediaType: e.mediaType, Header: header}
	if len(e.children) > 0 {
		for _, c := range e.children {
			h := []byte("\r\n")
			if len(c.header) > 0 {
				var b bytes.Buffer
				for name, values := range c.header {
					for _, v := range values {
						b.WriteString(name + ": " + v + "\r\n")
					}
				}
				h = append(b.Bytes(), "\r\n"...)
			}
			s.Parts = append(s.Parts, toSection(c, h))
		}
		return s
	}
	if e.mediaType != "text/plain" && e.mediaType != "text/html" && e.transferEncoding() == "base64" && len(e.body) > 600 && regularBase64(e.body) {
		s.Elided = true
		s.Size, _ = Base64Size(int64(len(e.body)), e.body[len(e.body)-512:])
		if s.Size == 0 {
			s.Size = -1
		}
		return s
	}
	s.Body = e.body
	return s
}

// regularBase64 reports whether b is what base64 encoders write: lines of
// one length, digits only, but for a shorter last line with its padding.
// That is what Base64Size assumes of the part it sees only the end of; a
// part whose middle breaks the pattern while its end keeps it can get a
// size a few bytes off, and only such a part.
func regularBase64(b []byte) bool {
	lines := strings.Split(strings.TrimRight(string(b), "\r\n"), "\n")
	width := -1
	for i, l := range lines {
		l = strings.TrimSuffix(l, "\r")
		last := i == len(lines)-1
		if last {
			l = strings.TrimRight(l, "=")
		}
		if !allDigits([]byte(l)) {
			return false
		}
		switch {
		case width < 0:
			width = len(l)
		case !last && len(l) != width, last && len(l) > width:
			return false
		}
	}
	return width > 0
}

// checkSectionsAgree is the property lean fetching rests on: whenever
// ParseSections accepts a message's sections, its row is the one Parse
// makes from the whole message.
func checkSectionsAgree(t testing.TB, raw []byte) (accepted bool) {
	t.Helper()
	meta := Meta{UID: 7, UIDValidity: 3, Size: int64(len(raw))}
	whole := Parse(raw, meta)
	if len(whole.Warnings) > 0 {
		return false // damage Parse sees only in the whole message
	}
	lean, ok := ParseSections(sectionsOf(raw), meta)
	if !ok {
		return false
	}
	lean.Warnings, whole.Warnings = nil, nil
	a, _ := json.Marshal(whole)
	b, _ := json.Marshal(lean)
	if !bytes.Equal(a, b) {
		t.Errorf("ParseSections disagrees with Parse\nwhole: %s\nlean:  %s", a, b)
	}
	return true
}

func TestParseSectionsAgreesWithParse(t *testing.T) {
	msgs := raceSample(t, realWorldMail(t), 10)
	accepted := 0
	for _, msg := range msgs {
		t.Run(msg.Source+"/"+msg.Name, func(t *testing.T) {
			if checkSectionsAgree(t, bytes.ReplaceAll(msg.Raw, []byte("\n"), []byte("\r\n"))) {
				accepted++
			}
		})
	}
	realAccepted := accepted
	pdf := strings.Repeat("JVBERi0xLjcKJeLjz9MKMSAwIG9iago8PCAvVHlwZSAvQ2F0YWxvZyA+PgplbmRvYmoK", 40)
	var lines strings.Builder
	for len(pdf) > 0 {
		n := min(76, len(pdf))
		lines.WriteString(pdf[:n] + "\r\n")
		pdf = pdf[n:]
	}
	for _, raw := range []string{
		"From: a@x\r\nMessage-ID: <1@x>\r\nSubject: s\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n--b\r\nContent-Type: application/pdf; name=\"a b.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\n" + lines.String() + "--b--\r\n",
		"From: a@x\r\nMessage-ID: <2@x>\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: multipart/alternative; boundary=c\r\n\r\n--c\r\nContent-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nK=F6ln\r\n--c\r\nContent-Type: text/html\r\n\r\n<b>K&ouml;ln</b>\r\n--c--\r\n--b\r\nContent-Type: image/png\r\nContent-Disposition: inline; filename*=utf-8''%C3%A9.png\r\nContent-Transfer-Encoding: base64\r\n\r\n" + lines.String() + "--b--\r\n",
	} {
		if !checkSectionsAgree(t, []byte(raw)) {
			t.Errorf("a well-formed message with an attachment was not accepted as sections:\n%s", raw[:200])
		}
		accepted++
	}
	t.Logf("%d of %d messages accepted as sections, each equal to Parse's row", accepted, len(msgs)+2)
	// realWorldMail sees to the corpus's size; this, to what the test
	// proves on it. 89% of the real messages were accepted when this was
	// written (6,015 of 6,728): far fewer means ParseSections turns down
	// what it used to read, and lean fetching falls back to downloading
	// those messages whole.
	const minShare = 0.8
	if len(msgs) > 0 && float64(realAccepted) < minShare*float64(len(msgs)) {
		t.Errorf("only %d of %d real messages accepted as sections, want at least %.0f%%", realAccepted, len(msgs), 100*minShare)
	}
}
