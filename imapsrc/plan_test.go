package imapsrc

import (
	"bufio"
	"encoding/base64"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/myhibachi/backfill/internal/dovecottest"
)

var update = flag.Bool("update", false, "rewrite the .plan golden files")

// TestPlanLeanOnDovecotStructures plans lean fetches from BODYSTRUCTUREs
// Dovecot wrote for messages of real-world shapes (testdata/bodystructure,
// made by TestCaptureDovecotStructures) and compares the section requests
// with golden files. It also checks what every plan must hold whatever the
// shape: each entity's header is asked for, text and forwarded messages
// are fetched whole, and each elided part is asked for one byte past the
// end its structure gives.
func TestPlanLeanOnDovecotStructures(t *testing.T) {
	files, err := filepath.Glob("testdata/bodystructure/*.txt")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 24 {
		t.Fatalf("%d BODYSTRUCTURE fixtures, want at least 24", len(files))
	}
	var lean, elided int
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".txt")
		text, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		bs := parseBodyStructure(t, strings.TrimSpace(string(text)))
		plan := planLean(bs)
		got := renderPlan(plan)
		golden := strings.TrimSuffix(file, ".txt") + ".plan"
		if *update {
			if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		want, err := os.ReadFile(golden)
		if err != nil {
			t.Fatal(err)
		}
		if got != string(want) {
			t.Errorf("%s: plan\n%s\nwant\n%s", name, got, want)
		}
		if plan == nil {
			continue
		}
		lean++
		elided += checkPlan(t, name, plan, bs)
	}
	// The fixtures are chosen so that both outcomes occur often.
	if lean < 8 || lean > len(files)-6 || elided < 12 {
		t.Errorf("%d of %d fixtures planned lean with %d elided parts: fixtures no longer cover both ways", lean, len(files), elided)
	}
}

// checkPlan verifies a plan against the structure it came from and returns
// how many parts it elides.
func checkPlan(t *testing.T, name string, p *leanPart, bs imap.BodyStructure) (elided int) {
	t.Helper()
	if p.header == nil || (len(p.path) == 0) != (p.header.Specifier == imap.PartSpecifierHeader) {
		t.Errorf("%s part %v: header item %+v", name, p.path, p.header)
	}
	switch bs := bs.(type) {
	case *imap.BodyStructureMultiPart:
		if p.body != nil || len(p.parts) != len(bs.Children) {
			t.Errorf("%s part %v: multipart planned with body %v and %d of %d parts", name, p.path, p.body, len(p.parts), len(bs.Children))
			return 0
		}
		for i, c := range bs.Children {
			elided += checkPlan(t, name, p.parts[i], c)
		}
	case *imap.BodyStructureSinglePart:
		text := bs.Type == "text" && (bs.Subtype == "plain" || bs.Subtype == "html")
		switch {
		case p.body == nil:
			t.Errorf("%s part %v: leaf without a body item", name, p.path)
		case !p.elided:
			if p.body.Partial != nil {
				t.Errorf("%s part %v: fetched part asked for partially", name, p.path)
			}
		case text || bs.MessageRFC822 != nil:
			t.Errorf("%s part %v: %s elided", name, p.path, bs.MediaType())
		case p.body.Partial.Offset+p.body.Partial.Size != int64(bs.Size)+1 || p.tail != p.body.Partial.Size-1:
			t.Errorf("%s part %v: size %d asked as <%d.%d>, not one byte past its end", name, p.path, bs.Size, p.body.Partial.Offset, p.body.Partial.Size)
		default:
			elided++
		}
	}
	return elided
}

