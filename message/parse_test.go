package message

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseEncodedHeaders(t *testing.T) {
	tests := []struct {
		name, header, subject, fromName string
	}{
		{
			name:     "iso-8859-1 Q",
			header:   "Subject: =?iso-8859-1?Q?Caf=E9_cr=E8me?=\nFrom: =?ISO-8859-1?Q?Andr=E9?= <andre@example.com>",
			subject:  "Café crème",
			fromName: "André",
		},
		{
			name:     "koi8-r B",
			header:   "Subject: =?koi8-r?B?8NLJ18XULCDNydI=?=\nFrom: =?KOI8-R?B?8NLJ18XU?= <ivan@example.ru>",
			subject:  "Привет, мир",
			fromName: "Привет",
		},
		{
			name:     "shift_jis B",
			header:   "Subject: =?shift_jis?B?k/qWe4zqgsyDgYFbg4s=?=\nFrom: =?Shift_JIS?B?k/qWe4zq?= <taro@example.jp>",
			subject:  "日本語のメール",
			fromName: "日本語",
		},
		{
			name:     "windows-1252 Q",
			header:   "Subject: =?windows-1252?Q?=93Smart_quotes=94_cost_5_=80?=\nFrom: \"Bob\" <bob@example.com>",
			subject:  "“Smart quotes” cost 5 €",
			fromName: "Bob",
		},
		{
			name:    "utf-8 folded over two words",
			header:  "Subject: =?utf-8?q?=C3=9Cn=C3=AFc=C3=B6d=C3=A9_subject_that_is_quite_long_and_needs_f?=\n =?utf-8?q?olding_over_lines?=\nFrom: alice@example.com",
			subject: "Ünïcödé subject that is quite long and needs folding over lines",
		},
		{
			name:    "encoded and plain words mixed",
			header:  "Subject: Re: =?utf-8?B?SGVsbG8sIHfDtnJsZCDinJM=?= (again)\nFrom: alice@example.com",
			subject: "Re: Hello, wörld ✓ (again)",
		},
		{
			name:     "encoded word inside quotes",
			header:   "Subject: x\nFrom: \"=?utf-8?Q?J=C3=B6rg_M=C3=BCller?=\" <j@example.de>",
			subject:  "x",
			fromName: "Jörg Müller",
		},
		{
			name:    "spaces inside an encoded word",
			header:  "Subject: =?utf-8?Q?hello world?=\nFrom: a@example.com",
			subject: "hello world",
		},
		{
			name:    "unknown charset keeps the text",
			header:  "Subject: =?x-unknown?Q?abc?= and =?utf-8?Q?d=C3=A9f?=\nFrom: a@example.com",
			subject: "abc and déf",
		},
		{
			// Decoded text is never decoded again, whichever pass decoded it.
			name:    "encoded word that decodes to an encoded word",
			header:  "Subject: =?utf-8?Q?literal_=3D=3Futf-8=3FQ=3Fabc=3F=3D?=\nFrom: a@example.com",
			subject: "literal =?utf-8?Q?abc?=",
		},
		{
			name:    "same, beside a word only the lenient pass decodes",
			header:  "Subject: =?utf-8?B?eCA9P3V0Zi04P1E/YWJjPz0=?= =?utf-8?B?d2l0aCBz cGFjZQ==?=\nFrom: a@example.com",
			subject: "x =?utf-8?Q?abc?=with space",
		},
		{
			name:    "malformed encoded word stays as sent",
			header:  "Subject: =?utf-8?X?abc?= plain\nFrom: a@example.com",
			subject: "=?utf-8?X?abc?= plain",
		},
		{
			name:     "raw 8-bit latin-1, charset from the body",
			header:   "Subject: Gr\xfc\xdfe\nFrom: J\xfcrgen <j@example.de>\nContent-Type: text/plain; charset=iso-8859-1",
			subject:  "Grüße",
			fromName: "Jürgen",
		},
		{
			name:    "raw 8-bit UTF-8",
			header:  "Subject: Grüße ✓\nFrom: a@example.com",
			subject: "Grüße ✓",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := parse(t, tt.header+"\n\nbody\n")
			if m.Subject != tt.subject {
				t.Errorf("Subject = %q, want %q", m.Subject, tt.subject)
			}
			if m.FromName != tt.fromName {
				t.Errorf("FromName = %q, want %q", m.FromName, tt.fromName)
			}
		})
	}
}

func TestParseAddresses(t *testing.T) {
	tests := []struct {
		name, header string
		from         string
		fromName     string
		to, cc       []string
	}{
		{
			name:   "display names dropped, case kept",
			header: "From: \"Doe, Jane\" <Jane.Doe@Example.COM>\nTo: Support <CS@myhibachichef.com>, bob@example.org\nCc: carol@example.net",
			from:   "Jane.Doe@Example.COM", fromName: "Doe, Jane",
			to: []string{"CS@myhibachichef.com", "bob@example.org"}, cc: []string{"carol@example.net"},
		},
		{
			name:   "group syntax",
			header: "From: a@example.com\nTo: Team: x@example.com, \"Y\" <y@example.com>;, z@example.com\nCc: undisclosed-recipients:;",
			from:   "a@example.com",
			to:     []string{"x@example.com", "y@example.com", "z@example.com"}, cc: []string{},
		},
		{
			name:   "missing commas",
			header: "From: Bob <bob@example.com> Bobby <bobby@example.com>\nTo: a@example.com b@example.com",
			from:   "bob@example.com", fromName: "Bob",
			to: []string{"a@example.com", "b@example.com"}, cc: []string{},
		},
		{
			name:   "broken list keeps what looks like addresses",
			header: "From: <>\nTo: \"Smith, J\" <j@example.com>, <broken@@, k@example.com (Kay), <>\nCc: ;;",
			from:   "",
			to:     []string{"j@example.com", "k@example.com"}, cc: []string{},
		},
		{
			name:   "repeated To headers and trailing comma",
			header: "From: a@example.com\nTo: one@example.com,\nTo: two@example.com",
			from:   "a@example.com",
			to:     []string{"one@example.com", "two@example.com"}, cc: []string{},
		},
		{
			name:   "from without an address",
			header: "From: MAILER-DAEMON\nTo: x@example.com",
			from:   "", fromName: "MAILER-DAEMON",
			to: []string{"x@example.com"}, cc: []string{},
		},
		{
			name:   "whole address encoded as one word",
			header: "From: =?utf-8?B?Qm9iIDxib2JAZXhhbXBsZS5jb20+?=\nTo: x@example.com",
			from:   "bob@example.com", fromName: "Bob",
			to: []string{"x@example.com"}, cc: []string{},
		},
		{
			name:   "no address headers",
			header: "Subject: lonely",
			to:     []string{}, cc: []string{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := parse(t, tt.header+"\n\nbody\n")
			if m.FromAddress != tt.from || m.FromName != tt.fromName {
				t.Errorf("From = %q, %q; want %q, %q", m.FromAddress, m.FromName, tt.from, tt.fromName)
			}
			if !slices.Equal(m.To, tt.to) {
				t.Errorf("To = %q, want %q", m.To, tt.to)
			}
			if !slices.Equal(m.Cc, tt.cc) {
				t.Errorf("Cc = %q, want %q", m.Cc, tt.cc)
			}
		})
	}
}

