package message

import (
	"bufio"
	"bytes"
	"fmt"
	"net/textproto"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/jhillyerd/enmime/v2"
	"github.com/jhillyerd/enmime/v2/mediatype"
)

// The MIME structure is cut out of the raw bytes here rather than by
// enmime.ReadParts: enmime copies every part byte by byte through a
// bufio.Reader and a bytes.Buffer, which keeps it under 80 MB/s a core even
// with RawContent, while slicing the message in place lets Parse run near
// 600 MB/s (see bench_test.go). enmime still does what needs its tolerance
// of broken mail: header blocks (enmime.ReadHeader) and Content-Type and
// Content-Disposition values (mediatype.Parse).

// maxDepth bounds multipart nesting; deeper parts are kept as opaque leaves.
// maxParts bounds the parts of one message, which real mail never comes near,
// so that a crafted message cannot cost seconds of CPU.
const (
	maxDepth = 32
	maxParts = 2000
)

// entity is one MIME entity: the message itself or one of its parts.
type entity struct {
	id          string // "1.2" in warnings; "" for the message itself
	header      textproto.MIMEHeader
	mediaType   string // lowercase type/subtype, never empty
	params      map[string]string
	disposition string // lowercase, "" when absent
	filename    string // raw, still RFC 2047/8-bit encoded; decoded later
	body        []byte // still transfer-encoded; shares the raw message's memory
	children    []*entity
	// inherited is the charset a multipart above declares, for a leaf
	// whose own label says nothing (see inheritCharset).
	inherited string
	// elided is true for a part whose content was never downloaded (see
	// ParseSections); size is then its decoded size.
	elided bool
	size   int64
}

// charset returns the declared charset label, "" when none.
func (e *entity) charset() string { return e.params["charset"] }

// transferEncoding returns the Content-Transfer-Encoding token, lowercase.
func (e *entity) transferEncoding() string {
	v := strings.ToLower(strings.TrimSpace(get(e.header, "Content-Transfer-Encoding")))
	if i := strings.IndexAny(v, " \t;("); i >= 0 {
		v = v[:i]
	}
	return strings.Trim(v, `"'`)
}

// isMultipart reports whether e has been split into parts.
func (e *entity) isMultipart() bool { return len(e.children) > 0 }

// parseEntity reads one entity from data. top is true for the message itself,
// whose first line is always taken as a header; a nested part whose first
// line is not a header line is taken to have no header at all.
func (p *parser) parseEntity(data []byte, id, defaultType string, depth int, top bool) *entity {
	e := &entity{id: id}
	head, body, clean := splitHeader(data, top)
	switch {
	case len(head) == 0 && top:
		p.warnf(id, "message has no header")
	case len(head) == 0 && !clean:
		p.warnf(id, "part has no header")
	case !clean && len(body) > 0:
		p.warnf(id, "header not ended by an empty line")
	}
	e.header = p.readHeader(id, head)
	e.body = body
	p.setContentType(e, defaultType)
	if !strings.HasPrefix(e.mediaType, "multipart/") {
		return e
	}
	if depth >= maxDepth {
		p.warnf(id, "multipart nested deeper than %d levels; kept as one part", maxDepth)
		return e
	}
	p.splitChildren(e, depth)
	return e
}

// splitHeader cuts data at the empty line that ends the header. As in
// Python's email package, the header also ends at the first line that is
// neither a field nor a continuation: some senders forget the empty line,
// and whatever follows (a MIME preamble, the first boundary, the text) is
// body. Joining such a line to the field before it, as enmime does, would
// pull the first part's header into this one and lose its text. The one
// exception is an unindented parameter line ("boundary=...") right after a
// Content-Type or Content-Disposition field, which is what it continues.
// clean is false when the header did not end with an empty line. A line may
// end in LF, CRLF or CR CR LF (see undoDoubleCR).
func splitHeader(data []byte, top bool) (head, body []byte, clean bool) {
	if top && bytes.HasPrefix(data, []byte("From ")) {
		// An mbox "From " separator line is not a header; skip it.
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			return nil, nil, true
		}
		data = data[i+1:]
	}
	if !top && !startsWithHeaderLine(data) {
		// A part's first line must be a field, or the part has no header.
		// An empty first line is the empty header's end; anything else is
		// content.
		if i := bytes.IndexByte(data, '\n'); i >= 0 && len(bytes.TrimLeft(data[:i], "\r")) == 0 {
			return nil, data[i+1:], true
		}
		return nil, data, len(data) == 0
	}
	params := false // the last field takes parameters
	for pos := 0; pos < len(data); {
		end := len(data)
		if i := bytes.IndexByte(data[pos:], '\n'); i >= 0 {
			end = pos + i + 1
		}
		line := data[pos:end]
		if n := len(line); n > 0 && line[n-1] == '\n' {
			line = line[:n-1]
		}
		for n := len(line); n > 0 && line[n-1] == '\r'; n-- {
			line = line[:n-1]
		}
		switch {
		case len(line) == 0:
			return data[:pos], data[end:], true
		case line[0] == ' ' || line[0] == '\t':
		case startsWithHeaderLine(line):
			params = takesParams(line)
		case params && isParamLine(line):
		default:
			return data[:pos], data[pos:], false
		}
		pos = end
	}
	return data, nil, false
}

