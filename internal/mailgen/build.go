package mailgen

import (
	"bytes"
	"encoding/base64"
	"html"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/myhibachi/backfill/message"
	"github.com/myhibachi/backfill/threading"
)

// draft is one message being written: who, what, and in which charset.
type draft struct {
	ua        *client
	loc       *locale // language of the body
	cs        *charset
	from      addr
	to        []addr
	cc        []addr
	replyTo   *addr
	subject   string
	sentAt    time.Time
	id        string
	inReplyTo string
	refs      []string
	text      string // decoded text/plain body, LF line ends
	htmlBody  string // decoded text/html body
	ownText   string // this message's words without the quote, for the next reply
	ownHTML   string
	forward   bool
	layout    Layout
	atts      []attPlan
	want      Expected
	traits    Traits
}

type attPlan struct {
	kind   attachmentKind
	name   string
	ctype  string // as written in the header
	size   int    // target decoded size
	style  int    // how the filename is written
	csName string // names for CSV rows
}

// Filename styles.
const (
	nameQuoted   = iota // filename="Invoice-1234.pdf"
	nameToken           // filename=Invoice-1234.pdf
	name2047            // filename="=?UTF-8?Q?Rechnung_M=C3=A4rz.pdf?=" as Gmail and Outlook do
	name2231            // filename*=UTF-8''Rechnung%20M%C3%A4rz.pdf
	name2231Cont        // filename*0*=UTF-8''...; filename*1*=...
)

func (g *gen) build(t *thread, index int) Mail {
	r := g.r
	d := &draft{}
	d.sentAt = g.sentAt(t)
	token := "MH" + pad(index+1, 7)

	switch {
	case t.auto != nil:
		g.draftAutomated(t, d, token)
	case t.pos > 0 && chance(r, 12):
		g.draftForward(t, d, token)
	case t.turn%2 == 0:
		g.draftCustomer(t, d, token)
		t.turn++
	default:
		g.draftStaff(t, d, token)
		t.turn++
	}

	// Charset: the client's choice when it can hold every character,
	// otherwise UTF-8, as mail programs fall back.
	if d.cs != csUTF8 && !(d.cs.canEncode(d.text) && d.cs.canEncode(d.htmlBody) && d.cs.canEncode(d.subject)) {
		d.cs = csUTF8
	}
	d.htmlBody = strings.Replace(d.htmlBody, charsetMark, d.cs.name, 1)
	if r.Float64() < g.o.AttachmentRatio {
		g.planAttachments(t, d)
	}

	if t.pos > 0 {
		d.refs = append([]string(nil), t.refs...)
		if t.lastID != "" {
			d.inReplyTo = t.lastID
			d.refs = append(d.refs, t.lastID)
		}
		if len(d.refs) == 0 {
			d.refs = nil
		}
	}
	if r.Float64() >= g.o.NoMessageIDRatio {
		domain := d.from.email[strings.IndexByte(d.from.email, '@')+1:]
		d.id = d.ua.messageID(r, domain)
	}

	raw := g.write(d)

	w := &d.want
	w.MessageID = d.id
	w.Subject = d.subject
	w.FromAddress = d.from.email
	w.FromName = d.from.name
	w.To = emails(d.to)
	w.Cc = emails(d.cc)
	w.ThreadID = threading.ID(w.Subject, w.FromAddress, w.To)
	w.InReplyTo = d.inReplyTo
	w.References = d.refs
	w.SentAt = d.sentAt
	d.traits.Locale = d.loc.tag
	d.traits.Charset = d.cs.name
	d.traits.Layout = d.layout
	d.traits.Automated = t.auto != nil
	d.traits.Thread = t.id
	d.traits.Position = t.pos

	// Remember this message for the next one in the conversation.
	if t.lastID != "" {
		t.refs = append(t.refs, t.lastID)
		if len(t.refs) > 8 { // long chains drop the middle, as clients do
			t.refs = append(t.refs[:1], t.refs[len(t.refs)-7:]...)
		}
	}
	t.lastID = d.id
	t.lastSubject = d.subject
	t.lastText = d.ownText
	t.lastHTML = d.ownHTML
	t.lastFrom = d.from
	t.lastDate = d.sentAt
	t.lastLoc = d.loc

	return Mail{
		Raw:          raw,
		InternalDate: g.clock,
		Flags:        g.flags(),
		Want:         *w,
		DuplicateOf:  -1,
		Traits:       d.traits,
	}
}

