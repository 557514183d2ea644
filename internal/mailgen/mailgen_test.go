package mailgen

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/mail"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jhillyerd/enmime/v2"
	"golang.org/x/text/encoding/htmlindex"

	"github.com/myhibachi/backfill/threading"
)

// decoder decodes RFC 2047 words in every charset the generator uses.
var decoder = &mime.WordDecoder{CharsetReader: func(label string, r io.Reader) (io.Reader, error) {
	enc, err := htmlindex.Get(label)
	if err != nil {
		return nil, err
	}
	return enc.NewDecoder().Reader(r), nil
}}

func TestDeterministic(t *testing.T) {
	t.Parallel()
	a := Generate(42, 300)
	b := Generate(42, 300)
	if !reflect.DeepEqual(a, b) {
		t.Fatal("same seed and count gave different mail")
	}
	var streamed []Mail
	if err := Each(42, 300, func(m Mail) error { streamed = append(streamed, m); return nil }); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a, streamed) {
		t.Fatal("Each and Generate differ")
	}
	// A shorter run is a prefix of a longer one, so tests can grow n freely.
	if short := Generate(42, 100); !reflect.DeepEqual(short, a[:100]) {
		t.Fatal("Generate(42, 100) is not a prefix of Generate(42, 300)")
	}
	if other := Generate(43, 300); bytes.Equal(other[0].Raw, a[0].Raw) {
		t.Fatal("different seeds gave the same first message")
	}
}

