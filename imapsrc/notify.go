package imapsrc

import (
	"context"
	"fmt"

	"github.com/emersion/go-imap/v2"
)

// FolderStatus is what a STATUS response says of a folder. A NOTIFY
// notification carries only the items that changed: the others are nil
// or zero.
type FolderStatus struct {
	Folder        string
	Messages      *uint32
	UIDNext       uint32
	UIDValidity   uint32
	HighestModSeq uint64
	// Unseen is reported by some servers (Dovecot) when flags changed.
	Unseen *uint32
}

func folderStatus(d *imap.StatusData) FolderStatus {
	return FolderStatus{Folder: d.Mailbox, Messages: d.NumMessages, UIDNext: uint32(d.UIDNext),
		UIDValidity: d.UIDValidity, HighestModSeq: d.HighestModSeq, Unseen: d.NumUnseen}
}

// Status asks for a folder's message count, next UID and UIDVALIDITY, and
// with condStore its highest mod-sequence (which also turns CONDSTORE on
// for the connection, so that NOTIFY's notifications carry it).
func (c *Conn) Status(ctx context.Context, folder string, condStore bool) (FolderStatus, error) {
	stop := c.closeOn(ctx)
	defer stop()
	data, err := c.c.Status(folder, &imap.StatusOptions{NumMessages: true, UIDNext: true, UIDValidity: true,
		HighestModSeq: condStore}).Wait()
	if err != nil {
		return FolderStatus{}, fmt.Errorf("status %q: %w", folder, ctxErr(ctx, err))
	}
	return folderStatus(data), nil
}

// Notify asks the server (NOTIFY SET, RFC 5465) to report new mail,
// expunges and flag changes in folders, none of which may be selected:
// it reports them as STATUS responses, handed to Changes.OnStatus, while
// the connection idles (Idle).
func (c *Conn) Notify(ctx context.Context, folders []string) error {
	stop := c.closeOn(ctx)
	defer stop()
	err := c.c.Notify(&imap.NotifyOptions{Items: []imap.NotifyItem{{
		Mailboxes: folders,
		// FlagChange needs the other two (RFC 5465 section 5).
		Events: []imap.NotifyEvent{imap.NotifyEventMessageNew, imap.NotifyEventMessageExpunge, imap.NotifyEventFlagChange},
	}}}).Wait()
	if err != nil {
		return fmt.Errorf("notify: %w", ctxErr(ctx, err))
	}
	return nil
}
