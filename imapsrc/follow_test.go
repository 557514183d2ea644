package imapsrc

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/myhibachi/backfill/internal/imaptest"
)

// TestIdleHearsNewMail idles on a mailbox while another session appends a
// message: IDLE ends with the news gathered in Changes, flags can be read
// afterwards, a renewal without news ends quietly, and a cancelled context
// ends IDLE at once.
func TestIdleHearsNewMail(t *testing.T) {
	srv := imaptest.Start(t)
	date := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	srv.Append(t, testMail(0, false), date, imap.FlagSeen)
	cfg, err := ParseURL(srv.URL("INBOX"), false)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Password = srv.Password
	cfg.Changes = NewChanges()
	ctx := context.Background()
	c, err := Dial(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if !c.Features().Idle {
		t.Fatal("the server offers IDLE (IMAP4rev2), Features says not")
	}
	if _, err := c.SelectFollow(ctx, "INBOX", false); err != nil {
		t.Fatal(err)
	}
	cfg.Changes.Take()

	go func() {
		time.Sleep(100 * time.Millisecond)
		if _, err := srv.AppendRaw(imaptest.Inbox, testMail(1, false), date); err != nil {
			t.Error(err)
		}
	}()
	if err := c.Idle(ctx, time.Minute); err != nil {
		t.Fatal(err)
	}
	if got := cfg.Changes.Take(); got&NewMail == 0 {
		t.Fatalf("Changes after an append during IDLE = %b, want NewMail", got)
	}
	flags, err := c.FlagsSince(ctx, 0, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(flags) != 2 || len(flags[0].Flags) != 1 || flags[0].Flags[0] != `\Seen` || len(flags[1].Flags) != 0 {
		t.Fatalf("FlagsSince = %+v, want UID 1 seen and UID 2 without flags", flags)
	}

	if err := c.Idle(ctx, 50*time.Millisecond); err != nil {
		t.Fatalf("a renewal without news: %v", err)
	}
	if got := cfg.Changes.Take(); got != 0 {
		t.Fatalf("Changes after a quiet IDLE = %b, want none", got)
	}
	cctx, cancel := context.WithCancel(ctx)
	time.AfterFunc(50*time.Millisecond, cancel)
	if err := c.Idle(cctx, time.Minute); !errors.Is(err, context.Canceled) {
		t.Fatalf("IDLE with its context cancelled returned %v, want context.Canceled", err)
	}
}

// TestListUIDsFrom lists the UIDs above the ones already seen: the new
// ones only, and none when there are none, although "n:*" names the
// highest UID even when it is below n.
func TestListUIDsFrom(t *testing.T) {
	srv := imaptest.Start(t)
	date := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	for i := range 5 {
		srv.Append(t, testMail(i, false), date)
	}
	cfg, err := ParseURL(srv.URL("INBOX"), false)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Password = srv.Password
	ctx := context.Background()
	c, err := Dial(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.SelectReadOnly(ctx, "INBOX"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		first uint32
		want  []uint32
	}{
		{0, []uint32{1, 2, 3, 4, 5}},
		{1, []uint32{1, 2, 3, 4, 5}},
		{4, []uint32{4, 5}},
		{5, []uint32{5}},
		{6, nil},
		{100, nil},
	} {
		got, err := c.ListUIDsFrom(ctx, tc.first)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("ListUIDsFrom(%d) = %v, want %v", tc.first, got, tc.want)
		}
	}
}
