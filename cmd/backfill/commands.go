package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/google/uuid"
	"github.com/myhibachi/backfill/fleet"
	"github.com/myhibachi/backfill/migrations"
	"github.com/myhibachi/backfill/pgsink"
	"github.com/urfave/cli/v2"
)

func dbFlag() cli.Flag {
	return &cli.StringFlag{Name: "database-url", Usage: "PostgreSQL `URL` (default: $DATABASE_URL)"}
}

// openSink connects to the database named by flags or environment.
func (a *appEnv) openSink(c *cli.Context) (*pgsink.Sink, error) {
	e, err := a.env()
	if err != nil {
		return nil, err
	}
	dbURL, err := a.databaseURL(c, e)
	if err != nil {
		return nil, err
	}
	return pgsink.Open(c.Context, dbURL, 2)
}

// openMigrated connects to the database and checks that migrate has
// made backfill's tables.
func (a *appEnv) openMigrated(c *cli.Context) (*pgsink.Sink, error) {
	sink, err := a.openSink(c)
	if err != nil {
		return nil, err
	}
	if err := sink.CheckSchema(c.Context); err != nil {
		sink.Close()
		return nil, err
	}
	return sink, nil
}

func (a *appEnv) migrateCommand() *cli.Command {
	return &cli.Command{
		Name:  "migrate",
		Usage: "create backfill's tables, or adopt the backend's (safe to run any time, and concurrently)",
		Flags: []cli.Flag{dbFlag(),
			&cli.BoolFlag{Name: "dry-run", Usage: "print what would change, change nothing"}},
		Action: func(c *cli.Context) error {
			sink, err := a.openSink(c)
			if err != nil {
				return err
			}
			defer sink.Close()
			dry := c.Bool("dry-run")
			rep, err := migrations.Migrate(c.Context, sink.Pool(), dry)
			if errors.Is(err, migrations.ErrIncompatible) {
				return &exitError{code: exitFatal, err: err}
			}
			if err != nil {
				return err
			}
			// The job queue's tables, for enqueue and worker: River's own
			// migrations, in the same schema.
			applied, err := fleet.Migrate(c.Context, sink.Pool(), dry)
			if err != nil {
				return err
			}
			printMigration(a.stdout, rep, dry, len(applied) > 0)
			for _, m := range applied {
				fmt.Fprintf(a.stdout, "%s job queue (River) migration %03d_%s\n", pick(dry, "✅ Would apply", "✅ Applied"), m.Version, m.Name)
			}
			return nil
		},
	}
}

// printMigration says what migrate changed (or would change), which tables
// it adopted and how it writes them.
// more says other changes follow, so the schema is not up to date.
func printMigration(w io.Writer, rep *migrations.Report, dry, more bool) {
	if dry {
		fmt.Fprintln(w, "🔍 DRY RUN: nothing is changed")
	}
	for _, name := range rep.Created {
		fmt.Fprintf(w, "%s %s\n", pick(dry, "➕ Would create", "➕ Created"), name)
	}
	for _, ad := range rep.Adopted {
		if ad.New {
			fmt.Fprintf(w, "%s %s (found, not created by backfill; its %d rows are left as they are)\n",
				pick(dry, "🤝 Would adopt", "🤝 Adopted"), ad.Table, ad.Rows)
		} else {
			fmt.Fprintf(w, "🤝 %s is the backend's: written as it is\n", ad.Table)
		}
		for _, n := range ad.Notes {
			fmt.Fprintf(w, "   %s\n", n)
		}
	}
	for _, m := range rep.Applied {
		fmt.Fprintf(w, "%s %03d_%s\n", pick(dry, "✅ Would apply", "✅ Applied"), m.Version, m.Name)
	}
	if len(rep.Statements) == 0 {
		if !more {
			fmt.Fprintln(w, "✅ Schema is up to date")
		}
		return
	}
	if dry {
		fmt.Fprintln(w, "SQL it would run:")
		for _, st := range rep.Statements {
			fmt.Fprintf(w, "%s;\n", st)
		}
	}
}

func pick(cond bool, yes, no string) string {
	if cond {
		return yes
	}
	return no
}

