package imapsrc

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// Change is what a server said, unprompted, about the selected mailbox:
// during IDLE, or beside the answer to another command.
type Change int

const (
	// NewMail is an EXISTS: messages were added (or the count restated).
	NewMail Change = 1 << iota
	// Expunged is an EXPUNGE: a message left the mailbox.
	Expunged
	// FlagsChanged is a FETCH nobody asked for: a message's flags changed.
	FlagsChanged
)

// Changes gathers the Changes a connection heard until they are taken, and
// wakes whoever waits for them. It is safe for concurrent use. With
// OnStatus, it also hands on what the server says unprompted of other
// folders (NOTIFY).
type Changes struct {
	bits     atomic.Int32
	wake     chan struct{}
	onStatus func(FolderStatus)
}

// OnStatus sets f to receive every STATUS response no command asked for:
// with NOTIFY, news of folders that are not selected. Set it before the
// connection is dialled. f runs on the connection's reader goroutine,
// which waits for it: it must not block.
func (c *Changes) OnStatus(f func(FolderStatus)) { c.onStatus = f }

// NewChanges returns an empty Changes.
func NewChanges() *Changes { return &Changes{wake: make(chan struct{}, 1)} }

// Add records ch and wakes the waiter.
func (c *Changes) Add(ch Change) {
	c.bits.Or(int32(ch))
	select {
	case c.wake <- struct{}{}:
	default: // a wake-up is pending already
	}
}

// Wake receives once changes have been added since the last Take.
func (c *Changes) Wake() <-chan struct{} { return c.wake }

// Take returns the changes added so far and forgets them.
func (c *Changes) Take() Change {
	select {
	case <-c.wake:
	default:
	}
	return Change(c.bits.Swap(0))
}

// handler turns go-imap's unilateral data into Changes. go-imap calls it
// on the connection's reader goroutine, which waits for it: it must not
// block.
func (c *Changes) handler() *imapclient.UnilateralDataHandler {
	h := &imapclient.UnilateralDataHandler{
		Expunge: func(uint32) { c.Add(Expunged) },
		Mailbox: func(d *imapclient.UnilateralDataMailbox) {
			if d.NumMessages != nil {
				c.Add(NewMail)
			}
		},
		Fetch: func(msg *imapclient.FetchMessageData) {
			// The message data must be consumed for the reader to go on.
			for msg.Next() != nil {
			}
			c.Add(FlagsChanged)
		},
	}
	if c.onStatus != nil {
		h.Status = func(d *imap.StatusData) { c.onStatus(folderStatus(d)) }
	}
	return h
}

// Features are the extensions a followed mailbox can use.
type Features struct {
	Idle      bool // IDLE (RFC 2177), or IMAP4rev2
	CondStore bool // CONDSTORE (RFC 7162): flag changes since a mod-sequence
	Notify    bool // NOTIFY (RFC 5465): one connection hears of every folder
}

// Features reports which extensions the server offers.
func (c *Conn) Features() Features {
	caps := c.c.Caps()
	return Features{Idle: caps.Has(imap.CapIdle), CondStore: caps.Has(imap.CapCondStore), Notify: caps.Has(imap.CapNotify)}
}

// SelectFollow examines the mailbox as SelectReadOnly does, with CONDSTORE
// turned on when condStore is set, so that Mailbox.HighestModSeq is known
// and flag changes can be asked for by mod-sequence.
func (c *Conn) SelectFollow(ctx context.Context, name string, condStore bool) (Mailbox, error) {
	if !condStore {
		return c.SelectReadOnly(ctx, name)
	}
	stop := c.closeOn(ctx)
	defer stop()
	data, err := c.c.Select(name, &imap.SelectOptions{ReadOnly: true, CondStore: true}).Wait()
	if err != nil {
		return Mailbox{}, fmt.Errorf("select mailbox %q: %w", name, ctxErr(ctx, err))
	}
	return Mailbox{Name: name, UIDValidity: data.UIDValidity, UIDNext: uint32(data.UIDNext),
		Messages: data.NumMessages, HighestModSeq: data.HighestModSeq}, nil
}