func TestParseBodyCharsets(t *testing.T) {
	const head = "From: a@example.com\nSubject: charset\nMIME-Version: 1.0\n"
	tests := []struct {
		name, header, body, text string
		warn                     string // a warning that must be present
	}{
		{"utf-8 8bit", "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit", "Grüße ✓\n", "Grüße ✓\n", ""},
		{"iso-8859-1 8bit", "Content-Type: text/plain; charset=iso-8859-1", "Gr\xfc\xdfe aus K\xf6ln\n", "Grüße aus Köln\n", ""},
		{"iso-8859-1 quoted-printable", "Content-Type: text/plain; charset=\"ISO-8859-1\"\nContent-Transfer-Encoding: quoted-printable", "Gr=FC=DFe aus K=F6ln, sch=F6n=\n!\n", "Grüße aus Köln, schön!\n", ""},
		{"windows-1252 quoted-printable", "Content-Type: text/plain; charset=windows-1252\nContent-Transfer-Encoding: quoted-printable", "=93Smart quotes=94 cost 5 =80", "“Smart quotes” cost 5 €", ""},
		{"koi8-r base64", "Content-Type: text/plain; charset=koi8-r\nContent-Transfer-Encoding: base64", "89/F29gg1sUgxd2jINzUycggzdHHy8nIIMbSwc7D1drTy8nIIMLVzM/L\n", "Съешь же ещё этих мягких французских булок", ""},
		{"shift_jis base64", "Content-Type: text/plain; charset=Shift_JIS\nContent-Transfer-Encoding: base64", "grGC8YLJgr+CzYFB\nkKKKRQ==\n", "こんにちは、世界", ""},
		{"utf-8 base64", "Content-Type: text/plain; charset=UTF-8\nContent-Transfer-Encoding: Base64", "SGVsbG8sIHfDtnJsZCDinJM=", "Hello, wörld ✓", ""},
		{"utf-8 quoted-printable", "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: quoted-printable", "na=C3=AFve caf=C3=A9 =E2=9C=93   \nline two=\n continues\n", "naïve café ✓\nline two continues\n", ""},
		{"broken quoted-printable kept literally", "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: quoted-printable", "a=ZZb = c=4", "a=ZZb = c=4", ""},
		{"us-ascii label on UTF-8 text", "Content-Type: text/plain; charset=us-ascii", "caf\xc3\xa9\n", "café\n", ""},
		{"no charset, latin-1 bytes", "Content-Type: text/plain", "Ol\xe1, tudo bem? Voc\xea vai \xe0 festa de anivers\xe1rio?\n", "Olá, tudo bem? Você vai à festa de aniversário?\n", "without a usable charset"},
		{"unknown charset, UTF-8 bytes", "Content-Type: text/plain; charset=x-martian", "caf\xc3\xa9", "café", "unknown charset"},
		{"charset=charset=utf-8", "Content-Type: text/plain; charset=\"charset=utf-8\"", "caf\xc3\xa9", "café", ""},
		{"no Content-Type at all", "", "plain old text\n", "plain old text\n", ""},
		{"utf-7", "Content-Type: text/plain; charset=utf-7", "Hi +AGEAYgBj-, caf+AOk-, a+-b, +2D3eAA-", "Hi abc, café, a+b, 😀", ""},
		// One stray "+" made the strict decoder give up and the part was
		// stored undecoded. Python turns each into U+FFFD; a "+" that starts
		// nothing decodable is kept as text here, which is what it was.
		{"utf-7 with a stray plus", "Content-Type: text/plain; charset=utf-7", "caf+AOk- for 2 + 2+2 people", "café for 2 + 2+2 people", "decoded leniently"},
		{"utf-7 with 8-bit bytes", "Content-Type: text/plain; charset=utf-7", "caf+AOk- \xc3\xa9t\xe9", "café ét\uFFFD", "decoded leniently"},
		{"text mislabelled base64", "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: base64", "This is not base64 at all, it is plain text.\n", "This is not base64 at all, it is plain text.\n", "declared base64"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw := head
			if tt.header != "" {
				raw += tt.header + "\n"
			}
			m := parse(t, raw+"\n"+tt.body)
			if m.TextBody != tt.text {
				t.Errorf("TextBody = %q, want %q", m.TextBody, tt.text)
			}
			if tt.warn != "" && !hasWarning(m, tt.warn) {
				t.Errorf("no warning %q in %q", tt.warn, m.Warnings)
			}
			if tt.warn == "" && len(m.Warnings) > 0 {
				t.Errorf("unexpected warnings %q", m.Warnings)
			}
		})
	}
}

func TestParseHTML(t *testing.T) {
	tests := []struct {
		name, raw, text, html string
	}{
		{
			name: "html only: text made from it",
			raw:  "From: a@example.com\nContent-Type: text/html; charset=iso-8859-1\n\n<html><body><p>Gr\xfc\xdfe</p></body></html>\n",
			text: "Grüße", html: "<html><body><p>Grüße</p></body></html>\n",
		},
		{
			name: "charset from the meta tag when MIME declares none",
			raw:  "From: a@example.com\nContent-Type: text/html\n\n<html><head><meta charset=\"windows-1250\"></head><body>\x8a\x9a \x80</body></html>",
			text: "Šš €", html: "<html><head><meta charset=\"windows-1250\"></head><body>Šš €</body></html>",
		},
		{
			name: "MIME charset wins over the meta tag",
			raw:  "From: a@example.com\nContent-Type: text/html; charset=utf-8\n\n<meta charset=\"iso-8859-1\"><p>caf\xc3\xa9</p>",
			text: "café", html: "<meta charset=\"iso-8859-1\"><p>café</p>",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := parse(t, tt.raw)
			if m.TextBody != tt.text || m.HTMLBody != tt.html {
				t.Errorf("got text %q html %q, want %q %q", m.TextBody, m.HTMLBody, tt.text, tt.html)
			}
		})
	}
}

const alternative = `From: "Shop" <shop@example.com>
To: cs@myhibachichef.com
Subject: Your order
Date: Tue, 3 Jun 2025 09:15:00 -0700
Message-ID: <order-1@example.com>
MIME-Version: 1.0
Content-Type: multipart/alternative; boundary="alt-1"

This is a multi-part message in MIME format.

--alt-1
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: quoted-printable

Thanks for your order =E2=80=93 see you Saturday.
--alt-1
Content-Type: text/html; charset=utf-8
Content-Transfer-Encoding: base64

` + "PHA+VGhhbmtzIGZvciB5b3VyIG9yZGVyIOKAkyBzZWUgeW91IFNhdHVyZGF5LjwvcD4=" + `
--alt-1--
epilogue is ignored
`

func TestParseAlternative(t *testing.T) {
	for _, raw := range []string{alternative, crlf(alternative)} {
		m := parse(t, raw)
		if want := "Thanks for your order – see you Saturday."; m.TextBody != want {
			t.Errorf("TextBody = %q, want %q", m.TextBody, want)
		}
		if want := "<p>Thanks for your order – see you Saturday.</p>"; m.HTMLBody != want {
			t.Errorf("HTMLBody = %q, want %q", m.HTMLBody, want)
		}
		if len(m.Attachments) != 0 || len(m.Warnings) != 0 {
			t.Errorf("attachments %v, warnings %q", m.Attachments, m.Warnings)
		}
		if m.MessageID != "order-1@example.com" || m.Subject != "Your order" || m.FromName != "Shop" {
			t.Errorf("headers: %q %q %q", m.MessageID, m.Subject, m.FromName)
		}
		want := time.Date(2025, 6, 3, 16, 15, 0, 0, time.UTC)
		if m.SentAt == nil || !m.SentAt.Equal(want) {
			t.Errorf("SentAt = %v, want %v", m.SentAt, want)
		}
	}
}

// wrap76 base64-encodes data in 76-character lines, as mailers do.
func wrap76(data []byte, eol string) string {
	enc := base64.StdEncoding.EncodeToString(data)
	var b strings.Builder
	for len(enc) > 76 {
		b.WriteString(enc[:76] + eol)
		enc = enc[76:]
	}
	b.WriteString(enc + eol)
	return b.String()
}

func bytesOf(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i * 7)
	}
	return b
}