// takesParams reports whether a field line is a Content-Type or
// Content-Disposition, whose value ends in parameters.
func takesParams(line []byte) bool {
	name, _, _ := bytes.Cut(line, []byte(":"))
	name = bytes.TrimRight(name, " \t")
	return bytes.EqualFold(name, []byte("Content-Type")) || bytes.EqualFold(name, []byte("Content-Disposition"))
}

// isParamLine reports whether line starts like a MIME parameter: an RFC 2045
// token (RFC 2231's "name*0*" is one too), then "=".
func isParamLine(line []byte) bool {
	i := 0
	for i < len(line) && isTokenChar(line[i]) {
		i++
	}
	if i == 0 {
		return false
	}
	for i < len(line) && (line[i] == ' ' || line[i] == '\t') {
		i++
	}
	return i < len(line) && line[i] == '='
}

// isTokenChar reports an RFC 2045 token character.
func isTokenChar(c byte) bool {
	return c > ' ' && c < 0x7f && !strings.ContainsRune(`()<>@,;:\"/[]?=`, rune(c))
}

// startsWithHeaderLine reports whether data begins with "Name:" (RFC 5322
// field name: printable ASCII without colon), allowing space before the colon.
func startsWithHeaderLine(data []byte) bool {
	i := 0
	for i < len(data) && data[i] > ' ' && data[i] < 0x7f && data[i] != ':' {
		i++
	}
	if i == 0 {
		return false
	}
	for i < len(data) && (data[i] == ' ' || data[i] == '\t') {
		i++
	}
	return i < len(data) && data[i] == ':'
}

// readHeader parses a header block with enmime's tolerant reader. That reader
// gives up when the block starts with a line that is not a field, so such
// lines are dropped and the rest read again.
func (p *parser) readHeader(id string, head []byte) textproto.MIMEHeader {
	if len(head) == 0 {
		return textproto.MIMEHeader{}
	}
	if bytes.Contains(head, []byte("\r\r\n")) {
		// Parse undoes CR CR LF line ends when the message header has
		// them (undoDoubleCR); a part header or a section with them is
		// damaged on its own, and lean fetching must fetch whole.
		p.warnf(id, "header lines end in CR CR LF")
		head = bytes.ReplaceAll(head, []byte("\r\r\n"), []byte("\r\n"))
	}
	collect := &headerErrors{p: p, id: id}
	h, err := enmime.ReadHeader(headerReader(head), collect)
	if err == nil {
		return h
	}
	for len(head) > 0 && !startsWithHeaderLine(head) {
		i := bytes.IndexByte(head, '\n')
		if i < 0 {
			head = nil
			break
		}
		head = head[i+1:]
	}
	p.warnf(id, "malformed header: %v", err)
	if len(head) > 0 {
		if h2, err := enmime.ReadHeader(headerReader(head), collect); err == nil || len(h2) > len(h) {
			h = h2
		}
	}
	if h == nil {
		h = textproto.MIMEHeader{}
	}
	return h
}

// headerReader sizes the reader's buffer to the header: the 4 KB default
// costs more to allocate and clear than a typical part header takes to read.
func headerReader(head []byte) *bufio.Reader {
	return bufio.NewReaderSize(bytes.NewReader(head), len(head)+1)
}

// headerErrors passes enmime's header complaints on as warnings.
type headerErrors struct {
	p  *parser
	id string
}

func (c *headerErrors) AddError(name, format string, args ...any) {
	c.p.warnf(c.id, "%s: %s", strings.ToLower(name), fmt.Sprintf(format, args...))
}

func (c *headerErrors) AddWarning(name, format string, args ...any) {
	c.AddError(name, format, args...)
}

