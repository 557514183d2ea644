package threading

import "testing"

// The cases are DESIGN.md's pinned table: the live backend must agree.
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
