package message

import (
	"strings"
	"testing"
)

// TestLenientAddressesKeepWhatTheHeaderSays covers address lists net/mail
// refuses, as real spam and old list mail write them: what is recovered is
// an address from the header, never one with its local part trimmed away.
func TestLenientAddressesKeepWhatTheHeaderSays(t *testing.T) {
	for _, c := range []struct{ header, want string }{
		{"To: <....@dogma.slashnull.org>", "....@dogma.slashnull.org"},
		{"To: <.0.@webnote.net>", ".0.@webnote.net"},
		{"To: karsten@web.de.", "karsten@web.de"},
		{"To: <C:`Bulk.Adz.txt@dogma.slashnull.org>", "C:`Bulk.Adz.txt@dogma.slashnull.org"},
		{"To: a@b.example, <@>, c@d.example", "a@b.example c@d.example"},
	} {
		m := parse(t, "From: x@y.example\n"+c.header+"\nSubject: s\n\nbody\n")
		if got := joinSpace(m.To); got != c.want {
			t.Errorf("%s: To = %q, want %q", c.header, got, c.want)
		}
	}
}

func joinSpace(list []string) string { return strings.Join(list, " ") }
