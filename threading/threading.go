// Package threading computes the thread id that groups a message with its
// replies and forwards. The algorithm is pinned: the live backend computes the
// same id, so any change here splits existing threads.
package threading

import (
	"crypto/md5"
	"encoding/hex"
	"regexp"
	"slices"
	"strings"
)

// replyPrefix matches one leading "Re:", "FW:", "Fwd[2]:" and the spaces
// around it.
var replyPrefix = regexp.MustCompile(`^\s*(?i:re|fwd|fw)\s*(?:\[\d+\])?\s*:\s*`)

var spaces = regexp.MustCompile(`\s+`)

// NormalizeSubject strips reply and forward prefixes, collapses white space
// and lowercases, so that "RE: Fwd: Payment  question" and "payment question"
// compare equal.
func NormalizeSubject(subject string) string {
	s := subject
	for {
		loc := replyPrefix.FindStringIndex(s)
		if loc == nil {
			break
		}
		s = s[loc[1]:]
	}
	s = spaces.ReplaceAllString(s, " ")
	return strings.ToLower(strings.TrimSpace(s))
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
