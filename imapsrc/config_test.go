package imapsrc

import (
	"strings"
	"testing"
)

func TestParseURL(t *testing.T) {
	tests := []struct {
		url        string
		plain      bool
		want       Config
		wantErrHas string
	}{
		{url: "imaps://cs%40myhibachichef.com@imap.ionos.com:993/INBOX",
			want: Config{Host: "imap.ionos.com", Port: 993, Security: ImplicitTLS, Username: "cs@myhibachichef.com", Mailbox: "INBOX"}},
		{url: "imaps://me%40gmail.com@imap.gmail.com",
			want: Config{Host: "imap.gmail.com", Port: 993, Security: ImplicitTLS, Username: "me@gmail.com", Mailbox: "INBOX"}},
		{url: "imap://u@mail.example.com/Archive%2F2024",
			want: Config{Host: "mail.example.com", Port: 143, Security: StartTLS, Username: "u", Mailbox: "Archive/2024"}},
		{url: "imap://u@127.0.0.1:1143/INBOX",
			want: Config{Host: "127.0.0.1", Port: 1143, Security: StartTLSIfOffered, Username: "u", Mailbox: "INBOX"}},
		{url: "imap://u@mail.example.com/INBOX", plain: true,
			want: Config{Host: "mail.example.com", Port: 143, Security: StartTLSIfOffered, Username: "u", Mailbox: "INBOX"}},
		{url: "imaps://u@[::1]:993/Sent%20Items",
			want: Config{Host: "::1", Port: 993, Security: ImplicitTLS, Username: "u", Mailbox: "Sent Items"}},
		{url: "http://u@host/INBOX", wantErrHas: "scheme must be imaps:// or imap://"},
		{url: "imaps://host/INBOX", wantErrHas: "no user name"},
		{url: "imaps://u:secret@host/INBOX", wantErrHas: "_PASSWORD variable"},
		{url: "imaps://u@host:99999/INBOX", wantErrHas: "bad port"},
		{url: "imaps://u@:993/INBOX", wantErrHas: "no host"},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			got, err := ParseURL(tt.url, tt.plain)
			if tt.wantErrHas != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErrHas) {
					t.Fatalf("ParseURL(%q) error = %v, want one containing %q", tt.url, err, tt.wantErrHas)
				}
				if strings.Contains(err.Error(), "secret") {
					t.Fatalf("error shows the password: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseURL(%q): %v", tt.url, err)
			}
			if got != tt.want {
				t.Fatalf("ParseURL(%q) = %+v, want %+v", tt.url, got, tt.want)
			}
		})
	}
}
