package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/myhibachi/backfill/internal/dovecottest"
	"github.com/myhibachi/backfill/internal/mailgen"
)

// shape is a kind of mailbox: which share of messages carry attachments and
// how large those are.
type shape struct {
	name string // as in -shapes and the report
	desc string
	opts mailgen.Options
}

// shapes are the mailboxes issue 9 asks for: mailgen's mix, about the shape
// of the mailbox the issue was filed on (a fifth of the messages with 1–3
// attachments of about 100 KB median), and one whose attachments are
// larger.
func shapes() []shape {
	heavy := mailgen.DefaultOptions()
	heavy.AttachmentMin, heavy.AttachmentMax = 50_000, 500_000
	return []shape{
		{name: "mixed", desc: "mailgen's default mix: a fifth of the messages with 1–3 attachments of 2–350 KB, the rest plain or HTML text", opts: mailgen.DefaultOptions()},
		{name: "attachments", desc: "attachment-heavy: a fifth of the messages with 1–3 attachments of 50–500 KB, the rest plain or HTML text", opts: heavy},
	}
}

// corpus is a generated mailbox every contender copies.
type corpus struct {
	seed     int64
	messages int
	distinct int // messages less the repeated deliveries (mailgen's DuplicateOf), the rows a backfill stores
	bytes    int64
	loadTime time.Duration
}

// MB is the corpus size in megabytes (10^6 bytes), as MB/s is reckoned.
func (c corpus) MB() float64 { return float64(c.bytes) / 1e6 }

// mailbox is one Dovecot user holding one corpus, and the pristine copy of
// its Maildir files each cold run starts from.
type mailbox struct {
	user     string
	shape    shape
	corpus   corpus
	pristine string // the message files, named as Dovecot's deliveries name them
}

// errStopLoad ends generation early when loading failed.
var errStopLoad = errors.New("load stopped")

// loadCorpus writes n generated messages straight into the user's Maildir,
// far faster than APPEND, then moves them to pristine, where every cold run
// links them from. The same seed, shape and n give the same bytes on every
// machine.
func loadCorpus(ctx context.Context, srv *dovecottest.Server, mb *mailbox, seed int64, n int, pristine string) error {
	mb.corpus = corpus{seed: seed}
	start := time.Now()
	var genErr error
	mails := func(yield func([]byte, time.Time) bool) {
		genErr = mb.shape.opts.Each(seed, n, func(m mailgen.Mail) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			mb.corpus.messages++
			if m.DuplicateOf < 0 {
				mb.corpus.distinct++
			}
			mb.corpus.bytes += int64(len(m.Raw))
			if !yield(m.Raw, m.InternalDate) {
				return errStopLoad
			}
			return nil
		})
	}
	if err := srv.LoadMaildir(mb.user, mails); err != nil {
		return fmt.Errorf("load corpus: %w", err)
	}
	if genErr != nil {
		return fmt.Errorf("generate corpus: %w", genErr)
	}
	mb.corpus.loadTime = time.Since(start)
	maildir, err := srv.Maildir(mb.user)
	if err != nil {
		return err
	}
	if err := keepPristine(filepath.Join(maildir, "cur"), pristine); err != nil {
		return fmt.Errorf("keep pristine copy: %w", err)
	}
	mb.pristine = pristine
	return nil
}

// keepPristine moves the message files of cur into dir, adding ",W=" (the
// size with CRLF line ends) to their names. Dovecot's own deliveries name
// files so, and a server that knows its sizes answers RFC822.SIZE without
// reading the message: without it, a cold server reads every file just to
// count its lines.
func keepPristine(cur, dir string) error {
	if err := os.Mkdir(dir, 0o755); err != nil {
		return err
	}
	entries, err := os.ReadDir(cur)
	if err != nil {
		return err
	}
	for _, e := range entries {
		name := e.Name()
		base, flags, ok := strings.Cut(name, ":")
		if !ok {
			return fmt.Errorf("%s: not a Maildir message name", name)
		}
		raw, err := os.ReadFile(filepath.Join(cur, name))
		if err != nil {
			return err
		}
		virtual := len(raw) + bytes.Count(raw, []byte("\n")) - bytes.Count(raw, []byte("\r\n"))
		to := fmt.Sprintf("%s,W=%d:%s", base, virtual, flags)
		if err := os.Rename(filepath.Join(cur, name), filepath.Join(dir, to)); err != nil {
			return err
		}
	}
	return nil
}

