package pipeline

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/myhibachi/backfill/errlog"
	"github.com/myhibachi/backfill/imapsrc"
	"github.com/myhibachi/backfill/pgsink"
)

// eachFolder runs read for each of the run's folders in turn, each with
// its own connections, listing, UIDVALIDITY and settled UIDs, and records
// what it did there. A folder that went missing or renumbered its
// messages during the run stops that folder only: the others are read,
// and the run ends with its error. Any other error stops the run.
func (r *runner) eachFolder(ctx context.Context, read func(context.Context) error) error {
	folders, labelFolders, err := r.selectFolders(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for i, f := range folders {
		if ctx.Err() != nil {
			break
		}
		if cfg := r.conns.config(); i > 0 || cfg.Mailbox != f.Name {
			r.conns.closeSpares()
			cfg.Mailbox = f.Name // and Security as the first connection settled it
			r.cfg.IMAP = cfg
			r.conns = r.newConns(cfg)
		}
		r.listing, r.lastUID = Listing{}, 0
		r.labelFolders = nil
		if f.SpecialUse == imap.MailboxAttrAll {
			r.labelFolders = labelFolders
		}
		r.mu.Lock()
		before := r.res
		r.mu.Unlock()
		err := read(ctx)
		fr := r.folderDone(ctx, f, before, err)
		r.recordFolder(ctx, fr)
		if err == nil {
			continue
		}
		if len(folders) == 1 || interrupted(ctx) || !folderOnly(err) {
			return errors.Join(append(errs, err)...)
		}
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// folderOnly reports an error that concerns one folder alone.
func folderOnly(err error) bool {
	var ce *errlog.CriticalError
	return errors.As(err, &ce) && (ce.Type == "mailbox_missing" || ce.Type == "uidvalidity_changed")
}

// selectFolders lists the account's folders and picks the run's, when it
// was given Config.Folders or Config.AllFolders; otherwise the run reads
// IMAP.Mailbox, as it did before folders existed, without listing. On
// Gmail it also returns the account's folders, to tell which ones a
// message read from the \All folder is in (labelFolders; nil elsewhere).
func (r *runner) selectFolders(ctx context.Context) (folders, labelFolders []imapsrc.Folder, err error) {
	if len(r.cfg.Folders) == 0 && !r.cfg.AllFolders {
		return []imapsrc.Folder{{Name: r.cfg.IMAP.Mailbox}}, nil, nil
	}
	var list []imapsrc.Folder
	var gmail bool
	err = r.retryOp(ctx, "IMAP connection", min(r.cfg.RetryFor, firstConnectFor), func(*attempts) error {
		conn, err := r.conns.dial(ctx)
		if err != nil {
			return err
		}
		defer conn.Close()
		list, err = conn.ListFolders(ctx)
		gmail = err == nil && conn.Gmail()
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	r.announce(r.conns.config())
	sel, err := imapsrc.SelectFolders(list, r.cfg.Folders, r.cfg.AllFolders, gmail)
	if err != nil {
		return nil, nil, err
	}
	r.mu.Lock()
	r.res.FolderNote = sel.Note
	r.mu.Unlock()
	r.obs.FoldersSelected(sel)
	r.listed = true
	if gmail {
		labelFolders = list
	}
	return sel.Folders, labelFolders, nil
}

// listForLabels lists a Gmail account's folders on conn, for a run that
// did not (it reads the mailbox its URL names): when that is the \All
// folder, its messages are stored in the folders their labels stand for,
// as with --all-folders.
func (r *runner) listForLabels(ctx context.Context, conn *imapsrc.Conn, mailbox string) error {
	list, err := conn.ListFolders(ctx)
	if err != nil {
		return err
	}
	r.listed = true
	if slices.ContainsFunc(list, func(f imapsrc.Folder) bool { return f.Name == mailbox && f.SpecialUse == imap.MailboxAttrAll }) {
		r.labelFolders = list
	}
	return nil
}

// announce tells the observer, once, how the run connects.
func (r *runner) announce(cfg imapsrc.Config) {
	if r.announced {
		return
	}
	r.announced = true
	r.obs.Connecting(cfg)
}

// folderDone works out what the run did in folder f: the results so far
// less those before it began. It tells the observer.
func (r *runner) folderDone(ctx context.Context, f imapsrc.Folder, before Result, err error) FolderResult {
	r.mu.Lock()
	after := r.res
	r.mu.Unlock()
	fr := FolderResult{Name: f.Name, SpecialUse: string(f.SpecialUse), Listing: r.listing, Err: err,
		Created: after.Created - before.Created, Skipped: after.Skipped - before.Skipped, Failed: after.Failed - before.Failed,
		DryRunNew: after.DryRunNew - before.DryRunNew, DryRunExisting: after.DryRunExisting - before.DryRunExisting,
		DryRunUnknown: after.DryRunUnknown - before.DryRunUnknown}
	if fr.Listing.Mailbox == "" {
		fr.Listing.Mailbox = f.Name // never listed
	}
	switch {
	case err != nil && interrupted(ctx):
		fr.Status = "interrupted"
	case err != nil:
		fr.Status = "aborted"
	case r.cfg.DryRun:
		fr.Status = "dry_run"
	case fr.Failed > 0:
		fr.Status = "completed_with_errors"
	default:
		fr.Status = "completed"
	}
	r.mu.Lock()
	r.res.Folders = append(r.res.Folders, fr)
	r.mu.Unlock()
	r.obs.FolderDone(fr)
	return fr
}

// recordFolder writes a folder's result to email_sync_folders, even when
// the run was interrupted, as the run's own result is. It tries once: the
// run's own result is what must be recorded, and a database that is gone
// is retried there.
func (r *runner) recordFolder(ctx context.Context, fr FolderResult) {
	if r.sink == nil || r.cfg.DryRun {
		return
	}
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	err := r.sink.FinishFolder(fctx, pgsink.FolderResult{
		Inbox: r.cfg.Inbox, Folder: fr.Name, SpecialUse: fr.SpecialUse, OperationID: r.cfg.OperationID,
		UIDValidity: fr.Listing.UIDValidity, LastUID: r.lastUID, Found: fr.Listing.Total,
		Stored: fr.Created, Skipped: fr.Skipped, Failed: fr.Failed, Status: fr.Status,
	})
	if err != nil {
		r.log.Add(errlog.Entry{Severity: errlog.SeverityWarning, Category: errlog.Transient, ErrorType: "folder_status_unwritten",
			Message: err.Error(), Context: map[string]any{"folder": fr.Name}})
	}
}
