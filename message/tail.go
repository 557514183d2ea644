package message

import "bytes"

// Base64Size works out the decoded size of a base64 part of octets bytes
// from its last bytes alone, so that an attachment's size is known without
// downloading it. Encoders write lines of one length L (76 in MIME, 57-byte
// groups) but the last: the tail shows L and the last line, and the whole
// part must then be a whole number of L-digit lines plus that last line.
// tail must be the part's last bytes (all of them for a small part) and hold
// at least two whole lines before the last. ok is false whenever the tail
// does not prove the size; the caller then needs the content itself. The
// size agrees with what Parse reports for the whole part. octets must be
// the part's true length, not a server's word for it: a server that counts
// it short by whole lines makes a tail from the middle look like the end
// (imapsrc proves it by asking for one byte past the end).
func Base64Size(octets int64, tail []byte) (size int64, ok bool) {
	if int64(len(tail)) > octets {
		return 0, false
	}
	if int64(len(tail)) == octets {
		digits, junk := base64Digits(tail)
		return base64Len(digits), junk == 0
	}
	// Trailing line breaks and blanks after the last digits.
	end := len(tail)
	for end > 0 && isBlank(tail[end-1]) {
		end--
	}
	body := tail[:end]
	trail := int64(len(tail) - end)
	nl := bytes.LastIndexByte(body, '\n')
	if nl < 0 {
		return 0, false
	}
	last := body[nl+1:]
	sep := 1 // LF, or CRLF
	if nl > 0 && body[nl-1] == '\r' {
		sep = 2
	}
	// The last line: digits, then at most two '='.
	pad := 0
	for pad < len(last) && pad < 2 && last[len(last)-1-pad] == '=' {
		pad++
	}
	if len(last) == 0 || !allDigits(last[:len(last)-pad]) {
		return 0, false
	}
	// The whole lines before it: the first (partial) line in the tail is
	// skipped, and at least two whole ones are needed to trust their length.
	lines := bytes.Split(body[:nl+1], []byte("\n"))
	lines = lines[:len(lines)-1] // the empty rest after the last line break
	if len(lines) < 3 {
		return 0, false
	}
	whole := lines[1:]
	width := -1
	for _, l := range whole {
		if sep == 2 {
			if len(l) == 0 || l[len(l)-1] != '\r' {
				return 0, false
			}
			l = l[:len(l)-1]
		}
		if width < 0 {
			width = len(l)
		}
		if len(l) != width || width == 0 || !allDigits(l) {
			return 0, false
		}
	}
	if len(last) > width {
		return 0, false
	}
	before := octets - trail - int64(len(last))
	step := int64(width + sep)
	if before < 0 || before%step != 0 {
		return 0, false
	}
	digits := before/step*int64(width) + int64(len(last)-pad)
	return digits * 3 / 4, true
}

func isBlank(c byte) bool { return c == '\r' || c == '\n' || c == ' ' || c == '\t' }

func allDigits(b []byte) bool {
	for _, c := range b {
		if base64Alphabet[c] == 0 {
			return false
		}
	}
	return true
}
