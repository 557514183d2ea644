package message

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"mime"
	"net/mail"
	"net/textproto"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/inbucket/html2text"

	"github.com/myhibachi/backfill/threading"
)

// SyntheticIDDomain ends the Message-ID given to a message that has none:
// "sha256-<first 32 hex digits of SHA-256 of the raw message>@backfill.invalid".
// The hash is taken with CRLF line ends read as LF, so the same message gets
// the same id whichever way a server stores line ends; ".invalid" (RFC 2606)
// can never clash with a real id.
const SyntheticIDDomain = "backfill.invalid"

// Parse turns one raw RFC 5322 message into its email_messages row. It never
// fails: malformed mail is stored as well as it can be and what went wrong is
// listed in Warnings. Every string in the result is clean (see CleanText)
// and every slice is non-nil, so it goes into PostgreSQL as '{}' or '[]'
// rather than NULL.
//
// Parse keeps no reference to raw after it returns.
func Parse(raw []byte, meta Meta) (m *Message) {
	defer func() {
		if r := recover(); r != nil {
			m = fallback(raw, meta, r)
		}
	}()
	size := int64(len(raw))
	raw = undoDoubleCR(raw)
	p := &parser{}
	root := p.parseEntity(raw, "", "text/plain", 0, true)
	m = p.build(root, meta)
	if m.MessageID == "" {
		m.MessageID = syntheticID(raw)
	}
	if m.SizeBytes <= 0 {
		m.SizeBytes = size
	}
	m.Warnings = p.done()
	return m
}

// undoDoubleCR turns CR CR LF line ends back into CRLF when the header's
// lines end so. Courier serves a Maildir file that was stored with CRLF line
// ends by turning each LF into CRLF once more (issue 14): the whole message
// was converted, so undoing it everywhere restores every byte, binary parts
// included. A message whose header lines end in CRLF or LF is returned as
// it is, without a copy.
func undoDoubleCR(raw []byte) []byte {
	for pos := 0; pos < len(raw); {
		i := bytes.IndexByte(raw[pos:], '\n')
		if i < 0 {
			break
		}
		end := pos + i
		if i >= 2 && raw[end-1] == '\r' && raw[end-2] == '\r' {
			return bytes.ReplaceAll(raw, []byte("\r\r\n"), []byte("\r\n"))
		}
		if len(bytes.TrimRight(raw[pos:end], "\r")) == 0 {
			break // the end of the header
		}
		pos = end + 1
	}
	return raw
}

// build makes the row from a parsed MIME tree. MessageID is "" when the
// message has none: only the caller has the raw bytes a synthetic id needs.
func (p *parser) build(root *entity, meta Meta) *Message {
	inheritCharset(root, "")
	plain, html := bodies(root, true)
	if len(plain) == 0 && len(html) == 0 {
		// A message whose only text is a named inline text file shows that
		// text: keep it searchable as the body (it stays an attachment too).
		if e := firstInlineText(root); e != nil && e.mediaType == "text/html" {
			html = []*entity{e}
		} else if e != nil {
			plain = []*entity{e}
		}
	}
	hint := charsetHint(plain, html)
	h := root.header

	m := &Message{
		MessageID:   NormalizeMessageID(get(h, "Message-Id")),
		Subject:     headerText(get(h, "Subject"), hint),
		To:          addressList(values(h, "To"), hint),
		Cc:          addressList(values(h, "Cc"), hint),
		ReceivedAt:  meta.InternalDate,
		References:  messageIDs(strings.Join(values(h, "References"), " ")),
		SizeBytes:   meta.Size,
		UID:         meta.UID,
		UIDValidity: meta.UIDValidity,
	}
	if ids := messageIDs(get(h, "In-Reply-To")); len(ids) > 0 {
		m.InReplyTo = ids[0]
	}
	m.SentAt = p.sentAt(get(h, "Date"))
	m.FromAddress, m.FromName = fromAddress(values(h, "From"), hint)
	m.TextBody, m.HTMLBody = p.joinBodies(plain, html)
	m.Attachments = p.attachments(root, true, false, hint, []Attachment{})
	m.ThreadID = threading.ID(m.Subject, m.FromAddress, m.To)
	return m
}