// setContentType fills mediaType, params, disposition and filename.
func (p *parser) setContentType(e *entity, defaultType string) {
	ct := get(e.header, "Content-Type")
	e.mediaType, e.params = p.contentType(e.id, ct, defaultType)
	cd := get(e.header, "Content-Disposition")
	disp, dparams := p.mediaType(e.id, "Content-Disposition", cd)
	e.disposition = disp
	e.filename = fileName(ct, e.params, cd, dparams)
}

// contentType reads a Content-Type value into its lowercase media type and
// its parameters. Without one, the type is defaultType. A media type that
// is not type/subtype makes the part text/plain, as RFC 2045 section 5.2
// says (and Python's email package does), so that its text is kept; its
// parameters are still read, for the charset. A media type followed by
// parameters without the ";" between them is repaired: enmime would make
// such a part application/octet-stream.
func (p *parser) contentType(id, v, defaultType string) (string, map[string]string) {
	if strings.TrimSpace(v) == "" {
		return defaultType, nil
	}
	typ, params := v, ""
	if i := strings.IndexByte(v, ';'); i >= 0 {
		typ, params = v[:i], v[i+1:]
	}
	if strings.Contains(typ, "(") {
		typ = parenComment.ReplaceAllString(typ, " ")
	}
	typ = strings.TrimSpace(typ)
	switch {
	case isMediaType(typ):
	case strings.HasSuffix(typ, "/") && isToken(typ[:len(typ)-1]):
		// Only the subtype is missing: the type's usual one.
		switch strings.ToLower(typ) {
		case "text/":
			typ += "plain"
		case "multipart/":
			typ += "mixed"
		default:
			typ = "application/octet-stream"
		}
	default:
		if i := strings.IndexAny(typ, " \t"); i > 0 && isMediaType(typ[:i]) && isParamLine([]byte(strings.TrimSpace(typ[i:]))) {
			p.warnf(id, "Content-Type %q: missing \";\" after the media type", truncate(v, 80))
			typ, params = typ[:i], typ[i:]+";"+params
			break
		}
		p.warnf(id, "unusable Content-Type %q; read as text/plain", truncate(v, 80))
		typ = "text/plain"
	}
	_, pm := p.mediaType(id, "Content-Type", typ+";"+params)
	return strings.ToLower(typ), pm
}

// isMediaType reports whether s is an RFC 2045 type/subtype.
func isMediaType(s string) bool {
	t, sub, ok := strings.Cut(s, "/")
	return ok && isToken(t) && isToken(sub)
}

func isToken(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isTokenChar(s[i]) {
			return false
		}
	}
	return s != ""
}

// fileName picks a part's file name from its Content-Disposition filename
// or, failing that, its Content-Type name (or the obsolete file), as mail
// clients do.
func fileName(ct string, params map[string]string, cd string, dparams map[string]string) string {
	if name := extendedParam(cd, "filename"); name != "" {
		return name
	}
	if name := dparams["filename"]; name != "" {
		if raw, ok := quotedParam(cd, "filename"); ok {
			return raw
		}
		return name
	}
	if name := extendedParam(ct, "name"); name != "" {
		return name
	}
	if name := params["name"]; name != "" {
		if raw, ok := quotedParam(ct, "name"); ok {
			return raw
		}
		return name
	}
	return params["file"]
}

// rawFileName re-reads the file name of a part whose Content-Type or
// Content-Disposition carries raw 8-bit bytes that are not UTF-8, decoding
// them with the message's charset first: the MIME parameter parser would
// turn them into U+FFFD.
func rawFileName(e *entity, hint string) (string, bool) {
	ct, cd := get(e.header, "Content-Type"), get(e.header, "Content-Disposition")
	if utf8.ValidString(ct) && utf8.ValidString(cd) {
		return "", false
	}
	ct, cd = decode8bit(ct, hint), decode8bit(cd, hint)
	_, params, _, _ := mediatype.Parse(ct)
	_, dparams, _, _ := mediatype.Parse(cd)
	return fileName(ct, params, cd, dparams), true
}

// mediaType parses a Content-Type or Content-Disposition value into its
// lowercase value and its parameters (nil when there are none).
func (p *parser) mediaType(id, field, v string) (string, map[string]string) {
	if strings.TrimSpace(v) == "" {
		return "", nil
	}
	mtype, params, invalid, err := mediatype.Parse(v)
	if err != nil {
		// Keep the first word, which is usually intact.
		mtype = ""
		if f := strings.FieldsFunc(v, func(r rune) bool { return r == ';' || unicode.IsSpace(r) }); len(f) > 0 {
			mtype = f[0]
		}
		p.warnf(id, "malformed %s %q: %v", field, truncate(v, 80), err)
	}
	for _, name := range invalid {
		p.warnf(id, "%s has a malformed parameter %q", field, name)
	}
	return strings.ToLower(strings.TrimSpace(mtype)), params
}

