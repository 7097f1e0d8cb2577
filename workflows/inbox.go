package workflows

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/txflow/txflow/activities"
)

// DefaultInboxDir is the inbox directory, relative to the input root, when none is given.
const DefaultInboxDir = "inbox"

// DefaultInboxParallel is how many files' runs an inbox has open at once when not told. A small
// file's run spends most of its time between its activities, waiting for its workflow tasks: two
// runs at once left a worker's activity slots mostly idle.
const DefaultInboxParallel = 16

// legacyInboxParallel is DefaultInboxParallel for the runs recorded before inboxParallelChange.
const legacyInboxParallel = 2

// DefaultInboxFilesPerRun is how many files one inbox run takes before it continues as new.
const DefaultInboxFilesPerRun = 200

// ErrTypeInboxFilesFailed is the error type an inbox run fails with, once every file is filed,
// when one of its files failed, was left in the inbox or could not be moved.
const ErrTypeInboxFilesFailed = "InboxFilesFailedError"

// MaxListedFailures bounds the failed files an inbox run names in its error and carries over
// when it continues as new; the counts are always complete.
const MaxListedFailures = 20

// ProcessInboxInput is the input of ProcessInbox.
type ProcessInboxInput struct {
	Dir         string // relative to the input root; DefaultInboxDir when empty
	MaxFiles    int    // files' runs open at once; DefaultInboxParallel when 0
	ChunkSize   int64  // passed to each ProcessFile; its default when 0
	MaxParallel int    // passed to each ProcessFile; its default when 0
	// FilesPerRun is how many files a run takes before it continues as new (sooner when Temporal
	// suggests it); DefaultInboxFilesPerRun when 0.
	FilesPerRun int `json:",omitempty"`
	// Before is what the earlier runs of this inbox run did, when it continued as new.
	Before *InboxTotals `json:",omitempty"`
}

// InboxTotals sums up the files an inbox run handled, over the runs it continued as new.
type InboxTotals struct {
	Runs     int `json:"runs"` // runs of this inbox run, this one included
	Archived int `json:"archived"`
	Failed   int `json:"failed"`
	Left     int `json:"left"`
	Refused  int `json:"refused,omitempty"` // sub-folders refused (InboxRefused)
	// Problems counts the files that failed, were left in the inbox or could not be moved;
	// ProblemFiles names the first MaxListedFailures of them, with what happened.
	Problems     int      `json:"problems"`
	ProblemFiles []string `json:"problem_files,omitempty"`
	// Skip lists the files still in the inbox that earlier runs handled (left, or not moved):
	// later runs leave them alone, so each file is handled once per inbox run.
	Skip []InboxFileKey `json:"skip,omitempty"`
}

// InboxFileKey names one file of the inbox and its content.
type InboxFileKey struct {
	File   string `json:"file"`
	SHA256 string `json:"sha256"`
}

// Outcomes of an inbox file.
const (
	InboxArchived = "archived" // its run completed, now or before: moved to archive/
	InboxFailed   = "failed"   // its run failed: moved to failed/
	// InboxLeft: the file's run was started elsewhere and how it ended could not be learnt; the
	// file stays in the inbox for the next inbox run.
	InboxLeft = "left"
	// InboxRefused: a sub-folder of the inbox not named after a valid account; its files stay
	// where they are, unprocessed, and the inbox run fails naming it.
	InboxRefused = "refused"
)

// InboxFileResult is what became of one inbox file.
type InboxFileResult struct {
	File    string `json:"file"`     // where it was, relative to the input root
	RunID   string `json:"run_id"`   // the ProcessFile run (workflow id)
	Outcome string `json:"outcome"`  // InboxArchived, InboxFailed or InboxLeft
	MovedTo string `json:"moved_to"` // where it is now, relative to the input root
	Error   string `json:"error,omitempty"`
}

// InboxResult lists the files an inbox run handled; when it continued as new, Files are those of
// its last run and Totals count them all.
type InboxResult struct {
	Dir    string            `json:"dir"`
	Files  []InboxFileResult `json:"files"`
	Totals InboxTotals       `json:"totals"`
}

