package message

import (
	"net/mail"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// parseDate reads a Date header. RFC 5322 dates go through net/mail; the
// usual deviations (ctime order, missing zone, ISO 8601, full month names,
// localised day names, a zone glued to the time, comments) through a list of
// layouts. A named zone is read from zoneOffsets: Go would give any name it
// does not know a zero offset, a time hours off. A date that is there but
// gives no time (garbage, an unknown zone, a year outside 1900-9999) is nil
// with the reason in problem: a wrong date is worse than none.
func parseDate(v string) (t *time.Time, problem string) {
	v = strings.TrimSpace(v)
	if v == "" {
		return nil, ""
	}
	norm, zone, ok := normalizeDate(v)
	if !ok {
		return nil, "unknown time zone " + strconv.Quote(truncate(zone, 40))
	}
	// The common form first: net/mail tries dozens of layouts and builds
	// an error for each that fails.
	tm, ok := lenientDate(norm)
	if !ok {
		var err error
		if tm, err = mail.ParseDate(norm); err != nil {
			return nil, "not understood"
		}
	}
	if tm.Year() < 1900 || tm.Year() > 9999 {
		return nil, "not understood"
	}
	return &tm, ""
}

var (
	parenComment = regexp.MustCompile(`\([^()]*\)`)
	// A day name in any language ("Tue", "qui", "Di.", "sáb").
	weekday   = regexp.MustCompile(`^\pL+\.?\s+`)
	isoDate   = regexp.MustCompile(`^\d{4}-\d\d-\d\dT`)
	timeOfDay = regexp.MustCompile(`\b\d{1,2}:\d\d(?::\d\d(?:\.\d+)?)?`)
	// "+0900", "-03:00".
	numericZone = regexp.MustCompile(`^[+-]\d\d:?\d\d$`)
	// "GMT+0900", "UTC-3", "GMT+5:30".
	offsetZone = regexp.MustCompile(`^(?i)(?:GMT|UTC|UT)([+-])(\d{1,2})(?::?(\d\d))?$`)
	year       = regexp.MustCompile(`^\d{4}$`)
)

// normalizeDate rewrites a Date value for the layouts: without comments,
// commas, day name or named zone, its zone numeric. ok is false, with the
// zone, when the zone is a name zoneOffsets does not know.
func normalizeDate(v string) (norm, zone string, ok bool) {
	if strings.Contains(v, "(") {
		v = parenComment.ReplaceAllString(v, " ")
	}
	v = strings.Join(strings.FieldsFunc(v, func(r rune) bool { return r == ',' || unicode.IsSpace(r) }), " ")
	if isoDate.MatchString(v) {
		return v, "", true
	}
	if len(v) > 0 && (v[0] < '0' || v[0] > '9') {
		// Drop a day name, but not a month name ("Jan 2 ...").
		if loc := weekday.FindStringIndex(v); loc != nil && !isMonth(v[:loc[1]]) {
			v = v[loc[1]:]
		}
	}
	loc := timeOfDay.FindStringIndex(v)
	if loc == nil {
		return v, "", true
	}
	head, rest := v[:loc[1]], v[loc[1]:]
	if len(rest) > 0 && (rest[0] == '+' || rest[0] == '-') {
		rest = " " + rest // "11:36:12+0000"
	}
	var kept, names []string
	numeric := false
	for _, f := range strings.Fields(rest) {
		switch m := offsetZone.FindStringSubmatch(f); {
		case strings.EqualFold(f, "AM") || strings.EqualFold(f, "PM"):
			head = v[:loc[0]] + to24h(v[loc[0]:loc[1]], strings.EqualFold(f, "PM"))
		case numericZone.MatchString(f):
			kept, numeric = append(kept, f), true
		case m != nil:
			kept, numeric = append(kept, m[1]+pad2(m[2])+pad2(m[3])), true
		case year.MatchString(f):
			kept = append(kept, f) // ctime: "Jun 2 18:04:11 JST 2025"
		case len(names) == 0:
			// The zone goes where its name was.
			kept, names = append(kept, "\x00"), append(names, f)
		default:
			names = append(names, f)
		}
	}
	offset := ""
	if len(names) > 0 && !numeric {
		// Only a name: "JST", "Hora oficial do Brasil".
		zone = strings.Join(names, " ")
		mins, known := zoneOffsets[strings.ToUpper(zone)]
		if !known {
			return "", zone, false
		}
		sign := "+"
		if mins < 0 {
			sign, mins = "-", -mins
		}
		offset = sign + pad2(strconv.Itoa(mins/60)) + pad2(strconv.Itoa(mins%60))
	}
	out := []string{head}
	for _, k := range kept {
		if k == "\x00" {
			if offset == "" {
				continue // a name beside a numeric zone ("+0000 GMT")
			}
			k = offset
		}
		out = append(out, k)
	}
	return strings.Join(out, " "), "", true
}

// to24h turns a 12-hour time of day ("9:15", with "PM") into 24 hours.
func to24h(clock string, pm bool) string {
	h, rest, _ := strings.Cut(clock, ":")
	n, _ := strconv.Atoi(h)
	switch {
	case pm && n < 12:
		n += 12
	case !pm && n == 12:
		n = 0
	}
	return strconv.Itoa(n) + ":" + rest
}

func pad2(s string) string {
	switch len(s) {
	case 0:
		return "00"
	case 1:
		return "0" + s
	}
	return s
}

var dateLayouts = []string{
	"2 Jan 2006 15:04:05 -0700",
	"2 Jan 2006 15:04:05 -07:00",
	"2 Jan 2006 15:04 -0700",
	"2 Jan 2006 15:04:05",
	"2 Jan 2006 15:04",
	"2 Jan 06 15:04:05 -0700",
	"2 January 2006 15:04:05 -0700",
	"2 January 2006 15:04:05",
	"Jan 2 15:04:05 2006",
	"Jan 2 15:04:05 -0700 2006",
	"Jan 2 2006 15:04:05 -0700",
	"Jan 2 2006 15:04:05",
	"2006-01-02 15:04:05 -0700",
	"2006-01-02 15:04:05",
	"2006-01-02T15:04:05Z07:00",
	"2006-01-02T15:04:05",
	"2-Jan-2006 15:04:05 -0700",
}

func lenientDate(v string) (time.Time, bool) {
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

// zoneOffsets are the named zones a Date header is read with, in minutes
// east of UTC: RFC 5322's obsolete zones (its military letters, whose sign
// RFC 822 got backwards, count as UTC as section 4.3 says) and the names
// mailers commonly write. Where a name is ambiguous the reading chosen is
// the one most mail means:
//   - CST, CDT are US Central, as RFC 5322 defines them (China writes CST too);
//   - IST is India (+05:30), not Irish Summer Time or Israel Standard Time;
//   - BST is British Summer Time (+01:00), not Bangladesh;
//   - AST, ADT are Atlantic (-04:00, -03:00), as Python's email.utils reads
//     them, not Arabia Standard Time.
//
// Any other name makes the date unknown rather than wrong.
var zoneOffsets = map[string]int{
	"UT": 0, "UTC": 0, "GMT": 0, "Z": 0, "WET": 0, "WEST": 60, "BST": 60, "IST": 330,
	"EST": -300, "EDT": -240, "CST": -360, "CDT": -300, "MST": -420, "MDT": -360, "PST": -480, "PDT": -420,
	"AST": -240, "ADT": -180, "NST": -210, "NDT": -150, "AKST": -540, "AKDT": -480, "HST": -600, "HDT": -540,
	"CET": 60, "CEST": 120, "MET": 60, "MEST": 120, "MEZ": 60, "MESZ": 120, "EET": 120, "EEST": 180,
	"MSK": 180, "MSD": 240, "WAT": 60, "CAT": 120, "EAT": 180, "SAST": 120, "IDT": 180,
	"PKT": 300, "NPT": 345, "ICT": 420, "WIB": 420, "HKT": 480, "SGT": 480, "MYT": 480, "PHT": 480,
	"AWST": 480, "JST": 540, "KST": 540, "ACST": 570, "ACDT": 630, "AEST": 600, "AEDT": 660,
	"NZST": 720, "NZDT": 780, "BRT": -180, "BRST": -120, "ART": -180, "CLT": -240, "CLST": -180,
	"COT": -300, "PET": -300, "VET": -240, "UYT": -180,
	// Windows' Portuguese name for Brasília time, seen in real mail.
	"HORA OFICIAL DO BRASIL": -180,
	// Military zones but J (local time, no zone at all).
	"A": 0, "B": 0, "C": 0, "D": 0, "E": 0, "F": 0, "G": 0, "H": 0, "I": 0, "K": 0, "L": 0, "M": 0, "N": 0,
	"O": 0, "P": 0, "Q": 0, "R": 0, "S": 0, "T": 0, "U": 0, "V": 0, "W": 0, "X": 0, "Y": 0,
}