// sentAt is the Date header: some seconds before delivery, in the sender's
// zone.
func (g *gen) sentAt(t *thread) time.Time {
	sent := g.clock.Add(-time.Duration(2+g.r.IntN(240)) * time.Second)
	off := -7 * 60
	if t.turn%2 == 0 && t.loc != nil {
		off = pick(g.r, t.loc.tz)
	}
	return sent.In(time.FixedZone("", off*60))
}

func emails(as []addr) []string {
	if len(as) == 0 {
		return nil
	}
	out := make([]string, len(as))
	for i, a := range as {
		out[i] = a.email
	}
	return out
}

func (g *gen) flags() []string {
	var f []string
	if chance(g.r, 30) {
		f = append(f, `\Answered`)
	}
	if chance(g.r, 4) {
		f = append(f, `\Flagged`)
	}
	if chance(g.r, 72) {
		f = append(f, `\Seen`)
	}
	return f
}

// replySubject adds the sender's reply prefix, sometimes on top of the
// previous subject's prefixes, as careless clients do.
func (g *gen) replySubject(t *thread, prefix string) string {
	r := g.r
	switch {
	case chance(r, 3):
		return "Re[2]: " + t.base
	case chance(r, 22) && t.lastSubject != "" && strings.Count(t.lastSubject, ":") < 3:
		return prefix + t.lastSubject
	default:
		return prefix + t.base
	}
}

func (g *gen) draftCustomer(t *thread, d *draft, token string) {
	r := g.r
	d.ua, d.loc, d.cs = t.custUA, t.loc, t.cs
	d.from = t.customer
	d.to = append([]addr{t.inbox}, t.extraTo...)
	d.cc = t.cc
	var paras []string
	if t.pos == 0 {
		d.subject = t.base
		bodies := t.loc.bodies[t.topic]
		k := 1 + r.IntN(len(bodies))
		for _, p := range bodies[:k] {
			paras = append(paras, expand(p, &t.vars))
		}
	} else {
		d.subject = g.replySubject(t, d.ua.reply)
		paras = append(paras, expand(pick(r, t.loc.followUp), &t.vars))
		if chance(r, 40) {
			paras = append(paras, expand(pick(r, t.loc.bodies[t.topic]), &t.vars))
		}
	}
	greeting := pick(r, t.loc.greeting)
	closing := pick(r, t.loc.closing)
	signName := t.first
	if t.loc == ja || signName == "there" || signName == "zusammen" {
		signName = t.customer.name
	}
	g.compose(t, d, greeting, paras, t.loc.bodies[t.topic], closing+"\n"+signName, "", token)
}

func (g *gen) draftStaff(t *thread, d *draft, token string) {
	r := g.r
	d.ua, d.loc = t.staffUA, en
	d.cs = csUTF8
	if d.ua == uaOutlook && chance(r, 50) {
		d.cs = csWin1252
	} else if chance(r, 10) {
		d.cs = csLatin1
	}
	d.from = t.inbox
	d.to = append([]addr{t.customer}, t.extraTo...)
	d.cc = t.cc
	d.subject = g.replySubject(t, d.ua.reply)
	replies := staffReplies[t.topic]
	var paras []string
	for _, p := range replies[:1+r.IntN(len(replies))] {
		paras = append(paras, expand(p, &t.vars))
	}
	paras = append(paras, pick(r, staffClosers))
	name := t.inbox.name
	if name == "" {
		name = "MyHibachi Team"
	}
	sig := "MyHibachi Catering · (408) 555-0134 · https://myhibachichef.com"
	g.compose(t, d, "Hi "+t.first+",", paras, staffReplies[t.topic], pick(r, []string{"Best,", "Kind regards,", "Thanks,"})+"\n"+name, sig, token)
}

func (g *gen) draftForward(t *thread, d *draft, token string) {
	r := g.r
	d.ua, d.loc, d.cs = t.staffUA, en, csUTF8
	d.from = t.inbox
	c := pick(r, colleagues)
	d.to = []addr{{c.name, c.local + "@myhibachichef.com"}}
	base := t.base
	if t.lastSubject != "" && chance(r, 30) {
		base = t.lastSubject
	}
	d.subject = d.ua.forward + base
	d.forward = true
	g.compose(t, d, "", []string{pick(r, forwardNotes)}, nil, "", "", token)
}