func TestEachStopsOnError(t *testing.T) {
	t.Parallel()
	stop := errors.New("stop")
	calls := 0
	err := Each(1, 100, func(Mail) error {
		calls++
		if calls == 3 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || calls != 3 {
		t.Fatalf("Each returned %v after %d calls, want stop after 3", err, calls)
	}
}

// TestHeaders parses every message with net/mail and checks the headers
// against Want.
func TestHeaders(t *testing.T) {
	t.Parallel()
	prev := time.Time{}
	for i, m := range Generate(7, 3000) {
		msg, err := mail.ReadMessage(bytes.NewReader(m.Raw))
		if err != nil {
			t.Fatalf("message %d: net/mail: %v", i, err)
		}
		h := msg.Header
		w := m.Want
		ctx := fmt.Sprintf("message %d (%s, %s)", i, m.Traits.Locale, m.Traits.Charset)

		if got := strings.Trim(strings.TrimSpace(h.Get("Message-Id")), "<>"); got != w.MessageID {
			t.Errorf("%s: Message-ID %q, want %q", ctx, got, w.MessageID)
		}
		subject, err := decoder.DecodeHeader(h.Get("Subject"))
		if err != nil || subject != w.Subject {
			t.Errorf("%s: Subject %q (%v), want %q", ctx, subject, err, w.Subject)
		}
		parser := mail.AddressParser{WordDecoder: decoder}
		from, err := parser.Parse(h.Get("From"))
		if err != nil || from.Address != w.FromAddress || from.Name != w.FromName {
			t.Errorf("%s: From %v (%v), want %q <%s>", ctx, from, err, w.FromName, w.FromAddress)
		}
		for _, f := range []struct {
			header string
			want   []string
		}{{"To", w.To}, {"Cc", w.Cc}} {
			var got []string
			if v := h.Get(f.header); v != "" {
				list, err := parser.ParseList(v)
				if err != nil {
					t.Errorf("%s: %s: %v", ctx, f.header, err)
				}
				for _, a := range list {
					got = append(got, a.Address)
				}
			}
			if !slices.Equal(got, f.want) {
				t.Errorf("%s: %s %q, want %q", ctx, f.header, got, f.want)
			}
		}
		date, err := h.Date()
		if err != nil || !date.Equal(w.SentAt) {
			t.Errorf("%s: Date %v (%v), want %v", ctx, date, err, w.SentAt)
		}
		if got := strings.Trim(h.Get("In-Reply-To"), "<>"); got != w.InReplyTo {
			t.Errorf("%s: In-Reply-To %q, want %q", ctx, got, w.InReplyTo)
		}
		var refs []string
		for _, f := range strings.Fields(h.Get("References")) {
			refs = append(refs, strings.Trim(f, "<>"))
		}
		if !slices.Equal(refs, w.References) {
			t.Errorf("%s: References %q, want %q", ctx, refs, w.References)
		}
		if want := threading.ID(w.Subject, w.FromAddress, w.To); w.ThreadID != want {
			t.Errorf("%s: ThreadID %s, want threading.ID = %s", ctx, w.ThreadID, want)
		}
		if m.InternalDate.Before(prev) || m.InternalDate.Location() != time.UTC || m.InternalDate.Nanosecond() != 0 {
			t.Errorf("%s: InternalDate %v not UTC whole seconds after %v", ctx, m.InternalDate, prev)
		}
		prev = m.InternalDate
		if m.InternalDate.Before(w.SentAt) {
			t.Errorf("%s: delivered %v before sent %v", ctx, m.InternalDate, w.SentAt)
		}
		checkLines(t, ctx, m.Raw)
		if t.Failed() {
			t.Logf("%s:\n%s", ctx, m.Raw[:min(len(m.Raw), 4000)])
			return
		}
	}
}

// TestEnmime checks bodies and attachments with the parser the importer uses.
func TestEnmime(t *testing.T) {
	t.Parallel()
	n := 600
	if testing.Short() {
		n = 200
	}
	// Detection second-guesses declared charsets and misreads short UTF-8
	// Spanish as ISO-8859-1; the importer is expected to trust the declaration.
	p := enmime.NewParser(enmime.DisableCharacterDetection(true))
	seen := map[string]bool{}
	for i, m := range Generate(3, n) {
		ctx := fmt.Sprintf("message %d (%s, %s, %s, %v)", i, m.Traits.Locale, m.Traits.Charset, m.Traits.TextEncoding, m.Traits.Layout)
		env, err := p.ReadEnvelope(bytes.NewReader(m.Raw))
		if err != nil {
			t.Fatalf("%s: %v", ctx, err)
		}
		for _, e := range env.Errors {
			// Only the warning that text was made from HTML is expected.
			if e.Severe || (e.Name != enmime.ErrorPlainTextFromHTML) {
				t.Errorf("%s: enmime: %v", ctx, e)
			}
		}
		w := m.Want
		if got := env.GetHeader("Subject"); got != w.Subject {
			t.Errorf("%s: Subject %q, want %q", ctx, got, w.Subject)
		}
		if w.TextContains != "" && !strings.Contains(env.Text, w.TextContains) {
			t.Errorf("%s: text lacks %q:\n%s", ctx, w.TextContains, env.Text)
		}
		if w.HTMLContains != "" && !strings.Contains(env.HTML, w.HTMLContains) {
			t.Errorf("%s: HTML lacks %q", ctx, w.HTMLContains)
		}
		if w.HTMLContains == "" && env.HTML != "" {
			t.Errorf("%s: HTML body in a plain-only message", ctx)
		}
		if len(env.Attachments) != len(w.Attachments) {
			t.Errorf("%s: %d attachments, want %d", ctx, len(env.Attachments), len(w.Attachments))
			continue
		}
		for j, a := range env.Attachments {
			wa := w.Attachments[j]
			if a.FileName != wa.Filename || a.ContentType != wa.ContentType || int64(len(a.Content)) != wa.Size {
				t.Errorf("%s: attachment %d is %q %s %d bytes, want %q %s %d", ctx, j, a.FileName, a.ContentType, len(a.Content), wa.Filename, wa.ContentType, wa.Size)
			}
			checkMagic(t, ctx, wa.ContentType, a.Content)
			seen[wa.ContentType] = true
		}
		if t.Failed() {
			t.Logf("%s:\n%s", ctx, m.Raw[:min(len(m.Raw), 6000)])
			return
		}
	}
	for _, ct := range []string{"application/pdf", "image/png", "text/csv"} {
		if !seen[ct] {
			t.Errorf("no %s attachment in %d messages", ct, n)
		}
	}
}

// checkLines checks that every line ends in CRLF and is at most 998 bytes,
// as RFC 5322 requires.
func checkLines(t *testing.T, ctx string, raw []byte) {
	t.Helper()
	for start := 0; start < len(raw); {
		i := bytes.IndexByte(raw[start:], '\n')
		if i < 0 {
			i = len(raw) - start // the last line may lack CRLF
		} else if i == 0 || raw[start+i-1] != '\r' {
			t.Fatalf("%s: bare LF at byte %d", ctx, start+i)
		}
		if i > 999 {
			t.Fatalf("%s: line at byte %d is %d bytes long", ctx, start, i-1)
		}
		start += i + 1
	}
}

func checkMagic(t *testing.T, ctx, contentType string, b []byte) {
	t.Helper()
	var ok bool
	switch contentType {
	case "application/pdf":
		ok = bytes.HasPrefix(b, []byte("%PDF-1.")) && bytes.HasSuffix(b, []byte("%%EOF\n"))
	case "image/png":
		ok = bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")) && bytes.HasSuffix(b, []byte("IEND\xae\x42\x60\x82"))
	default:
		ok = bytes.HasPrefix(b, []byte("booking_id,event_date,")) && bytes.HasSuffix(b, []byte("\r\n"))
	}
	if !ok {
		t.Errorf("%s: %s attachment has the wrong header or trailer", ctx, contentType)
	}
}

// TestMix checks the proportions the generator promises, roughly.
func TestMix(t *testing.T) {
	t.Parallel()
	const n = 5000
	mails := Generate(11, n)
	var (
		layouts                          = map[Layout]int{}
		charsets                         = map[string]int{}
		encodings                        = map[string]int{}
		prefixes                         = map[string]int{}
		withAtt, noID, dups, cc, rfc2231 int
		encoded, quotedName, replies     int
		maxPos                           int
		total                            int64
	)
	for i, m := range mails {
		total += int64(len(m.Raw))
		if m.DuplicateOf >= 0 {
			dups++
			orig := mails[m.DuplicateOf]
			if m.DuplicateOf >= i || !bytes.Equal(orig.Raw, m.Raw) || !reflect.DeepEqual(orig.Want, m.Want) || !m.InternalDate.After(orig.InternalDate) {
				t.Errorf("message %d is not a later copy of message %d", i, m.DuplicateOf)
			}
			if m.Want.MessageID == "" {
				t.Errorf("duplicate %d has no Message-ID", i)
			}
			continue
		}
		layouts[m.Traits.Layout]++
		charsets[m.Traits.Charset]++
		encodings[m.Traits.TextEncoding]++
		if len(m.Want.Attachments) > 0 {
			withAtt++
		}
		if m.Want.MessageID == "" {
			noID++
		}
		if len(m.Want.Cc) > 0 {
			cc++
		}
		if m.Traits.RFC2231 {
			rfc2231++
		}
		if m.Traits.EncodedHeaders {
			encoded++
		}
		if m.Want.InReplyTo != "" {
			replies++
		}
		if bytes.Contains(m.Raw, []byte("From: \"")) && strings.ContainsAny(m.Want.FromName, ",\"") {
			quotedName++
		}
		for _, p := range []string{"Re: ", "RE: ", "Fwd: ", "FW: ", "Re[2]: "} {
			if strings.HasPrefix(m.Want.Subject, p) {
				prefixes[p]++
			}
		}
		maxPos = max(maxPos, m.Traits.Position)
	}
	originals := n - dups
	pct := func(k int) float64 { return 100 * float64(k) / float64(originals) }
	t.Logf("layouts %v, attachments %.1f%%, charsets %v, encodings %v, prefixes %v", layouts, pct(withAtt), charsets, encodings, prefixes)
	t.Logf("duplicates %d, no Message-ID %d, Cc %d, RFC 2231 %d, encoded headers %d, quoted names %d, replies %d, average %d bytes",
		dups, noID, cc, rfc2231, encoded, quotedName, replies, total/n)

	between := func(what string, got, lo, hi float64) {
		t.Helper()
		if got < lo || got > hi {
			t.Errorf("%s: %.2f, want between %v and %v", what, got, lo, hi)
		}
	}
	between("multipart/alternative %", pct(layouts[Alternative]), 34, 46)
	between("HTML-only %", pct(layouts[HTMLOnly]), 8, 25)
	between("plain-only %", pct(layouts[PlainOnly]), 35, 55)
	between("with attachments %", pct(withAtt), 17, 23)
	between("without Message-ID %", pct(noID), 0.4, 2)
	between("duplicates", float64(dups), 10, 50)
	between("average size KB", float64(total)/n/1000, 47.5*0.9, 47.5*1.1)
	for _, cs := range []string{"utf-8", "iso-8859-1", "windows-1252", "iso-8859-15", "koi8-r", "shift_jis"} {
		if charsets[cs] < 20 {
			t.Errorf("only %d messages in %s", charsets[cs], cs)
		}
	}
	for _, e := range []string{"7bit", "8bit", "quoted-printable", "base64"} {
		if encodings[e] < 50 {
			t.Errorf("only %d text parts in %s", encodings[e], e)
		}
	}
	for _, p := range []string{"Re: ", "RE: ", "Fwd: ", "FW: "} {
		if prefixes[p] < 20 {
			t.Errorf("only %d subjects start with %q", prefixes[p], p)
		}
	}
	if maxPos != 5 {
		t.Errorf("longest conversation has %d messages, want 6", maxPos+1)
	}
	for what, k := range map[string]int{"Cc": cc, "RFC 2231 filenames": rfc2231, "encoded headers": encoded, "quoted display names": quotedName} {
		if k < 20 {
			t.Errorf("only %d messages with %s", k, what)
		}
	}
}

// TestThreads checks that a conversation keeps one thread id, except for
// forwards, which go to someone else and so start their own.
func TestThreads(t *testing.T) {
	t.Parallel()
	ids := map[int]string{}
	lengths := map[int]int{}
	for i, m := range Generate(5, 2000) {
		if m.DuplicateOf >= 0 {
			continue
		}
		if m.Want.ThreadID != threading.ID(m.Want.Subject, m.Want.FromAddress, m.Want.To) {
			t.Fatalf("message %d: ThreadID is not threading.ID", i)
		}
		lengths[m.Traits.Thread]++
		s := m.Want.Subject
		if strings.HasPrefix(s, "Fwd: ") || strings.HasPrefix(s, "FW: ") {
			continue
		}
		if id, ok := ids[m.Traits.Thread]; ok && id != m.Want.ThreadID {
			t.Errorf("message %d (%q) left its conversation's thread %s for %s", i, s, id, m.Want.ThreadID)
		}
		ids[m.Traits.Thread] = m.Want.ThreadID
	}
	multi := 0
	for _, l := range lengths {
		if l > 1 {
			multi++
		}
	}
	if multi < len(lengths)/3 {
		t.Errorf("only %d of %d conversations have replies", multi, len(lengths))
	}
}

func TestOptions(t *testing.T) {
	t.Parallel()
	o := DefaultOptions()
	o.AttachmentRatio = 0
	o.DuplicateRatio = 0.2
	o.NoMessageIDRatio = 0
	o.Start = time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	dups := 0
	for i, m := range o.Generate(9, 300) {
		if len(m.Want.Attachments) > 0 || m.Want.MessageID == "" {
			t.Fatalf("message %d has attachments or no Message-ID despite the options", i)
		}
		if m.InternalDate.Before(o.Start) {
			t.Fatalf("message %d delivered %v, before Start", i, m.InternalDate)
		}
		if m.DuplicateOf >= 0 {
			dups++
		}
	}
	if dups < 30 {
		t.Errorf("%d duplicates with DuplicateRatio 0.2 in 300", dups)
	}
}

// BenchmarkEach measures generation speed; tests never assert on time.
func BenchmarkEach(b *testing.B) {
	var total int64
	n := 0
	for b.Loop() {
		_ = Each(int64(n), 1000, func(m Mail) error { total += int64(len(m.Raw)); return nil })
		n++
	}
	b.SetBytes(total / int64(n))
	b.ReportMetric(float64(total)/float64(n*1000), "bytes/msg")
}

// Attachment bounds set every attachment's decoded size.
func TestAttachmentBounds(t *testing.T) {
	t.Parallel()
	o := DefaultOptions()
	o.AttachmentMin, o.AttachmentMax = 50<<10, 500<<10
	atts, large := 0, 0
	for i, m := range o.Generate(5, 400) {
		for _, a := range m.Want.Attachments {
			atts++
			// The formats' heads and tails move the size by a few hundred
			// bytes at most.
			if a.Size < int64(o.AttachmentMin)-1024 || a.Size > int64(o.AttachmentMax)+1024 {
				t.Errorf("message %d: attachment %q is %d bytes; want %d to %d", i, a.Filename, a.Size, o.AttachmentMin, o.AttachmentMax)
			}
			if a.Size > 350<<10 {
				large++
			}
		}
	}
	if atts < 40 || large == 0 {
		t.Errorf("%d attachments, %d over 350 KB, in 400 messages", atts, large)
	}
}
