package imapsrc

import (
	"bufio"
	"bytes"
	"net/textproto"
	"strings"
)

// headerMessageID extracts and normalises Message-ID from a header block the
// same way message.Parse does: trimmed, one pair of <> removed.
func headerMessageID(header []byte) string {
	r := textproto.NewReader(bufio.NewReader(bytes.NewReader(append(header, "\r\n\r\n"...))))
	h, _ := r.ReadMIMEHeader() // partial headers are still useful
	return NormalizeMessageID(h.Get("Message-Id"))
}

// NormalizeMessageID trims white space and removes one pair of angle
// brackets, as DESIGN.md pins it.
func NormalizeMessageID(id string) string {
	id = strings.TrimSpace(id)
	if strings.HasPrefix(id, "<") && strings.HasSuffix(id, ">") && len(id) >= 2 {
		id = strings.TrimSpace(id[1 : len(id)-1])
	}
	return id
}