func (g *gen) draftAutomated(t *thread, d *draft, token string) {
	r := g.r
	a := t.auto
	d.ua, d.loc, d.cs = a.ua, en, csUTF8
	d.from = a.from
	d.to = []addr{a.to}
	if a.replyTo {
		rt := t.customer
		d.replyTo = &rt
	}
	d.subject = t.base
	d.layout = a.layout
	paras := []string{
		expand("Amount: {amount}", &t.vars),
		expand("Customer: {name}", &t.vars),
		expand("Reference: {ref} · Event date: {date} · Guests: {guests}", &t.vars),
		"Card: Visa •••• " + pad(r.IntN(10000), 4),
	}
	g.compose(t, d, "", paras, nil, "", "This is an automated message. Please do not reply.", token)
}

// compose writes the text and HTML bodies and the snippets tests look for.
// extras are paragraphs that may be added to vary the size.
func (g *gen) compose(t *thread, d *draft, greeting string, paras, extras []string, closing, sig, token string) {
	r := g.r
	if d.layout == PlainOnly && t.auto == nil {
		switch x := r.IntN(100); {
		case x < 41:
			d.layout = Alternative
		case x < 54:
			d.layout = HTMLOnly
		default:
			d.layout = PlainOnly
		}
	}
	wrapAt := 72
	if d.loc == ja {
		wrapAt = 36
	}
	textSnippet := d.loc.textRef + ": " + token
	htmlSnippet := "<b>" + html.EscapeString(d.loc.htmlRef) + ":</b> " + token

	// A few extra paragraphs vary the size the way real messages do.
	own := paras
	if len(extras) > 0 {
		for range r.IntN(3) {
			if p := expand(pick(r, extras), &t.vars); !slices.Contains(own, p) {
				own = append(own, p)
			}
		}
	}

	var tb strings.Builder
	if greeting != "" {
		tb.WriteString(greeting)
		tb.WriteString("\n\n")
	}
	for _, p := range own {
		wrap(&tb, p, wrapAt)
		tb.WriteString("\n")
	}
	tb.WriteString(textSnippet)
	tb.WriteString("\n\n")
	if closing != "" {
		tb.WriteString(closing)
		tb.WriteString("\n")
	}
	if sig != "" {
		tb.WriteString("\n-- \n")
		tb.WriteString(sig)
		tb.WriteString("\n")
	}
	d.ownText = tb.String()

	var hb strings.Builder
	hb.Grow(4096)
	g.htmlOpen(&hb, d)
	bodyStart := hb.Len()
	if greeting != "" {
		htmlPara(&hb, d.ua, html.EscapeString(greeting))
	}
	for _, p := range own {
		htmlPara(&hb, d.ua, html.EscapeString(p))
	}
	htmlPara(&hb, d.ua, htmlSnippet)
	if closing != "" {
		htmlPara(&hb, d.ua, strings.ReplaceAll(html.EscapeString(closing), "\n", "<br>\n"))
	}
	if sig != "" {
		hb.WriteString(`<div class="signature" style="color:#888888;font-size:12px">` + html.EscapeString(sig) + "</div>\n")
	}
	d.ownHTML = hb.String()[bodyStart:]

	// Replies quote the previous message; forwards carry it whole.
	if t.lastText != "" && t.pos > 0 {
		attribution := expand(d.loc.wrote, &vars{
			date: localDate(d.loc, t.lastDate) + " " + t.lastDate.Format("15:04"),
			name: t.lastFrom.name + " <" + t.lastFrom.email + ">",
		})
		if d.forward {
			fwd := "---------- Forwarded message ---------\nFrom: " + t.lastFrom.name + " <" + t.lastFrom.email + ">\nDate: " +
				t.lastDate.Format(time.RFC1123Z) + "\nSubject: " + t.lastSubject + "\n\n"
			tb.WriteString("\n" + fwd + t.lastText)
			hb.WriteString(`<div class="gmail_quote">` + strings.ReplaceAll(html.EscapeString(fwd), "\n", "<br>\n") + t.lastHTML + "</div>\n")
		} else {
			tb.WriteString("\n" + attribution + "\n")
			for line := range strings.Lines(t.lastText) {
				if strings.HasPrefix(line, ">") {
					tb.WriteString(">" + line)
				} else {
					tb.WriteString("> " + line)
				}
			}
			hb.WriteString(`<div class="gmail_quote"><div class="gmail_attr">` + html.EscapeString(attribution) +
				"</div>\n<blockquote style=\"margin:0 0 0 .8ex;border-left:1px #ccc solid;padding-left:1ex\">\n" + t.lastHTML + "</blockquote></div>\n")
		}
	}
	hb.WriteString("</div></body></html>\n")
	d.text = tb.String()
	d.htmlBody = hb.String()

	if d.layout != HTMLOnly {
		d.want.TextContains = textSnippet
	}
	if d.layout != PlainOnly {
		d.want.HTMLContains = htmlSnippet
	}
}

