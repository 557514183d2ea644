package imapsrc

import (
	"slices"
	"testing"
)

func TestGreetingCaps(t *testing.T) {
	for _, tt := range []struct {
		greeting string
		caps     []string // nil: the greeting lists none
	}{
		{"* OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ STARTTLS AUTH=PLAIN] Dovecot ready.\r\n",
			[]string{"IMAP4REV1", "SASL-IR", "LOGIN-REFERRALS", "ID", "ENABLE", "IDLE", "LITERAL+", "STARTTLS", "AUTH=PLAIN"}},
		{"* OK [CAPABILITY IMAP4rev1 IMAP4rev2 AUTH=PLAIN] IMAP server ready\r\n", []string{"IMAP4REV1", "IMAP4REV2", "AUTH=PLAIN"}},
		{"* ok [capability imap4rev1 starttls] hi\r\n", []string{"IMAP4REV1", "STARTTLS"}},
		{"* PREAUTH [CAPABILITY IMAP4rev1] logged in\r\n", []string{"IMAP4REV1"}},
		{"* OK IMAP4rev1 server ready\r\n", nil},
		{"* OK [ALERT] [CAPABILITY STARTTLS] odd\r\n", nil},
		{"* OK [CAPABILITY IMAP4rev1 STARTTLS\r\n", nil},
		{"* BYE [CAPABILITY IMAP4rev1] too busy\r\n", nil},
	} {
		caps, ok := greetingCaps(tt.greeting)
		if ok != (tt.caps != nil) || !slices.Equal(caps, tt.caps) {
			t.Errorf("greetingCaps(%q) = %q, %v; want %q", tt.greeting, caps, ok, tt.caps)
		}
	}
}
