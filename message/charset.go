package message

import (
	"fmt"
	"io"
	"mime"
	"regexp"
	"strings"
	"sync"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/cention-sany/utf7"
	"github.com/gogs/chardet"
	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/htmlindex"
	"golang.org/x/text/encoding/ianaindex"
)

// charsetInfo is a resolved charset label. A nil enc means the text is
// UTF-8 already (or claims to be).
type charsetInfo struct {
	name  string // canonical, for warnings
	enc   encoding.Encoding
	ascii bool // pure ASCII input decodes to itself, so it can skip conversion
}

var charsetCache sync.Map // label -> charsetInfo (ok) or nil (unknown)

// lookupCharset resolves a MIME charset label with the WHATWG table that
// browsers and mail clients use (so iso-8859-1 decodes as windows-1252, as
// senders mean it), then the IANA registry, then a few aliases seen in real
// mail. Callers check isASCIILabel first: a us-ascii label is so often wrong
// that it counts as no label at all.
func lookupCharset(label string) (charsetInfo, bool) {
	label = normalizeLabel(label)
	if v, ok := charsetCache.Load(label); ok {
		if v == nil {
			return charsetInfo{}, false
		}
		return v.(charsetInfo), true
	}
	info, ok := resolveCharset(label)
	if ok {
		charsetCache.Store(label, info)
	} else if len(label) <= 64 {
		// Unknown labels are cached too, but only short ones, so that a
		// flood of random labels cannot grow the cache without bound.
		charsetCache.Store(label, nil)
	}
	return info, ok
}

func normalizeLabel(label string) string {
	label = strings.ToLower(strings.Trim(strings.TrimSpace(label), `"'`))
	// Some mailers write "charset=charset=utf-8" or "iso=8859-1".
	if i := strings.LastIndexByte(label, '='); i >= 0 {
		label = label[i+1:]
	}
	return label
}

var charsetAliases = map[string]string{
	"utf8mb4":   "utf-8",
	"cp936":     "gbk",
	"cp850":     "ibm850",
	"cp-850":    "ibm850",
	"136":       "big5",
	"238":       "windows-1250",
	"ks_c_5601": "euc-kr",
}

var iso8859 = regexp.MustCompile(`^(?:iso)?[-_ ]?8859[-_ ]?(\d+)$`)

func resolveCharset(label string) (charsetInfo, bool) {
	switch label {
	case "utf-8", "utf8", "unicode-1-1-utf-8", "utf8mb4", "x-unicode20utf8":
		return charsetInfo{name: "utf-8", ascii: true}, true
	case "utf-7", "utf7", "unicode-1-1-utf-7", "csunicode11utf7":
		return charsetInfo{name: "utf-7", enc: utf7.UTF7}, true
	}
	if a, ok := charsetAliases[label]; ok {
		label = a
	}
	if m := iso8859.FindStringSubmatch(label); m != nil {
		label = "iso-8859-" + m[1]
	}
	enc, err := htmlindex.Get(label)
	if err != nil || enc == encoding.Replacement {
		// The WHATWG "replacement" decoder turns a whole text into one
		// U+FFFD; keeping the bytes loses less.
		enc = nil
		for _, idx := range []*ianaindex.Index{ianaindex.MIME, ianaindex.IANA} {
			if e, err := idx.Encoding(label); err == nil && e != nil {
				enc = e
				break
			}
		}
	}
	if enc == nil {
		return charsetInfo{}, false
	}
	name, err := htmlindex.Name(enc)
	if err != nil {
		name = label
	}
	if name == "utf-8" {
		return charsetInfo{name: name, ascii: true}, true
	}
	return charsetInfo{name: name, enc: enc, ascii: asciiCompatible(name)}, true
}

// asciiCompatible reports whether pure 7-bit input means the same in
// charset name as in ASCII. ISO-2022 and UTF-7 text is 7-bit yet encoded,
// and UTF-16/32 are not byte-oriented at all.
func asciiCompatible(name string) bool {
	for _, p := range []string{"iso-2022", "utf-16", "utf-32", "utf-7", "hz-gb"} {
		if strings.HasPrefix(name, p) {
			return false
		}
	}
	return true
}

// isASCIILabel reports labels that declare plain ASCII. They are treated as
// undeclared: 8-bit text labelled us-ascii is common, and mostly UTF-8.
func isASCIILabel(label string) bool {
	switch normalizeLabel(label) {
	case "", "us-ascii", "ascii", "us", "ansi_x3.4-1968", "iso646-us", "iso-646-us", "646", "default", "unknown-8bit", "x-unknown":
		return true
	}
	return false
}

// decodeCharset converts b from charset info to a clean UTF-8 string.
func decodeCharset(info charsetInfo, b []byte) (string, error) {
	if info.enc == nil || (info.ascii && isASCII(b)) {
		return cleanBytes(b), nil
	}
	out, err := info.enc.NewDecoder().Bytes(b)
	if err != nil && info.name == "utf-7" {
		return cleanBytes(decodeUTF7(b)), fmt.Errorf("%w; decoded leniently", err)
	}
	if err != nil {
		return cleanBytes(b), err
	}
	return cleanBytes(out), nil
}