// ProcessInbox processes every file waiting in <input root>/<Dir> and in its sub-folders named
// after an account (see activities.ListInbox): a file of <Dir>/<account>/ is processed for that
// account, one directly in <Dir> for the default account. It starts one ProcessFile child per
// file (workflow id RunID(account, sha256), so a file already processed successfully for its
// account is not processed again while a failed one is), at most MaxFiles runs at once; then it moves
// each file to <input root>/archive/ when its run completed, or was found completed before, and
// to <input root>/failed/ when its run failed; a file of an account's sub-folder goes to
// archive/<account>/ or failed/<account>/. A file whose run is already open (started by an
// overlapping inbox run or by the starter) is moved once that run ends, by its outcome. A
// sub-folder not named after a valid account is refused (InboxRefused): its files stay where
// they are, and the run fails naming it. Children are abandoned if the inbox run ends early.
//
// A run takes at most FilesPerRun files (fewer when Temporal suggests continuing as new), waits
// for them, and continues as new: the next run lists the inbox again, so the files still waiting
// are simply taken by it, and carries the totals so far. Once every file is filed, the run fails
// with a non-retryable ErrTypeInboxFilesFailed error, naming the files and with the counts, when
// any file failed, was left in the inbox or could not be moved, or a sub-folder was refused; the error's details are the
// InboxResult, each file's outcome.
func ProcessInbox(ctx workflow.Context, in ProcessInboxInput) (*InboxResult, error) {
	if in.Dir == "" {
		in.Dir = DefaultInboxDir
	}
	if in.FilesPerRun <= 0 {
		in.FilesPerRun = DefaultInboxFilesPerRun
	}
	// Runs recorded before it neither continue as new nor fail for a failed file.
	bounded := workflow.GetVersion(ctx, inboxBoundChange, workflow.DefaultVersion, 1) != workflow.DefaultVersion
	// Runs recorded before it took two files at once by default, and started the next file only
	// once the last one was moved.
	wide := workflow.GetVersion(ctx, inboxParallelChange, workflow.DefaultVersion, 1) != workflow.DefaultVersion
	// Runs recorded before it neither told each file's run its size and search attributes nor
	// moved files as local activities.
	lean := workflow.GetVersion(ctx, inboxLeanChange, workflow.DefaultVersion, 1) != workflow.DefaultVersion
	if in.MaxFiles <= 0 {
		in.MaxFiles = DefaultInboxParallel
		if !wide {
			in.MaxFiles = legacyInboxParallel
		}
	}
	var a *activities.Activities
	actCtx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Minute,
		HeartbeatTimeout:    DefaultHeartbeatTimeout,
		RetryPolicy:         retry(10),
		Summary:             fmt.Sprintf("List and hash the files waiting in %s/", in.Dir),
	})
	var listed []activities.InboxFile
	if err := workflow.ExecuteActivity(actCtx, a.ListInbox, activities.ListInboxInput{Dir: in.Dir}).Get(ctx, &listed); err != nil {
		return nil, fmt.Errorf("list inbox %s: %w", in.Dir, err)
	}
	var totals InboxTotals
	if in.Before != nil {
		totals = *in.Before
	}
	totals.Runs++
	files := listed[:0:0]
	for _, f := range listed {
		if !slices.Contains(totals.Skip, InboxFileKey{File: f.File, SHA256: f.SHA256}) {
			files = append(files, f)
		}
	}
	res := &InboxResult{Dir: in.Dir, Files: make([]InboxFileResult, len(files))}
	details := func() {
		var b strings.Builder
		fmt.Fprintf(&b, "**Inbox** `%s/`: %d files", in.Dir, len(files))
		if totals.Runs > 1 {
			fmt.Fprintf(&b, " (run %d; before: archived %d, failed %d, left %d)", totals.Runs,
				totals.Archived, totals.Failed, totals.Left)
		}
		b.WriteString("\n\n| file | run | outcome |\n|---|---|---|\n")
		for i, f := range files {
			r := res.Files[i]
			outcome := r.Outcome
			if outcome == "" {
				outcome = "pending"
			}
			fmt.Fprintf(&b, "| `%s` | %s | %s |\n", f.File, RunID(f.Account, f.SHA256), outcome)
		}
		workflow.SetCurrentDetails(ctx, b.String())
	}
	details()
	if err := workflow.SetQueryHandler(ctx, ProgressQuery, func() (*InboxResult, error) { return res, nil }); err != nil {
		return nil, fmt.Errorf("register progress query: %w", err)
	}

	// inFlight counts the files whose run is not over, at most MaxFiles; pending those not yet
	// filed (their run, then their move).
	inFlight, pending, started := 0, 0, 0
	for i, f := range files {
		if bounded && i > 0 && (i >= in.FilesPerRun || workflow.GetInfo(ctx).GetContinueAsNewSuggested()) {
			break
		}
		if f.Error != "" {
			// A sub-folder not named after an account: reported, its files left alone. Only
			// listings made since accounts exist have such entries; it issues no command.
			started++
			res.Files[i] = InboxFileResult{File: f.File, Outcome: InboxRefused, Error: f.Error}
			details()
			continue
		}
		_ = workflow.Await(ctx, func() bool { return inFlight < in.MaxFiles })
		inFlight++
		pending++
		started++
		res.Files[i] = InboxFileResult{File: f.File, RunID: RunID(f.Account, f.SHA256)}
		workflow.Go(ctx, func(ctx workflow.Context) {
			running := true
			defer func() {
				if running {
					inFlight--
				}
				pending--
				details()
			}()
			outcome, runErr := processInboxFile(ctx, in, f, lean)
			if wide {
				// The run is over: the next file's starts while this one is moved.
				inFlight--
				running = false
			}
			r := &res.Files[i]
			if outcome == InboxLeft {
				r.Outcome, r.Error = outcome, rootCause(runErr)
				return
			}
			to := activities.ArchiveDir
			if outcome == InboxFailed {
				to = activities.FailedDir
			}
			mctx := workflow.WithActivityOptions(actCtx, withSummary(workflow.GetActivityOptions(actCtx),
				fmt.Sprintf("Move %s to %s/", f.File, to)))
			var moved string
			if err := execute(mctx, lean, a.MoveInboxFile,
				activities.MoveInput{File: f.File, SHA256: f.SHA256, To: to, Account: f.Account}).Get(ctx, &moved); err != nil {
				runErr = errors.Join(runErr, fmt.Errorf("move to %s: %w", to, err))
			}
			r.Outcome, r.MovedTo = outcome, moved
			if runErr != nil {
				r.Error = rootCause(runErr)
			}
		})
	}
	_ = workflow.Await(ctx, func() bool { return pending == 0 })
	if !bounded {
		return res, nil
	}
	res.Files = res.Files[:started]
	for i, r := range res.Files {
		totals.add(r, files[i].SHA256)
	}
	res.Totals = totals
	if started < len(files) {
		next := in
		next.Before = &totals
		return nil, workflow.NewContinueAsNewError(ctx, ProcessInbox, next)
	}
	res.Totals.Skip = nil
	if totals.Problems > 0 {
		return res, temporal.NewNonRetryableApplicationError(totals.failureText(in.Dir), ErrTypeInboxFilesFailed, nil, res)
	}
	return res, nil
}

