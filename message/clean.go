package message

import (
	"strings"
	"unicode/utf8"
)

// CleanText makes s acceptable to PostgreSQL as text: NUL bytes are removed
// and every byte that is not part of a valid UTF-8 sequence becomes U+FFFD.
// Valid text is returned unchanged and without copying.
func CleanText(s string) string {
	out, _ := clean(s)
	return out
}

// clean is CleanText that also reports whether s had to change.
func clean(s string) (string, bool) {
	if strings.IndexByte(s, 0) < 0 && utf8.ValidString(s) {
		return s, false
	}
	var b strings.Builder
	b.Grow(len(s) + 16)
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c != 0 {
				b.WriteByte(c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b.WriteRune(utf8.RuneError)
		} else {
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String(), true
}

// cleanBytes is CleanText for a byte slice.
func cleanBytes(b []byte) string {
	return CleanText(string(b))
}

// cleanAll cleans every element of list in place and drops empty ones, so
// that a text[] column never holds NUL bytes, invalid UTF-8 or "".
func cleanAll(list []string) []string {
	out := list[:0]
	for _, s := range list {
		if s = strings.TrimSpace(CleanText(s)); s != "" {
			out = append(out, s)
		}
	}
	return out
}