func TestParseAttachments(t *testing.T) {
	inner := "From: x@example.com\nSubject: forwarded\n\nHello.\n"
	raw := `From: a@example.com
To: b@example.com
Subject: files
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="outer"

--outer
Content-Type: multipart/related; boundary="rel"

--rel
Content-Type: multipart/alternative; boundary="alt"

--alt
Content-Type: text/plain; charset=utf-8

See the files.
--alt
Content-Type: text/html; charset=utf-8

<p>See the files.<img src="cid:logo"></p>
--alt--

--rel
Content-Type: image/png
Content-ID: <logo>
Content-Transfer-Encoding: base64

` + wrap76(bytesOf(1000), "\n") + `--rel--

--outer
Content-Type: application/pdf
Content-Disposition: attachment; filename*=UTF-8''na%C3%AFve%20r%C3%A9sum%C3%A9.pdf
Content-Transfer-Encoding: base64

` + wrap76(bytesOf(50_001), "\n") + `
--outer
Content-Type: application/octet-stream; name="ignored.bin"
Content-Disposition: attachment;
 filename*0*=UTF-8''%E2%82%AC%20report%20;
 filename*1*=2025%E2%80%9306;
 filename*2=".xlsx"
Content-Transfer-Encoding: base64

` + base64.StdEncoding.EncodeToString(bytesOf(2)) + `
--outer
Content-Type: text/plain; charset=utf-8; name="notes.txt"
Content-Disposition: inline; filename="notes.txt"

line one
line two
--outer
Content-Type: image/jpeg; name="=?utf-8?B?0YTQvtGC0L4uanBn?="
Content-Disposition: inline
Content-Transfer-Encoding: base64

` + base64.RawStdEncoding.EncodeToString(bytesOf(3001)) + `
--outer
Content-Type: text/csv; name=data.csv
Content-Transfer-Encoding: quoted-printable

a=3Db,c=
d
e=20
--outer
Content-Type: message/rfc822
Content-Disposition: inline

` + inner + `--outer--
`
	want := []Attachment{
		{Filename: "", ContentType: "image/png", Size: 1000},
		{Filename: "naïve résumé.pdf", ContentType: "application/pdf", Size: 50_001},
		{Filename: "€ report 2025–06.xlsx", ContentType: "application/octet-stream", Size: 2},
		{Filename: "notes.txt", ContentType: "text/plain", Size: int64(len("line one\nline two"))},
		{Filename: "фото.jpg", ContentType: "image/jpeg", Size: 3001},
		{Filename: "data.csv", ContentType: "text/csv", Size: int64(len("a=bc,d\ne "))},
		// The line break before a delimiter belongs to the delimiter.
		{Filename: "", ContentType: "message/rfc822", Size: int64(len(inner) - 1)},
	}
	// Text attachments grow by one byte per line break in CRLF form.
	wantCRLF := slices.Clone(want)
	wantCRLF[3].Size++
	wantCRLF[5].Size++
	wantCRLF[6].Size += int64(strings.Count(inner, "\n") - 1)
	for _, form := range []struct {
		name, raw string
		want      []Attachment
	}{{"LF", raw, want}, {"CRLF", crlf(raw), wantCRLF}} {
		t.Run(form.name, func(t *testing.T) {
			m := parse(t, form.raw)
			assertAttachments(t, m.Attachments, form.want)
			if m.TextBody != "See the files." {
				t.Errorf("TextBody = %q", m.TextBody)
			}
			if !strings.HasPrefix(m.HTMLBody, "<p>See the files.") {
				t.Errorf("HTMLBody = %q", m.HTMLBody)
			}
			if len(m.Warnings) > 0 {
				t.Errorf("warnings: %q", m.Warnings)
			}
		})
	}
}

func TestAttachmentNames(t *testing.T) {
	tests := []struct {
		name, headers, filename, contentType string
	}{
		{"RFC 2231 UTF-8", "Content-Type: application/pdf\nContent-Disposition: attachment; filename*=UTF-8''na%C3%AFve%20r%C3%A9sum%C3%A9.pdf", "naïve résumé.pdf", "application/pdf"},
		{"RFC 2231 latin-1", "Content-Type: application/pdf\nContent-Disposition: attachment; filename*=iso-8859-1'fr'na%EFve.pdf", "naïve.pdf", "application/pdf"},
		{"RFC 2231 continued latin-1", "Content-Type: text/plain\nContent-Disposition: attachment;\n filename*0*=iso-8859-1''caf%E9;\n filename*1=\".txt\"", "café.txt", "text/plain"},
		{"RFC 2231 in the name parameter", "Content-Type: image/png; name*=UTF-8''%E2%9C%93.png", "✓.png", "image/png"},
		{"RFC 2047 in quotes", "Content-Type: application/pdf; name=\"=?utf-8?B?0YTQvtGC0L4ucGRm?=\"\nContent-Disposition: attachment", "фото.pdf", "application/pdf"},
		{"RFC 2047 latin-1", "Content-Type: application/pdf; name=\"=?iso-8859-1?Q?r=E9sum=E9.pdf?=\"", "résumé.pdf", "application/pdf"},
		{"raw UTF-8", "Content-Type: application/msword; name=\"管理.doc\"", "管理.doc", "application/msword"},
		{"raw latin-1", "Content-Type: application/pdf\nContent-Disposition: attachment; filename=\"caf\xe9.pdf\"", "café.pdf", "application/pdf"},
		{"disposition wins over name", "Content-Type: application/pdf; name=a.pdf\nContent-Disposition: attachment; filename=b.pdf", "b.pdf", "application/pdf"},
		{"media type lowercased, parameters dropped", "Content-Type: Application/PDF; name=x.pdf; x-mac-type=50444620", "x.pdf", "application/pdf"},
		{"attachment without a name", "Content-Type: application/zip\nContent-Disposition: attachment", "", "application/zip"},
		{"unquoted name with specials", "Content-Type: application/pdf; name=Invoice (1).pdf", "Invoice (1).pdf", "application/pdf"},
		// RFC 2231 without the quote before the (empty) language: Python
		// and enmime drop the name; the charset is plain to see, so the
		// rest is the name. Without a known charset the quote is the name's.
		{"RFC 2231 without the language quote", "Content-Type: application/pdf\nContent-Disposition: attachment; filename*=UTF-8'foo.pdf", "foo.pdf", "application/pdf"},
		{"RFC 2231 without the language quote, escapes", "Content-Type: application/pdf\nContent-Disposition: attachment; filename*=UTF-8'caf%C3%A9.pdf", "café.pdf", "application/pdf"},
		{"RFC 2231 continued without the language quote", "Content-Type: application/pdf\nContent-Disposition: attachment; filename*0*=UTF-8'caf%C3%A9; filename*1=.pdf", "café.pdf", "application/pdf"},
		{"RFC 2231 without charset and language quote", "Content-Type: application/pdf\nContent-Disposition: attachment; filename*='foo.pdf", "foo.pdf", "application/pdf"},
		{"RFC 2231 quote in the name", "Content-Type: application/pdf\nContent-Disposition: attachment; filename*=it's.pdf", "it's.pdf", "application/pdf"},
		{"RFC 2231 without quotes", "Content-Type: application/pdf\nContent-Disposition: attachment; filename*=foo%20bar.pdf", "foo bar.pdf", "application/pdf"},
		{"RFC 2231 value in quotes", "Content-Type: application/pdf\nContent-Disposition: attachment; filename*=\"UTF-8''a%20b.pdf\"", "a b.pdf", "application/pdf"},
		// Quoted strings lose their backslash escapes (\" and \\), as in
		// Python; a backslash before anything else is kept, as enmime keeps
		// it, for Windows paths sent unescaped.
		{"escaped quotes", "Content-Type: application/pdf\nContent-Disposition: attachment; filename=\"a\\\"b.pdf\"", `a"b.pdf`, "application/pdf"},
		{"escaped quotes in a UTF-8 name", "Content-Type: application/pdf\nContent-Disposition: attachment; filename=\"café \\\"1\\\".pdf\"", `café "1".pdf`, "application/pdf"},
		{"escaped quotes in a latin-1 name", "Content-Type: application/pdf\nContent-Disposition: attachment; filename=\"caf\xe9\\\"s.pdf\"", `café"s.pdf`, "application/pdf"},
		{"escaped quotes in an RFC 2231 continuation", "Content-Type: application/pdf\nContent-Disposition: attachment; filename*0*=UTF-8''caf%C3%A9; filename*1=\"\\\"x\\\".pdf\"", `café"x".pdf`, "application/pdf"},
		{"escaped backslash", "Content-Type: application/pdf; name=\"a\\\\b.pdf\"", `a\b.pdf`, "application/pdf"},
		{"Windows path", "Content-Type: application/pdf; name=\"C:\\dir\\a.pdf\"", `C:\dir\a.pdf`, "application/pdf"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw := "From: a@x\nContent-Type: multipart/mixed; boundary=b\n\n--b\n\nbody\n--b\n" + tt.headers + "\n\nxyz\n--b--\n"
			m := parse(t, raw)
			assertAttachments(t, m.Attachments, []Attachment{{tt.filename, tt.contentType, 3}})
		})
	}
}

func TestParseNamedInlineTextOnly(t *testing.T) {
	raw := "From: a@x\nContent-Type: multipart/mixed; boundary=b\n\n" +
		"--b\nContent-Type: text/plain\nContent-Disposition: inline; filename=\"msg.txt\"\n\nthe only text\n" +
		"--b\nContent-Type: text/plain\nContent-Disposition: attachment; filename=\"other.txt\"\n\nnot shown\n--b--\n"
	m := parse(t, raw)
	if m.TextBody != "the only text" {
		t.Errorf("TextBody = %q", m.TextBody)
	}
	assertAttachments(t, m.Attachments, []Attachment{{"msg.txt", "text/plain", 13}, {"other.txt", "text/plain", 9}})
}

