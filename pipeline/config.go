// Package pipeline wires the stages of a backfill run: UID lister, fetch and
// parse workers, dedup filter and COPY inserters, under one errgroup.
package pipeline

import (
	"time"

	"github.com/google/uuid"
	"github.com/myhibachi/backfill/imapsrc"
)

// Config is one run's settings, validated by the caller.
type Config struct {
	Inbox       string
	IMAP        imapsrc.Config
	OperationID uuid.UUID
	Limit       int // 0: all messages; otherwise the Limit highest UIDs
	BatchSize   int
	Workers     int // IMAP connections
	Inserters   int // concurrent database writers; 0 means 2
	// MaxMessageSize caps a message's bytes: larger ones are drained, not
	// kept, and logged as failures. 0 means no cap.
	MaxMessageSize int64
	// Fetch says whether large attachments stay on the server (lean:
	// their name, type and size come from the body structure and a few
	// bytes of their end, see imapsrc.Fetcher) or every message is
	// downloaded whole.
	Fetch  FetchMode
	DryRun bool
	// Skip, when set, names UIDs not to fetch this run, counted as
	// already synced: a follower's syncs skip the messages that failed in
	// its last one, so as not to download and log them again on every
	// new message (they are tried again at its next full sync).
	Skip func(uid uint32) bool
	// MinUID, when the folder's UIDVALIDITY is MinUIDValidity, narrows the
	// listing to the UIDs from MinUID up (UID SEARCH UID MinUID:*), and
	// the look-up of settled UIDs with it: a follower that handed every
	// lower UID to an earlier run lists what is new, not the whole folder.
	// Under another UIDVALIDITY the UIDs are renumbered and it lists all.
	// 0 lists all; a run of several folders applies it to each.
	MinUID, MinUIDValidity uint32
	// NoFlags stores the guide's defaults (unread, not starred, no
	// labels) instead of the server's flags.
	NoFlags bool
	// RetryFor bounds how long one operation is retried on transient
	// errors before the run gives up on it.
	RetryFor time.Duration
	// Budget caps the bytes downloaded from the inbox per period, across
	// runs; the zero Budget is no cap.
	Budget Budget
	// FallbackPath receives error_logs entries the database refuses.
	FallbackPath string
	// The circuit breaker aborts the run after MaxConsecutiveFailures
	// message failures in a row, or when more than MaxFailureRate of the
	// last FailureWindow messages failed. Zero turns either check off.
	MaxConsecutiveFailures int
	MaxFailureRate         float64
	FailureWindow          int

	// Folders names the folders to read, one after another, as users see
	// them (imapsrc.SentKeyword is the \Sent folder); AllFolders reads
	// every selectable folder but \Junk and \Trash ones not named (see
	// imapsrc.SelectFolders). With neither, the run reads IMAP.Mailbox
	// alone, without listing the account's folders.
	Folders    []string
	AllFolders bool
}

// FetchMode is how a run downloads messages.
type FetchMode int

const (
	// FetchAuto measures the link on the first messages, fetched whole,
	// and fetches lean only when it is slow (see chooser).
	FetchAuto FetchMode = iota
	FetchLean
	FetchFull
)

// Outcome is what happened to one message.
type Outcome string

const (
	Created Outcome = "created"
	Skipped Outcome = "skipped"
	Failed  Outcome = "failed"
)

// MessageResult is one message's line in verbose output.
type MessageResult struct {
	UID       uint32
	MessageID string
	Subject   string
	Outcome   Outcome
	Reason    string // why it was skipped or failed
}

// BatchReport is sent to the Observer when a batch is committed.
type BatchReport struct {
	Number   int // in completion order, 1-based
	Of       int
	Messages []MessageResult
	Created  int
	Skipped  int
	Failed   int
}

// Listing is what the lister found.
type Listing struct {
	Mailbox       string
	UIDValidity   uint32
	Total         int // messages in the mailbox (from Config.MinUID up)
	Selected      int // after --limit
	AlreadySynced int // finished by earlier runs at this UIDVALIDITY: no body fetched
	ToFetch       int
	Batches       int
	// LastUID is the highest UID selected, 0 when none was.
	LastUID uint32
	// PreviousUIDValidity is the UIDVALIDITY earlier runs settled UIDs under
	// when it differs from UIDValidity (the server renumbered the mailbox);
	// those settlements are dropped. 0 when unchanged or unknown.
	PreviousUIDValidity uint32
}

// Observer receives progress; calls are serialised by the pipeline, which
// makes them holding none of its own locks.
type Observer interface {
	Connecting(cfg imapsrc.Config)
	Listed(Listing)
	BatchDone(BatchReport)
	// Retrying says a transient failure is being retried after wait.
	Retrying(what string, err error, attempt int, wait time.Duration)
}

// Result is a run's outcome.
type Result struct {
	Listing
	// Fetched counts the messages downloaded and parsed, whole or, for
	// FetchedLean of them, in pieces with their large attachments left on
	// the server. Oversized messages are not among them.
	Fetched, FetchedLean int
	// Transferred is the content bytes downloaded for the Fetched messages;
	// MessageBytes their full size. Lean fetching leaves the difference on
	// the server.
	Transferred, MessageBytes int64
	// FetchMode is how the run fetched, "lean" or "whole", and FetchReason
	// why: the flag that forced it, or what FetchAuto measured.
	FetchMode, FetchReason string
	// Oversized counts messages over Config.MaxMessageSize: not stored, and
	// counted in Failed. OversizedBytes is what of them was read anyway and
	// thrown away: a whole fetch cannot stop a literal once it has begun.
	Oversized      int
	OversizedBytes int64
	Created        int
	// Left counts the messages the download budget left for a later run:
	// not fetched, not settled.
	Left     int
	Skipped  int // already stored (earlier run or duplicate in this one)
	Failed   int
	Warnings int // parser warnings on stored messages
	// Connections is Config.Workers less the workers that stepped aside
	// because the server refused their connections. A run with fewer
	// batches than workers opens fewer connections than this.
	Connections int
	Elapsed     time.Duration
	Status      string // completed, completed_with_errors, budget_exhausted, aborted, interrupted, dry_run
	// Budget is where the download budget stands, nil without one.
	Budget *BudgetReport
	// Dry-run answers, valid when Config.DryRun and a database was given.
	DryRunNew, DryRunExisting, DryRunUnknown int
	// DryRunBytes is what the messages to fetch weigh (RFC822.SIZE),
	// asked for only when there is a download budget to compare with.
	DryRunBytes int64
	// Folders says what the run did in each folder, in the order read; the
	// fields above are their totals (Listing's counts too). FolderNote
	// says what the folder selection left out and why (Gmail's labels).
	Folders    []FolderResult
	FolderNote string
}

// FolderResult is what a run did in one folder.
type FolderResult struct {
	Name       string
	SpecialUse string // \Sent, \All, ...; "" when none or not listed
	Listing    Listing
	// Created, Skipped (already synced or stored, from this folder or
	// another) and Failed count the folder's selected messages.
	Created, Skipped, Failed                 int
	DryRunNew, DryRunExisting, DryRunUnknown int
	Status                                   string // as Result's
	// Err is what stopped reading the folder; nil when it was read to the
	// end.
	Err error
}

// FolderObserver is an Observer that also hears about folders, when the
// run was given Config.Folders or Config.AllFolders: which it reads (once,
// before the first), and what it did in each.
type FolderObserver interface {
	FoldersSelected(imapsrc.Selection)
	FolderDone(FolderResult)
}
