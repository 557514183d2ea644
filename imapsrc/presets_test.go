package imapsrc

import "testing"

func TestConnectionCap(t *testing.T) {
	for _, tc := range []struct {
		host string
		want int
	}{
		{"imap.gmail.com", 15},
		{"IMAP.Gmail.com.", 15},
		{"outlook.office365.com", 4},
		{"imap.ionos.com", 0}, // no documented limit: the generic default
		{"127.0.0.1", 0},
	} {
		if got := ConnectionCap(tc.host); got != tc.want {
			t.Errorf("ConnectionCap(%q) = %d, want %d", tc.host, got, tc.want)
		}
	}
}
