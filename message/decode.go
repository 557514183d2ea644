package message

import (
	"bytes"
	"encoding/base64"
	"strings"
)

// Content-Transfer-Encoding is undone here, leniently: invalid base64
// characters are skipped and malformed quoted-printable escapes are kept
// literally, as mail clients do, so a damaged part still yields its text.

// decodeTransfer undoes e's Content-Transfer-Encoding.
func (p *parser) decodeTransfer(e *entity) []byte {
	switch cte := e.transferEncoding(); cte {
	case "base64":
		if !looksLikeBase64(e.body) {
			if n := base64Prefix(e.body); n > 0 {
				// A mailing list appended its footer to the base64.
				out, junk, truncated := decodeBase64(e.body[:n])
				p.base64Warnings(e, junk, truncated)
				p.warnf(e.id, "base64 content followed by text (a list footer?); text kept as is")
				return append(out, e.body[n:]...)
			}
			p.warnf(e.id, "declared base64 but is not; content kept as is")
			return e.body
		}
		out, junk, truncated := decodeBase64(e.body)
		p.base64Warnings(e, junk, truncated)
		return out
	case "quoted-printable":
		return decodeQP(e.body)
	case "", "7bit", "8bit", "binary":
		return e.body
	default:
		p.warnf(e.id, "unknown Content-Transfer-Encoding %q; content kept as is", truncate(cte, 40))
		return e.body
	}
}

// decodedSize is the size of e's content once its transfer encoding is
// undone, computed without keeping the decoded bytes.
func (p *parser) decodedSize(e *entity) int64 {
	if e.elided {
		return e.size
	}
	switch e.transferEncoding() {
	case "base64":
		size, junk, truncated := base64Size(e.body)
		p.base64Warnings(e, junk, truncated)
		return size
	case "quoted-printable":
		return int64(len(decodeQP(e.body)))
	}
	return int64(len(e.body))
}

func (p *parser) base64Warnings(e *entity, junk int, truncated bool) {
	if junk > 0 {
		p.warnf(e.id, "base64 content has %d invalid bytes (skipped)", junk)
	}
	if truncated {
		p.warnf(e.id, "base64 content truncated")
	}
}

// base64Alphabet is 1 for the 64 base64 digits, 0 for every other byte.
var base64Alphabet [256]byte

func init() {
	const digits = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	for i := 0; i < len(digits); i++ {
		base64Alphabet[digits[i]] = 1
	}
}

// base64Digits counts the base64 digits in b, and the bytes that are
// neither digits, white space nor final padding. Every 4 digits are 3
// bytes; a final 2 or 3 digits are 1 or 2 bytes; a single leftover digit
// carries no whole byte: see base64Len. Padding before a digit, which
// separately encoded chunks have, counts as junk here, because the size is
// then not base64Len(digits): base64Size and decodeBase64 read such text
// chunk by chunk.
//
// This runs over every attachment, so it is tuned: one table look-up per
// byte in four independent sums, and the expected non-digits counted with
// bytes.Count, which is vectorised.
func base64Digits(b []byte) (digits, junk int) {
	digits, junk = countBase64(b)
	return digits, junk + innerPadding(b)
}

func countBase64(b []byte) (digits, junk int) {
	var n0, n1, n2, n3 int
	rest := b
	for len(rest) >= 4 {
		n0 += int(base64Alphabet[rest[0]])
		n1 += int(base64Alphabet[rest[1]])
		n2 += int(base64Alphabet[rest[2]])
		n3 += int(base64Alphabet[rest[3]])
		rest = rest[4:]
	}
	for _, c := range rest {
		n0 += int(base64Alphabet[c])
	}
	digits = n0 + n1 + n2 + n3
	junk = len(b) - digits
	if junk > 0 {
		for _, c := range []byte(base64Blanks) {
			junk -= bytes.Count(b, []byte{c})
		}
	}
	return digits, junk
}

// innerPadding counts the "=" in b that come before its last digit. It
// looks at the end of b only unless b has padding in it.
func innerPadding(b []byte) int {
	first := bytes.IndexByte(b, '=')
	if first < 0 {
		return 0
	}
	last := len(b) - 1
	for last > first && base64Alphabet[b[last]] == 0 {
		last--
	}
	return bytes.Count(b[first:last], []byte("="))
}

// base64Blanks are the non-digits base64 text carries legitimately.
const base64Blanks = "\r\n= \t"

// base64Len is the number of bytes that digits base64 digits decode to.
func base64Len(digits int) int64 { return int64(digits) * 3 / 4 }

// base64Size is the decoded size of base64 text, with its junk count and
// whether a chunk ended one digit into a group (a truncated part).
func base64Size(b []byte) (size int64, junk int, truncated bool) {
	digits, junk := countBase64(b)
	if innerPadding(b) == 0 {
		return base64Len(digits), junk, digits%4 == 1
	}
	for _, n := range base64Chunks(b) {
		size += base64Len(n)
		truncated = truncated || n%4 == 1
	}
	return size, junk, truncated
}

