package workflows

import (
	"testing"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/worker"
)

// TestReplay replays the committed history of a real run (recorded by the end-to-end test with
// -update) against the current workflow code: a change that breaks determinism fails here.
func TestReplay(t *testing.T) {
	r := worker.NewWorkflowReplayer()
	r.RegisterWorkflow(ProcessFile)
	require.NoError(t, r.ReplayWorkflowHistoryFromJSONFile(nil, "testdata/processfile_history.json"))
}
