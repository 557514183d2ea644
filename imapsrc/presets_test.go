package imapsrc

import (
	"testing"
	"time"
)

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

func TestDownloadCap(t *testing.T) {
	for _, tc := range []struct {
		host   string
		bytes  int64
		period time.Duration
	}{
		{"imap.gmail.com", 2_500_000_000, 24 * time.Hour},
		{"Imap.GoogleMail.com.", 2_500_000_000, 24 * time.Hour},
		{"outlook.office365.com", 0, 0},
		{"imap.ionos.com", 0, 0},
	} {
		if b, p := DownloadCap(tc.host); b != tc.bytes || p != tc.period {
			t.Errorf("DownloadCap(%q) = %d/%v, want %d/%v", tc.host, b, p, tc.bytes, tc.period)
		}
	}
}