// wrap writes a paragraph in lines of at most width characters, breaking at
// spaces, or anywhere in scripts without them.
func wrap(b *strings.Builder, p string, width int) {
	for utf8.RuneCountInString(p) > width {
		cut, n := -1, 0
		for i := range p {
			if n == width {
				if cut < 0 {
					cut = i
				}
				break
			}
			if p[i] == ' ' {
				cut = i
			}
			n++
		}
		if cut <= 0 {
			break
		}
		b.WriteString(p[:cut])
		b.WriteByte('\n')
		p = strings.TrimLeft(p[cut:], " ")
	}
	b.WriteString(p)
	b.WriteByte('\n')
}

const outlookStyle = `<style><!--
/* Font Definitions */
@font-face {font-family:"Cambria Math"; panose-1:2 4 5 3 5 4 6 3 2 4;}
@font-face {font-family:Calibri; panose-1:2 15 5 2 2 2 4 3 2 4;}
@font-face {font-family:Aptos;}
/* Style Definitions */
p.MsoNormal, li.MsoNormal, div.MsoNormal {margin:0in; font-size:11.0pt; font-family:"Aptos",sans-serif;}
a:link, span.MsoHyperlink {mso-style-priority:99; color:#467886; text-decoration:underline;}
span.EmailStyle17 {mso-style-type:personal-compose; font-family:"Aptos",sans-serif; color:windowtext;}
.MsoChpDefault {mso-style-type:export-only; font-size:11.0pt; mso-ligatures:none;}
@page WordSection1 {size:8.5in 11.0in; margin:1.0in 1.0in 1.0in 1.0in;}
div.WordSection1 {page:WordSection1;}
--></style><!--[if gte mso 9]><xml>
<o:shapedefaults v:ext="edit" spidmax="1026" />
</xml><![endif]--><!--[if gte mso 9]><xml>
<o:shapelayout v:ext="edit">
<o:idmap v:ext="edit" data="1" />
</o:shapelayout></xml><![endif]-->
`

const receiptStyle = `<style type="text/css">
body{margin:0;padding:0;background-color:#f6f9fc;-webkit-text-size-adjust:100%;-ms-text-size-adjust:100%}
table{border-collapse:collapse;mso-table-lspace:0pt;mso-table-rspace:0pt}
td{font-family:-apple-system,BlinkMacSystemFont,"Segoe UI",Roboto,"Helvetica Neue",Ubuntu,sans-serif;font-size:16px;line-height:24px;color:#525f7f}
.st-Header{background-color:#ffffff;border-radius:8px 8px 0 0}
.st-Divider{height:1px;background-color:#e6ebf1}
.st-Footer td{font-size:12px;line-height:16px;color:#8898aa}
@media only screen and (max-width:600px){.st-Wrapper{width:100%!important}.st-Spacer--gutter{width:16px!important}}
</style>
`

// charsetMark stands for the charset in the HTML head until the message's
// charset is settled.
const charsetMark = "\x00charset\x00"

func (g *gen) htmlOpen(b *strings.Builder, d *draft) {
	b.WriteString("<html><head><meta http-equiv=\"Content-Type\" content=\"text/html; charset=" + charsetMark + "\">\n")
	switch d.ua.html {
	case htmlOutlook:
		b.WriteString(`<meta name="Generator" content="Microsoft Word 15 (filtered medium)">` + "\n" + outlookStyle)
		b.WriteString("</head><body lang=\"EN-US\" link=\"#467886\" vlink=\"#96607D\" style=\"word-wrap:break-word\"><div class=\"WordSection1\">\n")
	case htmlReceipt:
		b.WriteString(receiptStyle)
		b.WriteString("</head><body><div class=\"st-Wrapper\"><table width=\"100%\" cellpadding=\"0\" cellspacing=\"0\" border=\"0\">\n")
		b.WriteString("<tr><td class=\"st-Header\"><img src=\"https://myhibachichef.com/logo.png\" width=\"120\" height=\"40\" alt=\"MyHibachi\"></td></tr>\n</table>\n")
		rows := 4 + g.r.IntN(16)
		b.WriteString("<table class=\"st-Items\" width=\"100%\">\n")
		for i := range rows {
			b.WriteString("<tr><td style=\"padding:4px 0\">Hibachi package – item ")
			b.WriteString(strconv.Itoa(i + 1))
			b.WriteString("</td><td align=\"right\" style=\"padding:4px 0\">$")
			b.WriteString(strconv.Itoa(20 + g.r.IntN(400)))
			b.WriteString(".00</td></tr>\n")
		}
		b.WriteString("</table>\n")
	default:
		b.WriteString("</head><body><div dir=\"ltr\">\n")
	}
}

