package errlog

import (
	"errors"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
)

// Throttle is a server's answer about its load rather than about the
// request: slow down, or use fewer connections. It is transient (retried
// after a wait), never a message failure, and never counts towards the
// circuit breaker.
type Throttle struct {
	// Reason names the answer for logs: throttled, overquota, limit or
	// too_many_connections.
	Reason string
	// TooManyConnections says the server refused this connection because
	// the account has too many: a worker should step aside rather than
	// wait its turn.
	TooManyConnections bool
	// Backoff is the wait the server suggested, zero when it named none.
	Backoff time.Duration
}

// ResponseCodeThrottled is the [THROTTLED] response code Microsoft 365 and
// Yahoo send. RFC 5530 does not define it, so go-imap has no constant.
const ResponseCodeThrottled imap.ResponseCode = "THROTTLED"

// suggestedBackoff is Microsoft 365's hint in the text of a throttling
// answer, e.g. "Request is throttled. Suggested Backoff Time: 92415
// milliseconds".
var suggestedBackoff = regexp.MustCompile(`(?i)suggested\s+backoff\s+time:\s*(\d+)\s*(milliseconds|ms|seconds|s)\b`)

// tooManyConnections is the text of answers that refuse a connection for
// the account's connection limit: Gmail's "[ALERT] Too many simultaneous
// connections. (Failure)", Dovecot's BYE "Maximum number of connections
// from user+IP exceeded".
var tooManyConnections = regexp.MustCompile(`(?i)too many (simultaneous |concurrent |open )?connections|maximum number of connections`)

// Throttled reports whether err is a throttling answer, and what it asks
// for. It goes by the response code where the server gives one ([THROTTLED],
// [OVERQUOTA], [LIMIT]); only an answer with no code, or with just [ALERT]
// as Gmail sends, is recognised by its well-known text, since servers give
// connection limits no code of their own. A suggested backoff time is read
// from the text whatever the code.
func Throttled(err error) (Throttle, bool) {
	var imapErr *imap.Error
	if !errors.As(err, &imapErr) {
		return Throttle{}, false
	}
	t := Throttle{Backoff: parseSuggestedBackoff(imapErr.Text)}
	switch imapErr.Code {
	case ResponseCodeThrottled:
		t.Reason = "throttled"
	case imap.ResponseCodeOverQuota:
		t.Reason = "overquota"
	case imap.ResponseCodeLimit:
		t.Reason = "limit"
		t.TooManyConnections = tooManyConnections.MatchString(imapErr.Text)
	case "", imap.ResponseCodeAlert:
		if !tooManyConnections.MatchString(imapErr.Text) {
			return Throttle{}, false
		}
		t.Reason = "too_many_connections"
		t.TooManyConnections = true
	default:
		return Throttle{}, false
	}
	return t, true
}

// parseSuggestedBackoff reads Microsoft 365's suggested wait; zero when the
// text has none.
func parseSuggestedBackoff(text string) time.Duration {
	m := suggestedBackoff.FindStringSubmatch(text)
	if m == nil {
		return 0
	}
	n, err := strconv.ParseInt(m[1], 10, 64)
	if err != nil || n < 0 {
		return 0
	}
	unit := time.Millisecond
	if strings.HasPrefix(strings.ToLower(m[2]), "s") {
		unit = time.Second
	}
	if n > int64(maxSuggestedBackoff/unit) {
		return maxSuggestedBackoff
	}
	return time.Duration(n) * unit
}

// maxSuggestedBackoff caps a suggested wait: a hint of hours is more likely
// a misread than a plan, and --retry-for bounds the wait anyway.
const maxSuggestedBackoff = 15 * time.Minute
