package imapsrc

import (
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
// comes from BODYSTRUCTURE, asked for the whole batch first. The server's
// sizes are not taken on trust: each tail is asked for with one byte more
// than the part should have left, and the part must end exactly where the
// structure says.
//
// Anything that does not fit this picture is fetched whole, as in full
// mode, by Fetcher itself: a message without large attachments, a part
// that does not end where its structure says, a tail that does not prove a
// size, a structure go-imap cannot parse (it drops the connection; see
// StructureError), sections the server refuses, leaves out or sends as NIL,
// headers that disagree with the structure (message.ParseSections).

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

// outline is what the first, cheap fetch of a lean batch says about a message.
type outline struct {
	uid          uint32
	internalDate time.Time
	size         int64
	structure    imap.BodyStructure
	flags        []string
	gmail        gmailItems
}

// fetched is what the outline already says of its message.
func (o outline) fetched() Fetched {
	return Fetched{UID: o.uid, InternalDate: o.internalDate, Size: o.size, Flags: o.flags,
		GmailMsgID: o.gmail.msgID, GmailThreadID: o.gmail.threadID, GmailLabels: o.gmail.labels}
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
// answer is collected in the background. Pass the result in
// Fetcher.Outlines. The structures a failed one did not bring cost nothing
// but the round trip Fetcher then makes itself, on its own connection.
func (c *Conn) StartOutlines(uids []uint32) *Outlines {
	o := &Outlines{done: make(chan struct{})}
	cmd := c.outlineCommand(uids)
	go func() {
		defer close(o.done)
		o.m, o.err = collectOutlines(cmd)
	}()
	return o
}

// get waits for the outlines and returns those that arrived, all of them
// unless the fetch failed.
func (o *Outlines) get() map[uint32]outline {
	if o == nil {
		return nil
	}
	<-o.done
	return o.m
}

func (c *Conn) outlineCommand(uids []uint32) *imapclient.FetchCommand {
	return c.c.Fetch(uidSet(uids), &imap.FetchOptions{
		UID:           true,
		InternalDate:  true,
		RFC822Size:    true,
		Flags:         true,
		BodyStructure: &imap.FetchItemBodyStructure{},
		GmailMsgID:    c.gmail,
		GmailThreadID: c.gmail,
		GmailLabels:   c.gmail,
	})
}

// collectOutlines reads a structure fetch's answer: what arrived, even
// when the fetch then failed. A structure carries no literal handed to us,
// so go-imap's Collect is safe here.
func collectOutlines(cmd *imapclient.FetchCommand) (map[uint32]outline, error) {
	msgs, err := cmd.Collect()
	out := make(map[uint32]outline, len(msgs))
	for _, m := range msgs {
		if m.UID == 0 || m.BodyStructure == nil {
			continue
		}
		out[uint32(m.UID)] = outline{uid: uint32(m.UID), internalDate: m.InternalDate, size: m.RFC822Size, structure: m.BodyStructure, flags: flagStrings(m.Flags),
			gmail: gmailItems{msgID: m.GmailMsgID, threadID: m.GmailThreadID, labels: m.GmailLabels}}
	}
	return out, err
}

// leanPart is one entity of a message to be fetched as sections. Its two
// items are both what is asked for and what finds the answer, so request
// and look-up cannot drift apart.
type leanPart struct {
	path      []int
	mediaType string
	octets    int64  // the size the server's structure reports
	encoding  string // lowercase Content-Transfer-Encoding
	elided    bool
	parts     []*leanPart
	// header asks for the entity's header: HEADER for the message, MIME
	// for a part.
	header *imap.FetchItemBodySection
	// body asks for a leaf's content: all of it, or for an elided part its
	// last tail bytes and one more, which must not come: a section that
	// does not end exactly where the structure says gets its size from
	// nowhere, and the message is fetched whole.
	body *imap.FetchItemBodySection
	tail int64
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
	if len(path) == 0 {
		p.header = &imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader, Peek: true}
	} else {
		p.header = &imap.FetchItemBodySection{Specifier: imap.PartSpecifierMIME, Part: path, Peek: true}
	}
	switch bs := bs.(type) {
	case *imap.BodyStructureMultiPart:
		for i, child := range bs.Children {
			p.parts = append(p.parts, planPart(child, append(path[:len(path):len(path)], i+1), saved))
		}
	case *imap.BodyStructureSinglePart:
		p.octets = int64(bs.Size)
		p.encoding = strings.ToLower(strings.TrimSpace(bs.Encoding))
		p.body = &imap.FetchItemBodySection{Part: path, Peek: true}
		if elidable(p) {
			p.elided = true
			// A base64 part's size follows from its last lines; any other
			// part's is its length, of which the last byte is proof.
			p.tail = 1
			if p.encoding == "base64" {
				p.tail = min(p.octets, tailLen)
			}
			p.body.Partial = &imap.SectionPartial{Offset: p.octets - p.tail, Size: p.tail + 1}
			*saved += p.octets - p.tail
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
	var items []*imap.FetchItemBodySection
	var walk func(p *leanPart)
	walk = func(p *leanPart) {
		items = append(items, p.header)
		for _, c := range p.parts {
			walk(c)
		}
		if p.body != nil {
			items = append(items, p.body)
		}
	}
	walk(root)
	return items
}

// build assembles the fetched sections into the message's tree. ok is false
// when a section the plan asked for is missing or NIL, or an elided part
// does not end where the structure says or its size cannot be proved.
func (root *leanPart) build(buf *imapclient.FetchMessageBuffer) (tree *message.Section, ok bool) {
	var walk func(p *leanPart) *message.Section
	walk = func(p *leanPart) *message.Section {
		// FindBodySection answers nil both for a section that did not
		// come and for one the server sent as NIL: neither is an
		// empty section.
		s := &message.Section{MediaType: p.mediaType, Header: buf.FindBodySection(p.header)}
		if s.Header == nil {
			return nil
		}
		for _, c := range p.parts {
			cs := walk(c)
			if cs == nil {
				return nil
			}
			s.Parts = append(s.Parts, cs)
		}
		if p.body == nil {
			return s
		}
		b := buf.FindBodySection(p.body)
		switch {
		case b == nil:
			return nil
		case !p.elided:
			s.Body = b
		case int64(len(b)) != p.tail:
			return nil // the part is longer or shorter than the structure says
		case p.encoding == "base64":
			size, ok := message.Base64Size(p.octets, b)
			if !ok {
				return nil
			}
			s.Elided, s.Size = true, size
		default:
			s.Elided, s.Size = true, p.octets
		}
		return s
	}
	tree = walk(root)
	return tree, tree != nil
}

// readSections reads the one message a section fetch returns; nil when the
// server returned none. It reads every literal itself rather than with
// go-imap's Collect, which drains a literal that failed mid-read while the
// client's reader goroutine already reads on: a data race on the socket.
// Instead, the connection is closed, as fetchWhole does. A section sent as
// NIL is kept nil, so that build tells it from an empty one.
func (c *Conn) readSections(cmd *imapclient.FetchCommand) (*imapclient.FetchMessageBuffer, error) {
	buf := &imapclient.FetchMessageBuffer{}
	for msg := cmd.Next(); msg != nil; msg = cmd.Next() {
		for item := msg.Next(); item != nil; item = msg.Next() {
			body, ok := item.(imapclient.FetchItemDataBodySection)
			if !ok {
				continue
			}
			var b []byte
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
	return buf, nil
}

// sectionResult is one message fetched as sections: its row in f.Message,
// or none when it must be fetched whole; err when the connection failed.
type sectionResult struct {
	f   Fetched
	err error
}

// fetchSections sends one UID FETCH per planned message, without waiting
// for answers, and collects each answer in a goroutine of its own: go-imap
// hands a response to the command it belongs to and blocks until that
// command's reader takes it, so readers must not wait for each other.
func (c *Conn) fetchSections(plans []*leanPart, outlines []outline, uidValidity uint32) <-chan sectionResult {
	out := make(chan sectionResult, len(plans))
	var wg sync.WaitGroup
	for i, plan := range plans {
		o := outlines[i]
		cmd := c.c.Fetch(uidSet([]uint32{o.uid}), &imap.FetchOptions{UID: true, BodySection: plan.sections()})
		wg.Add(1)
		go func() {
			defer wg.Done()
			f := o.fetched()
			got, err := c.readSections(cmd)
			switch {
			case c.refusedOnly(err):
				// The server refused a section but the connection is
				// fine: the message is fetched whole.
				out <- sectionResult{f: f}
				return
			case err != nil:
				out <- sectionResult{f: f, err: fmt.Errorf("fetch sections of UID %d: %w", o.uid, err)}
				return
			}
			for _, s := range got.BodySection {
				f.Transferred += int64(len(s.Bytes))
			}
			if tree, ok := plan.build(got); ok {
				meta := message.Meta{UID: o.uid, UIDValidity: uidValidity, InternalDate: o.internalDate, Size: o.size}
				if m, ok := message.ParseSections(tree, meta); ok {
					f.Message = m
				}
			}
			out <- sectionResult{f: f}
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

func flagStrings(flags []imap.Flag) []string {
	out := make([]string, len(flags))
	for i, f := range flags {
		out[i] = string(f)
	}
	return out
}

// gmailItems are a Gmail server's X-GM-MSGID, X-GM-THRID and X-GM-LABELS.
type gmailItems struct {
	msgID, threadID uint64
	labels          []string
}
