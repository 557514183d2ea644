// Package threading computes the thread id that groups a message with its
// replies and forwards. The algorithm is pinned: the live backend computes the
// same id, so any change here splits existing threads.
package threading

import (
	"crypto/md5"
	"encoding/hex"
	"slices"
	"strings"
)

// NormalizeSubject strips reply and forward prefixes, collapses white space
// and lowercases, so that "RE: Fwd: Payment  question" and "payment question"
// compare equal. It is the pinned algorithm, which the backend writes with
// regular expressions: a leading `\s*(?i:re|fwd|fw)\s*(?:\[\d+\])?\s*:\s*`
// removed until none is left, then `\s+` replaced by one space (\s being
// ASCII white space), then trimmed and lowercased. It is written out by hand
// because it runs for every message; a test holds it to the expressions.
func NormalizeSubject(subject string) string {
	s := subject
	for {
		n := replyPrefixLen(s)
		if n == 0 {
			break
		}
		s = s[n:]
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); {
		if !isSpace(s[i]) {
			b.WriteByte(s[i])
			i++
			continue
		}
		b.WriteByte(' ')
		for i < len(s) && isSpace(s[i]) {
			i++
		}
	}
	return strings.ToLower(strings.TrimSpace(b.String()))
}

// isSpace is RE2's \s: ASCII white space without \v.
func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\f' || c == '\r'
}

// replyPrefixLen returns the length of a reply or forward prefix at the
// start of s, 0 when there is none.
func replyPrefixLen(s string) int {
	i := skipSpace(s, 0)
	for _, word := range []string{"re", "fwd", "fw"} {
		if len(s)-i < len(word) || !strings.EqualFold(s[i:i+len(word)], word) {
			continue
		}
		j := skipSpace(s, i+len(word))
		if j < len(s) && s[j] == '[' {
			k := j + 1
			for k < len(s) && s[k] >= '0' && s[k] <= '9' {
				k++
			}
			if k > j+1 && k < len(s) && s[k] == ']' {
				j = skipSpace(s, k+1)
			}
		}
		if j < len(s) && s[j] == ':' {
			return skipSpace(s, j+1)
		}
	}
	return 0
}

func skipSpace(s string, i int) int {
	for i < len(s) && isSpace(s[i]) {
		i++
	}
	return i
}

// Participants returns the From and To addresses trimmed, lowercased,
// de-duplicated, sorted and joined with ",". Cc is deliberately not part of
// it: the pinned algorithm ignores it.
func Participants(from string, to []string) string {
	all := make([]string, 0, len(to)+1)
	for _, a := range append([]string{from}, to...) {
		a = strings.ToLower(strings.TrimSpace(a))
		if a != "" {
			all = append(all, a)
		}
	}
	slices.Sort(all)
	return strings.Join(slices.Compact(all), ",")
}

// ID returns "thread_" followed by the first 12 hex digits of
// md5(normalised subject + "|" + participants).
func ID(subject, from string, to []string) string {
	sum := md5.Sum([]byte(NormalizeSubject(subject) + "|" + Participants(from, to)))
	return "thread_" + hex.EncodeToString(sum[:])[:12]
}
