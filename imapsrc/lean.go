package imapsrc

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/myhibachi/backfill/message"
)

// Lean fetching leaves attachment content on the server. Attachments are
// most of a mailbox's bytes but only their name, type and size are stored,
// so a message with large attachments is fetched as sections: its header,
// every part's MIME header, its text parts whole, and for each large
// attachment only the last few hundred bytes, from which its decoded size
// follows (message.Base64Size). Which parts exist and how large they are
// comes from BODYSTRUCTURE, asked for the whole batch first.
//
// Anything that does not fit this picture is fetched whole, as in full
// mode: a message without large attachments, a tail that does not prove a
// size, a structure go-imap cannot parse (it drops the connection; see
// StructureError), sections the server refuses, headers that disagree with
// the structure (message.ParseSections).

const (
	// elideMin is the smallest part left on the server: below it, fetching
	// the part costs less than asking about it.
	elideMin = 4 << 10
	// leanMin is the least a message must save to be fetched as sections:
	// each costs a command of its own.
	leanMin = 16 << 10
	// tailLen is how much of an elided base64 part is fetched: enough for
	// three lines of up to 76 digits and the last one, with room to spare.
	tailLen = 512
)

// FetchOptions says how FetchBatch fetches.
type FetchOptions struct {
	// MaxSize is the largest message fetched; larger ones are reported
	// Oversized without their content. 0 means no limit.
	MaxSize int64
	// Lean leaves large attachments on the server (see above).
	Lean bool
	// Whole lists UIDs to fetch whole even when Lean.
	Whole map[uint32]bool
	// Outlines, when Lean, were asked for ahead with StartOutlines.
	Outlines *Outlines
}

// StructureError is returned when the BODYSTRUCTURE fetch of a batch broke
// off. go-imap drops the connection on a structure it cannot parse, and
// servers answer in UID order, so the first UID whose structure did not
// arrive may be the cause: callers should fetch Suspect whole from then on.
type StructureError struct {
	Suspect uint32 // 0 when every structure arrived
	Err     error
}

func (e *StructureError) Error() string {
	return fmt.Sprintf("fetch body structures (UID %d fetched whole from now on): %v", e.Suspect, e.Err)
}

func (e *StructureError) Unwrap() error { return e.Err }

// outline is what the first, cheap fetch of a lean batch says about a message.
type outline struct {
	uid          uint32
	internalDate time.Time
	size         int64
	structure    imap.BodyStructure
}

// Outlines are the structures of a batch asked for ahead of time, so that
// over a slow link the next batch's BODYSTRUCTURE round trip overlaps this
// batch's download (see StartOutlines).
type Outlines struct {
	done chan struct{}
	m    map[uint32]outline
	err  error
}

// StartOutlines sends the structure fetch for uids and returns at once; the
// answer is collected in the background. Pass the result to FetchBatch in
// FetchOptions.Outlines. A failed or abandoned one costs nothing but the
// round trip FetchBatch then makes itself.
func (c *Conn) StartOutlines(uids []uint32) *Outlines {
	o := &Outlines{done: make(chan struct{})}
	cmd := c.outlineCommand(uids)
	go func() {
		defer close(o.done)
		o.m, o.err = collectOutlines(cmd, uids)
	}()
	return o
}

// get waits for the outlines; nil when they failed.
func (o *Outlines) get() map[uint32]outline {
	if o == nil {
		return nil
	}
	<-o.done
	if o.err != nil {
		return nil
	}
	return o.m
}

func (c *Conn) outlineCommand(uids []uint32) *imapclient.FetchCommand {
	return c.c.Fetch(uidSet(uids), &imap.FetchOptions{
		UID:           true,
		InternalDate:  true,
		RFC822Size:    true,
		BodyStructure: &imap.FetchItemBodyStructure{},
	})
}

// fetchOutlines asks for the size, date and structure of every UID.
func (c *Conn) fetchOutlines(uids []uint32) (map[uint32]outline, error) {
	if len(uids) == 0 {
		return nil, nil
	}
	return collectOutlines(c.outlineCommand(uids), uids)
}