// decodeUTF7 decodes UTF-7 (RFC 2152) leniently, for text the strict
// decoder refuses as a whole because of one flaw. A "+" that starts no
// decodable run ("2 + 2") is kept as the text it was, bytes outside ASCII
// are kept as they are (CleanText deals with them), leftover bits at the
// end of a run are ignored and a lone surrogate becomes U+FFFD.
func decodeUTF7(b []byte) []byte {
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); {
		if b[i] != '+' {
			out = append(out, b[i])
			i++
			continue
		}
		if i+1 < len(b) && b[i+1] == '-' {
			out = append(out, '+')
			i += 2
			continue
		}
		var units []uint16
		var bits uint32
		n, j := 0, i+1
		for ; j < len(b) && base64Alphabet[b[j]] == 1; j++ {
			bits = bits<<6 | uint32(base64Value(b[j]))
			if n += 6; n >= 16 {
				n -= 16
				units = append(units, uint16(bits>>n))
				bits &= 1<<n - 1
			}
		}
		if len(units) == 0 {
			out = append(out, b[i:j]...)
			i = j
			continue
		}
		out = append(out, string(utf16.Decode(units))...)
		if j < len(b) && b[j] == '-' {
			j++ // the run's terminator
		}
		i = j
	}
	return out
}

func base64Value(c byte) byte {
	switch {
	case c >= 'A' && c <= 'Z':
		return c - 'A'
	case c >= 'a' && c <= 'z':
		return c - 'a' + 26
	case c >= '0' && c <= '9':
		return c - '0' + 52
	case c == '+':
		return 62
	}
	return 63
}

func isASCII(b []byte) bool {
	for _, c := range b {
		if c >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

var metaCharset = regexp.MustCompile(`(?i)<meta[^>]*charset\s*=\s*["']?\s*([a-zA-Z0-9_.:-]+)`)

// htmlCharset returns the charset an HTML document declares in a <meta>
// tag near its start, "" when none.
func htmlCharset(b []byte) string {
	if m := metaCharset.FindSubmatch(b[:min(len(b), 4096)]); m != nil {
		return string(m[1])
	}
	return ""
}

// guessCharset picks a charset for 8-bit text that is not valid UTF-8 and
// declares no usable charset: statistical detection, and windows-1252 when
// that is unsure, since every byte has a meaning there and Western mail is
// the common case.
func guessCharset(b []byte, html bool) (charsetInfo, string) {
	det := chardet.NewTextDetector()
	if html {
		det = chardet.NewHtmlDetector()
	}
	// A sample is as telling as the whole text and bounds the cost.
	if r, err := det.DetectBest(b[:min(len(b), 64<<10)]); err == nil && r.Confidence >= 50 {
		if info, ok := lookupCharset(r.Charset); ok {
			return info, "detected"
		}
	}
	info, _ := lookupCharset("windows-1252")
	return info, "fallback"
}

// wordDecoder decodes RFC 2047 encoded words. Unknown charsets are passed
// through instead of failing, so one bad word does not keep the rest of a
// header encoded; CleanText deals with the bytes afterwards.
var wordDecoder = &mime.WordDecoder{
	CharsetReader: func(label string, input io.Reader) (io.Reader, error) {
		info, ok := lookupCharset(label)
		if !ok || info.enc == nil {
			return input, nil
		}
		return info.enc.NewDecoder().Reader(input), nil
	},
}

// encodedWord matches an RFC 2047 word loosely: with spaces in its text, or
// glued to surrounding text, as broken mailers write them.
var encodedWord = regexp.MustCompile(`=\?[^?\s]+\?[bBqQ]\?[^?]*\?=`)

// decodeWords decodes the encoded words in a header value.
func decodeWords(s string) string {
	if !strings.Contains(s, "=?") {
		return s
	}
	if d, err := wordDecoder.DecodeHeader(s); err == nil && !strings.Contains(d, "=?") {
		return d
	}
	// The strict decoder left something that looks encoded, or failed. A
	// lenient pass takes over, from the raw value again: the "=?" may be
	// text that an encoded word decoded to, and decoded text is never
	// decoded twice. White space between two decoded words is dropped, as
	// RFC 2047 says.
	var b strings.Builder
	last, prevWord := 0, false
	for _, loc := range encodedWord.FindAllStringIndex(s, -1) {
		d, err := wordDecoder.Decode(tidyWord(s[loc[0]:loc[1]]))
		if err != nil {
			// Not decodable: keep as is and stop gluing words.
			b.WriteString(s[last:loc[1]])
			last, prevWord = loc[1], false
			continue
		}
		between := s[last:loc[0]]
		if !(prevWord && strings.TrimSpace(between) == "") {
			b.WriteString(between)
		}
		b.WriteString(d)
		last, prevWord = loc[1], true
	}
	b.WriteString(s[last:])
	return b.String()
}

// tidyWord removes the spaces a broken mailer left inside an encoded word:
// in Q encoding they stand for "_", in B encoding they are noise.
func tidyWord(word string) string {
	if !strings.Contains(word, " ") {
		return word
	}
	i := 2 + strings.IndexByte(word[2:], '?') // the "?" before the encoding letter
	if word[i+1] == 'b' || word[i+1] == 'B' {
		return strings.ReplaceAll(word, " ", "")
	}
	return word[:i+3] + strings.ReplaceAll(word[i+3:], " ", "_")
}

// decode8bit converts a header value carrying raw 8-bit bytes that are not
// UTF-8, using the charset the message declares for its text (senders that
// do this use one charset throughout) or windows-1252.
func decode8bit(s, hint string) string {
	if utf8.ValidString(s) {
		return s
	}
	info, ok := lookupCharset(hint)
	if !ok || info.enc == nil || !info.ascii {
		info, _ = lookupCharset("windows-1252")
	}
	out, err := info.enc.NewDecoder().String(s)
	if err != nil {
		return s
	}
	return out
}

// headerText turns a raw header value into clean, decoded text.
func headerText(s, hint string) string {
	return strings.TrimSpace(CleanText(decodeWords(decode8bit(s, hint))))
}
