package main

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/myhibachi/backfill/internal/dovecottest"
)

// A cold server has a new index and no cached field: what a first fetch of
// BODYSTRUCTURE made Dovecot keep is gone, every message is there again,
// and the file names carry the sizes Dovecot's deliveries give them.
func TestMakeColdForgetsWhatDovecotCached(t *testing.T) {
	const user = "cold@example.com"
	srv := dovecottest.NewServer(t, []dovecottest.User{{Name: user, Password: benchPassword}})
	dir := t.TempDir()
	b := &benchCmd{srv: srv, dir: dir}
	mb := &mailbox{user: user, shape: shapes()[1]}
	ctx := context.Background()
	if err := loadCorpus(ctx, srv, mb, 1, 30, filepath.Join(dir, "pristine")); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(mb.pristine)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 30 {
		t.Fatalf("%d pristine files; want 30", len(entries))
	}
	for _, e := range entries {
		info, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		// mailgen writes CRLF: the virtual size is the file's size.
		if want := ",W=" + strconv.FormatInt(info.Size(), 10) + ":"; !strings.Contains(e.Name(), want) {
			t.Fatalf("pristine file %s: want %q in its name", e.Name(), want)
		}
	}

	maildir, err := srv.Maildir(user)
	if err != nil {
		t.Fatal(err)
	}
	cache := filepath.Join(maildir, "dovecot.index.cache")
	var validity [2]uint32
	for i := range validity {
		if _, err := b.makeCold(ctx, mb); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(cache); err == nil {
			t.Fatalf("round %d: %s exists right after makeCold", i, cache)
		}
		validity[i] = fetchStructures(t, srv.Addr(), user, 30)
		if _, err := os.Stat(cache); err != nil {
			t.Fatalf("round %d: Dovecot cached no structure after a fetch: %v", i, err)
		}
	}
	if validity[0] == validity[1] {
		t.Errorf("UIDVALIDITY %d both times: the index was not new", validity[0])
	}
}

// fetchStructures asks for every message's BODYSTRUCTURE, as lean fetch
// does, checks n came, and returns the mailbox's UIDVALIDITY.
func fetchStructures(t *testing.T, addr, user string, n int) uint32 {
	t.Helper()
	c, err := imapclient.DialInsecure(addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(user, benchPassword).Wait(); err != nil {
		t.Fatal(err)
	}
	sel, err := c.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := c.Fetch(imap.UIDSet{imap.UIDRange{Start: 1}}, &imap.FetchOptions{UID: true, BodyStructure: &imap.FetchItemBodyStructure{}}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != n {
		t.Fatalf("%d structures; want %d", len(msgs), n)
	}
	if err := c.Logout().Wait(); err != nil {
		t.Fatal(err)
	}
	return sel.UIDValidity
}