func (a *appEnv) statusCommand() *cli.Command {
	return &cli.Command{
		Name:  "status",
		Usage: "show each inbox's last run and row counts",
		Flags: []cli.Flag{dbFlag(),
			&cli.StringFlag{Name: "inbox", Usage: "only this inbox"},
			&cli.BoolFlag{Name: "json", Usage: "print JSON"}},
		Action: func(c *cli.Context) error {
			e, err := a.env()
			if err != nil {
				return err
			}
			sts, err := query(a, c, func(s *pgsink.Sink) ([]inboxStatus, error) {
				sts, err := s.Statuses(c.Context, c.String("inbox"))
				for i := range sts {
					if err != nil {
						break
					}
					sts[i].Budget, err = statusBudget(c.Context, s, e, sts[i].Inbox)
				}
				if err != nil {
					return nil, err
				}
				jobs, err := fleet.Jobs(c.Context, s.Pool(), c.String("inbox"))
				return withJobs(sts, jobs), err
			})
			if err != nil || c.Bool("json") {
				return err
			}
			if len(sts) == 0 {
				fmt.Fprintln(a.stdout, "No inbox has been synced yet.")
				return nil
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "INBOX\tLAST SYNC\tSTATUS\tTOTAL SYNCED\tMESSAGES\tTHREADS\tERRORS (LAST RUN)\tOPERATION")
			for _, s := range sts {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%d\t%s\n", s.Inbox, fmtTime(s.LastSyncAt), deref(s.LastStatus),
					s.TotalSynced, s.Messages, s.Threads, s.LastRunErrors, deref(s.LastOperationID))
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			plain := make([]pgsink.InboxStatus, len(sts))
			for i, s := range sts {
				plain[i] = s.InboxStatus
			}
			if err := printFolderStatuses(a.stdout, plain); err != nil {
				return err
			}
			if err := printDownloads(a.stdout, plain); err != nil {
				return err
			}
			return printJobs(a.stdout, sts)
		},
	}
}

// inboxStatus is an inbox's line in status: its runs' record and, where
// it has any, its queued jobs.
type inboxStatus struct {
	pgsink.InboxStatus
	Jobs *fleet.InboxJobs `json:"jobs,omitempty"`
}

// withJobs joins the inboxes' statuses with their job counts; an inbox
// with jobs but no run yet gets a line of its own, in name order.
func withJobs(sts []pgsink.InboxStatus, jobs []fleet.InboxJobs) []inboxStatus {
	out := make([]inboxStatus, 0, len(sts))
	byName := map[string]int{}
	for _, s := range sts {
		byName[s.Inbox] = len(out)
		out = append(out, inboxStatus{InboxStatus: s})
	}
	added := false
	for _, j := range jobs {
		i, ok := byName[j.Inbox]
		if !ok {
			i, added = len(out), true
			out = append(out, inboxStatus{InboxStatus: pgsink.InboxStatus{Inbox: j.Inbox}})
		}
		out[i].Jobs = &j
	}
	if added {
		slices.SortStableFunc(out, func(a, b inboxStatus) int { return strings.Compare(a.Inbox, b.Inbox) })
	}
	return out
}

// printJobs shows each inbox's queued, running, done and failed jobs;
// nothing when no job was ever queued.
func printJobs(w io.Writer, sts []inboxStatus) error {
	if !slices.ContainsFunc(sts, func(s inboxStatus) bool { return s.Jobs != nil }) {
		return nil
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "INBOX\tJOBS QUEUED\tRUNNING\tDONE\tFAILED\tCANCELLED\tNEXT RUN\tLAST ERROR")
	for _, s := range sts {
		if j := s.Jobs; j != nil {
			last, next := "-", "-"
			if j.NextRun != nil {
				next = fmtTime(j.NextRun)
			}
			if j.LastError != nil {
				last = oneLine(*j.LastError)
			}
			fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%s\t%s\n", s.Inbox, j.Queued, j.Running, j.Done, j.Failed, j.Cancelled, next, last)
		}
	}
	return tw.Flush()
}