// collectOutlines reads a structure fetch's answer. A structure carries no
// literal handed to us, so go-imap's Collect is safe here.
func collectOutlines(cmd *imapclient.FetchCommand, uids []uint32) (map[uint32]outline, error) {
	msgs, err := cmd.Collect()
	out := make(map[uint32]outline, len(msgs))
	for _, m := range msgs {
		if m.UID == 0 {
			continue
		}
		out[uint32(m.UID)] = outline{uid: uint32(m.UID), internalDate: m.InternalDate, size: m.RFC822Size, structure: m.BodyStructure}
	}
	if err != nil {
		se := &StructureError{Err: err}
		for _, u := range uids {
			if _, ok := out[u]; !ok {
				se.Suspect = u
				break
			}
		}
		return out, se
	}
	return out, nil
}

// leanPart is one entity of a message to be fetched as sections.
type leanPart struct {
	path      []int
	mediaType string
	octets    int64
	encoding  string // lowercase Content-Transfer-Encoding
	elided    bool
	parts     []*leanPart
}

// planLean returns the message's parts when fetching it as sections saves
// enough, nil when it should be fetched whole.
func planLean(bs imap.BodyStructure) *leanPart {
	mp, ok := bs.(*imap.BodyStructureMultiPart)
	if !ok {
		// A message that is one attachment: rare, and its header
		// section would be the message header; keep it simple.
		return nil
	}
	var saved int64
	root := planPart(mp, nil, &saved)
	if saved < leanMin {
		return nil
	}
	return root
}

func planPart(bs imap.BodyStructure, path []int, saved *int64) *leanPart {
	p := &leanPart{path: path, mediaType: bs.MediaType()}
	switch bs := bs.(type) {
	case *imap.BodyStructureMultiPart:
		for i, child := range bs.Children {
			p.parts = append(p.parts, planPart(child, append(path[:len(path):len(path)], i+1), saved))
		}
	case *imap.BodyStructureSinglePart:
		p.octets = int64(bs.Size)
		p.encoding = strings.ToLower(strings.TrimSpace(bs.Encoding))
		if elidable(p) {
			p.elided = true
			*saved += p.octets - tailLen
		}
	}
	return p
}

// elidable reports whether a leaf's content can stay on the server: not
// message text, large, and in an encoding whose decoded size the tail or
// the size itself tells. A forwarded message (message/rfc822) is fetched:
// Dovecot counts its size differently from Parse when it ends in a
// multipart's epilogue.
func elidable(p *leanPart) bool {
	if p.mediaType == "text/plain" || p.mediaType == "text/html" || p.octets < elideMin ||
		strings.HasPrefix(p.mediaType, "message/") {
		return false
	}
	switch p.encoding {
	case "base64", "7bit", "8bit", "binary":
		return true
	}
	return false
}

// sections lists the FETCH items for the message planned by root.
func (root *leanPart) sections() []*imap.FetchItemBodySection {
	items := []*imap.FetchItemBodySection{{Specifier: imap.PartSpecifierHeader, Peek: true}}
	var walk func(p *leanPart)
	walk = func(p *leanPart) {
		for _, c := range p.parts {
			items = append(items, &imap.FetchItemBodySection{Specifier: imap.PartSpecifierMIME, Part: c.path, Peek: true})
			switch {
			case len(c.parts) > 0:
				walk(c)
			case !c.elided:
				items = append(items, &imap.FetchItemBodySection{Part: c.path, Peek: true})
			case c.encoding == "base64":
				n := min(c.octets, tailLen)
				items = append(items, &imap.FetchItemBodySection{Part: c.path, Peek: true, Partial: &imap.SectionPartial{Offset: c.octets - n, Size: n}})
			}
		}
	}
	walk(root)
	return items
}

