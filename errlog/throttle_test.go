package errlog

import (
	"fmt"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
)

func TestThrottled(t *testing.T) {
	no := func(code imap.ResponseCode, text string) error {
		// Wrapped as imapsrc wraps it, to prove errors.As reaches it.
		return fmt.Errorf("fetch uid 7: %w", &imap.Error{Type: imap.StatusResponseTypeNo, Code: code, Text: text})
	}
	cases := []struct {
		name    string
		err     error
		want    bool
		reason  string
		conns   bool
		backoff time.Duration
	}{
		{"THROTTLED", no("THROTTLED", "Request is throttled"), true, "throttled", false, 0},
		{"Microsoft 365 suggested backoff", no("THROTTLED", "Request is throttled. Suggested Backoff Time: 92415 milliseconds"), true, "throttled", false, 92415 * time.Millisecond},
		{"suggested backoff in seconds", no("THROTTLED", "Suggested Backoff Time: 3 seconds"), true, "throttled", false, 3 * time.Second},
		{"absurd suggested backoff is capped", no("THROTTLED", "Suggested Backoff Time: 99999999999 milliseconds"), true, "throttled", false, maxSuggestedBackoff},
		{"OVERQUOTA", no(imap.ResponseCodeOverQuota, "Download quota exceeded"), true, "overquota", false, 0},
		{"LIMIT", no(imap.ResponseCodeLimit, "Rate limit hit"), true, "limit", false, 0},
		{"LIMIT on connections", no(imap.ResponseCodeLimit, "Too many connections"), true, "limit", true, 0},
		{"Gmail ALERT", no(imap.ResponseCodeAlert, "Too many simultaneous connections. (Failure)"), true, "too_many_connections", true, 0},
		{"no code", no("", "Too many simultaneous connections"), true, "too_many_connections", true, 0},
		{"BYE on connection limit", &imap.Error{Type: imap.StatusResponseTypeBye, Text: "Maximum number of connections from user+IP exceeded (mail_max_userip_connections=10)"}, true, "too_many_connections", true, 0},
		{"text ignored under another code", no(imap.ResponseCodeAuthenticationFailed, "Too many simultaneous connections"), false, "", false, 0},
		{"plain NO", no("", "Invalid credentials"), false, "", false, 0},
		{"plain BYE", &imap.Error{Type: imap.StatusResponseTypeBye, Text: "Logging out"}, false, "", false, 0},
		{"not IMAP", fmt.Errorf("too many simultaneous connections"), false, "", false, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := Throttled(tc.err)
			if ok != tc.want || got.Reason != tc.reason || got.TooManyConnections != tc.conns || got.Backoff != tc.backoff {
				t.Errorf("Throttled(%v) = %+v, %v; want {Reason:%s TooManyConnections:%v Backoff:%v}, %v",
					tc.err, got, ok, tc.reason, tc.conns, tc.backoff, tc.want)
			}
			if tc.want {
				if c := Classify(tc.err); c != Transient {
					t.Errorf("Classify(%v) = %s, want %s", tc.err, c, Transient)
				}
			}
		})
	}
}
