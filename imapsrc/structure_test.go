package imapsrc

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/myhibachi/backfill/internal/imaptest"
)

// badStructure is go-imap's server failing at the structure of UID 1: it
// sends one go-imap cannot parse (garble), or the connection drops there.
type badStructure struct {
	imapserver.SessionIMAP4rev2
	conn   *imapserver.Conn
	garble bool
}

func (s *badStructure) Fetch(w *imapserver.FetchWriter, numSet imap.NumSet, options *imap.FetchOptions) error {
	set, _ := numSet.(imap.UIDSet)
	if options.BodyStructure == nil || !set.Contains(1) {
		return s.SessionIMAP4rev2.Fetch(w, numSet, options)
	}
	if s.garble {
		// Each answer is flushed when written: nothing of the server's is
		// pending on the wire.
		_, err := fmt.Fprint(s.conn.NetConn(), "* 1 FETCH (UID 1 BODYSTRUCTURE (\"text\" \"plain\" ((( 12))\r\n")
		return err
	}
	s.conn.NetConn().Close()
	return &imap.Error{Type: imap.StatusResponseTypeNo, Text: "dropped by the test"}
}

// TestStructureFailuresAreToldFromNetworkDrops checks which failures of a
// structure fetch count as a structure that cannot be read (StructureError,
// which turns lean fetching off after a few): one go-imap cannot parse at
// once; a dropped connection only when it drops at the same message twice.
// Either way the message is then fetched whole and every message comes.
func TestStructureFailuresAreToldFromNetworkDrops(t *testing.T) {
	for _, c := range []struct {
		name   string
		garble bool
		errors []bool // for each attempt until success: a StructureError?
	}{
		{"unparseable structure", true, []bool{true}},
		{"connection drops at a structure", false, []bool{false, true}},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv := imaptest.Start(t, imaptest.WithSession(func(s imapserver.SessionIMAP4rev2, conn *imapserver.Conn) imapserver.SessionIMAP4rev2 {
				return &badStructure{SessionIMAP4rev2: s, conn: conn, garble: c.garble}
			}))
			var uids []uint32
			for i := range 4 {
				uids = append(uids, uint32(srv.Append(t, testMail(i, true), time.Now())))
			}
			fetcher := &Fetcher{Lean: true}
			got := map[uint32]Fetched{}
			for attempt := 0; ; attempt++ {
				var wanted []uint32
				for _, u := range uids {
					if _, ok := got[u]; !ok {
						wanted = append(wanted, u)
					}
				}
				missing, err := fetcher.Fetch(context.Background(), dialTest(t, srv), wanted, func(f Fetched) error {
					f.Body = nil // not kept past the callback
					got[f.UID] = f
					return nil
				})
				if attempt == len(c.errors) {
					if err != nil || len(missing) > 0 {
						t.Fatalf("attempt %d: missing %v, %v", attempt+1, missing, err)
					}
					break
				}
				var se *StructureError
				switch {
				case err == nil:
					t.Fatalf("attempt %d did not fail", attempt+1)
				case errors.As(err, &se) != c.errors[attempt]:
					t.Fatalf("attempt %d: %v; a StructureError: %v, want %v", attempt+1, err, se != nil, c.errors[attempt])
				case se != nil && se.Suspect != 1:
					t.Fatalf("suspect UID %d, want 1", se.Suspect)
				}
			}
			if len(got) != len(uids) || got[1].Message != nil || got[2].Message == nil {
				t.Fatalf("delivered %d of %d; UID 1 as sections %v, UID 2 as sections %v", len(got), len(uids), got[1].Message != nil, got[2].Message != nil)
			}
		})
	}
}
