package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/myhibachi/backfill/errlog"
	"github.com/myhibachi/backfill/imapsrc"
	"github.com/myhibachi/backfill/pipeline"
	"github.com/schollz/progressbar/v3"
)

// reporter prints a run's progress in the seed's format, or as JSON lines.
// It implements pipeline.Observer; the pipeline serialises its calls.
type reporter struct {
	w       io.Writer
	json    bool
	verbose bool
	tty     bool
	bar     *progressbar.ProgressBar
	version buildVersion // which build ran, in the start event and the closing block
	// folders is set for a run given --folders, --all-folders or an
	// inbox's folder list: it says per folder what it found and stored.
	folders bool
}

func newReporter(w io.Writer, format string, verbose, tty bool) *reporter {
	return &reporter{w: w, json: format == "json", verbose: verbose, tty: tty}
}

func (r *reporter) event(name string, fields map[string]any) {
	fields["event"] = name
	fields["time"] = time.Now().UTC().Format(time.RFC3339Nano)
	b, _ := json.Marshal(fields)
	fmt.Fprintf(r.w, "%s\n", b)
}

func (r *reporter) start(inbox string, opID uuid.UUID, dryRun bool) {
	if r.json {
		r.event("start", map[string]any{"inbox": inbox, "operation_id": opID, "dry_run": dryRun, "version": r.version})
		return
	}
	fmt.Fprintf(r.w, "🚀 Starting email backfill for inbox: %s\n", inbox)
	fmt.Fprintf(r.w, "🆔 Operation ID: %s\n", opID)
}

func (r *reporter) note(msg string) {
	if r.json {
		r.event("note", map[string]any{"message": msg})
		return
	}
	fmt.Fprintf(r.w, "⚠️  %s\n", msg)
}

// fatal reports an error that stops the run before it starts.
func (r *reporter) fatal(err error) error {
	if r.json {
		r.event("fatal", map[string]any{"error": err.Error()})
	} else {
		fmt.Fprintf(r.w, "❌ %v\n", err)
	}
	return &shownError{&exitError{code: exitFatal, err: err}}
}

func (r *reporter) Connecting(cfg imapsrc.Config) {
	if r.json {
		r.event("connecting", map[string]any{"server": cfg.Addr(), "user": cfg.Username, "mailbox": cfg.Mailbox, "security": cfg.Security.String()})
		return
	}
	fmt.Fprintf(r.w, "📡 Connecting to IMAP server... (%s)\n", cfg)
}

func (r *reporter) Listed(l pipeline.Listing) {
	if r.json {
		r.event("listed", map[string]any{"mailbox": l.Mailbox, "uidvalidity": l.UIDValidity, "total": l.Total,
			"selected": l.Selected, "already_synced": l.AlreadySynced, "to_fetch": l.ToFetch, "batches": l.Batches,
			"previous_uidvalidity": l.PreviousUIDValidity})
		return
	}
	if r.folders {
		fmt.Fprintf(r.w, "📁 Folder %s\n", l.Mailbox)
	}
	fmt.Fprintf(r.w, "📬 Found %d total emails in IMAP\n", l.Total)
	if l.PreviousUIDValidity != 0 {
		fmt.Fprintf(r.w, "   ⚠️  UIDVALIDITY changed since the last run (%d → %d): the server renumbered the mailbox, "+
			"so every message is downloaded again and matched on Message-ID (no duplicates); "+
			"if this shows on every run, the server hands out a new UIDVALIDITY per session\n",
			l.PreviousUIDValidity, l.UIDValidity)
	}
	if l.Selected != l.Total {
		fmt.Fprintf(r.w, "   Limited to the %d most recent\n", l.Selected)
	}
	if l.AlreadySynced > 0 {
		fmt.Fprintf(r.w, "   ⏭️  %d already synced by earlier runs (UIDVALIDITY %d): not downloaded again\n", l.AlreadySynced, l.UIDValidity)
	}
	if r.tty && !r.verbose && l.ToFetch > 0 {
		r.bar = progressbar.NewOptions(l.ToFetch, progressbar.OptionSetWriter(r.w),
			progressbar.OptionSetDescription("📦 Syncing"), progressbar.OptionShowCount(),
			progressbar.OptionShowIts(), progressbar.OptionSetItsString("msg"),
			progressbar.OptionThrottle(100*time.Millisecond), progressbar.OptionClearOnFinish())
	}
}