// MessageFlags is one message's flags as the server has them.
type MessageFlags struct {
	UID    uint32
	Flags  []string
	ModSeq uint64 // 0 without CONDSTORE
	// GmailLabels are its X-GM-LABELS on a Gmail server, nil elsewhere:
	// Gmail keeps labels there, not in FLAGS (see Fetched).
	GmailLabels []string
}

// FlagsSince returns the flags of every message in the selected mailbox,
// or with changedSince > 0 (CONDSTORE) of those whose flags changed after
// that mod-sequence. It reads flags only: a cheap command even on a large
// mailbox.
func (c *Conn) FlagsSince(ctx context.Context, changedSince uint64, condStore bool) ([]MessageFlags, error) {
	stop := c.closeOn(ctx)
	defer stop()
	all := imap.UIDSet{imap.UIDRange{Start: 1, Stop: 0}} // 1:*
	cmd := c.c.Fetch(all, &imap.FetchOptions{UID: true, Flags: true, ModSeq: condStore, ChangedSince: changedSince,
		GmailLabels: c.gmail})
	var out []MessageFlags
	for {
		msg := cmd.Next()
		if msg == nil {
			break
		}
		buf, err := msg.Collect()
		if err != nil {
			cmd.Close() //nolint:errcheck // err is the one to report
			return nil, fmt.Errorf("fetch flags: %w", ctxErr(ctx, err))
		}
		if buf.UID == 0 {
			continue
		}
		out = append(out, MessageFlags{UID: uint32(buf.UID), Flags: flagStrings(buf.Flags), ModSeq: buf.ModSeq, GmailLabels: buf.GmailLabels})
	}
	if err := cmd.Close(); err != nil {
		return nil, fmt.Errorf("fetch flags: %w", ctxErr(ctx, err))
	}
	return out, nil
}

// Noop asks the server for news (NOOP): a server without IDLE reports new
// mail, expunges and flag changes in its answer, gathered in Config.Changes.
func (c *Conn) Noop(ctx context.Context) error {
	stop := c.closeOn(ctx)
	defer stop()
	if err := c.c.Noop().Wait(); err != nil {
		return fmt.Errorf("noop: %w", ctxErr(ctx, err))
	}
	return nil
}

// ErrIdleEnded means the connection ended while idling.
var ErrIdleEnded = errors.New("the connection ended during IDLE")

// Idle idles (IDLE) until Config.Changes has news, ctx ends or refresh has
// passed, then ends IDLE and waits for the server's answer. Changes the
// server reports meanwhile are gathered in Config.Changes.
// A refresh shorter than the 29 minutes after which servers may drop an
// idle client keeps the connection alive, and the server's answer to DONE
// proves it still is. While idling, the silence watchdog is off: a server
// says nothing for as long as nothing happens.
func (c *Conn) Idle(ctx context.Context, refresh time.Duration) error {
	var wake <-chan struct{} // nil: only the timer or ctx ends it
	if c.cfg.Changes != nil {
		wake = c.cfg.Changes.Wake()
	}
	c.wd.arm(true) // the continuation request is an answer due
	cmd, err := c.c.Idle()
	c.wd.arm(false)
	if err != nil {
		return fmt.Errorf("idle: %w", ctxErr(ctx, err))
	}
	ended := make(chan error, 1)
	go func() { ended <- cmd.Wait() }()
	timer := time.NewTimer(refresh)
	defer timer.Stop()
	select {
	case err := <-ended:
		// The server or the network ended it: the connection is gone, and
		// err is only what ending IDLE on it then met.
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("%w (%v)", ErrIdleEnded, err)
	case <-ctx.Done():
		c.c.Close()
		return ctx.Err()
	case <-wake:
	case <-timer.C:
	}
	stop := c.closeOn(ctx)
	defer stop()
	if err := cmd.Close(); err != nil {
		return fmt.Errorf("end idle: %w", ctxErr(ctx, err))
	}
	if err := <-ended; err != nil {
		return fmt.Errorf("end idle: %w", ctxErr(ctx, err))
	}
	return nil
}