func assertAttachments(t *testing.T, got, want []Attachment) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("attachments:\n got %+v\nwant %+v", got, want)
	}
}

func TestAttachmentsJSON(t *testing.T) {
	m := parse(t, "From: a@example.com\n\nno attachments\n")
	b, err := json.Marshal(m.Attachments)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != "[]" {
		t.Errorf("attachments JSON = %s, want []", b)
	}
	m = parse(t, "From: a@example.com\nContent-Type: application/pdf; name=\"a.pdf\"\nContent-Transfer-Encoding: base64\n\nJVBERi0=\n")
	b, _ = json.Marshal(m.Attachments)
	if want := `[{"filename":"a.pdf","content_type":"application/pdf","size":5}]`; string(b) != want {
		t.Errorf("attachments JSON = %s, want %s", b, want)
	}
}

func TestBase64Sizes(t *testing.T) {
	for n := range 40 {
		data := bytesOf(n)
		for _, enc := range []string{
			base64.StdEncoding.EncodeToString(data),
			base64.RawStdEncoding.EncodeToString(data),
			wrap76(data, "\r\n"),
			" " + strings.Join(strings.Split(base64.StdEncoding.EncodeToString(data), ""), "\t\n "),
		} {
			digits, junk := base64Digits([]byte(enc))
			if base64Len(digits) != int64(n) || junk != 0 {
				t.Errorf("base64Digits(%q) = %d, %d; want %d bytes, 0 junk", enc, digits, junk, n)
			}
			if out, _, _ := decodeBase64([]byte(enc)); string(out) != string(data) {
				t.Errorf("decodeBase64(%q) = %q, want %q", enc, out, data)
			}
			if size, junk, truncated := base64Size([]byte(enc)); size != int64(n) || junk != 0 || truncated {
				t.Errorf("base64Size(%q) = %d, %d, %v; want %d, 0, false", enc, size, junk, truncated, n)
			}
		}
	}
	// Junk is skipped and counted; the size is what a decoder yields.
	const junky = "QUJD*REVG!\x00R0g="
	digits, junk := base64Digits([]byte(junky))
	out, junk2, truncated := decodeBase64([]byte(junky))
	size, junk3, truncated3 := base64Size([]byte(junky))
	if base64Len(digits) != 8 || junk != 3 || string(out) != "ABCDEFGH" || junk2 != 3 || truncated || size != 8 || junk3 != 3 || truncated3 {
		t.Errorf("with junk: %d digits, %d junk, out %q, %d junk, %v; size %d, %d junk, %v", digits, junk, out, junk2, truncated, size, junk3, truncated3)
	}
}

func TestDecodeQP(t *testing.T) {
	tests := []struct{ in, out string }{
		{"", ""},
		{"plain", "plain"},
		{"a=3Db", "a=b"},
		{"a=3db", "a=b"},
		{"soft=\r\nbreak", "softbreak"},
		{"soft= \t\nbreak", "softbreak"},
		{"trailing   \r\nspace", "trailing\r\nspace"},
		{"keep = sign", "keep = sign"},
		{"bad=G1 end=", "bad=G1 end"},
		{"=E2=9C=93\n", "✓\n"},
		{"ends with =4", "ends with =4"},
	}
	for _, tt := range tests {
		if got := string(decodeQP([]byte(tt.in))); got != tt.out {
			t.Errorf("decodeQP(%q) = %q, want %q", tt.in, got, tt.out)
		}
	}
}

func TestSyntheticMessageID(t *testing.T) {
	a := "From: a@example.com\nSubject: no id\n\nbody one\n"
	b := "From: a@example.com\nSubject: no id\n\nbody two\n"
	m1, m2, m3 := parse(t, a), parse(t, a), parse(t, b)
	if m1.MessageID != m2.MessageID {
		t.Errorf("same bytes, different ids: %q %q", m1.MessageID, m2.MessageID)
	}
	if m1.MessageID == m3.MessageID {
		t.Errorf("different bytes, same id %q", m1.MessageID)
	}
	if !strings.HasPrefix(m1.MessageID, "sha256-") || !strings.HasSuffix(m1.MessageID, "@"+SyntheticIDDomain) || len(m1.MessageID) != len("sha256-")+32+1+len(SyntheticIDDomain) {
		t.Errorf("synthetic id %q has the wrong form", m1.MessageID)
	}
	if m4 := parse(t, crlf(a)); m4.MessageID != m1.MessageID {
		t.Errorf("CRLF form got id %q, LF form %q", m4.MessageID, m1.MessageID)
	}
	for _, v := range []string{"", "   ", "<>", "< >"} {
		if m := parse(t, "Message-ID: "+v+"\n"+a); m.MessageID == "" || !strings.HasSuffix(m.MessageID, SyntheticIDDomain) {
			t.Errorf("Message-ID %q gave %q", v, m.MessageID)
		}
	}
}

func TestParseMessageIDs(t *testing.T) {
	tests := []struct {
		name, header, id, inReplyTo string
		refs                        []string
	}{
		{"plain", "Message-ID: <a@x>\nIn-Reply-To: <b@x>\nReferences: <c@x> <b@x>", "a@x", "b@x", []string{"c@x", "b@x"}},
		{"spaces and folding", "Message-Id:   < a@x >  \nIn-Reply-To: <b@x> (Bob's message of \"Mon\")\nReferences: <c@x>\n\t<d@x>\n <b@x>", "a@x", "b@x", []string{"c@x", "d@x", "b@x"}},
		{"without brackets", "Message-ID: a@x\nIn-Reply-To: b@x\nReferences: c@x, d@x", "a@x", "b@x", []string{"c@x", "d@x"}},
		{"only one pair removed", "Message-ID: <<a@x>>", "<a@x>", "", []string{}},
		{"prose in In-Reply-To", "Message-ID: <a@x>\nIn-Reply-To: Your message of Monday", "a@x", "", []string{}},
		{"glued references", "Message-ID: <a@x>\nReferences: <c@x><d@x>", "a@x", "", []string{"c@x", "d@x"}},
		// A bracket without its partner is dropped as the pair would be.
		{"unclosed bracket", "Message-ID: <abc@x", "abc@x", "", []string{}},
		{"unopened bracket", "Message-ID: abc@x> ", "abc@x", "", []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := parse(t, tt.header+"\nFrom: f@x\n\nbody")
			if m.MessageID != tt.id || m.InReplyTo != tt.inReplyTo || !slices.Equal(m.References, tt.refs) {
				t.Errorf("got %q %q %q, want %q %q %q", m.MessageID, m.InReplyTo, m.References, tt.id, tt.inReplyTo, tt.refs)
			}
		})
	}
}