// printDownloads shows what each inbox downloaded in the last 24 hours
// and, where its budget is known, what the budget has left and when a
// full one has room again; nothing when no inbox downloaded or has one.
func printDownloads(w io.Writer, sts []pgsink.InboxStatus) error {
	if !slices.ContainsFunc(sts, func(s pgsink.InboxStatus) bool { return s.Downloaded24h > 0 || s.Budget != nil }) {
		return nil
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "INBOX\tDOWNLOADED (24H)\tBUDGET\tUSED IN WINDOW\tLEFT\tFREES UP")
	for _, s := range sts {
		budget, used, left, frees := "-", "-", "-", "-"
		if b := s.Budget; b != nil {
			budget = fmt.Sprintf("%s/%s (%s)", formatBytes(b.Bytes), b.Period, b.Source)
			used, left = formatBytes(b.Used), formatBytes(b.Left)
			if b.FreesAt != nil {
				frees = fmtTime(b.FreesAt)
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", s.Inbox, formatBytes(s.Downloaded24h), budget, used, left, frees)
	}
	return tw.Flush()
}

// printFolderStatuses lists each inbox's folders as their last runs left
// them; nothing when no run has recorded one.
func printFolderStatuses(w io.Writer, sts []pgsink.InboxStatus) error {
	if !slices.ContainsFunc(sts, func(s pgsink.InboxStatus) bool { return len(s.Folders) > 0 }) {
		return nil
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "INBOX\tFOLDER\tLAST SYNC\tSTATUS\tFOUND\tNEW\tALREADY STORED\tERRORS\tUIDVALIDITY")
	for _, s := range sts {
		for _, f := range s.Folders {
			uv, use := "-", ""
			if f.UIDValidity != nil {
				uv = fmt.Sprint(*f.UIDValidity)
			}
			if f.SpecialUse != nil {
				use = *f.SpecialUse
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%s\n", s.Inbox, folderLabel(f.Folder, use),
				fmtTime(f.LastSyncAt), deref(f.LastStatus), f.Found, f.Stored, f.Skipped, f.Failed, uv)
		}
	}
	return tw.Flush()
}

func (a *appEnv) errorsCommand() *cli.Command {
	return &cli.Command{
		Name:  "errors",
		Usage: "list error_logs entries, newest first",
		Flags: []cli.Flag{dbFlag(),
			&cli.StringFlag{Name: "operation", Usage: "only this operation id"},
			&cli.IntFlag{Name: "limit", Value: 50, Usage: "at most N entries"},
			&cli.BoolFlag{Name: "json", Usage: "print JSON"}},
		Action: func(c *cli.Context) error {
			var opID uuid.UUID
			if s := c.String("operation"); s != "" {
				id, err := uuid.Parse(s)
				if err != nil {
					return usageError("--operation %q is not an operation id (a UUID, as printed by a run)", s)
				}
				opID = id
			}
			if c.Int("limit") < 1 {
				return usageError("--limit must be at least 1")
			}
			rows, err := query(a, c, func(s *pgsink.Sink) ([]pgsink.ErrorRow, error) {
				return s.Errors(c.Context, opID, c.Int("limit"))
			})
			if err != nil || c.Bool("json") {
				return err
			}
			if len(rows) == 0 {
				fmt.Fprintln(a.stdout, "No errors logged.")
				return nil
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "TIME\tSEVERITY\tINBOX\tUID\tTYPE\tATTEMPTS\tMESSAGE")
			for _, r := range rows {
				uid := "-"
				if r.UID != nil {
					uid = fmt.Sprint(*r.UID)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", r.OccurredAt.Local().Format(time.DateTime), r.Severity,
					deref(r.Inbox), uid, r.ErrorType, r.Attempts, oneLine(r.Message))
			}
			return tw.Flush()
		},
	}
}

// query runs a read-only subcommand's query on a migrated database and, with
// --json, prints the rows (an empty list rather than null).
func query[T any](a *appEnv, c *cli.Context, fn func(*pgsink.Sink) ([]T, error)) ([]T, error) {
	sink, err := a.openMigrated(c)
	if err != nil {
		return nil, err
	}
	defer sink.Close()
	rows, err := fn(sink)
	if err != nil {
		return nil, err
	}
	if rows == nil {
		rows = []T{}
	}
	if c.Bool("json") {
		enc := json.NewEncoder(a.stdout)
		enc.SetIndent("", "  ")
		return rows, enc.Encode(rows)
	}
	return rows, nil
}

func deref(s *string) string {
	if s == nil {
		return "-"
	}
	return strings.TrimSpace(*s)
}

func fmtTime(t *time.Time) string {
	if t == nil {
		return "never"
	}
	return t.Local().Format(time.DateTime)
}
