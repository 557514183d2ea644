package pipeline

import (
	"context"
	"slices"

	"github.com/myhibachi/backfill/imapsrc"
)

// dryRun says how many of the messages to fetch are new, using only their
// Message-ID headers: no body is downloaded and nothing is written. Messages
// without a Message-ID get a synthetic id from their bytes on a real run, so
// here they count as unknown. With a download budget it also adds up their
// sizes, to say whether the run would fit.
func (r *runner) dryRun(ctx context.Context, conn *imapsrc.Conn, todo []uint32) error {
	if r.sink == nil {
		return nil
	}
	if r.dryRunSeen == nil {
		r.dryRunSeen = map[string]bool{}
	}
	seen := r.dryRunSeen // duplicates within the mailbox, or in other folders, are stored once
	for chunk := range slices.Chunk(todo, max(r.cfg.BatchSize, 500)) {
		ids, err := conn.FetchMessageIDs(ctx, chunk)
		if err != nil {
			return err
		}
		if r.budget != nil {
			// A real run downloads every one of them, duplicates included.
			sizes, err := conn.Sizes(ctx, chunk)
			if err != nil {
				return err
			}
			for _, n := range sizes {
				r.res.DryRunBytes += n
			}
		}
		list := make([]string, 0, len(ids))
		for _, id := range ids {
			list = append(list, id)
		}
		stored, err := r.sink.ExistingMessageIDs(ctx, r.cfg.Inbox, list)
		if err != nil {
			return err
		}
		for _, u := range chunk {
			id, ok := ids[u]
			switch {
			case !ok:
				r.res.DryRunUnknown++
			case stored[id] || seen[id]:
				r.res.DryRunExisting++
			default:
				r.res.DryRunNew++
			}
			if ok {
				seen[id] = true
			}
		}
	}
	return nil
}
