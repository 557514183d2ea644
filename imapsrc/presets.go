package imapsrc

import "strings"

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
