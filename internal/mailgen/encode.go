package mailgen

import (
	"bytes"
	"encoding/base64"
	"mime/quotedprintable"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/charmap"
	"golang.org/x/text/encoding/japanese"
)

// charset is a MIME charset the generator really encodes text in.
type charset struct {
	name   string // canonical lowercase MIME name
	labels []string
	cm     *charmap.Charmap  // single-byte charsets
	enc    encoding.Encoding // multi-byte charsets other than UTF-8
}

var (
	csUTF8     = &charset{name: "utf-8", labels: []string{"utf-8", "UTF-8", "utf-8", "UTF-8"}}
	csLatin1   = &charset{name: "iso-8859-1", labels: []string{"iso-8859-1", "ISO-8859-1"}, cm: charmap.ISO8859_1}
	csLatin9   = &charset{name: "iso-8859-15", labels: []string{"iso-8859-15", "ISO-8859-15"}, cm: charmap.ISO8859_15}
	csWin1252  = &charset{name: "windows-1252", labels: []string{"windows-1252", "Windows-1252"}, cm: charmap.Windows1252}
	csKOI8R    = &charset{name: "koi8-r", labels: []string{"koi8-r", "KOI8-R"}, cm: charmap.KOI8R}
	csShiftJIS = &charset{name: "shift_jis", labels: []string{"shift_jis", "Shift_JIS"}, enc: japanese.ShiftJIS}
)

// encode converts UTF-8 text to the charset. ok is false when a character
// cannot be represented, so the caller can fall back to UTF-8 as real mail
// clients do.
func (c *charset) encode(s string) (b []byte, ok bool) {
	switch {
	case c.cm != nil:
		b = make([]byte, 0, len(s))
		for _, r := range s {
			if r < utf8.RuneSelf {
				b = append(b, byte(r))
				continue
			}
			x, ok := c.cm.EncodeRune(r)
			if !ok {
				return nil, false
			}
			b = append(b, x)
		}
		return b, true
	case c.enc != nil:
		out, err := c.enc.NewEncoder().Bytes([]byte(s))
		return out, err == nil
	default:
		return []byte(s), true
	}
}

// canEncode reports whether every character of s exists in the charset.
func (c *charset) canEncode(s string) bool {
	if c.cm != nil {
		for _, r := range s {
			if r >= utf8.RuneSelf {
				if _, ok := c.cm.EncodeRune(r); !ok {
					return false
				}
			}
		}
		return true
	}
	_, ok := c.encode(s)
	return ok
}