// inboxBoundChange marks, for workflow.GetVersion, an inbox run that continues as new past
// FilesPerRun files and fails when one of its files failed.
const inboxBoundChange = "inbox-continues-as-new-and-fails"

// inboxLeanChange marks, for workflow.GetVersion, an inbox run that gives each file's run its size
// (a small file's run is then lean, see leanChange) and the search attributes it starts with
// (StartSearchAttributes), and moves each file as a local activity: moving a file is a rename,
// far cheaper than the activity Temporal would schedule, dispatch and record for it.
const inboxLeanChange = "inbox-lean"

// inboxParallelChange marks, for workflow.GetVersion, an inbox run that takes DefaultInboxParallel
// files at once by default (legacyInboxParallel before) and starts the next file's run as soon
// as one's run is over, without waiting for its move.
const inboxParallelChange = "inbox-wider-and-starts-before-moving"

// add counts one handled file.
func (t *InboxTotals) add(r InboxFileResult, sha256Hex string) {
	switch r.Outcome {
	case InboxArchived:
		t.Archived++
	case InboxFailed:
		t.Failed++
	case InboxLeft:
		t.Left++
	case InboxRefused:
		t.Refused++
	}
	if r.MovedTo == "" {
		t.Skip = append(t.Skip, InboxFileKey{File: r.File, SHA256: sha256Hex})
	}
	if r.Outcome != InboxFailed && r.Error == "" {
		return
	}
	t.Problems++
	if len(t.ProblemFiles) < MaxListedFailures {
		what := r.Outcome
		if (r.Outcome == InboxArchived || r.Outcome == InboxFailed) && r.MovedTo == "" {
			what += ", not moved"
		}
		t.ProblemFiles = append(t.ProblemFiles, fmt.Sprintf("%s (%s: %s)", r.File, what, r.Error))
	}
}

