package imapsrc

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/myhibachi/backfill/message"
)

// Fetched is one message as the server sent it: either whole (Body) or, in
// lean mode, already turned into its row from sections that were checked to
// stand for the whole message (Message).
type Fetched struct {
	UID          uint32
	InternalDate time.Time
	Size         int64 // RFC822.SIZE, or the literal's size
	// Body is the whole message; nil when Oversized or when Message is
	// set. It is only valid during the callback that receives it: the
	// connection reuses its memory for the next one.
	Body []byte
	// Message is the row of a message fetched as sections, its large
	// attachments left on the server. It is set only when every section
	// asked for arrived, every elided part was proved to end where the
	// server's structure says, and message.ParseSections vouched for the
	// result; any other message is fetched again whole instead.
	Message   *message.Message
	Oversized bool // larger than the cap; its content was not kept
	// Flags are the message's IMAP flags as the fetch found them. Bodies
	// are fetched with BODY.PEEK, so fetching never sets \Seen.
	Flags []string
	// GmailMsgID, GmailThreadID and GmailLabels are what a Gmail server
	// (X-GM-EXT-1) says of the message: X-GM-MSGID, X-GM-THRID and
	// X-GM-LABELS (UTF-8, system labels such as \Inbox with their
	// backslash). Zero and nil from any other server.
	GmailMsgID, GmailThreadID uint64
	GmailLabels               []string
	// Transferred counts the content bytes the server sent for it,
	// sections that could not be used included.
	Transferred int64
}

// Fetcher fetches one set of messages, over as many calls (and so
// connections) as it takes. Between calls it remembers what the next
// attempt must know: the structures already received, and the messages to
// fetch whole because their sections failed or their structure broke a
// connection. The caller only hands it a connection and the UIDs still
// wanted.
type Fetcher struct {
	// MaxSize is the largest message fetched; larger ones are reported
	// Oversized without their content. 0 means no limit.
	MaxSize int64
	// UIDValidity is stamped on the rows built from sections.
	UIDValidity uint32
	// Lean leaves large attachments on the server (see lean.go); it may be
	// turned off between calls.
	Lean bool
	// Outlines, when Lean, are the structures asked for ahead with
	// StartOutlines.
	Outlines *Outlines

	outlines map[uint32]outline // structures received so far
	whole    map[uint32]bool    // fetch these whole from now on
	spent    map[uint32]int64   // bytes of sections that were not used
	// dropAt is the first UID whose structure had not arrived when the
	// connection last failed during a structure fetch (see askOutlines).
	dropAt uint32
}

// StructureError is returned when the structure of a message could not be
// read: go-imap drops the connection on a BODYSTRUCTURE it cannot parse,
// and some servers (go-imap's own among them) drop it on a structure they
// cannot produce. Servers answer in UID order, so the first UID whose
// structure did not arrive is taken for the cause and fetched whole from
// then on. A network failure during a structure fetch is an ordinary
// error, not a StructureError, unless it happens twice at the same message.
type StructureError struct {
	Suspect uint32
	Err     error
}

func (e *StructureError) Error() string {
	return fmt.Sprintf("read body structures (UID %d fetched whole from now on): %v", e.Suspect, e.Err)
}

func (e *StructureError) Unwrap() error { return e.Err }

// Fetch fetches the given UIDs on c and calls fn for each message as it
// arrives. It returns the UIDs the server did not send: go-imap silently
// drops a response whose UID follows its literal, and a message may be
// expunged meanwhile, so callers must not assume all arrived. On an error,
// the messages that arrived before it have been handed to fn; the
// connection is then unusable.
func (f *Fetcher) Fetch(ctx context.Context, c *Conn, uids []uint32, fn func(Fetched) error) (missing []uint32, err error) {
	stop := c.closeOn(ctx)
	defer stop()
	got := make(map[uint32]bool, len(uids))
	deliver := func(m Fetched) error {
		got[m.UID] = true
		m.Transferred += f.spent[m.UID]
		return fn(m)
	}
	if f.Lean {
		err = f.fetchLean(c, uids, deliver)
	} else {
		err = c.fetchWhole(uids, f.MaxSize, deliver)
	}
	if err != nil {
		return nil, ctxErr(ctx, err)
	}
	for _, u := range uids {
		if !got[u] {
			missing = append(missing, u)
		}
	}
	return missing, nil
}