// splitChildren cuts a multipart body into its parts. A boundary that is
// missing or never occurs is looked for in the body itself; failing that,
// the entity is kept as plain text so that nothing is lost.
func (p *parser) splitChildren(e *entity, depth int) {
	boundary := e.params["boundary"]
	parts, closed := splitMultipart(e.body, boundary)
	if len(parts) == 0 {
		// A sniffed boundary must really delimit something, or a line such
		// as "-----Original Message-----" would cut a plain text in two.
		if found := sniffBoundary(e.body); found != "" && found != boundary {
			if fparts, fclosed := splitMultipart(e.body, found); fclosed || len(fparts) > 1 {
				p.warnf(e.id, "multipart boundary %q not found; used %q found in the body", boundary, found)
				parts, closed, boundary = fparts, fclosed, found
			}
		}
	}
	if len(parts) == 0 {
		if len(bytes.TrimSpace(e.body)) > 0 {
			p.warnf(e.id, "multipart boundary %q not found; body kept as text", boundary)
		}
		e.mediaType = "text/plain"
		return
	}
	if !closed {
		p.warnf(e.id, "multipart boundary %q not closed (truncated message?)", boundary)
	}
	childType := "text/plain"
	if e.mediaType == "multipart/digest" {
		childType = "message/rfc822"
	}
	if left := maxParts - p.parts; len(parts) > left {
		p.warnf(e.id, "%d parts beyond the first %d in the message ignored", len(parts)-max(left, 0), maxParts)
		parts = parts[:max(left, 0)]
	}
	p.parts += len(parts)
	e.children = make([]*entity, 0, len(parts))
	for i, part := range parts {
		id := fmt.Sprint(i + 1)
		if e.id != "" {
			id = e.id + "." + id
		}
		e.children = append(e.children, p.parseEntity(part, id, childType, depth+1, false))
	}
}

// splitMultipart returns the parts between "--boundary" delimiter lines and
// whether the closing "--boundary--" was seen. A delimiter must start a line
// and be followed by nothing but white space; the line break before it
// belongs to the delimiter (RFC 2046 section 5.1.1).
func splitMultipart(body []byte, boundary string) (parts [][]byte, closed bool) {
	if boundary == "" {
		return nil, false
	}
	delim := []byte("--" + boundary)
	start := -1 // start of the current part; -1 while in the preamble
	for pos := 0; pos < len(body); {
		i := bytes.Index(body[pos:], delim)
		if i < 0 {
			break
		}
		i += pos
		pos = i + 1
		if i > 0 && body[i-1] != '\n' {
			continue
		}
		rest := body[i+len(delim):]
		eol := bytes.IndexByte(rest, '\n')
		if eol < 0 {
			eol = len(rest)
		}
		final := bytes.HasPrefix(rest, []byte("--"))
		if !final && len(bytes.TrimRight(rest[:eol], " \t\r")) > 0 {
			continue // "--boundaryX": a longer boundary, or text
		}
		if start >= 0 {
			end := i
			if end > start && body[end-1] == '\n' {
				end--
				if end > start && body[end-1] == '\r' {
					end--
				}
			}
			parts = append(parts, body[start:end])
		}
		if final {
			return parts, true
		}
		start = min(i+len(delim)+eol+1, len(body))
		pos = start
	}
	if start >= 0 {
		parts = append(parts, body[start:])
	}
	return parts, false
}

// sniffBoundary returns the boundary of the first line that looks like a
// multipart delimiter, for multiparts whose declared boundary is missing or
// wrong.
func sniffBoundary(body []byte) string {
	for len(body) > 0 {
		line := body
		if i := bytes.IndexByte(body, '\n'); i >= 0 {
			line, body = body[:i], body[i+1:]
		} else {
			body = nil
		}
		line = bytes.TrimRight(line, " \t\r")
		if len(line) > 2 && line[0] == '-' && line[1] == '-' && line[2] != '-' && line[2] != ' ' {
			return string(line[2:])
		}
		if len(line) > 2 && bytes.HasPrefix(line, []byte("---")) && len(bytes.Trim(line, "-")) > 0 {
			// "----=_Part_1": boundaries may start with dashes too.
			return string(line[2:])
		}
	}
	return ""
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