// FoldersSelected says which folders the run reads, and why it leaves
// some out.
func (r *reporter) FoldersSelected(sel imapsrc.Selection) {
	if r.json {
		var list []map[string]any
		for _, f := range sel.Folders {
			list = append(list, map[string]any{"folder": f.Name, "special_use": string(f.SpecialUse)})
		}
		r.event("folders", map[string]any{"folders": list, "note": sel.Note})
		return
	}
	names := make([]string, len(sel.Folders))
	for i, f := range sel.Folders {
		names[i] = folderLabel(f.Name, string(f.SpecialUse))
	}
	fmt.Fprintf(r.w, "📁 Folders: %s\n", strings.Join(names, ", "))
	if sel.Note != "" {
		fmt.Fprintf(r.w, "   %s\n", sel.Note)
	}
}

// FolderDone says what the run found and stored in one folder.
func (r *reporter) FolderDone(f pipeline.FolderResult) {
	if !r.folders {
		return
	}
	if r.json {
		fields := folderFields(f)
		r.event("folder", fields)
		return
	}
	if r.bar != nil {
		_ = r.bar.Finish()
		r.bar = nil
	}
	fmt.Fprintf(r.w, "%s\n", folderLine(f))
}

// folderLine is a folder's line: "📁 Folder Sent: 120 emails, 118 new".
func folderLine(f pipeline.FolderResult) string {
	var b strings.Builder
	fmt.Fprintf(&b, "📁 Folder %s: %d emails", folderLabel(f.Name, f.SpecialUse), f.Listing.Total)
	if f.Status == "dry_run" {
		fmt.Fprintf(&b, ", would process %d", f.Listing.ToFetch)
		if f.DryRunNew+f.DryRunExisting+f.DryRunUnknown > 0 || f.Listing.AlreadySynced > 0 {
			fmt.Fprintf(&b, " (new %d, already stored or duplicates %d", f.DryRunNew, f.DryRunExisting+f.Listing.AlreadySynced)
			if f.DryRunUnknown > 0 {
				fmt.Fprintf(&b, ", without Message-ID %d", f.DryRunUnknown)
			}
			b.WriteString(")")
		}
	} else {
		fmt.Fprintf(&b, ", %d new", f.Created)
		if f.Skipped > 0 {
			fmt.Fprintf(&b, ", %d already stored", f.Skipped)
		}
		if f.Failed > 0 {
			fmt.Fprintf(&b, ", %d errors", f.Failed)
		}
	}
	if f.Err != nil {
		fmt.Fprintf(&b, " (stopped: %v)", f.Err)
	}
	return b.String()
}

// folderLabel is a folder's name with its special use: Gesendet (\Sent).
func folderLabel(name, use string) string {
	if use == "" {
		return name
	}
	return name + " (" + use + ")"
}

func folderFields(f pipeline.FolderResult) map[string]any {
	fields := map[string]any{"folder": f.Name, "special_use": f.SpecialUse, "uidvalidity": f.Listing.UIDValidity,
		"total": f.Listing.Total, "selected": f.Listing.Selected, "already_synced": f.Listing.AlreadySynced,
		"to_fetch": f.Listing.ToFetch, "synced": f.Created, "skipped": f.Skipped, "errors": f.Failed, "status": f.Status}
	if f.Status == "dry_run" {
		fields["new"], fields["already_stored"], fields["unknown"] = f.DryRunNew, f.DryRunExisting+f.Listing.AlreadySynced, f.DryRunUnknown
	}
	if f.Err != nil {
		fields["error"] = f.Err.Error()
	}
	return fields
}