func TestParseDate(t *testing.T) {
	utc := func(s string) *time.Time {
		tm, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return &tm
	}
	const unknownZone, notUnderstood = "unknown time zone", "not understood"
	tests := []struct {
		header string
		want   *time.Time
		warn   string // when SentAt is nil for a Date that is there
	}{
		{"Date: Tue, 3 Jun 2025 09:15:00 -0700", utc("2025-06-03T16:15:00Z"), ""},
		{"Date: 3 Jun 2025 09:15:00 +0000 (UTC)", utc("2025-06-03T09:15:00Z"), ""},
		{"Date: Tue, 03 Jun 25 09:15:00 +0200", utc("2025-06-03T07:15:00Z"), ""},
		{"Date: Tue, 3 Jun 2025 09:15:00 EST", utc("2025-06-03T14:15:00Z"), ""},
		{"Date: Tue, 3 Jun 2025 09:15:00 PDT", utc("2025-06-03T16:15:00Z"), ""},
		{"Date: Tue Jun  3 09:15:00 2025", utc("2025-06-03T09:15:00Z"), ""},
		{"Date: Tuesday, 3 June 2025 09:15:00 +0100", utc("2025-06-03T08:15:00Z"), ""},
		{"Date: Tue, 3 Jun 2025 09:15:00", utc("2025-06-03T09:15:00Z"), ""},
		{"Date: Tue, 3 Jun 2025 09:15 +0000", utc("2025-06-03T09:15:00Z"), ""},
		{"Date: 2025-06-03T09:15:00+02:00", utc("2025-06-03T07:15:00Z"), ""},
		{"Date: 2025-06-03 09:15:00", utc("2025-06-03T09:15:00Z"), ""},
		{"Date: Tue,  3 Jun 2025 09:15:00 +0000 GMT", utc("2025-06-03T09:15:00Z"), ""},
		// Named zones beyond RFC 5322's, as real mail writes them; see
		// zoneOffsets for the ambiguous ones.
		{"Date: Mon, 2 Jun 2025 18:04:11 JST", utc("2025-06-02T09:04:11Z"), ""},
		{"Date: Mon, 2 Jun 2025 18:04:11 IST", utc("2025-06-02T12:34:11Z"), ""},
		{"Date: Mon, 2 Jun 2025 18:04:11 CEST", utc("2025-06-02T16:04:11Z"), ""},
		{"Date: Mon, 2 Jun 2025 18:04:11 BST", utc("2025-06-02T17:04:11Z"), ""},
		{"Date: Mon, 2 Jun 2025 18:04:11 AEST", utc("2025-06-02T08:04:11Z"), ""},
		{"Date: Mon, 2 Jun 2025 18:04:11 eet", utc("2025-06-02T16:04:11Z"), ""},
		{"Date: Mon, 2 Jun 2025 18:04:11 UTC", utc("2025-06-02T18:04:11Z"), ""},
		{"Date: Mon, 2 Jun 2025 18:04:11 Z", utc("2025-06-02T18:04:11Z"), ""},
		{"Date: Mon, 2 Jun 2025 18:04:11 GMT+0900", utc("2025-06-02T09:04:11Z"), ""},
		{"Date: Mon, 2 Jun 2025 18:04:11 UTC-3", utc("2025-06-02T21:04:11Z"), ""},
		{"Date: Mon, 2 Jun 2025 18:04:11 +0900 (JST)", utc("2025-06-02T09:04:11Z"), ""},
		{"Date: Mon Jun  2 18:04:11 JST 2025", utc("2025-06-02T09:04:11Z"), ""},
		{"Date: Tue, 3 Jun 2025 09:15:00 Hora oficial do Brasil", utc("2025-06-03T12:15:00Z"), ""},
		// A zone nobody can place: no time rather than one hours off.
		{"Date: Tue, 3 Jun 2025 09:15:00 XYZT", nil, unknownZone},
		{"Date: Tue, 3 Jun 2025 09:15:00 Pacific Standard Time", nil, unknownZone},
		// Localised day names, and a zone glued to the time.
		{"Date: qui, 14 Nov 2002 11:36:12+0000", utc("2002-11-14T11:36:12Z"), ""},
		{"Date: Di, 3 Jun 2025 09:15:00 +0200", utc("2025-06-03T07:15:00Z"), ""},
		{"Date: sáb, 7 Jun 2025 09:15:00 -0300", utc("2025-06-07T12:15:00Z"), ""},
		{"Date: Tue, 3 Jun 2025 9:15:00 PM +0000", utc("2025-06-03T21:15:00Z"), ""},
		{"Date: Tue, 3 Jun 2025 12:15:00 am -0100", utc("2025-06-03T01:15:00Z"), ""},
		{"Date: ", nil, ""},
		{"Date: garbage", nil, notUnderstood},
		{"Date: Tue, 3 Jun 0001 09:15:00 +0000", nil, notUnderstood},
		{"Date: 32 Jun 2025 09:15:00 +0000", nil, notUnderstood},
		{"Date: \x00\xff", nil, notUnderstood},
		{"X-No-Date: here", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.header, func(t *testing.T) {
			m := parse(t, tt.header+"\nFrom: a@x\n\nbody")
			switch {
			case tt.want == nil && m.SentAt != nil:
				t.Errorf("SentAt = %v, want nil", m.SentAt)
			case tt.want != nil && (m.SentAt == nil || !m.SentAt.Equal(*tt.want)):
				t.Errorf("SentAt = %v, want %v", m.SentAt, tt.want)
			}
			if tt.warn != "" && !hasWarning(m, tt.warn) {
				t.Errorf("no warning %q in %q", tt.warn, m.Warnings)
			}
			if tt.warn == "" && len(m.Warnings) > 0 {
				t.Errorf("unexpected warnings %q", m.Warnings)
			}
			if !m.ReceivedAt.Equal(time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)) {
				t.Errorf("ReceivedAt = %v, want the INTERNALDATE", m.ReceivedAt)
			}
		})
	}
}

func TestParseMeta(t *testing.T) {
	raw := "From: Alice <alice@example.com>\nTo: cs@myhibachichef.com\nSubject: RE: Payment Question\n\nx"
	m := Parse([]byte(raw), Meta{UID: 42, UIDValidity: 9, Size: 12345})
	if m.UID != 42 || m.UIDValidity != 9 || m.SizeBytes != 12345 {
		t.Errorf("meta not copied: %d %d %d", m.UID, m.UIDValidity, m.SizeBytes)
	}
	if m = Parse([]byte(raw), Meta{}); m.SizeBytes != int64(len(raw)) {
		t.Errorf("SizeBytes = %d, want len(raw) %d", m.SizeBytes, len(raw))
	}
	// The pinned example the live backend computes too.
	if m.ThreadID != "thread_f8c88cc24ff7" {
		t.Errorf("ThreadID = %q, want thread_f8c88cc24ff7", m.ThreadID)
	}
}

func TestCleanText(t *testing.T) {
	tests := []struct{ in, out string }{
		{"", ""},
		{"plain ✓", "plain ✓"},
		{"a\x00b\x00", "ab"},
		{"caf\xe9", "caf\uFFFD"},
		{"\xff\xfe", "\uFFFD\uFFFD"},
		{"ok\xe2\x9c", "ok\uFFFD\uFFFD"},
		{"\xed\xa0\x80", "\uFFFD\uFFFD\uFFFD"}, // an encoded surrogate is not UTF-8
	}
	for _, tt := range tests {
		if got := CleanText(tt.in); got != tt.out {
			t.Errorf("CleanText(%q) = %q, want %q", tt.in, got, tt.out)
		}
	}
}

func TestParseCleansNULAndInvalidUTF8(t *testing.T) {
	raw := "Message-ID: <id\x00@x\xff>\n" +
		"From: \"Na\x00me\xff\" <a\x00b@example.com>\n" +
		"To: c@exa\xffmple.com\n" +
		"Subject: Sub\x00ject =?utf-8?B?/w==?=\n" +
		"MIME-Version: 1.0\n" +
		"Content-Type: multipart/mixed; boundary=b\n\n" +
		"--b\nContent-Type: text/plain; charset=utf-8\n\nte\x00xt \xc3\x28\n" +
		"--b\nContent-Type: text/html; charset=utf-8\nContent-Transfer-Encoding: base64\n\n" + base64.StdEncoding.EncodeToString([]byte("<p>\x00\xff</p>")) + "\n" +
		"--b\nContent-Type: application/octet-stream; name=\"f\x00\xfe.bin\"\n\nxyz\n" +
		"--b--\n"
	m := parse(t, raw)
	if m.MessageID != "id@x\uFFFD" {
		t.Errorf("MessageID = %q", m.MessageID)
	}
	if m.Subject != "Subject \uFFFD" {
		t.Errorf("Subject = %q", m.Subject)
	}
	if m.TextBody != "text \uFFFD(" || m.HTMLBody != "<p>\uFFFD</p>" {
		t.Errorf("bodies = %q, %q", m.TextBody, m.HTMLBody)
	}
	if len(m.Attachments) != 1 || m.Attachments[0].Size != 3 {
		t.Errorf("attachments = %+v", m.Attachments)
	}
}