// charLen returns the byte length of the encoded character at the start of b,
// so that encoded words are never split inside a character (RFC 2047 5.3).
func (c *charset) charLen(b []byte) int {
	switch {
	case c.cm != nil:
		return 1
	case c == csShiftJIS:
		if x := b[0]; (x >= 0x81 && x <= 0x9f) || (x >= 0xe0 && x <= 0xfc) {
			return min(2, len(b))
		}
		return 1
	default:
		_, n := utf8.DecodeRune(b)
		return n
	}
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// encodedWords writes text as RFC 2047 encoded words in the given charset and
// encoding ('B' or 'Q'), each at most 75 characters, separated by a folding
// CRLF SP. The Q form escapes everything outside the small set RFC 2047 5(3)
// allows in a phrase, so the result is safe in display names too.
func encodedWords(dst *bytes.Buffer, label string, b []byte, cs *charset, q bool) {
	kind := "?B?"
	if q {
		kind = "?Q?"
	}
	overhead := len("=?") + len(label) + len(kind) + len("?=")
	budget := 75 - overhead
	first := true
	for len(b) > 0 {
		// Take whole characters until the word is full.
		n, width := 0, 0
		for n < len(b) {
			cl := cs.charLen(b[n:])
			w := 0
			if q {
				for _, x := range b[n : n+cl] {
					if qSafe(x) {
						w++
					} else {
						w += 3
					}
				}
				if width+w > budget {
					break
				}
			} else if (n+cl+2)/3*4 > budget {
				break
			}
			n += cl
			width += w
		}
		if n == 0 { // a single character wider than a word cannot happen with these charsets
			n = cs.charLen(b)
		}
		if !first {
			dst.WriteString("\r\n ")
		}
		first = false
		dst.WriteString("=?")
		dst.WriteString(label)
		dst.WriteString(kind)
		if q {
			for _, x := range b[:n] {
				switch {
				case x == ' ':
					dst.WriteByte('_')
				case qSafe(x):
					dst.WriteByte(x)
				default:
					dst.WriteByte('=')
					dst.WriteByte(upperHex[x>>4])
					dst.WriteByte(upperHex[x&15])
				}
			}
		} else {
			dst.Write(base64.StdEncoding.AppendEncode(dst.AvailableBuffer(), b[:n]))
		}
		dst.WriteString("?=")
		b = b[n:]
	}
}

const upperHex = "0123456789ABCDEF"

// qSafe reports whether a byte may stay literal in a Q-encoded word used in a
// phrase (RFC 2047 section 5, rule 3). Space is handled separately as "_".
func qSafe(x byte) bool {
	return x == ' ' || (x >= 'a' && x <= 'z') || (x >= 'A' && x <= 'Z') || (x >= '0' && x <= '9') ||
		x == '!' || x == '*' || x == '+' || x == '-' || x == '/'
}

// quotePhrase returns a display name as an atom sequence, or as a quoted
// string when it contains specials such as the comma in "Smith, John".
func quotePhrase(s string) string {
	if !strings.ContainsAny(s, "()<>[]:;@\\,.\"") {
		return s
	}
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		if s[i] == '"' || s[i] == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	b.WriteByte('"')
	return b.String()
}

// rfc2231Value percent-encodes an extended parameter value (RFC 2231 section
// 4), for instance UTF-8”Rechnung%20M%C3%A4rz.pdf.
func rfc2231Value(label string, b []byte) string {
	var out strings.Builder
	out.WriteString(label)
	out.WriteString("''")
	for _, x := range b {
		if (x >= 'a' && x <= 'z') || (x >= 'A' && x <= 'Z') || (x >= '0' && x <= '9') ||
			x == '-' || x == '.' || x == '_' || x == '~' {
			out.WriteByte(x)
			continue
		}
		out.WriteByte('%')
		out.WriteByte(upperHex[x>>4])
		out.WriteByte(upperHex[x&15])
	}
	return out.String()
}

// writeQP writes text (LF line ends) as quoted-printable with CRLF line ends.
func writeQP(dst *bytes.Buffer, text []byte) {
	w := quotedprintable.NewWriter(dst)
	w.Write(text) //nolint:errcheck // bytes.Buffer cannot fail
	w.Close()     //nolint:errcheck
	endLine(dst)
}

// endLine ends a part body with CRLF unless it already does; the CRLF before
// the next boundary belongs to the boundary.
func endLine(dst *bytes.Buffer) {
	if !bytes.HasSuffix(dst.Bytes(), []byte("\r\n")) {
		dst.WriteString("\r\n")
	}
}

// write8bit writes text (LF line ends) unchanged except for CRLF line ends.
func write8bit(dst *bytes.Buffer, text []byte) {
	for len(text) > 0 {
		i := bytes.IndexByte(text, '\n')
		if i < 0 {
			dst.Write(text)
			break
		}
		dst.Write(text[:i])
		dst.WriteString("\r\n")
		text = text[i+1:]
	}
	endLine(dst)
}

// b64Lines writes base64 in lines of 76 characters (57 input bytes) with
// CRLF, as MIME requires.
type b64Lines struct {
	dst  *bytes.Buffer
	pend [57]byte
	n    int
}

func (w *b64Lines) Write(p []byte) {
	for len(p) > 0 {
		if w.n == 0 && len(p) >= 57 {
			// Encode whole lines straight from p.
			full := len(p) / 57 * 57
			w.encodeLines(p[:full])
			p = p[full:]
			continue
		}
		c := copy(w.pend[w.n:], p)
		w.n += c
		p = p[c:]
		if w.n == 57 {
			w.encodeLines(w.pend[:])
			w.n = 0
		}
	}
}

func (w *b64Lines) encodeLines(p []byte) {
	lines := len(p) / 57
	w.dst.Grow(lines * 78)
	out := w.dst.AvailableBuffer()[:lines*78]
	for i := range lines {
		base64.StdEncoding.Encode(out[i*78:i*78+76], p[i*57:(i+1)*57])
		out[i*78+76] = '\r'
		out[i*78+77] = '\n'
	}
	w.dst.Write(out)
}

// Close encodes the last partial line with padding.
func (w *b64Lines) Close() {
	if w.n > 0 {
		var line [76]byte
		m := base64.StdEncoding.EncodedLen(w.n)
		base64.StdEncoding.Encode(line[:m], w.pend[:w.n])
		w.dst.Write(line[:m])
		w.dst.WriteString("\r\n")
		w.n = 0
	}
}