func (r *reporter) BatchDone(b pipeline.BatchReport) {
	if r.json {
		r.event("batch", map[string]any{"batch": b.Number, "of": b.Of, "size": len(b.Messages),
			"created": b.Created, "skipped": b.Skipped, "failed": b.Failed})
		if r.verbose {
			for _, m := range b.Messages {
				r.event("message", map[string]any{"uid": m.UID, "message_id": m.MessageID, "subject": m.Subject,
					"outcome": m.Outcome, "reason": m.Reason})
			}
		}
		return
	}
	if r.bar != nil {
		_ = r.bar.Add(len(b.Messages))
		return
	}
	fmt.Fprintf(r.w, "📦 Processing batch %d/%d (%d emails): %d synced, %d skipped, %d errors\n",
		b.Number, b.Of, len(b.Messages), b.Created, b.Skipped, b.Failed)
	if !r.verbose {
		return
	}
	for i, m := range b.Messages {
		n := fmt.Sprintf("[%d/%d]", i+1, len(b.Messages))
		switch m.Outcome {
		case pipeline.Created:
			fmt.Fprintf(r.w, "   ✅ %s Synced (created): %s\n", n, oneLine(m.Subject))
		case pipeline.Skipped:
			fmt.Fprintf(r.w, "   ⏭️  %s Skipped (%s): %s\n", n, m.Reason, oneLine(m.Subject))
		default:
			fmt.Fprintf(r.w, "   ❌ %s Failed (UID %d): %s\n", n, m.UID, oneLine(m.Reason))
		}
	}
}

func (r *reporter) Retrying(what string, err error, attempt int, wait time.Duration) {
	if r.json {
		r.event("retry", map[string]any{"operation": what, "error": err.Error(), "attempt": attempt, "wait_seconds": wait.Seconds()})
		return
	}
	fmt.Fprintf(r.w, "🔁 %s failed (attempt %d): %v; retrying in %.1fs\n", what, attempt, err, wait.Seconds())
}