// coldServer is what resetting a mailbox found and did, for the report.
type coldServer struct {
	index   time.Duration // Dovecot's first EXAMINE of the fresh copy
	dropped error         // why the page cache could not be dropped; nil when it was
}

// makeCold gives the mailbox a fresh copy of its Maildir and a new index, as
// a server has that never served this mailbox to a client: Dovecot's
// state (index, UID list, cache of BODYSTRUCTUREs and sizes) is deleted with
// the old Maildir, the files are linked anew from the pristine copy, and one
// EXAMINE (untimed) builds the index without caching any message field, as
// a delivering server would have. Last, the kernel's page cache is dropped,
// so the message files are read from disk again; the programs the next
// contender needs are read back in, since a server and its clients have
// them in memory.
func (b *benchCmd) makeCold(ctx context.Context, mb *mailbox) (coldServer, error) {
	var cs coldServer
	var err error
	if cs.index, err = freshCopy(ctx, b.srv, mb); err != nil {
		return cs, err
	}
	cs.dropped = errors.New("not asked to (-drop-caches=false)")
	if b.dropCache {
		cs.dropped = dropPageCache()
	}
	b.preload()
	return cs, nil
}

// freshCopy replaces the mailbox's Maildir with a fresh copy of its
// pristine files and has Dovecot index it (see makeCold); it returns how
// long the indexing EXAMINE took.
func freshCopy(ctx context.Context, srv *dovecottest.Server, mb *mailbox) (time.Duration, error) {
	if err := srv.ResetMailbox(mb.user); err != nil {
		return 0, err
	}
	maildir, err := srv.Maildir(mb.user)
	if err != nil {
		return 0, err
	}
	entries, err := os.ReadDir(mb.pristine)
	if err != nil {
		return 0, err
	}
	cur := filepath.Join(maildir, "cur")
	for _, e := range entries {
		// A hard link is a copy for Dovecot, which never writes into a
		// message file; with the page cache dropped it is as cold as one.
		if err := os.Link(filepath.Join(mb.pristine, e.Name()), filepath.Join(cur, e.Name())); err != nil {
			return 0, fmt.Errorf("fresh copy of %s: %w", mb.user, err)
		}
	}
	start := time.Now()
	if err := examine(ctx, srv.Addr(), mb.user); err != nil {
		return 0, fmt.Errorf("index the fresh copy of %s: %w", mb.user, err)
	}
	return time.Since(start), nil
}

// examine logs in and opens INBOX read-only, which makes Dovecot index a
// new Maildir.
func examine(ctx context.Context, addr, user string) error {
	c, err := imapclient.DialInsecure(addr, nil)
	if err != nil {
		return err
	}
	defer c.Close()
	defer context.AfterFunc(ctx, func() { c.Close() })()
	if err := c.Login(user, benchPassword).Wait(); err != nil {
		return err
	}
	if _, err := c.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		return err
	}
	return c.Logout().Wait()
}

// dropPageCache writes dirty pages out and drops the clean ones, as root on
// Linux may; the error says why not.
func dropPageCache() error {
	syscall.Sync()
	return os.WriteFile("/proc/sys/vm/drop_caches", []byte("3\n"), 0o644)
}

// preload reads the measured programs and Dovecot's own back into the page
// cache after a drop: their start-up is not what a cold server means.
func (b *benchCmd) preload() {
	preloadFiles(b.bins.backfill, b.bins.floor, b.bins.launcher, b.isync.path)
}

// preloadFiles reads the programs given and Dovecot's own into the page
// cache.
func preloadFiles(paths ...string) {
	if libexec, err := filepath.Glob("/usr/lib/dovecot/*"); err == nil {
		paths = append(paths, libexec...)
	}
	for _, p := range paths {
		if info, err := os.Stat(p); err == nil && info.Mode().IsRegular() {
			_, _ = os.ReadFile(p) // only to warm the cache
		}
	}
}