func htmlPara(b *strings.Builder, ua *client, inner string) {
	switch ua.html {
	case htmlOutlook:
		b.WriteString("<p class=\"MsoNormal\"><span style=\"font-size:11.0pt\">")
		b.WriteString(inner)
		b.WriteString("<o:p></o:p></span></p>\n<p class=\"MsoNormal\"><o:p>&nbsp;</o:p></p>\n")
	case htmlReceipt:
		b.WriteString("<table width=\"100%\"><tr><td class=\"st-Spacer--gutter\" width=\"64\"></td><td style=\"color:#525f7f\">")
		b.WriteString(inner)
		b.WriteString("</td></tr></table>\n")
	default:
		b.WriteString("<div>")
		b.WriteString(inner)
		b.WriteString("</div><div><br></div>\n")
	}
}

// planAttachments picks one to three attachments fitting the topic.
func (g *gen) planAttachments(t *thread, d *draft) {
	r := g.r
	count := 1
	if x := r.IntN(100); x < 3 {
		count = 3
	} else if x < 15 {
		count = 2
	}
	for range count {
		var kind attachmentKind
		x := r.IntN(100)
		switch t.topic {
		case topicPayment, topicInvoice, topicRefund:
			kind = kindPDF
			if x >= 70 {
				kind = kindCSV
			} else if x >= 60 {
				kind = kindPNG
			}
		default:
			kind = kindPNG
			if x < 45 {
				kind = kindPDF
			} else if x < 55 {
				kind = kindCSV
			}
		}
		// Filenames follow the writer's language, sometimes English anyway.
		loc := d.loc
		if chance(r, 25) {
			loc = en
		}
		v := t.vars
		v.n = strconv.Itoa(1000 + r.IntN(9000))
		a := attPlan{kind: kind, name: expand(pick(r, loc.files[kind]), &v), csName: t.customer.name}
		switch kind {
		case kindPDF:
			a.ctype = pick(r, []string{"application/pdf", "application/pdf", "application/pdf", "application/PDF"})
			a.size = 16<<10 + r.IntN(245<<10)
		case kindPNG:
			a.ctype = pick(r, []string{"image/png", "image/png", "image/png", "image/PNG"})
			a.size = 32<<10 + r.IntN(318<<10)
		case kindCSV:
			a.ctype = pick(r, []string{"text/csv", "text/csv", "text/csv", "application/vnd.ms-excel"})
			a.size = 2<<10 + r.IntN(86<<10)
		}
		if g.o.AttachmentMax > 0 {
			// Drawn after the kind's size, so that unset bounds leave the
			// random stream, and so every message, as it was.
			a.size = g.o.AttachmentMin + r.IntN(max(g.o.AttachmentMax-g.o.AttachmentMin, 0)+1)
		}
		a.size = min(a.size, maxAttachment)
		switch {
		case isASCII(a.name) && !strings.ContainsAny(a.name, " ()<>@,;:\\\"/[]?=") && chance(r, 30):
			a.style = nameToken
		case isASCII(a.name):
			a.style = nameQuoted
		case d.ua == uaThunderbird || d.ua == uaApple:
			a.style = name2231
			if len(rfc2231Value("UTF-8", []byte(a.name))) > 60 {
				a.style = name2231Cont
			}
		case chance(r, 50):
			a.style = name2231
		default:
			a.style = name2047
		}
		d.atts = append(d.atts, a)
	}
}

// write renders the message.
func (g *gen) write(d *draft) []byte {
	r := g.r
	ua := d.ua
	size := 2048 + len(d.text)*2 + len(d.htmlBody)*2
	for _, a := range d.atts {
		size += a.size*4/3 + a.size/30 + 512
	}
	var b bytes.Buffer
	b.Grow(size)

	g.traceHeaders(&b, d)
	writeHeader(&b, "MIME-Version", "1.0")
	switch ua {
	case uaOutlook, uaAutomated:
		g.writeAddressing(&b, d)
		g.writeDateID(&b, d)
	default:
		g.writeDateID(&b, d)
		g.writeAddressing(&b, d)
	}
	if ua.extra != nil {
		ua.extra(&b, r)
	}

	if len(d.atts) == 0 {
		g.writeBody(&b, d, 1)
	} else {
		boundary := ua.boundary(r, 0)
		b.WriteString("Content-Type: multipart/mixed; boundary=\"" + boundary + "\"\r\n\r\n")
		if ua == uaApple || ua == uaAutomated {
			b.WriteString("This is a multi-part message in MIME format.\r\n")
		}
		b.WriteString("\r\n--" + boundary + "\r\n")
		g.writeBody(&b, d, 1)
		for i := range d.atts {
			b.WriteString("\r\n--" + boundary + "\r\n")
			d.want.Attachments = append(d.want.Attachments, g.writeAttachment(&b, d, &d.atts[i]))
		}
		b.WriteString("\r\n--" + boundary + "--\r\n")
	}
	return b.Bytes()
}

