package realmail

import (
	"strings"
	"testing"
)

func TestSplit(t *testing.T) {
	mbox := "From a@x  Mon Jan  1 00:00:00 2024\nFrom: a@x\nSubject: one\n\nbody\n>From here on\n>>From there\n\n" +
		"From b@x  Mon Jan  1 00:00:00 2024\r\nFrom: b@x\r\n\r\nFrom the start, not a separator\r\n"
	got := Split([]byte(mbox))
	want := []string{
		"From: a@x\nSubject: one\n\nbody\nFrom here on\n>From there\n",
		"From: b@x\r\n\r\nFrom the start, not a separator\r\n",
	}
	if len(got) != len(want) {
		t.Fatalf("Split gave %d messages, want %d: %q", len(got), len(want), got)
	}
	for i := range want {
		if string(got[i]) != want[i] {
			t.Errorf("message %d = %q, want %q", i, got[i], want[i])
		}
	}
	if got := Split([]byte("From: a@x\n\n>From x\n")); len(got) != 1 || string(got[0]) != "From: a@x\n\n>From x\n" {
		t.Errorf("a single message changed: %q", got)
	}
}

func TestLooksLikeMail(t *testing.T) {
	for raw, want := range map[string]bool{
		"From: a@x\n\nhi":                        true,
		"Received: by x\r\nSubject: s\r\n\r\nhi": true,
		"X-Custom: 1\nTo: b@y\n\n":               true,
		"-----BEGIN RSA PRIVATE KEY-----\nabc":   false,
		"X-Custom: 1\nX-Other: 2\n\nFrom: a@x":   false,
		"just text\nFrom: a@x\n":                 false,
		"":                                       false,
	} {
		if got := LooksLikeMail([]byte(raw)); got != want {
			t.Errorf("LooksLikeMail(%q) = %v, want %v", strings.SplitN(raw, "\n", 2)[0], got, want)
		}
	}
}

// TestLoad reads the fetched corpus and reports what each source gave.
func TestLoad(t *testing.T) {
	msgs := Load(t, 1000)
	for _, m := range msgs {
		if !LooksLikeMail(m.Raw) || m.Source == "" || m.Name == "" {
			t.Fatalf("%s/%s: not a message", m.Source, m.Name)
		}
	}
}
