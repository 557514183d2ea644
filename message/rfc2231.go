package message

import (
	"strconv"
	"strings"
)

// extendedParam decodes an RFC 2231 parameter, name*=charset'lang'value or
// continued as name*0*=, name*1*=, .... mime.ParseMediaType handles these
// only in UTF-8 and US-ASCII and drops the rest, yet mailers wrote file
// names in the message's own charset (ISO-8859-1 in older Thunderbird, for
// one). It returns "" when v has no such parameter.
func extendedParam(v, name string) string {
	if !strings.Contains(v, "*") {
		return ""
	}
	type segment struct {
		value    string
		extended bool
	}
	segments := map[int]segment{}
	for _, field := range splitParams(v) {
		key, value, ok := strings.Cut(field, "=")
		key = strings.ToLower(strings.TrimSpace(key))
		if !ok || !strings.HasPrefix(key, name+"*") {
			continue
		}
		rest := key[len(name)+1:] // "", "0", "0*", "1", ...
		n := 0
		if num := strings.TrimSuffix(rest, "*"); num != "" {
			var err error
			if n, err = strconv.Atoi(num); err != nil || n < 0 || n > 999 {
				continue
			}
		}
		segments[n] = segment{
			value:    strings.Trim(strings.TrimSpace(value), `"`),
			extended: rest == "" || strings.HasSuffix(rest, "*"),
		}
	}
	first, ok := segments[0]
	if !ok || !first.extended {
		return ""
	}
	charset, lang, ok := strings.Cut(first.value, "'")
	if !ok {
		return ""
	}
	_, first.value, _ = strings.Cut(lang, "'")
	segments[0] = first
	var raw []byte
	for n := 0; ; n++ {
		s, ok := segments[n]
		if !ok {
			break
		}
		if s.extended {
			raw = append(raw, percentDecode(s.value)...)
		} else {
			raw = append(raw, s.value...)
		}
	}
	info, ok := lookupCharset(charset)
	if !ok {
		return cleanBytes(raw)
	}
	out, _ := decodeCharset(info, raw)
	return out
}

// splitParams splits a header value at the semicolons outside quotes.
func splitParams(v string) []string {
	var fields []string
	quoted, start := false, 0
	for i := 0; i < len(v); i++ {
		switch v[i] {
		case '"':
			quoted = !quoted
		case '\\':
			i++
		case ';':
			if !quoted {
				fields = append(fields, v[start:i])
				start = i + 1
			}
		}
	}
	return append(fields, v[min(start, len(v)):])
}

// percentDecode undoes %XX escapes, keeping malformed ones as they are.
func percentDecode(s string) []byte {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
			out = append(out, unhex(s[i+1])<<4|unhex(s[i+2]))
			i += 2
			continue
		}
		out = append(out, s[i])
	}
	return out
}