// sentAt reads the Date header; a date that gives no time is a warning, so
// that an empty sent_at has its reason in error_logs.
func (p *parser) sentAt(v string) *time.Time {
	t, problem := parseDate(decode8bit(v, ""))
	if problem != "" {
		p.warnf("", "Date %q: %s; sent_at left empty", truncate(v, 80), problem)
	}
	return t
}

// parser holds the warnings of one Parse call.
type parser struct {
	warnings []string
	dropped  int
	parts    int // MIME parts read so far, bounded by maxParts
}

// maxWarnings keeps a badly broken message from filling error_logs.
const maxWarnings = 20

func (p *parser) warnf(partID, format string, args ...any) {
	w := fmt.Sprintf(format, args...)
	if partID != "" {
		w = "part " + partID + ": " + w
	}
	w = CleanText(truncate(w, 300))
	for _, old := range p.warnings {
		if old == w {
			return
		}
	}
	if len(p.warnings) >= maxWarnings {
		p.dropped++
		return
	}
	p.warnings = append(p.warnings, w)
}

func (p *parser) done() []string {
	if p.dropped > 0 {
		p.warnings = append(p.warnings, fmt.Sprintf("%d more warnings not shown", p.dropped))
	}
	if p.warnings == nil {
		return []string{}
	}
	return p.warnings
}

// get returns the first value of a header field. Field names that enmime
// could not canonicalise (odd characters, a space before the colon) are
// matched case-insensitively.
func get(h textproto.MIMEHeader, name string) string {
	if v := values(h, name); len(v) > 0 {
		return v[0]
	}
	return ""
}

// values returns all values of a header field, matched as get does.
func values(h textproto.MIMEHeader, name string) []string {
	if v := h.Values(name); len(v) > 0 {
		return v
	}
	for k, v := range h {
		if strings.EqualFold(strings.TrimSpace(k), name) {
			return v
		}
	}
	return nil
}

// NormalizeMessageID normalises a Message-ID header as rows store it:
// trimmed, one pair of <> removed (a bracket without its partner, as in
// "<abc@x", is removed as the pair would be), cleaned as all stored text
// is. Dry runs look up ids normalised by this same function. Without one,
// the id is synthetic; see SyntheticIDDomain.
func NormalizeMessageID(v string) string {
	id := strings.TrimSpace(v)
	open, closed := strings.HasPrefix(id, "<"), strings.HasSuffix(id, ">")
	switch {
	case open && closed && len(id) >= 2:
		id = id[1 : len(id)-1]
	case open && !strings.Contains(id, ">"):
		id = id[1:]
	case closed && !strings.Contains(id, "<"):
		id = id[:len(id)-1]
	}
	return CleanText(strings.TrimSpace(id))
}

func syntheticID(raw []byte) string {
	h := sha256.New()
	for len(raw) > 0 {
		i := bytes.Index(raw, []byte("\r\n"))
		if i < 0 {
			h.Write(raw)
			break
		}
		h.Write(raw[:i])
		h.Write([]byte("\n"))
		raw = raw[i+2:]
	}
	return "sha256-" + hex.EncodeToString(h.Sum(nil)[:16]) + "@" + SyntheticIDDomain
}

// messageIDs returns the ids in an In-Reply-To or References value, in
// order, without their <>. Text outside <> (comments, "message of ...") is
// ignored; a value without any <> is split on white space and commas and
// only @-shaped words are kept.
func messageIDs(v string) []string {
	out := []string{}
	rest := v
	for {
		i := strings.IndexByte(rest, '<')
		if i < 0 {
			break
		}
		j := strings.IndexByte(rest[i:], '>')
		if j < 0 {
			break
		}
		out = append(out, rest[i+1:i+j])
		rest = rest[i+j+1:]
	}
	if len(out) == 0 {
		for _, f := range strings.FieldsFunc(v, func(r rune) bool { return unicode.IsSpace(r) || r == ',' }) {
			if strings.Contains(f, "@") {
				out = append(out, f)
			}
		}
	}
	return cleanAll(out)
}

