package imapsrc

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/myhibachi/backfill/errlog"
)

// Folder is a mailbox as LIST shows it.
type Folder struct {
	// Name is as users see it, in UTF-8: go-imap's client encodes and
	// decodes the modified UTF-7 of the wire (RFC 3501 5.1.3).
	Name  string
	Delim rune // the hierarchy separator; 0 for a flat namespace
	// SpecialUse is the folder's RFC 6154 use (\Sent, \Trash, \All, ...),
	// "" when it has none.
	SpecialUse imap.MailboxAttr
	// NoSelect marks a folder that holds only other folders.
	NoSelect bool
}

// specialUses are the RFC 6154 attributes (and RFC 8457's \Important).
var specialUses = []imap.MailboxAttr{imap.MailboxAttrAll, imap.MailboxAttrArchive, imap.MailboxAttrDrafts,
	imap.MailboxAttrFlagged, imap.MailboxAttrJunk, imap.MailboxAttrSent, imap.MailboxAttrTrash, imap.MailboxAttrImportant}

// ListFolders lists every folder of the account with its special use.
// Servers that announce SPECIAL-USE and extended LIST are asked for the
// uses (LIST "" "*" RETURN (SPECIAL-USE)); others are read from the
// attributes of a plain LIST, where many servers put them anyway.
func (c *Conn) ListFolders(ctx context.Context) ([]Folder, error) {
	stop := c.closeOn(ctx)
	defer stop()
	var opts *imap.ListOptions
	if caps := c.c.Caps(); caps.Has(imap.CapSpecialUse) && caps.Has(imap.CapListExtended) {
		opts = &imap.ListOptions{ReturnSpecialUse: true}
	}
	list, err := c.c.List("", "*", opts).Collect()
	if err != nil {
		return nil, fmt.Errorf("list folders: %w", ctxErr(ctx, err))
	}
	out := make([]Folder, 0, len(list))
	for _, l := range list {
		f := Folder{Name: l.Mailbox, Delim: l.Delim}
		for _, a := range l.Attrs {
			switch {
			case slices.ContainsFunc(specialUses, func(u imap.MailboxAttr) bool { return strings.EqualFold(string(a), string(u)) }):
				if f.SpecialUse == "" {
					f.SpecialUse = canonicalAttr(a)
				}
			case strings.EqualFold(string(a), string(imap.MailboxAttrNoSelect)),
				strings.EqualFold(string(a), string(imap.MailboxAttrNonExistent)):
				f.NoSelect = true
			}
		}
		out = append(out, f)
	}
	return out, nil
}

func canonicalAttr(a imap.MailboxAttr) imap.MailboxAttr {
	for _, u := range specialUses {
		if strings.EqualFold(string(a), string(u)) {
			return u
		}
	}
	return a
}

// Gmail reports whether the server is Gmail's: it announces X-GM-EXT-1.
func (c *Conn) Gmail() bool {
	return c.c.Caps().Has("X-GM-EXT-1")
}

// SentKeyword, in a folder list, names the folder with the \Sent special
// use, whatever the server calls it.
const SentKeyword = "sent"

// Selection is the folders a run reads, in order.
type Selection struct {
	Folders []Folder
	// Note says what the selection left out and why (Gmail's labels),
	// for the output; "" when nothing needs saying.
	Note string
}

// SelectFolders resolves the folders a user named (named: names as users
// see them, or SentKeyword) and, with all, every selectable folder but
// \Junk and \Trash ones (unless named) against the server's list. INBOX
// comes first, then named folders in the order given, then the others in
// the server's order. On Gmail (gmail), all means the \All folder alone:
// every label is a view on it, so reading the labels would download each
// message once per label. A name the server does not have, or sent on a
// server without a \Sent folder, is a critical error that lists the
// server's folders.
func SelectFolders(list []Folder, named []string, all, gmail bool) (Selection, error) {
	var sel Selection
	add := func(f Folder) {
		if !slices.ContainsFunc(sel.Folders, func(g Folder) bool { return g.Name == f.Name }) {
			sel.Folders = append(sel.Folders, f)
		}
	}
	var picked []Folder
	for _, name := range named {
		f, err := findFolder(list, name)
		if err != nil {
			return Selection{}, err
		}
		picked = append(picked, f)
	}
	if all {
		if i := slices.IndexFunc(list, func(f Folder) bool { return f.SpecialUse == imap.MailboxAttrAll && !f.NoSelect }); gmail && i >= 0 {
			add(list[i])
			// Spam and Trash are the only places outside All Mail.
			for _, f := range picked {
				if f.SpecialUse == imap.MailboxAttrJunk || f.SpecialUse == imap.MailboxAttrTrash {
					add(f)
				}
			}
			sel.Note = fmt.Sprintf("Gmail: --all-folders reads %s once: every label is a view on it, so no message is downloaded twice "+
				"(Spam and Trash only when named in --folders)", list[i].Name)
			return sel, nil
		}
	}
	if all || slices.ContainsFunc(picked, isInbox) {
		if i := slices.IndexFunc(list, isInbox); i >= 0 {
			add(list[i])
		}
	}
	for _, f := range picked {
		add(f)
	}
	if all {
		for _, f := range list {
			if !f.NoSelect && f.SpecialUse != imap.MailboxAttrJunk && f.SpecialUse != imap.MailboxAttrTrash {
				add(f)
			}
		}
	}
	return sel, nil
}

