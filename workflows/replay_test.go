package workflows

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
)

// replayHistories are the committed histories of real runs, recorded by the end-to-end test
// TestRecordHistories (TXFLOW_RECORD_HISTORIES=1; docs/development.md, "Changing a workflow"). The histories
// recorded before a change are kept: they prove that runs still open when a worker with the new
// code starts replay with it.
var replayHistories = []string{
	// A clean file, recorded before the notice was delivered by the run itself: a Notify child
	// after every run.
	"processfile_history.json",
	// A file refused as bad, its alert receiver down: the run alerts, then starts Notify.
	"processfile_failed_history.json",
	// The Notify child of that run, retrying the receiver until it answered.
	"notify_history.json",
	// A file with errors in chunks of 3 lines, its event delivered by the run.
	"processfile_chunks_history.json",
	// An inbox with a clean and a bad file, continued as new after the first file, failed.
	"inbox_history.json",
	"inbox_continued_history.json",
	// An inbox of two clean files and a bad one, two at a time (version
	// inbox-wider-and-starts-before-moving): the third file's run starts as the first file is
	// moved. Recorded on the end-to-end stack of TestRecordHistories, as the others.
	"inbox_parallel_history.json",
	// 20,000 new transactions in chunks of 5,000 with delivery on: the Publish stage after the
	// dump (version publish-results), recorded by the end-to-end delivery test.
	"processfile_publish_history.json",
	// The same with the Publish stage alongside Tag and Annotate, a chunk as soon as both
	// completed it (version publish-alongside), recorded by the end-to-end delivery test.
	"processfile_publish_alongside_history.json",
	// A file with errors in chunks of 3 lines with the error report written alongside Tag and
	// Annotate, computing the report page's figures of the lines (version report-alongside).
	"processfile_report_alongside_history.json",
	// The same file, a small run: its stages after Ingest are local activities (version
	// small-run-local-activities).
	"processfile_local_history.json",
	// Lean runs (version small-file-lean; the starter and the inbox give the file's size): the
	// same file, Ingest a local activity too, one version asked; a bad file of an inbox, its
	// alert receiver down.
	"processfile_lean_history.json",
	"processfile_lean_failed_history.json",
	// An inbox as inbox_history.json, moving its files as local activities and giving each
	// run its file's size (version inbox-lean).
	"inbox_lean_history.json",
	"inbox_lean_continued_history.json",
	// A reclassification of one account, approved by the starter after its diff, recorded by the
	// end-to-end reclassification test.
	"reclassify_history.json",
}

// TestReplay replays the committed histories against the current workflow code: a change that
// breaks determinism fails here. When a change must alter the command sequence of a workflow
// that may be running, gate it with workflow.GetVersion and keep the old histories.
func TestReplay(t *testing.T) {
	for _, file := range replayHistories {
		t.Run(file, func(t *testing.T) {
			hist, err := client.HistoryFromJSON(openFile(t, filepath.Join("testdata", file)), client.HistoryJSONOptions{})
			require.NoError(t, err)
			// A run's notice child workflow id names the run: replay as that execution.
			runID := hist.GetEvents()[0].GetWorkflowExecutionStartedEventAttributes().GetOriginalExecutionRunId()
			exec := workflow.Execution{ID: "ReplayId", RunID: runID}
			for _, ev := range hist.GetEvents() {
				if ev.GetEventType() == enumspb.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED {
					id := ev.GetStartChildWorkflowExecutionInitiatedEventAttributes().GetWorkflowId()
					for _, kind := range []string{"-event-", "-alert-"} {
						if i := strings.Index(id, kind); i > 0 {
							exec.ID = id[:i]
						}
					}
				}
			}
			r := worker.NewWorkflowReplayer()
			r.RegisterWorkflow(ProcessFile)
			r.RegisterWorkflow(ProcessInbox)
			r.RegisterWorkflow(Notify)
			r.RegisterWorkflow(Reclassify)
			require.NoError(t, r.ReplayWorkflowHistoryWithOptions(nil, hist, worker.ReplayWorkflowHistoryOptions{OriginalExecution: exec}))
		})
	}
}

// Every history in testdata is replayed.
func TestReplayCoversTestdata(t *testing.T) {
	files, err := filepath.Glob("testdata/*.json")
	require.NoError(t, err)
	for i := range files {
		files[i] = filepath.Base(files[i])
	}
	require.ElementsMatch(t, replayHistories, files)
}

func openFile(t *testing.T, path string) *os.File {
	f, err := os.Open(path)
	require.NoError(t, err)
	t.Cleanup(func() { f.Close() })
	return f
}