// isBodyPart reports whether a leaf is message text rather than a file:
// text/plain or text/html, not marked as attachment and, below the top
// level, without a file name (Apple Mail, for one, sends attached text
// files as inline parts with a name).
func isBodyPart(e *entity, top bool) bool {
	if e.mediaType != "text/plain" && e.mediaType != "text/html" {
		return false
	}
	return e.disposition != "attachment" && (top || e.filename == "")
}

// bodies collects the parts a reader sees as the message text. Of a
// multipart/alternative only one version counts: the first plain text and
// the last HTML (RFC 2046 orders versions from plainest to richest).
// Everywhere else every body part counts, in order: Apple Mail, for one,
// splits a text around inline images.
func bodies(e *entity, top bool) (plain, html []*entity) {
	if !e.isMultipart() {
		switch {
		case !isBodyPart(e, top):
		case e.mediaType == "text/html":
			html = append(html, e)
		default:
			plain = append(plain, e)
		}
		return plain, html
	}
	for _, c := range e.children {
		cp, ch := bodies(c, false)
		if e.mediaType == "multipart/alternative" {
			if plain == nil {
				plain = cp
			}
			if ch != nil {
				html = ch
			}
			continue
		}
		plain = append(plain, cp...)
		html = append(html, ch...)
	}
	return plain, html
}

// firstInlineText returns the first text/plain or text/html leaf not marked
// as attachment, file name or not.
func firstInlineText(e *entity) *entity {
	for _, c := range e.children {
		if found := firstInlineText(c); found != nil {
			return found
		}
	}
	if !e.isMultipart() && (e.mediaType == "text/plain" || e.mediaType == "text/html") && e.disposition != "attachment" {
		return e
	}
	return nil
}

// joinBodies decodes the body parts. With HTML but no plain text, the text
// body is made from the HTML, as enmime does, so it is searchable.
func (p *parser) joinBodies(plain, html []*entity) (text, htmlText string) {
	text = p.joinText(plain)
	htmlText = p.joinText(html)
	if text == "" && htmlText != "" {
		t, err := html2text.FromString(htmlText)
		if err != nil {
			p.warnf("", "plain text from HTML failed: %v", err)
		}
		text = CleanText(t)
	}
	return text, htmlText
}

func (p *parser) joinText(parts []*entity) string {
	var texts []string
	for _, e := range parts {
		if s := p.text(e); s != "" {
			texts = append(texts, s)
		}
	}
	return strings.Join(texts, "\n")
}

// text decodes a body part to clean UTF-8: transfer encoding first, then
// the declared charset. Text that declares none (or only us-ascii) is taken
// as UTF-8 when it is valid UTF-8 and guessed otherwise.
func (p *parser) text(e *entity) string {
	b := p.decodeTransfer(e)
	label := e.charset()
	if isASCIILabel(label) && e.mediaType == "text/html" && !isASCII(b) {
		// Without a MIME charset, an HTML document's own <meta> declaration
		// counts, as it does in browsers.
		label = htmlCharset(b)
	}
	if isASCIILabel(label) && e.inherited != "" {
		// Next, a multipart's charset, unless the text is UTF-8 and the
		// charset would read pure ASCII the same.
		if info, ok := lookupCharset(e.inherited); ok && info.enc != nil && (!info.ascii || !utf8.Valid(b)) {
			label = e.inherited
		}
	}
	if !isASCIILabel(label) {
		if info, ok := lookupCharset(label); ok {
			if info.enc == nil {
				s, changed := clean(string(b))
				if changed {
					p.warnf(e.id, "invalid UTF-8 or NUL bytes replaced")
				}
				return s
			}
			s, err := decodeCharset(info, b)
			if err != nil {
				p.warnf(e.id, "charset %s: %v", info.name, err)
			}
			return s
		}
		p.warnf(e.id, "unknown charset %q", truncate(label, 40))
	}
	if utf8.Valid(b) {
		// ASCII, or UTF-8 sent without a label.
		return cleanBytes(b)
	}
	info, how := guessCharset(b, e.mediaType == "text/html")
	p.warnf(e.id, "8-bit text without a usable charset; read as %s (%s)", info.name, how)
	s, _ := decodeCharset(info, b)
	return s
}

