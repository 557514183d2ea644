package threading

import (
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"
)

// The cases are the pinned table of the design contract (also in the README's
// Tables section): the live backend computes the same ids.
func TestIDPinned(t *testing.T) {
	tests := []struct {
		subject, from string
		to            []string
		want          string
	}{
		{"Payment Question", "alice@example.com", []string{"cs@myhibachichef.com"}, "thread_f8c88cc24ff7"},
		{"RE: PAYMENT QUESTION", "Alice@Example.com", []string{"CS@myhibachichef.com"}, "thread_f8c88cc24ff7"},
		{"Fwd: RE: Re:  Payment   Question ", "alice@example.com", []string{"cs@myhibachichef.com"}, "thread_f8c88cc24ff7"},
		{"Catering inquiry for wedding", "bob@example.org", []string{"cs@myhibachichef.com", "events@myhibachichef.com"}, "thread_a871a4e934f3"},
		{"", "carol@example.net", nil, "thread_b8d249483c19"},
	}
	for _, tt := range tests {
		if got := ID(tt.subject, tt.from, tt.to); got != tt.want {
			t.Errorf("ID(%q, %q, %q) = %s, want %s", tt.subject, tt.from, tt.to, got, tt.want)
		}
	}
}

func TestNormalizeSubject(t *testing.T) {
	tests := map[string]string{
		"Re: hello":                 "hello",
		"re[2]: hello":              "hello",
		"RE [3] : Fw: FWD: hello":   "hello",
		"  Re:Re:Re:   a \t b\n c ": "a b c",
		"Reply needed":              "reply needed",
		"Fwd hello":                 "fwd hello",
		"Re: ":                      "",
		"Réunion: jeudi":            "réunion: jeudi",
	}
	for in, want := range tests {
		if got := NormalizeSubject(in); got != want {
			t.Errorf("NormalizeSubject(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParticipants(t *testing.T) {
	got := Participants(" B@x.org ", []string{"a@x.org", "b@x.org", ""})
	if want := "a@x.org,b@x.org"; got != want {
		t.Errorf("Participants = %q, want %q", got, want)
	}
}

// TestNormalizeSubjectMatchesThePinnedExpressions compares the hand-written
// NormalizeSubject with the regular expressions the backend uses, on
// subjects built from the pieces that matter.
func TestNormalizeSubjectMatchesThePinnedExpressions(t *testing.T) {
	replyPrefix := regexp.MustCompile(`^\s*(?i:re|fwd|fw)\s*(?:\[\d+\])?\s*:\s*`)
	spaces := regexp.MustCompile(`\s+`)
	pinned := func(s string) string {
		for {
			loc := replyPrefix.FindStringIndex(s)
			if loc == nil {
				break
			}
			s = s[loc[1]:]
		}
		return strings.ToLower(strings.TrimSpace(spaces.ReplaceAllString(s, " ")))
	}
	pieces := []string{"Re", "RE", "re", "Fwd", "FW", "fw", "fWd", "Rex", ":", " ", "\t", "\v", "\u00a0", "[", "]", "2", "12", "[3]",
		"Payment", "question", "Ré", "Fw d", "\r\n", "Aw", "x"}
	r := rand.New(rand.NewPCG(3, 4))
	for range 200000 {
		var b strings.Builder
		for range r.IntN(9) {
			b.WriteString(pieces[r.IntN(len(pieces))])
		}
		s := b.String()
		if got, want := NormalizeSubject(s), pinned(s); got != want {
			t.Fatalf("NormalizeSubject(%q) = %q, the pinned expressions give %q", s, got, want)
		}
	}
}
