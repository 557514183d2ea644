package message

import (
	"fmt"
	"strings"
)

// Section is one MIME entity of a message fetched part by part, as IMAP
// serves it: BODY[HEADER] for the message itself, BODY[p.MIME] and BODY[p]
// for part p. It lets a message's attachments stay on the server: an elided
// part brings only its header and its decoded size.
type Section struct {
	// MediaType is the server's lowercase type/subtype for the part, from
	// its BODYSTRUCTURE. The part's own header must agree with it.
	MediaType string
	// Header is the entity's header block, blank line included.
	Header []byte
	// Body is the still transfer-encoded content of a leaf that was
	// fetched. It is nil for a multipart and for an elided leaf.
	Body []byte
	// Elided marks a leaf whose content was not fetched; Size is then its
	// decoded size, or negative when it could not be worked out.
	Elided bool
	Size   int64
	Parts  []*Section
}

// ParseSections builds the row of a message fetched as sections; root is the
// message itself, with its parts. It gives the row Parse would give for the
// whole message, or ok false when it cannot promise that and the caller must
// fetch the whole message and Parse it:
//   - the message has no Message-ID (its synthetic id hashes the raw bytes);
//   - a header disagrees with the structure the server reported (a multipart
//     without parts, a part of another type), which happens with broken mail
//     that two parsers read differently;
//   - anything made the parser warn, or an elided size is unknown.
//
// Like Parse, it keeps no reference to the sections after it returns.
func ParseSections(root *Section, meta Meta) (m *Message, ok bool) {
	defer func() {
		if r := recover(); r != nil {
			m, ok = nil, false
		}
	}()
	p := &parser{}
	e, ok := p.sectionEntity(root, "", "text/plain", 0)
	if !ok || len(p.warnings) > 0 {
		return nil, false
	}
	m = p.build(e, meta)
	if m.MessageID == "" || len(p.warnings) > 0 {
		return nil, false
	}
	m.Warnings = p.done()
	return m, true
}

// sectionEntity turns a section into the entity parseEntity would have cut
// out of the raw message.
func (p *parser) sectionEntity(s *Section, id, defaultType string, depth int) (*entity, bool) {
	if depth > maxDepth || p.parts > maxParts {
		return nil, false
	}
	e := &entity{id: id, body: s.Body, elided: s.Elided, size: s.Size}
	head, rest, clean := splitHeader(s.Header, id == "")
	if !clean || len(strings.TrimSpace(string(rest))) > 0 {
		return nil, false
	}
	e.header = p.readHeader(id, head)
	p.setContentType(e, defaultType)
	multipart := strings.HasPrefix(e.mediaType, "multipart/")
	switch {
	case e.mediaType != s.MediaType:
		return nil, false
	case multipart != (len(s.Parts) > 0):
		return nil, false
	case s.Elided && s.Size < 0:
		return nil, false
	case !multipart:
		return e, true
	case e.params["boundary"] == "":
		// Without a boundary, Parse would have sniffed one or kept the
		// body as text; only the whole message can tell.
		return nil, false
	}
	childType := "text/plain"
	if e.mediaType == "multipart/digest" {
		childType = "message/rfc822"
	}
	p.parts += len(s.Parts)
	e.children = make([]*entity, 0, len(s.Parts))
	for i, part := range s.Parts {
		cid := fmt.Sprint(i + 1)
		if id != "" {
			cid = id + "." + cid
		}
		c, ok := p.sectionEntity(part, cid, childType, depth+1)
		if !ok {
			return nil, false
		}
		e.children = append(e.children, c)
	}
	return e, true
}
