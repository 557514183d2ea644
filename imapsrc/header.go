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
	// Courier serves Maildir files stored with CRLF with lines ending in
	// CR CR LF (issue 14); textproto refuses the stray CR.
	header = bytes.ReplaceAll(header, []byte("\r\r\n"), []byte("\r\n"))
	r := textproto.NewReader(bufio.NewReader(bytes.NewReader(append(header, "\r\n\r\n"...))))
	h, _ := r.ReadMIMEHeader() // partial headers are still useful
	return message.NormalizeMessageID(h.Get("Message-Id"))
}
