// Package message turns one raw RFC 5322 message, as fetched from IMAP, into
// the row stored in email_messages.
package message

import (
	"slices"
	"strings"
	"time"
)

// Message is one email_messages row. Every string in it is valid UTF-8 without
// NUL bytes, so PostgreSQL accepts it as text, and Parse leaves no slice nil,
// so none becomes NULL.
type Message struct {
	MessageID   string       // trimmed, one pair of <> removed; synthetic when the header is missing (see SyntheticIDDomain)
	ThreadID    string       // threading.ID of Subject, From and To
	FromAddress string       // bare local@domain of the first From address, as sent (case kept); "" when there is none
	FromName    string       // display name, RFC 2047 decoded
	To          []string     // bare local@domain addresses, as sent; groups flattened
	Cc          []string     // as To
	Subject     string       // RFC 2047 decoded
	TextBody    string       // text/plain parts in UTF-8; made from HTMLBody when there is none
	HTMLBody    string       // text/html parts in UTF-8
	ReceivedAt  time.Time    // IMAP INTERNALDATE
	SentAt      *time.Time   // Date header; nil when missing or unparseable
	Attachments []Attachment // files and non-text parts, in order; empty, not nil, when none
	InReplyTo   string       // first id of In-Reply-To, without <>
	References  []string     // ids of References in order, without <>
	SizeBytes   int64        // RFC822.SIZE as reported by the server, else the raw length
	UID         uint32
	UIDValidity uint32
	// IsRead, IsStarred and Labels are the server's \Seen, \Flagged and
	// keywords when the message was fetched (see SetFlags); Parse leaves
	// them false, false and nil (stored as empty), the guide's defaults.
	IsRead    bool
	IsStarred bool
	Labels    []string
	// GmailMsgID and GmailThreadID are Gmail's X-GM-MSGID and X-GM-THRID:
	// the message's id in the whole account, whatever its labels, and its
	// conversation's. 0 (stored as NULL) from any other server.
	GmailMsgID, GmailThreadID uint64
	// Folders are the folders the message is in when that is not the one
	// it was read from (Gmail's \All folder: the folders its labels stand
	// for); nil means the folder it was read from.
	Folders []string
	// Warnings are the parser's complaints about a message that was still
	// stored (broken boundaries, bad charsets, ...). They become warning rows
	// in error_logs, never failures.
	Warnings []string
}

// SetFlags takes the message's IMAP flags: \Seen is read, \Flagged is
// starred, and every keyword (a flag not starting with a backslash, such as
// $Label1) is a label, once, sorted: servers list flags in no set order,
// and the same flags should make the same row. Keywords keep the server's
// spelling (they are case-insensitive in IMAP; some servers lowercase
// them). Other system flags (\Answered, \Draft, ...) are not stored.
func (m *Message) SetFlags(flags []string) {
	m.IsRead, m.IsStarred = false, false
	m.Labels = []string{}
	for _, f := range flags {
		switch {
		case strings.EqualFold(f, `\Seen`):
			m.IsRead = true
		case strings.EqualFold(f, `\Flagged`):
			m.IsStarred = true
		case f == "" || strings.HasPrefix(f, `\`) || slices.Contains(m.Labels, f):
		default:
			m.Labels = append(m.Labels, CleanText(f))
		}
	}
	slices.Sort(m.Labels)
}

// AddGmailLabels merges a Gmail server's X-GM-LABELS into the labels
// SetFlags took from the keywords: Gmail keeps labels there, not in FLAGS.
// System labels keep their backslash (\Inbox, \Sent, \Important), so they
// cannot be mistaken for a user's label of the same name; \Starred stars
// the message as \Flagged does.
func (m *Message) AddGmailLabels(labels []string) {
	if m.Labels == nil {
		m.Labels = []string{}
	}
	for _, l := range labels {
		l = CleanText(l)
		if strings.EqualFold(l, `\Starred`) {
			m.IsStarred = true
		}
		if l != "" && !slices.Contains(m.Labels, l) {
			m.Labels = append(m.Labels, l)
		}
	}
	slices.Sort(m.Labels)
}

// Attachment is one element of the attachments jsonb array.
type Attachment struct {
	Filename    string `json:"filename"`
	ContentType string `json:"content_type"`
	Size        int64  `json:"size"` // decoded bytes
}

// Meta is what the IMAP server says about a message besides its bytes.
type Meta struct {
	UID          uint32
	UIDValidity  uint32
	InternalDate time.Time
	Size         int64
}