// traceHeaders are what the receiving servers add: Return-Path, Received,
// Authentication-Results and a DKIM signature, about a kilobyte as in real
// mail.
func (g *gen) traceHeaders(b *bytes.Buffer, d *draft) {
	r := g.r
	// The copy in the shared inbox was delivered to the business address.
	rcpt := d.to[0].email
	if strings.HasSuffix(d.from.email, "@myhibachichef.com") {
		rcpt = d.from.email
	}
	srvTime := g.clock.In(time.FixedZone("", -7*3600)).Format("Mon, 2 Jan 2006 15:04:05 -0700")
	domain := d.from.email[strings.IndexByte(d.from.email, '@')+1:]
	b.WriteString("Return-Path: <" + d.from.email + ">\r\n")
	b.WriteString("Delivered-To: " + rcpt + "\r\n")
	ip := strconv.Itoa(20+r.IntN(200)) + "." + strconv.Itoa(r.IntN(256)) + "." + strconv.Itoa(r.IntN(256)) + "." + strconv.Itoa(1+r.IntN(254))
	b.WriteString("Received: from mail-" + randChars(r, 6, "abcdefghijklmnopqrstuvwxyz") + "." + domain + " (mail." + domain + " [" + ip + "])\r\n" +
		"\tby mx01.myhibachichef.com (Postfix) with ESMTPS id " + randChars(r, 12, upperAlnum) + "\r\n" +
		"\tfor <" + rcpt + ">; " + srvTime + "\r\n")
	if chance(r, 60) {
		b.WriteString("Received: by 2002:a05:" + randChars(r, 4, lowerHex) + ":" + randChars(r, 4, lowerHex) + ":b0:" + randChars(r, 4, lowerHex) +
			" with SMTP id " + randChars(r, 10, "abcdefghijklmnopqrstuvwxyz") + "." + strconv.Itoa(r.IntN(100)) + ";\r\n        " + srvTime + "\r\n")
	}
	b.WriteString("Authentication-Results: mx01.myhibachichef.com;\r\n\tdkim=pass header.d=" + domain + " header.s=s1 header.b=" + randChars(r, 8, b64chars) +
		";\r\n\tspf=pass (mx01.myhibachichef.com: domain of " + d.from.email + " designates " + ip + " as permitted sender) smtp.mailfrom=" + d.from.email +
		";\r\n\tdmarc=pass (p=NONE sp=NONE dis=NONE) header.from=" + domain + "\r\n")
	if chance(r, 70) {
		raw, _ := fillerPool()
		off := r.IntN(len(raw) - 300)
		sig := base64.StdEncoding.EncodeToString(raw[off : off+256])
		bh := base64.StdEncoding.EncodeToString(raw[off+256 : off+288])
		b.WriteString("DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=" + domain + "; s=s1;\r\n" +
			"\th=from:to:subject:date:message-id:mime-version:content-type;\r\n\tbh=" + bh + ";\r\n\tb=")
		for len(sig) > 70 {
			b.WriteString(sig[:70] + "\r\n\t ")
			sig = sig[70:]
		}
		b.WriteString(sig + "\r\n")
	}
}

func writeHeader(b *bytes.Buffer, name, value string) {
	b.WriteString(name)
	b.WriteString(": ")
	b.WriteString(value)
	b.WriteString("\r\n")
}

func (g *gen) writeDateID(b *bytes.Buffer, d *draft) {
	sent := d.sentAt
	if d.ua.utc {
		sent = sent.UTC()
	}
	writeHeader(b, "Date", sent.Format(d.ua.dateFmt))
	if d.id != "" {
		if d.ua == uaOutlook && chance(g.r, 30) {
			b.WriteString(d.ua.idHeader + ":\r\n <" + d.id + ">\r\n") // Outlook folds long ids
		} else {
			writeHeader(b, d.ua.idHeader, "<"+d.id+">")
		}
	}
	if d.inReplyTo != "" {
		writeHeader(b, "In-Reply-To", "<"+d.inReplyTo+">")
	}
	if len(d.refs) > 0 {
		b.WriteString("References:")
		for i, id := range d.refs {
			if i > 0 {
				b.WriteString("\r\n")
			}
			b.WriteString(" <" + id + ">")
		}
		b.WriteString("\r\n")
	}
}