func TestParseBrokenStructure(t *testing.T) {
	tests := []struct {
		name, raw, text string
		attachments     []Attachment
		warn            string
	}{
		{
			name: "missing closing boundary",
			raw:  "From: a@x\nContent-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain\n\nhello\n--b\nContent-Type: application/pdf; name=a.pdf\nContent-Transfer-Encoding: base64\n\nJVBERi0xLj",
			text: "hello", attachments: []Attachment{{"a.pdf", "application/pdf", 7}},
			warn: "not closed",
		},
		{
			name: "truncated base64 text",
			raw:  "From: a@x\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: base64\n\nSGVsbG8sIHfDtnJsZCDinJ",
			text: "Hello, wörld \uFFFD\uFFFD", warn: "invalid UTF-8",
		},
		{
			name: "base64 cut after one digit of a group",
			raw:  "From: a@x\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: base64\n\nSGVsbG8sIHfDtnJsZCDinJMx\nQ",
			text: "Hello, wörld ✓1", warn: "truncated",
		},
		{
			name: "base64 with junk",
			raw:  "From: a@x\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: base64\n\nSGVs*bG8=\n",
			text: "Hello", warn: "invalid bytes",
		},
		{
			name: "boundary never appears",
			raw:  "From: a@x\nContent-Type: multipart/mixed; boundary=nothere\n\nJust text.\n",
			text: "Just text.\n", warn: "not found",
		},
		{
			name: "boundary parameter missing, found in the body",
			raw:  "From: a@x\nContent-Type: multipart/alternative\n\n--zz\nContent-Type: text/plain\n\nfound it\n--zz--\n",
			text: "found it", warn: "found in the body",
		},
		{
			name: "part without header",
			raw:  "From: a@x\nContent-Type: multipart/mixed; boundary=b\n\n--b\nno header here\n--b--\n",
			text: "no header here", warn: "no header",
		},
		{
			name: "header without empty line",
			raw:  "From: a@x\nSubject: s\nthis is already the body\n",
			text: "this is already the body\n", warn: "not ended by an empty line",
		},
		{
			name: "no header at all",
			raw:  "Just some text\nwithout any header.\n",
			text: "Just some text\nwithout any header.\n", warn: "no header",
		},
		{
			name: "unknown transfer encoding",
			raw:  "From: a@x\nContent-Transfer-Encoding: x-uuencode\n\nbegin 644 f\n",
			text: "begin 644 f\n", warn: "unknown Content-Transfer-Encoding",
		},
		{
			name: "garbage Content-Type",
			raw:  "From: a@x\nContent-Type: ;;;\n\ntext\n",
			text: "text\n",
		},
		{
			name: "empty message",
			raw:  "",
			text: "", warn: "no header",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := parse(t, tt.raw)
			if m.TextBody != tt.text {
				t.Errorf("TextBody = %q, want %q", m.TextBody, tt.text)
			}
			if tt.attachments == nil {
				tt.attachments = []Attachment{}
			}
			assertAttachments(t, m.Attachments, tt.attachments)
			if tt.warn != "" && !hasWarning(m, tt.warn) {
				t.Errorf("no warning %q in %q", tt.warn, m.Warnings)
			}
		})
	}
}

func TestParseDeepNesting(t *testing.T) {
	// Each multipart is the only part of the one before; the innermost
	// holds the text, which lies below the nesting limit.
	var open, closing strings.Builder
	n := maxDepth + 3
	for i := range n {
		fmt.Fprintf(&open, "--b%d\nContent-Type: multipart/mixed; boundary=b%d\n\n", i, i+1)
		closing.WriteString(fmt.Sprintf("\n--b%d--\n", n-1-i))
	}
	raw := "From: a@x\nContent-Type: multipart/mixed; boundary=b0\n\n" + open.String() +
		fmt.Sprintf("--b%d\n\ndeep text\n--b%d--\n", n, n) + closing.String()
	m := parse(t, raw)
	if !hasWarning(m, "nested deeper") {
		t.Errorf("warnings %q", m.Warnings)
	}
	if len(m.Attachments) != 1 || m.Attachments[0].ContentType != "multipart/mixed" {
		t.Errorf("attachments %+v", m.Attachments)
	}
	if len(m.Warnings) != 1 {
		t.Errorf("warnings %q", m.Warnings)
	}
}

func TestParseManyWarningsAreCapped(t *testing.T) {
	var b strings.Builder
	b.WriteString("From: a@x\nContent-Type: multipart/mixed; boundary=b\n\n")
	for i := range 100 {
		fmt.Fprintf(&b, "--b\nContent-Type: text/plain; charset=x-bad-%d\n\n\xff\n", i)
	}
	m := parse(t, b.String())
	if len(m.Warnings) != maxWarnings+1 || !strings.Contains(m.Warnings[maxWarnings], "more warnings") {
		t.Errorf("%d warnings, last %q", len(m.Warnings), m.Warnings[len(m.Warnings)-1])
	}
}

func TestFallback(t *testing.T) {
	meta := Meta{UID: 5, UIDValidity: 6, InternalDate: time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)}
	m := fallback([]byte(alternative+"\x00\xff"), meta, "boom")
	checkStorable(t, m)
	if m.MessageID != "order-1@example.com" || m.Subject != "Your order" || m.FromAddress != "shop@example.com" {
		t.Errorf("headers: %q %q %q", m.MessageID, m.Subject, m.FromAddress)
	}
	if !slices.Equal(m.To, []string{"cs@myhibachichef.com"}) || m.SentAt == nil || m.UID != 5 || m.UIDValidity != 6 {
		t.Errorf("To %q, SentAt %v, UID %d/%d", m.To, m.SentAt, m.UID, m.UIDValidity)
	}
	if !strings.Contains(m.TextBody, "--alt-1") || !strings.HasSuffix(m.TextBody, "\uFFFD") {
		t.Errorf("TextBody = %q", m.TextBody)
	}
	if len(m.Warnings) != 1 || !strings.Contains(m.Warnings[0], "boom") {
		t.Errorf("Warnings = %q", m.Warnings)
	}
	// Without a readable header: the whole text, a synthetic id.
	m = fallback([]byte(" no header"), meta, "boom")
	checkStorable(t, m)
	if m.TextBody != " no header" || !strings.HasSuffix(m.MessageID, SyntheticIDDomain) {
		t.Errorf("got %q, %q", m.TextBody, m.MessageID)
	}
}

// TestParseHeaderEnd: the header ends at the first line that is neither a
// field nor a continuation, as in Python's email parser; the rest is body
// (RFC 5322 has no other reading of such a line). Joining the stray line to
// the field before it, as enmime does, loses text: the first part's header
// ends up in the message header and its text nowhere.
func TestParseHeaderEnd(t *testing.T) {
	tests := []struct {
		name, raw, subject, text string
		attachments              []Attachment
		warn                     string
	}{
		{
			// Thunderbird, through a gateway that dropped the empty line.
			name: "preamble line right after the header",
			raw: "From: a@x\nSubject: s\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"------------ABC\"\n" +
				"This is a multi-part message in MIME format.\n--------------ABC\nContent-Type: text/plain; charset=utf-8\n" +
				"Content-Transfer-Encoding: 7bit\n\nHello body\n\n--------------ABC\nContent-Type: application/pdf; name=\"a.pdf\"\n" +
				"Content-Transfer-Encoding: base64\n\nJVBERi0=\n--------------ABC--\n",
			subject: "s", text: "Hello body\n",
			attachments: []Attachment{{"a.pdf", "application/pdf", 5}},
			warn:        "not ended by an empty line",
		},
		{
			name:    "first boundary right after the header",
			raw:     "From: a@x\nSubject: s\nContent-Type: multipart/mixed; boundary=\"ABC\"\n--ABC\nContent-Type: text/plain; charset=utf-8\n\nHello body\n--ABC--\n",
			subject: "s", text: "Hello body",
			warn: "not ended by an empty line",
		},
		{
			name:    "prose right after the subject",
			raw:     "From: a@x\nSubject: hello\nI wanted to ask: is this ok?\nThanks: Bob\n",
			subject: "hello", text: "I wanted to ask: is this ok?\nThanks: Bob\n",
			warn: "not ended by an empty line",
		},
		{
			name:    "part header with a stray line: the rest is the part's body",
			raw:     "From: a@x\nContent-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain\nhello\nX-Not: a header any more\n--b--\n",
			text:    "hello\nX-Not: a header any more",
			warn:    "part 1: header not ended by an empty line",
			subject: "",
		},
		{
			// The one recovery kept: a parameter line that lost its
			// indentation still belongs to its Content-Type.
			name:    "unindented boundary parameter as the last field",
			raw:     "From: a@x\nSubject: s\nContent-Type: multipart/mixed;\nboundary=\"b\"\n\n--b\nContent-Type: text/plain\n\nparam recovered\n--b\nContent-Type: image/png\nContent-Transfer-Encoding: base64\n\nAAAA\n--b--\n",
			subject: "s", text: "param recovered",
			attachments: []Attachment{{"", "image/png", 3}},
			warn:        "was not indented",
		},
		{
			name:    "unindented parameters followed by a field",
			raw:     "From: a@x\nContent-Type: multipart/mixed;\ncharset=utf-8;\n boundary=\"b\"\nSubject: after\n\n--b\nContent-Type: text/plain\n\nparam recovered\n--b--\n",
			subject: "after", text: "param recovered",
			warn: "was not indented",
		},
		{
			name:        "unindented filename parameter of a disposition",
			raw:         "From: a@x\nContent-Type: multipart/mixed; boundary=b\n\n--b\n\ntext\n--b\nContent-Type: application/pdf\nContent-Disposition: attachment;\nfilename=\"x.pdf\"\n\nabc\n--b--\n",
			text:        "text",
			attachments: []Attachment{{"x.pdf", "application/pdf", 3}},
			warn:        "was not indented",
		},
		{
			name:    "a parameter-like line after another field is body",
			raw:     "From: a@x\nSubject: s\nx=1\ny: 2\n",
			subject: "s", text: "x=1\ny: 2\n",
			warn: "not ended by an empty line",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, form := range []string{tt.raw, crlf(tt.raw)} {
				m := parse(t, form)
				want := tt.text
				if form != tt.raw {
					want = crlf(want)
				}
				if m.Subject != tt.subject || m.TextBody != want {
					t.Errorf("Subject %q, TextBody %q; want %q, %q", m.Subject, m.TextBody, tt.subject, want)
				}
				if tt.attachments == nil {
					tt.attachments = []Attachment{}
				}
				assertAttachments(t, m.Attachments, tt.attachments)
				if !hasWarning(m, tt.warn) {
					t.Errorf("no warning %q in %q", tt.warn, m.Warnings)
				}
			}
		})
	}
}

