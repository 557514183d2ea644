package imapsrc

import (
	"bufio"
	"bytes"
	"net/textproto"

	"github.com/myhibachi/backfill/message"
)

// headerMessageID extracts and normalises Message-ID from a header block the
// same way message.Parse does: trimmed, one pair of <> removed.
func headerMessageID(header []byte) string {
	r := textproto.NewReader(bufio.NewReader(bytes.NewReader(append(header, "\r\n\r\n"...))))
	h, _ := r.ReadMIMEHeader() // partial headers are still useful
	return message.NormalizeMessageID(h.Get("Message-Id"))
}