// base64Chunks returns the digit counts of the separately padded chunks of
// b: each run of "=" ends one. A "=" after a whole group of four is noise
// and ends nothing.
func base64Chunks(b []byte) []int {
	var chunks []int
	n := 0
	for _, c := range b {
		switch {
		case base64Alphabet[c] == 1:
			n++
		case c == '=' && n%4 != 0:
			chunks = append(chunks, n)
			n = 0
		}
	}
	if n > 0 {
		chunks = append(chunks, n)
	}
	return chunks
}

// decodeBase64 decodes base64 text, skipping any byte that is not a base64
// digit, chunk by chunk when it is made of separately padded chunks. It
// reports junk and truncation as base64Size does, and the result has
// exactly base64Size(b) bytes.
func decodeBase64(b []byte) (out []byte, junk int, truncated bool) {
	clean := make([]byte, 0, len(b))
	for _, c := range b {
		if base64Alphabet[c] == 1 {
			clean = append(clean, c)
		} else if strings.IndexByte(base64Blanks, c) < 0 {
			junk++
		}
	}
	chunks := []int{len(clean)}
	if innerPadding(b) > 0 {
		chunks = base64Chunks(b)
	}
	out = make([]byte, 0, base64.RawStdEncoding.DecodedLen(len(clean)))
	for _, n := range chunks {
		chunk := clean[:n]
		clean = clean[n:]
		if n%4 == 1 {
			truncated = true
			chunk = chunk[:n-1]
		}
		// After the clean-up above only the final digit's unused low bits
		// can be wrong, which the non-strict decoder ignores: no error is
		// possible.
		m, _ := base64.RawStdEncoding.Decode(out[len(out):cap(out)], chunk)
		out = out[:len(out)+m]
	}
	return out, junk, truncated
}

// base64Prefix returns the length of the base64 block that b starts with
// when text follows it, 0 when there is none. The block is the lines of
// nothing but base64 digits from the first, up to a line that ends in
// padding, an empty line or a line with anything else. Its first line must
// be as long as encoders write them (60 to 76 digits), so that a text that
// starts with one word on a line ("Hello") is not taken for base64.
func base64Prefix(b []byte) int {
	if i := bytes.IndexAny(b, "\r\n"); i < 40 {
		return 0
	}
	end, lines := 0, 0
	for end < len(b) {
		next := len(b)
		if i := bytes.IndexByte(b[end:], '\n'); i >= 0 {
			next = end + i + 1
		}
		line := bytes.TrimRight(b[end:next], " \t\r\n")
		padded := bytes.HasSuffix(line, []byte("="))
		if len(line) == 0 || !allDigits(bytes.TrimRight(line, "=")) {
			break
		}
		end, lines = next, lines+1
		if padded {
			break
		}
	}
	if lines == 0 || end == len(b) || len(bytes.TrimSpace(b[end:])) == 0 {
		return 0
	}
	return end
}

// looksLikeBase64 tells base64 from text mislabelled as base64, which
// decodes to garbage: base64 lines carry no spaces and few other strangers.
// Only text parts are checked; an attachment's size is counted either way.
func looksLikeBase64(b []byte) bool {
	_, junk := countBase64(b)
	junk += bytes.Count(b, []byte(" "))
	return junk < 4 || junk*20 <= len(b)
}

// decodeQP decodes quoted-printable text (RFC 2045 section 6.7): "=XX" is a
// byte, "=" at the end of a line joins it to the next, white space at the end
// of a line is transport padding. Any other "=" is kept as it is. Line
// breaks are kept as sent.
func decodeQP(b []byte) []byte {
	out := make([]byte, 0, len(b))
	for len(b) > 0 {
		line, br := b, ""
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b, br = b[:i], b[i+1:], "\n"
			if i > 0 && line[i-1] == '\r' {
				line, br = line[:i-1], "\r\n"
			}
		} else {
			b = nil
		}
		for len(line) > 0 && (line[len(line)-1] == ' ' || line[len(line)-1] == '\t') {
			line = line[:len(line)-1]
		}
		soft := len(line) > 0 && line[len(line)-1] == '='
		if soft {
			line = line[:len(line)-1]
		}
		for len(line) > 0 {
			i := bytes.IndexByte(line, '=')
			if i < 0 {
				out = append(out, line...)
				break
			}
			out = append(out, line[:i]...)
			if i+2 < len(line) && isHex(line[i+1]) && isHex(line[i+2]) {
				out = append(out, unhex(line[i+1])<<4|unhex(line[i+2]))
				line = line[i+3:]
			} else {
				out = append(out, '=')
				line = line[i+1:]
			}
		}
		if !soft {
			out = append(out, br...)
		}
	}
	return out
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	}
	return c - 'a' + 10
}