// courierMessage is a Thunderbird message with a text attachment (whose
// size counts line ends) and a PDF.
var courierMessage = `Return-Path: <jane@example.org>
Delivered-To: cs@myhibachichef.com
Message-ID: <4f1c2a3b.5060708@example.org>
Date: Mon, 2 Jun 2025 18:04:11 +0200
From: Jane Roe <jane@example.org>
User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Thunderbird/128.11.0
MIME-Version: 1.0
To: cs@myhibachichef.com
Subject: =?UTF-8?Q?Men=C3=BC_for_Saturday?=
Content-Type: multipart/mixed;
 boundary="------------0Zb8Yx3Lw2v9Qk1Rt5Ua"

This is a multi-part message in MIME format.
--------------0Zb8Yx3Lw2v9Qk1Rt5Ua
Content-Type: text/plain; charset=UTF-8; format=flowed
Content-Transfer-Encoding: quoted-printable

Hello,

here is the men=C3=BC and the guest list.

Jane

--------------0Zb8Yx3Lw2v9Qk1Rt5Ua
Content-Type: text/plain; charset=UTF-8; name="guests.txt"
Content-Disposition: attachment; filename="guests.txt"
Content-Transfer-Encoding: 7bit

Alice
Bob
Carol

--------------0Zb8Yx3Lw2v9Qk1Rt5Ua
Content-Type: application/pdf; name="menu.pdf"
Content-Disposition: attachment; filename="menu.pdf"
Content-Transfer-Encoding: base64

` + wrap76(bytesOf(4000), "\n") + `
--------------0Zb8Yx3Lw2v9Qk1Rt5Ua--
`

// TestParseDoubleCR: Courier serves Maildir files that were stored with CRLF
// line ends with every LF turned into CRLF again, so lines end in CR CR LF
// (issue 14). The row must be the one the CRLF message gives.
func TestParseDoubleCR(t *testing.T) {
	noID := strings.Replace(courierMessage, "Message-ID: <4f1c2a3b.5060708@example.org>\n", "", 1)
	for _, tt := range []struct {
		name, raw string
		// mixed leaves the first line with a single CR, as when the
		// delivery agent added it.
		mixed bool
	}{
		{"thunderbird multipart", courierMessage, false},
		{"without Message-ID", noID, false},
		{"delivery header with CRLF", courierMessage, true},
		{"alternative", alternative, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			good := crlf(tt.raw)
			bad := strings.ReplaceAll(good, "\r\n", "\r\r\n")
			if tt.mixed {
				first, rest, _ := strings.Cut(bad, "\r\r\n")
				bad = first + "\r\n" + rest
			}
			meta := Meta{UID: 7, UIDValidity: 3, Size: int64(len(good))}
			want, got := Parse([]byte(good), meta), Parse([]byte(bad), meta)
			checkParsed(t, got)
			a, _ := json.Marshal(want)
			b, _ := json.Marshal(got)
			if string(a) != string(b) {
				t.Errorf("CR CR LF row differs from the CRLF row\n got %s\nwant %s", b, a)
			}
			if len(want.Warnings) > 0 {
				t.Errorf("warnings on the CRLF form: %q", want.Warnings)
			}
			// Lean fetching must give the same row or fetch whole.
			if checkSectionsAgree(t, []byte(bad)) {
				t.Log("sections accepted")
			}
		})
	}
	m := parse(t, crlf(courierMessage))
	assertAttachments(t, m.Attachments, []Attachment{{"guests.txt", "text/plain", int64(len("Alice\r\nBob\r\nCarol\r\n"))}, {"menu.pdf", "application/pdf", 4000}})
	if m.Subject != "Menü for Saturday" || !strings.Contains(m.TextBody, "menü and the guest list") {
		t.Errorf("Subject %q, TextBody %q", m.Subject, m.TextBody)
	}
}

// TestParseBrokenContentType: a Content-Type whose media type is not
// type/subtype is read as text/plain (RFC 2045 section 5.2, as Python does),
// so its text is kept; its parameters still count. A media type followed by
// parameters without the ";" is repaired: enmime reads that as
// application/octet-stream and turns the text into a nameless attachment.
func TestParseBrokenContentType(t *testing.T) {
	tests := []struct {
		name, ct, body, text, html string
		attachments                []Attachment
		warn                       string
	}{
		{name: "stray quote", ct: `text/plain"`, body: "kept\n", text: "kept\n", warn: "read as text/plain"},
		{name: "junk in the subtype, charset kept", ct: `text/plain@x; charset=iso-8859-1`, body: "caf\xe9\n", text: "café\n", warn: "read as text/plain"},
		{name: "quoted media type", ct: `"text/html"`, body: "<p>x</p>\n", text: "<p>x</p>\n", warn: "read as text/plain"},
		{name: "two media types", ct: `text/plain, text/html`, body: "both\n", text: "both\n", warn: "read as text/plain"},
		{name: "bare word", ct: `text`, body: "word\n", text: "word\n", warn: "read as text/plain"},
		{name: "missing semicolon before charset", ct: `text/html charset=utf-8`, body: "<p>caf\xc3\xa9</p>", text: "café", html: "<p>café</p>", warn: "missing"},
		{name: "missing semicolon before boundary", ct: `multipart/mixed boundary="b"`, body: "--b\nContent-Type: text/plain\n\nin a part\n--b\nContent-Type: image/gif\n\nGIF89a\n--b--\n",
			text: "in a part", attachments: []Attachment{{"", "image/gif", 6}}, warn: "missing"},
		{name: "missing subtype", ct: `text/; charset=utf-8`, body: "caf\xc3\xa9", text: "café"},
		{name: "comment", ct: `text/plain (Plain text); charset=utf-8`, body: "caf\xc3\xa9", text: "café"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := parse(t, "From: a@x\nMIME-Version: 1.0\nContent-Type: "+tt.ct+"\n\n"+tt.body)
			if m.TextBody != tt.text || m.HTMLBody != tt.html {
				t.Errorf("TextBody %q, HTMLBody %q; want %q, %q", m.TextBody, m.HTMLBody, tt.text, tt.html)
			}
			if tt.attachments == nil {
				tt.attachments = []Attachment{}
			}
			assertAttachments(t, m.Attachments, tt.attachments)
			if tt.warn != "" && !hasWarning(m, tt.warn) {
				t.Errorf("no warning %q in %q", tt.warn, m.Warnings)
			}
		})
	}
	// In a digest a part without Content-Type is a message, but one with a
	// broken Content-Type is still text/plain.
	m := parse(t, "From: a@x\nContent-Type: multipart/digest; boundary=d\n\n--d\nContent-Type: text/plain\"\n\ndigest text\n--d--\n")
	if m.TextBody != "digest text" {
		t.Errorf("digest: TextBody %q, attachments %+v", m.TextBody, m.Attachments)
	}
}

