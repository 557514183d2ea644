package message

import (
	"net/mail"
	"regexp"
	"strings"
	"time"
)

// parseDate reads a Date header. RFC 5322 dates go through net/mail; the
// usual deviations (ctime order, missing zone, ISO 8601, full month names,
// comments) through a list of layouts. Anything else, and years outside
// 1900-9999, give nil: a wrong date is worse than none.
func parseDate(v string) *time.Time {
	v = strings.TrimSpace(v)
	if v == "" {
		return nil
	}
	t, err := mail.ParseDate(v)
	if err != nil {
		var ok bool
		if t, ok = lenientDate(v); !ok {
			return nil
		}
	}
	if t.Year() < 1900 || t.Year() > 9999 {
		return nil
	}
	t = fixZone(t)
	return &t
}

var (
	parenComment = regexp.MustCompile(`\([^()]*\)`)
	dateSpaces   = regexp.MustCompile(`[\s,]+`)
	weekday      = regexp.MustCompile(`^(?i)[a-z]+\.?\s+`)
)

var dateLayouts = []string{
	"2 Jan 2006 15:04:05 -0700",
	"2 Jan 2006 15:04:05 -07:00",
	"2 Jan 2006 15:04:05 MST",
	"2 Jan 2006 15:04:05 -0700 MST",
	"2 Jan 2006 15:04 -0700",
	"2 Jan 2006 15:04:05",
	"2 Jan 2006 15:04",
	"2 Jan 06 15:04:05 -0700",
	"2 Jan 06 15:04:05 MST",
	"2 January 2006 15:04:05 -0700",
	"2 January 2006 15:04:05 MST",
	"Jan 2 15:04:05 2006",
	"Jan 2 15:04:05 MST 2006",
	"Jan 2 15:04:05 -0700 2006",
	"Jan 2 2006 15:04:05 -0700",
	"Jan 2 2006 15:04:05",
	"2006-01-02 15:04:05 -0700",
	"2006-01-02 15:04:05 MST",
	"2006-01-02 15:04:05",
	"2006-01-02T15:04:05Z07:00",
	"2006-01-02T15:04:05",
	"2-Jan-2006 15:04:05 -0700",
}

func lenientDate(v string) (time.Time, bool) {
	v = parenComment.ReplaceAllString(v, " ")
	v = strings.TrimSpace(dateSpaces.ReplaceAllString(v, " "))
	if len(v) > 0 && (v[0] < '0' || v[0] > '9') {
		// Drop a day name, but not a month name ("Jan 2 ...").
		if loc := weekday.FindStringIndex(v); loc != nil && !isMonth(v[:loc[1]]) {
			v = v[loc[1]:]
		}
	}
	for _, layout := range dateLayouts {
		if t, err := time.Parse(layout, v); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

func isMonth(s string) bool {
	s = strings.ToLower(strings.Trim(s, " ."))
	return len(s) >= 3 && strings.Contains("jan feb mar apr may jun jul aug sep oct nov dec", s[:3])
}

// zoneOffsets are the named zones RFC 5322 allows (obs-zone) plus the
// European ones common in real mail. time.Parse gives an unknown name a zero
// offset, which would shift such dates by hours.
var zoneOffsets = map[string]int{
	"EST": -5, "EDT": -4, "CST": -6, "CDT": -5, "MST": -7, "MDT": -6, "PST": -8, "PDT": -7,
	"CET": 1, "CEST": 2, "MET": 1, "MEST": 2, "EET": 2, "EEST": 3, "WET": 0, "WEST": 1,
}

func fixZone(t time.Time) time.Time {
	name, off := t.Zone()
	if h, ok := zoneOffsets[strings.ToUpper(name)]; ok && off != h*3600 {
		y, mo, d := t.Date()
		hh, mm, ss := t.Clock()
		return time.Date(y, mo, d, hh, mm, ss, t.Nanosecond(), time.FixedZone(name, h*3600))
	}
	return t
}
