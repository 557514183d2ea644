package imapsrc

import (
	"context"
	"fmt"

	"github.com/emersion/go-imap/v2"
)

// Sizes returns the RFC822.SIZE of each UID, what a whole fetch of it
// downloads, without downloading anything: a download budget decides with
// it how many messages the next fetch may take. UIDs the server does not
// answer for (expunged meanwhile) are absent.
func (c *Conn) Sizes(ctx context.Context, uids []uint32) (map[uint32]int64, error) {
	stop := c.closeOn(ctx)
	defer stop()
	msgs, err := c.c.Fetch(uidSet(uids), &imap.FetchOptions{UID: true, RFC822Size: true}).Collect()
	if err != nil {
		return nil, fmt.Errorf("fetch message sizes: %w", ctxErr(ctx, err))
	}
	sizes := make(map[uint32]int64, len(msgs))
	for _, m := range msgs {
		if m.UID != 0 {
			sizes[uint32(m.UID)] = m.RFC822Size
		}
	}
	return sizes, nil
}