// TestParseUnnamedTextParts: a text part that is neither plain nor HTML is
// no message text, so unless it is another version of the text in a
// multipart/alternative it is listed as an attachment, named or not, as
// enmime lists it. Its name stays empty, as for any unnamed part: a made-up
// name would look like the sender's.
func TestParseUnnamedTextParts(t *testing.T) {
	tests := []struct {
		name, raw, text string
		attachments     []Attachment
	}{
		{
			name: "bounce",
			raw: "From: MAILER-DAEMON@x\nContent-Type: multipart/report; report-type=delivery-status; boundary=r\n\n" +
				"--r\nContent-Type: text/plain\n\nYour mail could not be delivered.\n" +
				"--r\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; mx.example.org\n\nAction: failed\n" +
				"--r\nContent-Type: text/rfc822-headers\n\nFrom: a@x\nSubject: hi\n--r--\n",
			text:        "Your mail could not be delivered.",
			attachments: []Attachment{{"", "message/delivery-status", 50}, {"", "text/rfc822-headers", 21}},
		},
		{
			name: "calendar and vcard in a mixed",
			raw: "From: a@x\nContent-Type: multipart/mixed; boundary=m\n\n--m\nContent-Type: text/plain\n\nMeet me\n" +
				"--m\nContent-Type: text/calendar; method=REQUEST; charset=UTF-8\nContent-Transfer-Encoding: base64\n\nQkVHSU46VkNBTEVOREFS\n" +
				"--m\nContent-Type: text/x-vcard\n\nBEGIN:VCARD\n--m--\n",
			text:        "Meet me",
			attachments: []Attachment{{"", "text/calendar", 15}, {"", "text/x-vcard", 11}},
		},
		{
			// Outlook's invitations carry the event only here; other
			// versions of the text (Apple's text/watch-html) are not files.
			name: "calendar in an alternative is listed, other versions are not",
			raw: "From: a@x\nContent-Type: multipart/alternative; boundary=a\n\n--a\nContent-Type: text/plain\n\nMeet me\n" +
				"--a\nContent-Type: text/watch-html\n\n<b>Meet me</b>\n--a\nContent-Type: text/enriched\n\n<bold>Meet me</bold>\n" +
				"--a\nContent-Type: text/calendar; method=REQUEST\n\nBEGIN:VCALENDAR\n--a--\n",
			text:        "Meet me",
			attachments: []Attachment{{"", "text/calendar", 15}},
		},
		{
			name:        "a whole message of calendar",
			raw:         "From: a@x\nContent-Type: text/calendar; method=CANCEL\n\nBEGIN:VCALENDAR\n",
			attachments: []Attachment{{"", "text/calendar", 16}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := parse(t, tt.raw)
			if m.TextBody != tt.text {
				t.Errorf("TextBody = %q, want %q", m.TextBody, tt.text)
			}
			assertAttachments(t, m.Attachments, tt.attachments)
		})
	}
}

// TestParseBase64Chunks: base64 made of separately encoded and padded
// chunks (some mailers pad every line) is decoded chunk by chunk, as GNU
// base64 -d does: the sender's bytes. Python 3.11 stops at the first padding
// (keeping "A" of "QQ==QkM="), Python 3.14 skips inner padding (misaligning
// every later byte), and decoding the digits run together gives garbage.
func TestParseBase64Chunks(t *testing.T) {
	tests := []struct {
		name, body, text string
		warn             string
	}{
		{name: "two chunks on one line", body: "QQ==QkM=", text: "ABC"},
		{name: "every line padded", body: "SGVsbG8=\nLCB3b3JsZA==\nIQ==\n", text: "Hello, world!"},
		{name: "CRLF, blanks between chunks", body: "QUI=\r\n \r\nQw==\r\n", text: "ABC"},
		{name: "padding on a whole quad is noise", body: "QUJD=REVG", text: "ABCDEF"},
		{name: "a chunk cut after one digit", body: "QUJDR=REVG", text: "ABCDEF", warn: "truncated"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := parse(t, "From: a@x\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: base64\n\n"+tt.body)
			if m.TextBody != tt.text {
				t.Errorf("TextBody = %q, want %q", m.TextBody, tt.text)
			}
			if tt.warn != "" && !hasWarning(m, tt.warn) || tt.warn == "" && len(m.Warnings) > 0 {
				t.Errorf("warnings %q, want %q", m.Warnings, tt.warn)
			}
			// As an attachment: the same size, and lean fetching's size
			// from the part's bytes agrees or refuses.
			m = parse(t, "From: a@x\nContent-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n\n"+tt.body)
			want := []Attachment{{"", "application/octet-stream", int64(len(tt.text))}}
			assertAttachments(t, m.Attachments, want)
			if got, ok := Base64Size(int64(len(tt.body)), []byte(tt.body)); ok && got != want[0].Size {
				t.Errorf("Base64Size = %d, Parse %d", got, want[0].Size)
			}
		})
	}
}

// TestParseMultipartCharsetHint: a charset parameter on a multipart (which
// means nothing there) is what some mailers write instead of labelling the
// parts, multipart/signed ones in particular: unlabelled 8-bit text below
// it is read in that charset before any guessing. Text that is valid UTF-8
// stays UTF-8, as it does without the hint.
func TestParseMultipartCharsetHint(t *testing.T) {
	tests := []struct {
		name, ct, part, text string
	}{
		{"signed, latin-1", "multipart/signed; protocol=\"application/pgp-signature\"; micalg=pgp-sha256; charset=iso-8859-1", "Content-Type: text/plain\n\nGr\xfc\xdfe, S\xf8ren\n", "Grüße, Søren"},
		{"mixed, koi8-r", "multipart/mixed; charset=koi8-r", "Content-Type: text/plain\n\n\xf0\xd2\xc9\xd7\xc5\xd4\n", "Привет"},
		{"a part without header", "multipart/mixed; charset=iso-8859-2", "\n\xb3\xf3d\xbc\n", "łódź"},
		{"UTF-8 text stays UTF-8", "multipart/mixed; charset=iso-8859-1", "Content-Type: text/plain\n\ncaf\xc3\xa9\n", "café"},
		{"the part's own label wins", "multipart/mixed; charset=koi8-r", "Content-Type: text/plain; charset=iso-8859-1\n\ncaf\xe9\n", "café"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw := "From: a@x\nSubject: caf\xe9\nContent-Type: " + tt.ct + "; boundary=b\n\n--b\n" + tt.part + "--b\nContent-Type: application/pgp-signature\n\nsig\n--b--\n"
			m := parse(t, raw)
			if m.TextBody != tt.text {
				t.Errorf("TextBody = %q, want %q", m.TextBody, tt.text)
			}
			if hasWarning(m, "without a usable charset") {
				t.Errorf("guessed although the multipart says: %q", m.Warnings)
			}
		})
	}
	// Header text in raw 8-bit reads with the same hint.
	m := parse(t, "From: S\xf8ren <s@x>\nContent-Type: multipart/signed; charset=iso-8859-1; boundary=b\n\n--b\nContent-Type: text/plain\n\nx\n--b--\n")
	if m.FromName != "Søren" {
		t.Errorf("FromName = %q", m.FromName)
	}
}

// TestParseBase64WithListFooter: Mailman 2 and SourceForge lists append
// their plain-text footer to a single-part base64 body. The base64 is
// decoded and the footer kept as text (enmime and Python decode the
// footer's letters as base64 too, into garbage); text that is not base64
// from its first line is still kept as it is.
func TestParseBase64WithListFooter(t *testing.T) {
	html := "<HTML><BODY><P>Yeni videolar eklendi.</P></BODY></HTML>\r\n"
	enc := wrap76([]byte(html+strings.Repeat("<P>more</P>\r\n", 20)), "\n")
	footer := "\n\n-------------------------------------------------------\nThis sf.net email is sponsored by: ThinkGeek\n" +
		"_______________________________________________\nSitescooper-talk mailing list\nSitescooper-talk@lists.sourceforge.net\n"
	m := parse(t, "From: a@x\nContent-Type: text/html\nContent-Transfer-Encoding: base64\n\n"+enc+footer)
	if !strings.HasPrefix(m.HTMLBody, html) || !strings.HasSuffix(m.HTMLBody, footer) {
		t.Errorf("HTMLBody = %q", m.HTMLBody)
	}
	if !hasWarning(m, "followed by text") {
		t.Errorf("warnings %q", m.Warnings)
	}
	for _, text := range []string{"not base64 at all, just text\nQUJD\n", "Hello\n\nnot base64 after one word, just text\n"} {
		m = parse(t, "From: a@x\nContent-Type: text/plain\nContent-Transfer-Encoding: base64\n\n"+text)
		if m.TextBody != text || !hasWarning(m, "declared base64 but is not") {
			t.Errorf("TextBody %q, warnings %q", m.TextBody, m.Warnings)
		}
	}
}
