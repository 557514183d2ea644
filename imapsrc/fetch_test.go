package imapsrc

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/myhibachi/backfill/internal/imaptest"
	"github.com/myhibachi/backfill/message"
)

// TestFetcherAsksAgainForLostPrefetchedStructures loses the structures
// asked for ahead (StartOutlines) with their connection, part-way through
// the answer, and fetches on another connection: the structures that did
// not arrive are asked for there, and every message comes, the ones with
// attachments as rows from sections that match what the whole message
// gives.
func TestFetcherAsksAgainForLostPrefetchedStructures(t *testing.T) {
	srv := imaptest.Start(t, imaptest.FailFetch(1))
	date := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	raws := map[uint32][]byte{}
	var uids []uint32
	for i := range 12 {
		raw := testMail(i, i%2 == 0)
		uid := uint32(srv.Append(t, raw, date))
		raws[uid] = raw
		uids = append(uids, uid)
	}
	ctx := context.Background()
	ahead := dialTest(t, srv).StartOutlines(uids)
	<-ahead.done
	if ahead.err == nil || len(ahead.m) == len(uids) {
		t.Fatalf("the structures asked ahead all arrived (%d, %v): the fault did not happen", len(ahead.m), ahead.err)
	}
	fetcher := &Fetcher{Lean: true, Outlines: ahead, UIDValidity: 7}
	got := map[uint32]Fetched{}
	missing, err := fetcher.Fetch(ctx, dialTest(t, srv), uids, func(f Fetched) error {
		f.Body = bytes.Clone(f.Body)
		got[f.UID] = f
		return nil
	})
	if err != nil || len(missing) > 0 {
		t.Fatalf("Fetch: missing %v, %v", missing, err)
	}
	var lean int
	for _, u := range uids {
		f, ok := got[u]
		want := message.Parse(raws[u], message.Meta{UID: u, UIDValidity: 7, InternalDate: date, Size: int64(len(raws[u]))})
		switch {
		case !ok:
			t.Errorf("UID %d not delivered", u)
		case f.Message != nil:
			lean++
			if !reflect.DeepEqual(f.Message.Attachments, want.Attachments) || f.Message.TextBody != want.TextBody {
				t.Errorf("UID %d from sections: %+v, whole gives %+v", u, f.Message.Attachments, want.Attachments)
			}
		case !bytes.Equal(f.Body, raws[u]):
			t.Errorf("UID %d whole: %d bytes, want %d", u, len(f.Body), len(raws[u]))
		}
	}
	if lean != 6 {
		t.Errorf("%d messages fetched as sections, want the 6 with attachments", lean)
	}
}

func dialTest(t *testing.T, srv *imaptest.Server) *Conn {
	t.Helper()
	cfg, err := ParseURL(srv.URL("INBOX"), false)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Password = srv.Password
	c, err := Dial(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := c.SelectReadOnly(context.Background(), "INBOX"); err != nil {
		t.Fatal(err)
	}
	return c
}

// testMail is a message with a 40 KB PDF attached, or plain text.
func testMail(i int, attached bool) []byte {
	head := fmt.Sprintf("From: Ana <ana@example.com>\r\nTo: cs@myhibachichef.com\r\nSubject: test %d\r\n"+
		"Date: Sun, 1 Mar 2026 10:00:00 +0000\r\nMessage-ID: <test-%d@example.com>\r\nMIME-Version: 1.0\r\n", i, i)
	if !attached {
		return []byte(head + "Content-Type: text/plain\r\n\r\n" + strings.Repeat("plain text\r\n", 200))
	}
	enc := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{byte(i), 1, 2, 3, 5, 8, 13}, 6000))
	var b strings.Builder
	for len(enc) > 0 {
		n := min(76, len(enc))
		b.WriteString(enc[:n] + "\r\n")
		enc = enc[n:]
	}
	return []byte(head + "Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nattached\r\n" +
		"--b\r\nContent-Type: application/pdf; name=\"t.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\n" + b.String() + "--b--\r\n")
}