func (g *gen) writeAddressing(b *bytes.Buffer, d *draft) {
	g.writeAddrs(b, d, "From", []addr{d.from})
	if d.replyTo != nil {
		g.writeAddrs(b, d, "Reply-To", []addr{*d.replyTo})
	}
	g.writeAddrs(b, d, "To", d.to)
	if len(d.cc) > 0 {
		g.writeAddrs(b, d, "Cc", d.cc)
	}
	b.WriteString("Subject: ")
	g.writeText(b, d, d.subject, true)
	b.WriteString("\r\n")
}

func (g *gen) writeAddrs(b *bytes.Buffer, d *draft, header string, as []addr) {
	b.WriteString(header)
	b.WriteString(": ")
	for i, a := range as {
		if i > 0 {
			b.WriteString(",\r\n ")
		}
		if a.name == "" {
			b.WriteString(a.email)
			continue
		}
		if isASCII(a.name) {
			b.WriteString(quotePhrase(a.name))
		} else {
			g.writeText(b, d, a.name, false)
		}
		b.WriteString(" <" + a.email + ">")
	}
	b.WriteString("\r\n")
}

// writeText writes a subject or display name: plain when ASCII, otherwise as
// encoded words in the message's charset (or UTF-8 when it cannot hold the
// text). A subject's reply prefix sometimes stays outside the encoded words,
// as Gmail writes it.
func (g *gen) writeText(b *bytes.Buffer, d *draft, s string, subject bool) {
	r := g.r
	if isASCII(s) {
		if !subject || len(s) < 70 {
			b.WriteString(s)
			return
		}
		// Fold long ASCII subjects at a space.
		line := len("Subject: ")
		for i, w := range strings.Split(s, " ") {
			if i > 0 {
				if line+1+len(w) > 76 {
					b.WriteString("\r\n")
					line = 0
				}
				b.WriteByte(' ')
				line++
			}
			b.WriteString(w)
			line += len(w)
		}
		return
	}
	d.traits.EncodedHeaders = true
	if subject && chance(r, 50) {
		if i := strings.Index(s, ": "); i > 0 && i < 8 && isASCII(s[:i+2]) {
			b.WriteString(s[:i+2])
			s = s[i+2:]
		}
	}
	cs := d.cs
	enc, ok := cs.encode(s)
	if !ok {
		cs = csUTF8
		enc = []byte(s)
	}
	q := chance(r, 25)
	if cs.cm != nil && cs != csKOI8R {
		q = chance(r, 70) // Latin text is mostly ASCII: Q keeps it readable
	}
	encodedWords(b, pick(r, cs.labels), enc, cs, q)
}

// writeBody writes the readable part: one text part or an alternative.
func (g *gen) writeBody(b *bytes.Buffer, d *draft, depth int) {
	switch d.layout {
	case PlainOnly:
		g.writeTextPart(b, d, "text/plain", d.text)
	case HTMLOnly:
		g.writeTextPart(b, d, "text/html", d.htmlBody)
	default:
		boundary := d.ua.boundary(g.r, depth)
		b.WriteString("Content-Type: multipart/alternative; boundary=\"" + boundary + "\"\r\n\r\n")
		b.WriteString("--" + boundary + "\r\n")
		g.writeTextPart(b, d, "text/plain", d.text)
		b.WriteString("\r\n--" + boundary + "\r\n")
		g.writeTextPart(b, d, "text/html", d.htmlBody)
		b.WriteString("\r\n--" + boundary + "--\r\n")
	}
}