// charsetHint is the first charset a body part declares, or failing that
// a multipart above it, used for header text sent as raw 8-bit bytes.
func charsetHint(lists ...[]*entity) string {
	for _, parts := range lists {
		for _, e := range parts {
			if cs := e.charset(); !isASCIILabel(cs) {
				return cs
			}
			if e.inherited != "" {
				return e.inherited
			}
		}
	}
	return ""
}

// inheritCharset passes the charset a multipart declares down to its
// leaves. The parameter means nothing on a multipart, yet some mailers
// (multipart/signed ones in particular) label the whole message there and
// leave the text parts unlabelled.
func inheritCharset(e *entity, charset string) {
	if !e.isMultipart() {
		e.inherited = charset
		return
	}
	if cs := e.charset(); !isASCIILabel(cs) {
		charset = cs
	}
	for _, c := range e.children {
		inheritCharset(c, charset)
	}
}

// attachments lists, in order, the leaves a user would call attachments:
// everything that is not message text. Text parts other than plain and
// HTML (text/calendar, a bounce's text/rfc822-headers, text/x-vcard) are
// listed too, named or not, but for the other versions of the text in a
// multipart/alternative (text/enriched, Apple's text/watch-html). Its
// text/calendar is listed all the same: it carries the event that the
// text only describes, and Outlook's invitations have it nowhere else.
func (p *parser) attachments(e *entity, top, alternative bool, hint string, out []Attachment) []Attachment {
	if e.isMultipart() {
		alternative = alternative || e.mediaType == "multipart/alternative"
		for _, c := range e.children {
			out = p.attachments(c, false, alternative, hint, out)
		}
		return out
	}
	if isBodyPart(e, top) {
		return out
	}
	if alternative && e.disposition != "attachment" && e.filename == "" &&
		strings.HasPrefix(e.mediaType, "text/") && e.mediaType != "text/calendar" {
		return out
	}
	name := e.filename
	if raw, ok := rawFileName(e, hint); ok {
		name = raw
	}
	return append(out, Attachment{
		Filename:    headerText(name, hint),
		ContentType: CleanText(e.mediaType),
		Size:        p.decodedSize(e),
	})
}

// fallback builds a row from what net/mail can read when parsing panicked:
// a bug must cost one message its structure, never the run. Beyond the
// standard library it uses only the simplest helpers here, so that the same
// bug cannot strike twice.
func fallback(raw []byte, meta Meta, cause any) *Message {
	m := &Message{
		MessageID:   syntheticID(raw),
		To:          []string{},
		Cc:          []string{},
		ReceivedAt:  meta.InternalDate,
		Attachments: []Attachment{},
		References:  []string{},
		SizeBytes:   meta.Size,
		UID:         meta.UID,
		UIDValidity: meta.UIDValidity,
		Warnings:    []string{CleanText(fmt.Sprintf("internal parser error, stored as plain text: %v", cause))},
	}
	if m.SizeBytes <= 0 {
		m.SizeBytes = int64(len(raw))
	}
	body := raw
	if msg, err := mail.ReadMessage(bytes.NewReader(raw)); err == nil {
		h := msg.Header
		if id := NormalizeMessageID(h.Get("Message-Id")); id != "" {
			m.MessageID = id
		}
		dec := new(mime.WordDecoder)
		if s, err := dec.DecodeHeader(h.Get("Subject")); err == nil {
			m.Subject = CleanText(s)
		} else {
			m.Subject = CleanText(h.Get("Subject"))
		}
		if a, err := mail.ParseAddress(h.Get("From")); err == nil {
			m.FromAddress, m.FromName = CleanText(a.Address), CleanText(a.Name)
		}
		for _, f := range []struct {
			name string
			dst  *[]string
		}{{"To", &m.To}, {"Cc", &m.Cc}} {
			if list, err := mail.ParseAddressList(h.Get(f.name)); err == nil {
				for _, a := range list {
					*f.dst = append(*f.dst, CleanText(a.Address))
				}
			}
		}
		if t, err := mail.ParseDate(h.Get("Date")); err == nil {
			m.SentAt = &t
		}
		if b, err := io.ReadAll(msg.Body); err == nil {
			body = b
		}
	}
	m.TextBody = cleanBytes(body)
	m.ThreadID = threading.ID(m.Subject, m.FromAddress, m.To)
	return m
}