func (r *reporter) finish(res pipeline.Result, sum errlog.Summary, opID uuid.UUID, workers int, runErr error, interrupted bool) {
	if r.bar != nil {
		_ = r.bar.Finish()
	}
	rate := successRate(res)
	if r.json {
		fields := map[string]any{"status": res.Status, "total": res.Selected, "fetched": res.Fetched,
			"fetched_whole": res.Fetched - res.FetchedLean, "fetched_lean": res.FetchedLean,
			"oversized": res.Oversized, "oversized_bytes": res.OversizedBytes,
			"synced": res.Created, "skipped": res.Skipped, "errors": res.Failed, "warnings": res.Warnings,
			"elapsed_seconds": res.Elapsed.Seconds(), "success_rate": rate, "operation_id": opID,
			"error_summary": sum.Groups, "connections": res.Connections,
			"transferred_bytes": res.Transferred, "message_bytes": res.MessageBytes, "version": r.version}
		if res.FetchMode != "" && res.ToFetch > 0 {
			fields["fetch_mode"], fields["fetch_reason"] = res.FetchMode, res.FetchReason
		}
		if runErr != nil {
			fields["error"] = runErr.Error()
		}
		if sum.FallbackFile != "" {
			fields["error_log_file"] = sum.FallbackFile
		}
		if res.Budget != nil {
			fields["budget"] = budgetFields(res)
		}
		if r.folders {
			folders := []map[string]any{}
			for _, f := range res.Folders {
				folders = append(folders, folderFields(f))
			}
			fields["folders"] = folders
		}
		if res.Status == "dry_run" {
			fields["would_process"] = res.ToFetch
			fields["new"], fields["already_stored"], fields["unknown"] = res.DryRunNew, res.DryRunExisting+res.AlreadySynced, res.DryRunUnknown
		}
		r.event("summary", fields)
		return
	}
	if res.Status == "dry_run" {
		fmt.Fprintf(r.w, "🔍 DRY RUN MODE - No emails will be synced\n")
		if runErr == nil || res.ToFetch > 0 {
			// A run that failed before it listed the mailbox counted nothing.
			fmt.Fprintf(r.w, "   Would process: %d emails\n", res.ToFetch)
		}
		if res.DryRunNew+res.DryRunExisting+res.DryRunUnknown > 0 || res.AlreadySynced > 0 {
			fmt.Fprintf(r.w, "   New: %d, already stored or duplicates: %d", res.DryRunNew, res.DryRunExisting+res.AlreadySynced)
			if res.DryRunUnknown > 0 {
				fmt.Fprintf(r.w, ", without Message-ID (checked by content on a real run): %d", res.DryRunUnknown)
			}
			fmt.Fprintln(r.w)
		}
		if b := res.Budget; b != nil && (runErr == nil || res.ToFetch > 0) {
			fmt.Fprintf(r.w, "   Download budget: %s of %s per %s left; the %d emails to fetch weigh %s",
				formatBytes(max(b.Bytes-b.Used, 0)), formatBytes(b.Bytes), formatPeriod(b.Period), res.ToFetch, formatBytes(res.DryRunBytes))
			if res.DryRunBytes <= b.Bytes-b.Used {
				fmt.Fprintf(r.w, ": the run fits\n")
			} else {
				fmt.Fprintf(r.w, ": the run would stop when it is used up (exit 75) and a later run continue\n")
			}
		}
		if runErr != nil {
			fmt.Fprintf(r.w, "❌ %v\n", runErr)
		}
		return
	}
	fmt.Fprintln(r.w)
	switch {
	case interrupted:
		fmt.Fprintf(r.w, "⏹️  BACKFILL INTERRUPTED (committed batches are kept; re-run to finish)\n")
	case runErr != nil:
		fmt.Fprintf(r.w, "🛑 BACKFILL ABORTED: %v\n", runErr)
	case res.Status == "budget_exhausted":
		fmt.Fprintf(r.w, "⏸️  DOWNLOAD BUDGET USED UP (committed batches are kept; run again later to continue)\n")
	default:
		fmt.Fprintf(r.w, "📊 BACKFILL COMPLETE\n")
	}
	fmt.Fprintf(r.w, "   Total fetched: %d\n", res.Selected)
	fmt.Fprintf(r.w, "   Total synced:  %d ✅\n", res.Created)
	fmt.Fprintf(r.w, "   Total skipped: %d ⏭️\n", res.Skipped)
	fmt.Fprintf(r.w, "   Total errors:  %d ❌\n", res.Failed)
	if res.Oversized > 0 {
		fmt.Fprintf(r.w, "   Oversized:     %d over --max-message-size, not stored (among the errors)", res.Oversized)
		if res.OversizedBytes > 0 {
			fmt.Fprintf(r.w, "; %.1f MB of them read and discarded", float64(res.OversizedBytes)/1e6)
		}
		fmt.Fprintln(r.w)
	}
	fmt.Fprintf(r.w, "   Elapsed time:  %.1fs\n", res.Elapsed.Seconds())
	if res.Selected > 0 {
		fmt.Fprintf(r.w, "   Success rate:  %.1f%%\n", rate)
	}
	fmt.Fprintf(r.w, "   Downloaded:    %d message bodies", res.Fetched)
	if res.Elapsed > 0 && res.Fetched > 0 {
		fmt.Fprintf(r.w, " (%.0f emails/s)", float64(res.Fetched)/res.Elapsed.Seconds())
	}
	if res.Fetched > 0 {
		fmt.Fprintf(r.w, ": %d whole, %d lean", res.Fetched-res.FetchedLean, res.FetchedLean)
	}
	fmt.Fprintln(r.w)
	if res.MessageBytes > 0 {
		fmt.Fprintf(r.w, "   Transferred:   %.1f MB of %.1f MB", float64(res.Transferred)/1e6, float64(res.MessageBytes)/1e6)
		if res.Transferred < res.MessageBytes*9/10 {
			fmt.Fprint(r.w, " (large attachments stay on the server; their names, types and sizes are stored)")
		}
		fmt.Fprintln(r.w)
	}
	if res.FetchMode != "" && res.ToFetch > 0 {
		fmt.Fprintf(r.w, "   Fetch mode:    %s (%s)\n", res.FetchMode, res.FetchReason)
	}
	if b := res.Budget; b != nil {
		fmt.Fprintf(r.w, "   Budget:        %s of %s per %s downloaded in the window (this run %s)\n",
			formatBytes(b.Used), formatBytes(b.Bytes), formatPeriod(b.Period), formatBytes(res.Transferred+res.OversizedBytes))
		if res.Left > 0 {
			fmt.Fprintf(r.w, "   Left for later: %d emails; the budget frees up enough to continue at %s (in %s): run backfill again then\n",
				res.Left, b.FreesAt.UTC().Format("2006-01-02 15:04:05 MST"), formatWait(time.Until(b.FreesAt)))
		}
	}
	fmt.Fprintf(r.w, "   Operation ID:  %s\n", opID)
	fmt.Fprintf(r.w, "   Version:       backfill %s\n", r.version)
	if res.Connections > 0 && res.Connections < workers {
		fmt.Fprintf(r.w, "   ⚠️  The server refused %d of %d connections; the run used %d (lower --workers to match).\n",
			workers-res.Connections, workers, res.Connections)
	}
	if len(sum.Groups) > 0 {
		fmt.Fprintf(r.w, "\n⚠️  Error Summary:\n")
		for _, g := range sum.Groups {
			fmt.Fprintf(r.w, "   %s (%s): %d", g.Type, g.Severity, g.Count)
			if len(g.ExampleUIDs) > 0 {
				fmt.Fprintf(r.w, ", e.g. UIDs %s", joinUIDs(g.ExampleUIDs))
			}
			fmt.Fprintf(r.w, "\n      %s\n", oneLine(g.Example))
		}
		fmt.Fprintf(r.w, "   Details: backfill errors --operation %s\n", opID)
	}
	if sum.FallbackFile != "" {
		fmt.Fprintf(r.w, "   ⚠️  error_logs could not be written; entries saved to %s\n", sum.FallbackFile)
	}
}

// successRate is the share of selected messages that ended stored or
// already present, so a clean re-run reads 100%, not 0%, and an aborted run
// shows how far it got.
func successRate(res pipeline.Result) float64 {
	if res.Selected == 0 {
		return 100
	}
	return 100 * float64(res.Created+res.Skipped) / float64(res.Selected)
}

func joinUIDs(uids []uint32) string {
	s := make([]string, len(uids))
	for i, u := range uids {
		s[i] = fmt.Sprint(u)
	}
	return strings.Join(s, ", ")
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len([]rune(s)) > 100 {
		s = string([]rune(s)[:99]) + "…"
	}
	if s == "" {
		return "(no subject)"
	}
	return s
}

// budgetFields is the download budget in the JSON summary.
func budgetFields(res pipeline.Result) map[string]any {
	b := res.Budget
	f := map[string]any{"limit_bytes": b.Bytes, "period_seconds": b.Period.Seconds(), "used_bytes": b.Used,
		"left_messages": res.Left}
	if !b.FreesAt.IsZero() {
		f["frees_at"] = b.FreesAt.UTC().Format(time.RFC3339)
	}
	if res.Status == "dry_run" {
		f["to_fetch_bytes"] = res.DryRunBytes
	}
	return f
}
