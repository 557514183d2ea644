// Package fleet runs backfills as River jobs in PostgreSQL, so that any
// number of worker processes on any number of machines share the work of
// many inboxes: one job per (inbox, folder), unique while it is waiting or
// running, rescued when its worker dies.
package fleet

import (
	"encoding/json"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
)

// Kind is the River job kind of a folder's backfill. Renaming it would
// strand queued jobs: River finds workers by kind.
const Kind = "backfill_folder"

// AllFolders is the folder of a job that reads every folder, as
// --all-folders does.
const AllFolders = "*"

// FolderArgs is one folder's backfill. Only inbox and folder make a job
// unique: a second enqueue of the same folder with another --every is the
// same job.
type FolderArgs struct {
	Inbox  string `json:"inbox" river:"unique"`
	Folder string `json:"folder" river:"unique"`
	// Every, when set, queues the next run this long after a run
	// completes: an incremental re-run.
	Every time.Duration `json:"every,omitempty"`
}

// Kind implements river.JobArgs.
func (FolderArgs) Kind() string { return Kind }

// unique keeps one job per folder while it waits or runs. River's default
// also counts completed jobs, which would refuse a new enqueue for a day
// after a run.
var unique = river.UniqueOpts{
	ByArgs: true,
	ByState: []rivertype.JobState{
		rivertype.JobStateAvailable, rivertype.JobStatePending, rivertype.JobStateRunning,
		rivertype.JobStateRetryable, rivertype.JobStateScheduled,
	},
}

// InsertOpts implements river.JobArgsWithInsertOpts.
func (FolderArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{UniqueOpts: unique}
}

// argsOf decodes a job row's args; zero when they are not a FolderArgs.
func argsOf(encoded []byte) FolderArgs {
	var a FolderArgs
	_ = json.Unmarshal(encoded, &a) // a job of ours: River wrote what we gave it
	return a
}
