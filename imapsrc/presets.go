package imapsrc

import (
	"strings"
	"time"
)

// ConnectionCap is how many simultaneous connections per account the
// provider at host admits, or 0 when we know of no limit. Going over it
// gets the extra connections refused (Gmail: "Too many simultaneous
// connections") or the account throttled, so a run asks for no more.
func ConnectionCap(host string) int {
	switch strings.TrimSuffix(strings.ToLower(host), ".") {
	case "imap.gmail.com", "imap.googlemail.com":
		return 15 // Gmail's documented IMAP limit per account
	case "outlook.office365.com":
		return 4 // Microsoft 365 throttles an account that opens more (issue 10)
	}
	// IONOS (imap.ionos.com, imap.1und1.de) documents no connection limit:
	// it gets the generic --workers default, like any other server.
	return 0
}

// DownloadCap is how many bytes of mail per period the provider at host
// lets an account download over IMAP, or zero when we know of no cap.
// Going over it gets the account's IMAP access suspended for up to a day,
// so a run stays under it unless told otherwise (--max-download).
func DownloadCap(host string) (bytes int64, period time.Duration) {
	switch strings.TrimSuffix(strings.ToLower(host), ".") {
	case "imap.gmail.com", "imap.googlemail.com":
		return 2500 * 1000 * 1000, 24 * time.Hour // Gmail: "Download via IMAP: 2500 MB per day"
	}
	return 0, 0
}
