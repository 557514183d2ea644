package imap

// NotifyEvent is an event a NOTIFY command asks to hear of (RFC 5465
// section 5).
type NotifyEvent string

const (
	NotifyEventMessageNew     NotifyEvent = "MessageNew"
	NotifyEventMessageExpunge NotifyEvent = "MessageExpunge"
	// NotifyEventFlagChange requires NotifyEventMessageNew and
	// NotifyEventMessageExpunge in the same item (RFC 5465 section 5).
	NotifyEventFlagChange NotifyEvent = "FlagChange"
)

// NotifyOptions contains options for the NOTIFY SET command.
type NotifyOptions struct {
	Items []NotifyItem
}

// NotifyItem is one event group of NOTIFY SET: events in the mailboxes
// named (the "mailboxes" filter). A mailbox that is not selected is
// reported with untagged STATUS responses.
type NotifyItem struct {
	Mailboxes []string
	Events    []NotifyEvent
}