// failureText says in one line which files of the inbox did not go well, with the counts.
func (t *InboxTotals) failureText(dir string) string {
	total := t.Archived + t.Failed + t.Left
	refused := ""
	if t.Refused > 0 {
		total += t.Refused
		refused = fmt.Sprintf(", sub-folders refused %d", t.Refused)
	}
	msg := fmt.Sprintf("inbox %s/: %d of %d files not processed successfully (archived %d, failed %d, left in the inbox %d%s): %s",
		dir, t.Problems, total, t.Archived, t.Failed, t.Left, refused, strings.Join(t.ProblemFiles, "; "))
	if more := t.Problems - len(t.ProblemFiles); more > 0 {
		msg += fmt.Sprintf("; and %d more", more)
	}
	return msg
}

// processInboxFile runs ProcessFile on one inbox file and says whether the file is done with
// (archived) or failed. When lean (inboxLeanChange), the run is told the file's size and started
// with its search attributes.
func processInboxFile(ctx workflow.Context, in ProcessInboxInput, f activities.InboxFile, lean bool) (string, error) {
	summary, details := RunDescription(f.File, f.SHA256, in.ChunkSize)
	input := ProcessFileInput{
		File: f.File, SHA256: f.SHA256, ChunkSize: in.ChunkSize, MaxParallel: in.MaxParallel,
		Account: f.Account, Profile: f.Profile,
	}
	opts := workflow.ChildWorkflowOptions{
		WorkflowID:            RunID(f.Account, f.SHA256),
		TaskQueue:             TaskQueue,
		ParentClosePolicy:     enumspb.PARENT_CLOSE_POLICY_ABANDON,
		WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE_FAILED_ONLY,
		StaticSummary:         summary,
		StaticDetails:         details,
	}
	if lean {
		input.Size = f.Size
		opts.TypedSearchAttributes = StartSearchAttributes(input)
	}
	child := workflow.ExecuteChildWorkflow(workflow.WithChildOptions(ctx, opts), ProcessFile, input)
	if err := child.GetChildWorkflowExecution().Get(ctx, nil); err != nil {
		if alreadyStarted(err) {
			// The reuse policy refuses an id only while its run is open or after it completed:
			// this content was, or is being, processed. File it by how that run ends.
			if workflow.GetVersion(ctx, waitOpenRunChange, workflow.DefaultVersion, 1) == workflow.DefaultVersion {
				return InboxArchived, nil // histories recorded before the inbox waited
			}
			return waitForRun(ctx, RunID(f.Account, f.SHA256))
		}
		return InboxFailed, err
	}
	if err := child.Get(ctx, nil); err != nil {
		return InboxFailed, err
	}
	return InboxArchived, nil
}

// alreadyStarted says whether err refused a child because its workflow id is taken. The SDK says
// so with ChildWorkflowExecutionAlreadyStartedError; its test environment with the service's
// WorkflowExecutionAlreadyStarted.
func alreadyStarted(err error) bool {
	var started *temporal.ChildWorkflowExecutionAlreadyStartedError
	var taken *serviceerror.WorkflowExecutionAlreadyStarted
	return errors.As(err, &started) || errors.As(err, &taken)
}

// waitOpenRunChange marks, for workflow.GetVersion, the inbox waiting for a run already started.
const waitOpenRunChange = "inbox-waits-for-open-run"

// waitForRun waits for the run id's open (or ended) run started by someone else and says how
// the inbox files it: archived when it completed, failed when it did not, left in the inbox
// when its end could not be learnt.
func waitForRun(ctx workflow.Context, runID string) (string, error) {
	var a *activities.Activities
	wctx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 24 * time.Hour,
		HeartbeatTimeout:    DefaultHeartbeatTimeout,
		RetryPolicy:         retry(10),
		Summary:             fmt.Sprintf("Wait for %s, started elsewhere, to end", runID),
	})
	var out activities.RunOutcome
	if err := workflow.ExecuteActivity(wctx, a.WaitForRun, activities.WaitRunInput{RunID: runID}).Get(ctx, &out); err != nil {
		return InboxLeft, fmt.Errorf("wait for %s: %w", runID, err)
	}
	if !out.Completed {
		return InboxFailed, fmt.Errorf("%s", out.Error)
	}
	return InboxArchived, nil
}

// RunDescription returns the static summary and details of a ProcessFile run of file, for the
// Web UI: the starter and the inbox give them to every run they start.
func RunDescription(file, sha256Hex string, chunkSize int64) (summary, details string) {
	if chunkSize <= 0 {
		chunkSize = DefaultChunkSize
	}
	return fmt.Sprintf("Process %s", file),
		fmt.Sprintf("**File** `%s`  \n**SHA-256** `%s`  \n"+
			"Ingest → (Tag ‖ Annotate) → ReportErrors → Dump, chunks of %d lines", file, sha256Hex, chunkSize)
}
