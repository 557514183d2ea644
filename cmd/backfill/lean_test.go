package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/myhibachi/backfill/internal/dovecottest"
	"github.com/myhibachi/backfill/internal/mailgen"
)

// TestLeanFetchStoresWhatFullFetchStores runs the same mailbox through
// --fetch full and --fetch lean, against Dovecot and against go-imap's
// server, and compares every column of every row: leaving attachments on
// the server must change nothing a user can see, for generated mail and for
// the shapes that make lean fetching fall back to whole messages.
func TestLeanFetchStoresWhatFullFetchStores(t *testing.T) {
	t.Parallel()
	corpus := append(edgeMails(), rawMails(mailgen.Generate(21, 300))...)
	date := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)

	t.Run("dovecot", func(t *testing.T) {
		t.Parallel()
		user := dovecottest.User{Name: "lean@myhibachichef.com", Password: "pw"}
		srv := dovecottest.NewServer(t, []dovecottest.User{user})
		err := srv.LoadMaildir(user.Name, func(yield func([]byte, time.Time) bool) {
			for _, raw := range corpus {
				if !yield(raw, date) {
					return
				}
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		full, lean := newFixture(t), newFixture(t)
		for _, f := range []*fixture{full, lean} {
			f.environ = append(f.environ, "BACKFILL_INBOX_DEMO="+srv.URL(user.Name, "INBOX"), "BACKFILL_INBOX_DEMO_PASSWORD="+user.Password)
		}
		compareLeanWithFull(t, full, lean, len(corpus))
	})
	t.Run("go-imap", func(t *testing.T) {
		t.Parallel()
		full, lean := newFixture(t), newFixture(t)
		for _, f := range []*fixture{full, lean} {
			for _, raw := range corpus {
				f.imap.Append(t, raw, date)
			}
		}
		compareLeanWithFull(t, full, lean, len(corpus))
	})
}

var transferred = regexp.MustCompile(`Transferred:\s+([0-9.]+) MB of ([0-9.]+) MB`)

func compareLeanWithFull(t *testing.T, full, lean *fixture, n int) {
	t.Helper()
	var moved [2]float64
	for i, f := range []*fixture{full, lean} {
		mode := []string{"full", "lean"}[i]
		f.migrate()
		out := f.mustRun(0, "--inbox", "demo", "--fetch", mode, "--batch-size", "25")
		f.wantLine(out, fmt.Sprintf("Downloaded:    %d message bodies", n))
		m := transferred.FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("--fetch %s: no Transferred line:\n%s", mode, out)
		}
		moved[i], _ = strconv.ParseFloat(m[1], 64)
	}
	if moved[1] >= moved[0]/2 {
		t.Errorf("lean fetch transferred %.1f MB, full %.1f MB: attachments were not left on the server", moved[1], moved[0])
	}
	want, got := full.dump(), lean.dump()
	if len(want) == 0 || len(want) != len(got) {
		t.Fatalf("full fetch stored %d rows, lean %d", len(want), len(got))
	}
	for i := range want {
		if want[i] != got[i] {
			t.Errorf("row %d differs:%s", i, jsonDiff(want[i], got[i]))
		}
	}
}

// jsonDiff lists the fields in which two JSON objects differ.
func jsonDiff(a, b string) string {
	var x, y map[string]any
	_ = json.Unmarshal([]byte(a), &x)
	_ = json.Unmarshal([]byte(b), &y)
	var out strings.Builder
	for k, v := range x {
		if fmt.Sprint(v) != fmt.Sprint(y[k]) {
			fmt.Fprintf(&out, "\n  %s: full %v\n  %s: lean %v", k, v, k, y[k])
		}
	}
	return out.String()
}

// dump returns every email_messages row as JSON without the columns that
// differ between databases, in Message-ID order. The UID is left out: of a
// message delivered twice, the copy whose batch commits first is stored.
func (f *fixture) dump() []string {
	f.t.Helper()
	return f.dumpExcept()
}

func rawMails(ms []mailgen.Mail) [][]byte {
	out := make([][]byte, len(ms))
	for i, m := range ms {
		out[i] = m.Raw
	}
	return out
}

// b64 encodes data in lines of width digits.
func b64(data []byte, width int) string {
	enc := base64.StdEncoding.EncodeToString(data)
	var b strings.Builder
	for len(enc) > 0 {
		n := min(width, len(enc))
		b.WriteString(enc[:n] + "\r\n")
		enc = enc[n:]
	}
	return b.String()
}

func noise(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 7))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// edgeMails are messages whose shape tests lean fetching: what it must
// handle itself and what must make it fetch the whole message.
func edgeMails() [][]byte {
	text := func(n int) string { return strings.Repeat("Lorem ipsum dolor sit amet.\r\n", n) }
	head := func(i int, extra string) string {
		id := fmt.Sprintf("Message-ID: <edge-%d@test.example>\r\n", i)
		if strings.Contains(extra, "NO-ID") {
			id, extra = "", strings.ReplaceAll(extra, "NO-ID", "")
		}
		return "From: Ana <ana@example.com>\r\nTo: cs@myhibachichef.com\r\nSubject: edge " + strconv.Itoa(i) + "\r\n" +
			"Date: Sun, 1 Mar 2026 10:00:00 +0000\r\n" + id + "MIME-Version: 1.0\r\n" + extra
	}
	var ms []string
	// 0: the common case, text and a PDF in 76-digit lines.
	ms = append(ms, head(0, "Content-Type: multipart/mixed; boundary=\"b0\"\r\n\r\n")+
		"--b0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"+text(3)+
		"\r\n--b0\r\nContent-Type: application/pdf; name=\"invoice.pdf\"\r\nContent-Disposition: attachment; filename=\"invoice.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\n"+
		b64(noise(1, 40000), 76)+"--b0--\r\n")
	// 1: alternative text, a 72-digit PNG, a small CSV kept, RFC 2231 name.
	ms = append(ms, head(1, "Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n")+
		"--b1\r\nContent-Type: multipart/alternative; boundary=\"b1a\"\r\n\r\n"+
		"--b1a\r\nContent-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nCaf=E9 au lait\r\n"+
		"--b1a\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>Café au lait</p>\r\n--b1a--\r\n"+
		"\r\n--b1\r\nContent-Type: image/png\r\nContent-Disposition: inline; filename*=utf-8''caf%C3%A9.png\r\nContent-Transfer-Encoding: base64\r\n\r\n"+
		b64(noise(2, 30001), 72)+
		"--b1\r\nContent-Type: text/csv; name=small.csv\r\nContent-Transfer-Encoding: base64\r\n\r\n"+b64([]byte("a,b\r\n1,2\r\n"), 76)+"--b1--\r\n")
	// 2: a 7bit attachment: its size is its length.
	ms = append(ms, head(2, "Content-Type: multipart/mixed; boundary=\"b2\"\r\n\r\n")+
		"--b2\r\nContent-Type: text/plain\r\n\r\nsee log\r\n--b2\r\nContent-Type: application/octet-stream; name=app.log\r\nContent-Transfer-Encoding: 7bit\r\n\r\n"+
		text(1000)+"\r\n--b2--\r\n")
	// 3: a forwarded message with its own attachment.
	ms = append(ms, head(3, "Content-Type: multipart/mixed; boundary=\"b3\"\r\n\r\n")+
		"--b3\r\nContent-Type: text/plain\r\n\r\nFYI\r\n--b3\r\nContent-Type: message/rfc822\r\n\r\n"+
		head(30, "Content-Type: multipart/mixed; boundary=\"b3i\"\r\n\r\n")+"--b3i\r\nContent-Type: text/plain\r\n\r\ninner\r\n"+
		"--b3i\r\nContent-Type: application/zip; name=a.zip\r\nContent-Transfer-Encoding: base64\r\n\r\n"+b64(noise(3, 25000), 76)+"--b3i--\r\n"+
		"\r\n--b3--\r\n")
	// 4: quoted-printable attachment: not elided, so fetched whole.
	ms = append(ms, head(4, "Content-Type: multipart/mixed; boundary=\"b4\"\r\n\r\n")+
		"--b4\r\nContent-Type: text/plain\r\n\r\nqp\r\n--b4\r\nContent-Type: application/rtf; name=a.rtf\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"+
		strings.Repeat("=7Brtf1 caf=E9=7D\r\n", 3000)+"--b4--\r\n")
	// 5: no Message-ID: the synthetic id needs the whole message.
	ms = append(ms, head(5, "NO-IDContent-Type: multipart/mixed; boundary=\"b5\"\r\n\r\n")+
		"--b5\r\nContent-Type: text/plain\r\n\r\nno id\r\n--b5\r\nContent-Type: application/pdf; name=x.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n"+
		b64(noise(5, 30000), 76)+"--b5--\r\n")
	// 6: base64 lines of uneven length: the tail cannot prove the size.
	uneven := b64(noise(6, 30000), 76)
	uneven = uneven[:len(uneven)-300] + strings.ReplaceAll(uneven[len(uneven)-300:], "\r\n", "\r\n\r\n")
	ms = append(ms, head(6, "Content-Type: multipart/mixed; boundary=\"b6\"\r\n\r\n")+
		"--b6\r\nContent-Type: text/plain\r\n\r\nuneven\r\n--b6\r\nContent-Type: image/jpeg; name=u.jpg\r\nContent-Transfer-Encoding: base64\r\n\r\n"+
		uneven+"--b6--\r\n")
	// 7: truncated base64 and a declared boundary that never occurs.
	ms = append(ms, head(7, "Content-Type: multipart/mixed; boundary=\"nope\"\r\n\r\n")+
		"--b7\r\nContent-Type: text/plain\r\n\r\nwrong boundary\r\n--b7\r\nContent-Type: application/pdf; name=t.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n"+
		b64(noise(7, 30000), 76)[:20000]+"\r\n--b7--\r\n")
	// 8: a digest of messages, one with an attachment.
	ms = append(ms, head(8, "Content-Type: multipart/digest; boundary=\"b8\"\r\n\r\n")+
		"--b8\r\n\r\n"+head(80, "Content-Type: text/plain\r\n\r\n")+"one\r\n"+
		"--b8\r\n\r\n"+head(81, "Content-Type: multipart/mixed; boundary=\"b8i\"\r\n\r\n")+"--b8i\r\nContent-Type: application/pdf; name=d.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n"+
		b64(noise(8, 30000), 76)+"--b8i--\r\n--b8--\r\n")
	// 9: a named text file and an inline image inside related HTML.
	ms = append(ms, head(9, "Content-Type: multipart/mixed; boundary=\"b9\"\r\n\r\n")+
		"--b9\r\nContent-Type: multipart/related; boundary=\"b9r\"\r\n\r\n"+
		"--b9r\r\nContent-Type: text/html\r\n\r\n<p>logo <img src=\"cid:logo\"></p>\r\n"+
		"--b9r\r\nContent-Type: image/gif\r\nContent-ID: <logo>\r\nContent-Transfer-Encoding: base64\r\n\r\n"+b64(noise(9, 20000), 76)+"--b9r--\r\n"+
		"\r\n--b9\r\nContent-Type: text/plain; name=notes.txt\r\nContent-Disposition: attachment; filename=notes.txt\r\n\r\n"+text(800)+
		"\r\n--b9\r\nContent-Type: application/vnd.ms-excel; name=\"=?utf-8?B?w6lsw6h2ZXMueGxz?=\"\r\nContent-Transfer-Encoding: base64\r\n\r\n"+
		b64(noise(10, 50000), 64)+"--b9--\r\n")
	// 10: one attachment and nothing else; the body is the file.
	ms = append(ms, head(10, "Content-Type: application/pdf; name=only.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n")+b64(noise(11, 30000), 76))
	out := make([][]byte, len(ms))
	for i, m := range ms {
		out[i] = bytes.Clone([]byte(m))
	}
	return out
}

