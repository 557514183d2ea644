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
			value:    unquote(strings.TrimSpace(value)),
			extended: rest == "" || strings.HasSuffix(rest, "*"),
		}
	}
	first, ok := segments[0]
	if !ok || !first.extended {
		return ""
	}
	// charset'language'value. Python and enmime drop a value that lacks a
	// quote; it is kept here: after a known charset the language's quote is
	// what is missing, and otherwise the quote belongs to the value
	// ("it's.pdf") or there is no charset at all.
	charset, rest, ok := strings.Cut(first.value, "'")
	switch _, value, ok2 := strings.Cut(rest, "'"); {
	case ok && ok2:
		first.value = value
	case ok && knownCharset(charset):
		first.value = rest
	default:
		charset = ""
	}
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

// knownCharset reports whether label names a charset or is empty, as RFC
// 2231 allows.
func knownCharset(label string) bool {
	_, ok := lookupCharset(label)
	return ok || label == ""
}

// quotedParam returns the value of parameter name in a header value when it
// is a quoted string with backslash escapes, unescaped. enmime keeps the
// escapes of a value that is not ASCII.
func quotedParam(v, name string) (string, bool) {
	if !strings.Contains(v, `\`) {
		return "", false
	}
	for _, field := range splitParams(v) {
		key, value, ok := strings.Cut(field, "=")
		value = strings.TrimSpace(value)
		if ok && strings.EqualFold(strings.TrimSpace(key), name) && strings.HasPrefix(value, `"`) && strings.Contains(value, `\`) {
			return unquote(value), true
		}
	}
	return "", false
}

// unquote removes the quotes around a quoted string and its escapes of
// quote and backslash, as Python's email.utils.unquote does. A backslash
// before anything else is kept: Windows paths are sent unescaped. A value
// not properly quoted only loses its quote characters at either end.
func unquote(s string) string {
	if len(s) < 2 || s[0] != '"' || s[len(s)-1] != '"' {
		return strings.Trim(s, `"`)
	}
	s = s[1 : len(s)-1]
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) && (s[i+1] == '"' || s[i+1] == '\\') {
			i++
		}
		b.WriteByte(s[i])
	}
	return b.String()
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