// readSections reads the one message a section fetch returns; nil when the
// server returned none. It reads every literal itself rather than with
// go-imap's Collect, which drains a literal that failed mid-read while the
// client's reader goroutine already reads on: a data race on the socket.
// Instead, the connection is closed, as fetchWhole does.
func (c *Conn) readSections(cmd *imapclient.FetchCommand) (*imapclient.FetchMessageBuffer, error) {
	buf := &imapclient.FetchMessageBuffer{}
	for msg := cmd.Next(); msg != nil; msg = cmd.Next() {
		for item := msg.Next(); item != nil; item = msg.Next() {
			body, ok := item.(imapclient.FetchItemDataBodySection)
			if !ok {
				continue
			}
			b := []byte{} // found, even when NIL: build tells found from missing by nil
			if body.Literal != nil {
				b = make([]byte, body.Literal.Size())
				if _, err := io.ReadFull(body.Literal, b); err != nil {
					c.c.Close()
					return nil, fmt.Errorf("read section: %w", err)
				}
			}
			buf.BodySection = append(buf.BodySection, imapclient.FetchBodySectionBuffer{Section: body.Section, Bytes: b})
		}
	}
	if err := cmd.Close(); err != nil {
		return nil, err
	}
	if len(buf.BodySection) == 0 {
		return nil, nil
	}
	return buf, nil
}

// build assembles the fetched sections into the message's tree. It returns
// nil when a section the plan asked for is missing.
func (root *leanPart) build(buf *imapclient.FetchMessageBuffer) *message.Section {
	find := func(s *imap.FetchItemBodySection) ([]byte, bool) {
		b := buf.FindBodySection(s)
		return b, b != nil
	}
	header, ok := find(&imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader})
	if !ok {
		return nil
	}
	var walk func(p *leanPart, header []byte) *message.Section
	walk = func(p *leanPart, header []byte) *message.Section {
		s := &message.Section{MediaType: p.mediaType, Header: header}
		for _, c := range p.parts {
			h, ok := find(&imap.FetchItemBodySection{Specifier: imap.PartSpecifierMIME, Part: c.path})
			if !ok {
				return nil
			}
			cs := walk(c, h)
			if cs == nil {
				return nil
			}
			s.Parts = append(s.Parts, cs)
		}
		switch {
		case len(p.parts) > 0:
		case !p.elided:
			if s.Body, ok = find(&imap.FetchItemBodySection{Part: p.path}); !ok {
				return nil
			}
		case p.encoding == "base64":
			n := min(p.octets, tailLen)
			tail, ok := find(&imap.FetchItemBodySection{Part: p.path, Partial: &imap.SectionPartial{Offset: p.octets - n}})
			if !ok {
				return nil
			}
			s.Elided = true
			if s.Size, ok = message.Base64Size(p.octets, tail); !ok {
				s.Size = -1
			}
		default:
			s.Elided, s.Size = true, p.octets
		}
		return s
	}
	return walk(root, header)
}

// leanResult is one message fetched as sections, or why it was not.
type leanResult struct {
	f   Fetched
	err error
}

// fetchLean sends one UID FETCH per planned message, without waiting for
// answers, and collects each answer in a goroutine of its own: go-imap hands
// a response to the command it belongs to and blocks until that command's
// reader takes it, so readers must not wait for each other.
func (c *Conn) fetchLean(plans []*leanPart, outlines []outline) <-chan leanResult {
	out := make(chan leanResult, len(plans))
	var wg sync.WaitGroup
	for i, plan := range plans {
		o := outlines[i]
		cmd := c.c.Fetch(uidSet([]uint32{o.uid}), &imap.FetchOptions{UID: true, BodySection: plan.sections()})
		wg.Add(1)
		go func() {
			defer wg.Done()
			f := Fetched{UID: o.uid, InternalDate: o.internalDate, Size: o.size}
			got, err := c.readSections(cmd)
			switch {
			case err != nil:
				var imapErr *imap.Error
				if errors.As(err, &imapErr) {
					// The server refused a section but the connection is
					// fine: fetch this one whole.
					f.NeedWhole = true
					out <- leanResult{f: f}
					return
				}
				out <- leanResult{f: f, err: fmt.Errorf("fetch sections of UID %d: %w", o.uid, err)}
				return
			case got == nil:
				return // not returned: reported missing
			}
			for _, s := range got.BodySection {
				f.Transferred += int64(len(s.Bytes))
			}
			if f.Sections = plan.build(got); f.Sections == nil {
				f.NeedWhole = true
			}
			out <- leanResult{f: f}
		}()
	}
	go func() {
		wg.Wait()
		close(out)
	}()
	return out
}

func uidSet(uids []uint32) imap.UIDSet {
	var set imap.UIDSet
	for _, u := range uids {
		set.AddNum(imap.UID(u))
	}
	return set
}