// TestUnreadableStructuresTurnLeanFetchOff gives go-imap's server messages
// whose BODYSTRUCTURE it cannot produce (a multipart whose boundary never
// occurs): the client loses the connection on each, twice (once could be
// the network), then fetches that message whole, and after three stops
// fetching lean for the rest of the run.
// Every message is stored and the run says what it did.
func TestUnreadableStructuresTurnLeanFetchOff(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	broken := edgeMails()[7]
	date := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	var want int
	for i := range 6 {
		raw := bytes.Replace(broken, []byte("<edge-7@"), []byte(fmt.Sprintf("<broken-%d@", i)), 1)
		f.imap.Append(t, raw, date)
		f.imap.Append(t, edgeMails()[0], date) // the same message each time: stored once
		want++
	}
	want++
	f.migrate()
	out := f.mustRun(0, "--inbox", "demo", "--fetch", "lean", "--batch-size", "4", "--workers", "1")
	if n := f.count(`SELECT count(*) FROM email_messages`); n != want {
		t.Fatalf("email_messages has %d rows, want %d\n%s", n, want, out)
	}
	if n := f.count(`SELECT count(*) FROM error_logs WHERE error_type = 'lean_fetch_disabled' AND severity = 'warning'`); n != 1 {
		t.Fatalf("%d lean_fetch_disabled warnings, want 1\n%s", n, out)
	}
	if n := f.count(`SELECT count(*) FROM error_logs WHERE error_type = 'fetch_retried'`); n != 6 {
		t.Fatalf("%d fetch_retried warnings, want 6: two for each of three structures, then lean fetching is off\n%s", n, out)
	}
}