// writeTextPart writes Content-Type, Content-Transfer-Encoding and the body in
// the message's charset.
func (g *gen) writeTextPart(b *bytes.Buffer, d *draft, mediaType, text string) {
	r := g.r
	body, ok := d.cs.encode(text)
	if !ok { // cannot happen: build checked the charset
		panic("mailgen: text not representable in " + d.cs.name)
	}
	label := pick(r, d.cs.labels)
	b.WriteString("Content-Type: " + mediaType + "; charset=")
	if d.ua.quoteCS {
		b.WriteString("\"" + label + "\"")
	} else {
		b.WriteString(label)
	}
	if d.ua.flowed && mediaType == "text/plain" {
		b.WriteString("; format=flowed")
	}
	b.WriteString("\r\n")

	cte := "7bit"
	x := r.IntN(100)
	switch {
	case isASCII(text):
		if d.ua == uaOutlook || x < 25 {
			cte = "quoted-printable"
		}
	case d.ua == uaOutlook || x < 50:
		cte = "quoted-printable"
	case x < 88:
		cte = "8bit"
	default:
		cte = "base64"
	}
	if d.traits.TextEncoding == "" {
		d.traits.TextEncoding = cte
	}
	b.WriteString("Content-Transfer-Encoding: " + cte + "\r\n\r\n")
	switch cte {
	case "quoted-printable":
		writeQP(b, body)
	case "base64":
		w := b64Lines{dst: b}
		w.Write(bytes.ReplaceAll(body, []byte("\n"), []byte("\r\n")))
		w.Close()
	default:
		write8bit(b, body)
	}
}

// writeAttachment writes one attachment part and returns what an importer
// must record for it.
func (g *gen) writeAttachment(b *bytes.Buffer, d *draft, a *attPlan) message.Attachment {
	r := g.r
	name := a.name
	var typeParam, dispParam string
	switch a.style {
	case nameToken:
		typeParam = "name=" + name
		dispParam = "filename=" + name
	case nameQuoted:
		typeParam = "name=\"" + name + "\""
		dispParam = "filename=\"" + name + "\""
	case name2047:
		cs := d.cs
		enc, ok := cs.encode(name)
		if !ok {
			cs, enc = csUTF8, []byte(name)
		}
		var w bytes.Buffer
		encodedWords(&w, pick(r, cs.labels), enc, cs, chance(r, 50))
		ew := strings.ReplaceAll(w.String(), "\r\n ", " ")
		typeParam = "name=\"" + ew + "\""
		dispParam = "filename=\"" + ew + "\""
	case name2231:
		v := rfc2231Value("UTF-8", []byte(name))
		typeParam = "name*=" + v
		dispParam = "filename*=" + v
		d.traits.RFC2231 = true
	case name2231Cont:
		v := rfc2231Value("UTF-8", []byte(name))
		var p strings.Builder
		for i := 0; len(v) > 0; i++ {
			n := min(len(v), 40)
			// Never split a %XX escape between sections.
			for n < len(v) && n > 2 && (v[n-1] == '%' || v[n-2] == '%') {
				n--
			}
			if i > 0 {
				p.WriteString(";\r\n ")
			}
			p.WriteString("filename*" + strconv.Itoa(i) + "*=" + v[:n])
			v = v[n:]
		}
		typeParam = "name*=" + rfc2231Value("UTF-8", []byte(name))
		dispParam = p.String()
		d.traits.RFC2231 = true
	}
	mediaType := a.ctype
	if a.kind == kindCSV && a.ctype == "text/csv" {
		mediaType += "; charset=utf-8"
	}
	b.WriteString("Content-Type: " + mediaType + ";\r\n " + typeParam + "\r\n")
	if d.ua == uaOutlook && isASCII(name) {
		b.WriteString("Content-Description: " + name + "\r\n")
	}
	b.WriteString("Content-Disposition: attachment;\r\n " + dispParam)
	b.WriteString("\r\nContent-Transfer-Encoding: base64\r\n")
	if d.ua == uaGmail {
		id := "f_" + randChars(r, 9, "abcdefghijklmnopqrstuvwxyz0123456789")
		b.WriteString("Content-ID: <" + id + ">\r\nX-Attachment-Id: " + id + "\r\n")
	}
	b.WriteString("\r\n")
	w := b64Lines{dst: b}
	var size int
	switch a.kind {
	case kindPDF:
		size = writePDF(&w, r, a.size, strings.TrimSuffix(asciiOnly(name), ".pdf"))
	case kindPNG:
		size = writePNG(&w, r, a.size)
	case kindCSV:
		size = writeCSV(&w, r, a.size, []string{a.csName, "Alice Johnson", "Smith, John", "José Martínez", "山田 太郎"})
	}
	w.Close()
	return message.Attachment{Filename: name, ContentType: strings.ToLower(a.ctype), Size: int64(size)}
}

// asciiOnly keeps the characters a PDF literal string may hold unescaped.
func asciiOnly(s string) string {
	var b strings.Builder
	for _, c := range s {
		if c >= ' ' && c < 0x7f && c != '(' && c != ')' && c != '\\' {
			b.WriteRune(c)
		}
	}
	return b.String()
}