// fetchLean fetches the messages with large attachments as sections and
// the others whole, both at once on the connection; then, on the same
// connection, whole again every message whose sections could not stand for
// it.
func (f *Fetcher) fetchLean(c *Conn, uids []uint32, fn func(Fetched) error) error {
	if f.outlines == nil {
		f.outlines = map[uint32]outline{}
		f.whole = map[uint32]bool{}
		f.spent = map[uint32]int64{}
		maps.Copy(f.outlines, f.Outlines.get())
	}
	var whole, ask []uint32
	for _, u := range uids {
		if _, ok := f.outlines[u]; !ok && !f.whole[u] {
			ask = append(ask, u)
		}
	}
	if err := f.askOutlines(c, ask); err != nil {
		return err
	}
	var plans []*leanPart
	var lean []outline
	for _, u := range uids {
		o, ok := f.outlines[u]
		switch {
		case f.whole[u]:
			whole = append(whole, u)
		case !ok:
			// Not returned: reported missing.
		case f.MaxSize > 0 && o.size > f.MaxSize:
			big := o.fetched()
			big.Oversized = true
			if err := fn(big); err != nil {
				return err
			}
		default:
			if plan := planLean(o.structure); plan != nil {
				plans = append(plans, plan)
				lean = append(lean, o)
			} else {
				whole = append(whole, u)
			}
		}
	}
	results := c.fetchSections(plans, lean, f.UIDValidity)
	firstErr := c.fetchWhole(whole, f.MaxSize, fn)
	if firstErr != nil {
		c.c.Close() // ends the section fetches still waiting
	}
	// Every message that arrived is delivered, even after a failure: it is
	// progress the caller's resume need not repeat.
	var again []uint32
	for r := range results {
		switch {
		case r.err != nil:
			if firstErr == nil {
				c.c.Close()
				firstErr = r.err
			}
		case r.f.Message == nil:
			f.whole[r.f.UID] = true
			f.spent[r.f.UID] += r.f.Transferred
			again = append(again, r.f.UID)
		default:
			if err := fn(r.f); err != nil && firstErr == nil {
				firstErr = err
			}
		}
	}
	if firstErr != nil {
		return firstErr
	}
	slices.Sort(again)
	return c.fetchWhole(again, f.MaxSize, fn)
}

// askOutlines fetches the structures of uids. A server that refuses them
// leaves those messages to be fetched whole. A structure go-imap cannot
// parse drops the connection: that is a StructureError, told apart from a
// network failure by the socket, which did not fail. When the socket
// failed, it is a network failure the first time; failing again where the
// last attempt did, it is the structure of that message (the server cannot
// produce it), since a network fails at random places.
func (f *Fetcher) askOutlines(c *Conn, uids []uint32) error {
	if len(uids) == 0 {
		return nil
	}
	asked, err := collectOutlines(c.outlineCommand(uids))
	maps.Copy(f.outlines, asked)
	if err == nil {
		return nil
	}
	if c.refusedOnly(err) {
		for _, u := range uids {
			if _, ok := f.outlines[u]; !ok {
				f.whole[u] = true
			}
		}
		return nil
	}
	c.c.Close()
	var suspect uint32
	for _, u := range uids {
		if _, ok := f.outlines[u]; !ok {
			suspect = u
			break
		}
	}
	if suspect != 0 && (!c.wd.failed() || suspect == f.dropAt) {
		f.whole[suspect] = true
		f.dropAt = 0
		return &StructureError{Suspect: suspect, Err: err}
	}
	f.dropAt = suspect
	return fmt.Errorf("fetch body structures: %w", err)
}

// refusedOnly reports a command the server answered with NO or BAD on a
// connection that is still usable: those messages are fetched whole
// rather than the connection dropped.
func (c *Conn) refusedOnly(err error) bool {
	var imapErr *imap.Error
	return errors.As(err, &imapErr) && c.c.State() != imap.ConnStateLogout
}