func isInbox(f Folder) bool { return strings.EqualFold(f.Name, "INBOX") }

// findFolder finds the folder a user named: by its name (INBOX in any
// case, as IMAP has it), or by the name written with / where the server
// separates levels with another character, or sent as the \Sent folder.
func findFolder(list []Folder, name string) (Folder, error) {
	match := func(f Folder) bool {
		if strings.EqualFold(name, "INBOX") {
			return isInbox(f)
		}
		return f.Name == name || f.Delim != 0 && f.Delim != '/' && f.Name == strings.ReplaceAll(name, "/", string(f.Delim))
	}
	if strings.EqualFold(name, SentKeyword) {
		if i := slices.IndexFunc(list, func(f Folder) bool { return f.SpecialUse == imap.MailboxAttrSent && !f.NoSelect }); i >= 0 {
			return list[i], nil
		}
		// A server without special uses: the folder named Sent, in any case.
		if i := slices.IndexFunc(list, func(f Folder) bool { return strings.EqualFold(f.Name, name) }); i >= 0 && !list[i].NoSelect {
			return list[i], nil
		}
		return Folder{}, &errlog.CriticalError{Type: "folder_unknown", Err: fmt.Errorf(
			"--folders %s: the server marks no folder as \\Sent (RFC 6154 special use); name the sent folder as the server spells it; the server's folders: %s",
			name, describeFolders(list))}
	}
	i := slices.IndexFunc(list, match)
	if i < 0 {
		return Folder{}, &errlog.CriticalError{Type: "folder_unknown", Err: fmt.Errorf(
			"--folders: the server has no folder %q; the server's folders: %s (sent means the \\Sent one)", name, describeFolders(list))}
	}
	if list[i].NoSelect {
		return Folder{}, &errlog.CriticalError{Type: "folder_unknown", Err: fmt.Errorf(
			"--folders: %q only holds other folders (\\Noselect) and has no mail of its own; the server's folders: %s", name, describeFolders(list))}
	}
	return list[i], nil
}

// describeFolders lists folders for an error message: each name quoted,
// with its special use.
func describeFolders(list []Folder) string {
	if len(list) == 0 {
		return "(none)"
	}
	parts := make([]string, 0, len(list))
	for _, f := range list {
		s := fmt.Sprintf("%q", f.Name)
		if f.SpecialUse != "" {
			s += " " + string(f.SpecialUse)
		}
		if f.NoSelect {
			s += " (no mail of its own)"
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, ", ")
}

// gmailSystemLabels are the folders Gmail shows its system labels as, by
// the special use that marks them ("" for \Inbox: INBOX).
var gmailSystemLabels = map[string]imap.MailboxAttr{
	`\inbox`: "", `\sent`: imap.MailboxAttrSent, `\starred`: imap.MailboxAttrFlagged,
	`\important`: imap.MailboxAttrImportant, `\draft`: imap.MailboxAttrDrafts,
	`\spam`: imap.MailboxAttrJunk, `\trash`: imap.MailboxAttrTrash,
}

// GmailFolders are the folders Gmail shows a message in, given its
// X-GM-LABELS and the account's folders (list): a message read from the
// \All folder is in every folder its labels stand for, and recording the
// \All folder instead would tell a user nothing. \Inbox is INBOX, a
// system label the folder with its special use (\Sent, \Starred as
// \Flagged, \Important, \Draft as \Drafts), a user label the folder of
// its name; a label the account lists no folder for is left out. A
// message with no such label (archived) is in the \All folder alone. INBOX
// comes first, then the others in the order of list.
func GmailFolders(list []Folder, labels []string) []string {
	in := func(f Folder) bool {
		if f.NoSelect {
			return false
		}
		for _, l := range labels {
			if use, system := gmailSystemLabels[strings.ToLower(l)]; system {
				if use == "" && isInbox(f) || use != "" && f.SpecialUse == use {
					return true
				}
			} else if l == f.Name && !isInbox(f) {
				return true
			}
		}
		return false
	}
	var out []string
	if i := slices.IndexFunc(list, isInbox); i >= 0 && in(list[i]) {
		out = append(out, "INBOX") // as rows name it, whatever the case LIST used
	}
	for _, f := range list {
		if !isInbox(f) && in(f) {
			out = append(out, f.Name)
		}
	}
	if len(out) == 0 {
		if i := slices.IndexFunc(list, func(f Folder) bool { return f.SpecialUse == imap.MailboxAttrAll }); i >= 0 {
			out = append(out, list[i].Name)
		}
	}
	return out
}
