package workflows

import (
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
)

// TestReplay replays committed histories of real runs against the current workflow code: a
// change that breaks determinism fails here. processfile_history.json is recorded by the
// end-to-end test with -update; when a change must alter the command sequence, keep the old
// history here and gate the change with workflow.GetVersion.
func TestReplay(t *testing.T) {
	for _, file := range []string{"testdata/processfile_history.json"} {
		t.Run(file, func(t *testing.T) {
			hist, err := client.HistoryFromJSON(openFile(t, file), client.HistoryJSONOptions{})
			require.NoError(t, err)
			// The notice's child workflow id names the run: replay as that execution.
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
			r.RegisterWorkflow(Notify)
			require.NoError(t, r.ReplayWorkflowHistoryWithOptions(nil, hist, worker.ReplayWorkflowHistoryOptions{OriginalExecution: exec}))
		})
	}
}

func openFile(t *testing.T, path string) *os.File {
	f, err := os.Open(path)
	require.NoError(t, err)
	t.Cleanup(func() { f.Close() })
	return f
}