// renderPlan writes a plan's requests as IMAP would, one per line, or
// "whole" when the message is fetched whole.
func renderPlan(p *leanPart) string {
	if p == nil {
		return "whole\n"
	}
	var b strings.Builder
	for _, s := range p.sections() {
		b.WriteString("BODY.PEEK[")
		for i, n := range s.Part {
			if i > 0 {
				b.WriteByte('.')
			}
			fmt.Fprint(&b, n)
		}
		if s.Specifier != imap.PartSpecifierNone {
			if len(s.Part) > 0 {
				b.WriteByte('.')
			}
			b.WriteString(string(s.Specifier))
		}
		b.WriteByte(']')
		if s.Partial != nil {
			fmt.Fprintf(&b, "<%d.%d>", s.Partial.Offset, s.Partial.Size)
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// parseBodyStructure has go-imap's client read text as a server's
// BODYSTRUCTURE, the way it reads Dovecot's, from a scripted server on
// loopback.
func parseBodyStructure(t *testing.T, text string) imap.BodyStructure {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		r := bufio.NewReader(conn)
		fmt.Fprint(conn, "* OK ready\r\n")
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			tag, cmd, _ := strings.Cut(line, " ")
			if strings.Contains(cmd, "FETCH") {
				fmt.Fprintf(conn, "* 1 FETCH (UID 1 BODYSTRUCTURE %s)\r\n", text)
			}
			fmt.Fprintf(conn, "%s OK done\r\n", tag)
		}
	}()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c := imapclient.New(conn, nil)
	defer c.Close()
	msgs, err := c.Fetch(imap.UIDSetNum(1), &imap.FetchOptions{UID: true, BodyStructure: &imap.FetchItemBodyStructure{Extended: true}}).Collect()
	if err != nil || len(msgs) != 1 || msgs[0].BodyStructure == nil {
		t.Fatalf("go-imap cannot read %q: %v", text, err)
	}
	return msgs[0].BodyStructure
}

// TestCaptureDovecotStructures writes testdata/bodystructure/*.txt: the
// BODYSTRUCTURE Dovecot reports for each of structureMails, as it sent it.
// It runs only when BACKFILL_CAPTURE_STRUCTURES=1.
func TestCaptureDovecotStructures(t *testing.T) {
	if os.Getenv("BACKFILL_CAPTURE_STRUCTURES") != "1" {
		t.Skip("set BACKFILL_CAPTURE_STRUCTURES=1 to capture the fixtures again")
	}
	user := dovecottest.User{Name: "shapes@example.com", Password: "pw"}
	srv := dovecottest.NewServer(t, []dovecottest.User{user})
	mails := structureMails()
	err := srv.LoadMaildir(user.Name, func(yield func([]byte, time.Time) bool) {
		for _, m := range mails {
			if !yield([]byte(m.raw), time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)) {
				return
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.Dial("tcp", srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	r := bufio.NewReader(conn)
	send := func(cmd string) []string {
		t.Helper()
		fmt.Fprintf(conn, "T %s\r\n", cmd)
		var lines []string
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("%s: %v", cmd, err)
			}
			if strings.HasPrefix(line, "T ") {
				if !strings.HasPrefix(line, "T OK") {
					t.Fatalf("%s: %s", cmd, line)
				}
				return lines
			}
			if strings.HasSuffix(strings.TrimRight(line, "\r\n"), "}") {
				t.Fatalf("a literal in %q: keep fixture strings plain", line)
			}
			lines = append(lines, line)
		}
	}
	r.ReadString('\n') //nolint:errcheck // the greeting
	send(fmt.Sprintf("LOGIN %s %s", user.Name, user.Password))
	send("EXAMINE INBOX")
	lines := send("UID FETCH 1:* (UID BODYSTRUCTURE)")
	if len(lines) != len(mails) {
		t.Fatalf("%d FETCH responses for %d messages", len(lines), len(mails))
	}
	for i, line := range lines {
		_, bs, ok := strings.Cut(line, "BODYSTRUCTURE ")
		if !ok {
			t.Fatalf("no BODYSTRUCTURE in %q", line)
		}
		bs = strings.TrimSuffix(strings.TrimRight(bs, "\r\n"), ")")
		if strings.HasPrefix(bs, "(") && strings.Contains(line, "UID ") && strings.Index(line, "UID ") > strings.Index(line, "BODYSTRUCTURE") {
			t.Fatalf("UID after BODYSTRUCTURE in %q", line)
		}
		file := filepath.Join("testdata", "bodystructure", fmt.Sprintf("%02d-%s.txt", i+1, mails[i].name))
		if err := os.WriteFile(file, []byte(bs+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

type shapedMail struct {
	name string
	raw  string
}

// structureMails are messages in the shapes real mail clients and lists
// send, written here from scratch: nobody else's mail is committed.
func structureMails() []shapedMail {
	rng := rand.New(rand.NewPCG(8, 15))
	noise := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	b64 := func(n, width int) string {
		enc := base64.StdEncoding.EncodeToString(noise(n))
		var b strings.Builder
		for len(enc) > 0 {
			k := min(width, len(enc))
			b.WriteString(enc[:k] + "\r\n")
			enc = enc[k:]
		}
		return b.String()
	}
	text := func(n int) string { return strings.Repeat("The quick brown fox jumps over the lazy dog.\r\n", n) }
	head := func(i int, ct string) string {
		return fmt.Sprintf("From: Ana Lima <ana@example.com>\r\nTo: cs@myhibachichef.com\r\nSubject: shape %d\r\n"+
			"Date: Sun, 1 Mar 2026 10:00:00 +0000\r\nMessage-ID: <shape-%d@example.com>\r\nMIME-Version: 1.0\r\n%s\r\n\r\n", i, i, ct)
	}
	part := func(ct, cte, extra, body string) string {
		h := "Content-Type: " + ct + "\r\n"
		if cte != "" {
			h += "Content-Transfer-Encoding: " + cte + "\r\n"
		}
		return h + extra + "\r\n" + body
	}
	multipart := func(sub, boundary string, parts ...string) string {
		var b strings.Builder
		for _, p := range parts {
			b.WriteString("--" + boundary + "\r\n" + p)
			if !strings.HasSuffix(p, "\r\n") {
				b.WriteString("\r\n")
			}
		}
		b.WriteString("--" + boundary + "--\r\n")
		return b.String()
	}
	mp := func(sub, boundary string, parts ...string) (ct, body string) {
		return fmt.Sprintf("Content-Type: multipart/%s; boundary=\"%s\"", sub, boundary), multipart(sub, boundary, parts...)
	}
	nested := func(sub, boundary string, parts ...string) string {
		ct, body := mp(sub, boundary, parts...)
		return ct + "\r\n\r\n" + body
	}
	attach := func(ct, name string, n, width int) string {
		return part(ct+"; name=\""+name+"\"", "base64", "Content-Disposition: attachment; filename=\""+name+"\"\r\n", b64(n, width))
	}
	plain := part("text/plain; charset=utf-8", "quoted-printable", "", "Hello,=0D\r\nsee attached.\r\n")
	html := part("text/html; charset=utf-8", "quoted-printable", "", "<html><body><p>Hello, see attached.</p></body></html>\r\n")
	alt := nested("alternative", "alt-1", plain, html)
	var out []shapedMail
	add := func(name string, i int, ctBody func() (string, string)) {
		ct, body := ctBody()
		out = append(out, shapedMail{name, head(i, ct) + body})
	}
	add("plain-only", 1, func() (string, string) { return "Content-Type: text/plain; charset=us-ascii", text(20) })
	add("html-only", 2, func() (string, string) {
		return "Content-Type: text/html; charset=utf-8", "<p>" + text(30) + "</p>\r\n"
	})
	add("alternative", 3, func() (string, string) { return mp("alternative", "a3", plain, html) })
	add("mixed-pdf", 4, func() (string, string) {
		return mp("mixed", "m4", plain, attach("application/pdf", "invoice.pdf", 90000, 76))
	})
	add("mixed-small-png", 5, func() (string, string) { return mp("mixed", "m5", plain, attach("image/png", "dot.png", 2000, 76)) })
	add("mixed-alternative-two-files", 6, func() (string, string) {
		return mp("mixed", "m6", alt, attach("application/pdf", "a.pdf", 40000, 76), attach("image/jpeg", "photo.jpg", 120000, 76))
	})
	add("related-inline-image", 7, func() (string, string) {
		return mp("related", "r7", html, part("image/png", "base64", "Content-ID: <logo@x>\r\nContent-Disposition: inline\r\n", b64(30000, 76)))
	})
	add("apple-alternative-related", 8, func() (string, string) {
		rel := nested("related", "r8", html, part("image/jpeg; name=IMG_0001.jpeg", "base64", "Content-ID: <img1@x>\r\n", b64(60000, 76)))
		return mp("alternative", "a8", plain, rel)
	})
	add("mixed-related-attachment", 9, func() (string, string) {
		rel := nested("related", "r9", alt, part("image/gif", "base64", "Content-ID: <g@x>\r\n", b64(8000, 76)))
		return mp("mixed", "m9", rel, attach("application/zip", "archive.zip", 200000, 76))
	})
	add("forwarded-rfc822", 10, func() (string, string) {
		inner := head(100, "Content-Type: multipart/mixed; boundary=\"i10\"") + multipart("mixed", "i10", plain, attach("application/pdf", "inner.pdf", 30000, 76))
		return mp("mixed", "m10", plain, part("message/rfc822", "", "Content-Disposition: attachment\r\n", inner))
	})
	add("forwarded-rfc822-and-file", 11, func() (string, string) {
		inner := head(110, "Content-Type: text/plain") + text(5)
		return mp("mixed", "m11", plain, part("message/rfc822", "7bit", "", inner), attach("application/msword", "report.doc", 50000, 76))
	})
	add("pgp-signed", 12, func() (string, string) {
		sig := part("application/pgp-signature; name=\"signature.asc\"", "7bit", "", "-----BEGIN PGP SIGNATURE-----\r\n"+b64(500, 64)+"-----END PGP SIGNATURE-----\r\n")
		return "Content-Type: multipart/signed; micalg=pgp-sha256; protocol=\"application/pgp-signature\"; boundary=\"s12\"", multipart("signed", "s12", plain, sig)
	})
	add("pgp-signed-with-attachment", 13, func() (string, string) {
		inner := nested("mixed", "m13", plain, attach("application/pdf", "contract.pdf", 70000, 76))
		sig := part("application/pgp-signature", "7bit", "", "-----BEGIN PGP SIGNATURE-----\r\n"+b64(500, 64)+"-----END PGP SIGNATURE-----\r\n")
		return "Content-Type: multipart/signed; micalg=pgp-sha512; protocol=\"application/pgp-signature\"; boundary=\"s13\"", multipart("signed", "s13", inner, sig)
	})
	add("smime-signed", 14, func() (string, string) {
		sig := part("application/pkcs7-signature; name=smime.p7s", "base64", "Content-Disposition: attachment; filename=smime.p7s\r\n", b64(5000, 76))
		return "Content-Type: multipart/signed; protocol=\"application/pkcs7-signature\"; micalg=sha-256; boundary=\"s14\"", multipart("signed", "s14", alt, sig)
	})
	add("smime-opaque", 15, func() (string, string) {
		return "Content-Type: application/pkcs7-mime; smime-type=signed-data; name=smime.p7m\r\nContent-Transfer-Encoding: base64", b64(40000, 64)
	})
	add("bounce-report", 16, func() (string, string) {
		status := part("message/delivery-status", "", "", "Reporting-MTA: dns; mx.example.com\r\n\r\nFinal-Recipient: rfc822; nobody@example.org\r\nAction: failed\r\nStatus: 5.1.1\r\n")
		return "Content-Type: multipart/report; report-type=delivery-status; boundary=\"b16\"", multipart("report", "b16", plain, status, part("text/rfc822-headers", "", "", "From: x@example.com\r\nSubject: lost\r\n"))
	})
	add("calendar-invite", 17, func() (string, string) {
		ics := part("text/calendar; charset=utf-8; method=REQUEST", "base64", "", b64(6000, 76))
		return mp("mixed", "m17", nested("alternative", "a17", plain, html, ics), attach("application/ics", "invite.ics", 6000, 76))
	})
	add("seven-bit-log", 18, func() (string, string) {
		return mp("mixed", "m18", plain, part("text/x-log; name=app.log", "7bit", "Content-Disposition: attachment; filename=app.log\r\n", text(800)))
	})
	add("eight-bit-csv", 19, func() (string, string) {
		return mp("mixed", "m19", plain, part("application/octet-stream; name=data.bin", "8bit", "", strings.Repeat("caf\xc3\xa9;1;2\r\n", 3000)))
	})
	add("quoted-printable-attachment", 20, func() (string, string) {
		return mp("mixed", "m20", plain, part("application/rtf; name=a.rtf", "quoted-printable", "", strings.Repeat("=7Brtf1 caf=E9=7D\r\n", 3000)))
	})
	add("rfc2231-names", 21, func() (string, string) {
		return mp("mixed", "m21", plain, part("application/pdf; name*=utf-8''r%C3%A9sum%C3%A9.pdf", "base64", "Content-Disposition: attachment; filename*=utf-8''r%C3%A9sum%C3%A9.pdf\r\n", b64(45000, 76)))
	})
	add("outlook-72-digit-lines", 22, func() (string, string) {
		return mp("mixed", "m22", alt, attach("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "sheet.xlsx", 64000, 72))
	})
	add("many-small-images", 23, func() (string, string) {
		var parts []string
		parts = append(parts, html)
		for i := range 6 {
			parts = append(parts, part("image/png", "base64", fmt.Sprintf("Content-ID: <i%d@x>\r\n", i), b64(3000, 76)))
		}
		return mp("related", "r23", parts...)
	})
	add("digest", 24, func() (string, string) {
		one := "\r\n" + head(240, "Content-Type: text/plain") + "one\r\n"
		two := "\r\n" + head(241, "Content-Type: multipart/mixed; boundary=\"d24\"") + multipart("mixed", "d24", attach("application/pdf", "d.pdf", 30000, 76))
		return "Content-Type: multipart/digest; boundary=\"g24\"", multipart("digest", "g24", one, two)
	})
	add("deep-nesting", 25, func() (string, string) {
		inner := nested("mixed", "n25c", attach("application/pdf", "deep.pdf", 50000, 76))
		inner = nested("mixed", "n25b", plain, inner)
		return mp("mixed", "n25a", inner, attach("image/png", "top.png", 20000, 76))
	})
	add("lf-only", 26, func() (string, string) {
		ct, body := mp("mixed", "m26", plain, attach("application/pdf", "lf.pdf", 50000, 76))
		return ct, strings.ReplaceAll(body, "\r\n", "\n")
	})
	add("just-over-the-threshold", 27, func() (string, string) {
		return mp("mixed", "m27", plain, attach("application/pdf", "a.pdf", 9000, 76), attach("application/pdf", "b.pdf", 9000, 76))
	})
	add("just-under-the-threshold", 28, func() (string, string) {
		return mp("mixed", "m28", plain, attach("application/pdf", "c.pdf", 3000, 76), attach("application/pdf", "d.pdf", 12000, 76))
	})
	add("mixed-empty-attachment", 29, func() (string, string) {
		return mp("mixed", "m29", plain, part("application/octet-stream; name=empty.bin", "base64", "", ""), attach("video/mp4", "clip.mp4", 300000, 76))
	})
	add("mailing-list-footer", 30, func() (string, string) {
		footer := part("text/plain; charset=us-ascii", "7bit", "Content-Disposition: inline\r\n", "_______________________________________________\r\nlist mailing list\r\n")
		return mp("mixed", "m30", plain, attach("application/pdf", "slides.pdf", 80000, 76), footer)
	})
	return out
}
