package e2e

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/txflow/txflow/activities"
	"github.com/txflow/txflow/workflows"
)

// visibleFiles lists the files of dir a reader sees (hidden ones left out), sorted.
func visibleFiles(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		if e.Name()[0] != '.' {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	return names
}

// A run id that failed and is run again: its directory ends with the new attempt's files only,
// not the failure report of the earlier one beside a completed summary.
func TestOutputsRerunReplacesTheFailedAttempt(t *testing.T) {
	h := startOps(t, 0, 0)
	good := sample(t, "transactions.csv")
	sum := sha(t, good)
	id := workflows.RunID("", sum)
	dir := filepath.Join(h.output, id)
	start := func() client.WorkflowRun {
		run, err := h.c.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{
			ID: id, TaskQueue: workflows.TaskQueue,
			WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE_FAILED_ONLY,
		}, workflows.ProcessFile, workflows.ProcessFileInput{File: "today.csv", SHA256: sum, HeartbeatTimeout: testHeartbeat})
		require.NoError(t, err)
		return run
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// The first attempt reads another content than the one it was started for: it fails, and
	// its notice leaves failure.json.
	h.put("", "today.csv", sample(t, "transactions_with_errors.csv"))
	require.Error(t, start().Get(ctx, nil))
	eventually(t, time.Minute, "the failure report", func() bool {
		_, err := os.Stat(filepath.Join(dir, activities.FailureFile))
		return err == nil
	})
	require.Equal(t, []string{activities.FailureFile}, visibleFiles(t, dir))

	// The right file, and the run again.
	h.put("", "today.csv", good)
	var s workflows.Summary
	require.NoError(t, start().Get(ctx, &s))
	require.Equal(t, workflows.StatusCompleted, s.Status)
	require.Equal(t, []string{activities.ErrorReportFile, activities.OutputFile, activities.ReportFile, activities.SummaryFile}, visibleFiles(t, dir))
	// The first attempt's notice is done with: nothing comes back.
	require.Eventually(t, func() bool { return len(h.alert.notices()) == 1 }, 30*time.Second, 100*time.Millisecond)
	time.Sleep(time.Second)
	require.Equal(t, []string{activities.ErrorReportFile, activities.OutputFile, activities.ReportFile, activities.SummaryFile}, visibleFiles(t, dir))
}

// A run started by another client for a path outside the input root is refused: its alert is
// sent, but no output directory is made.
func TestOutputsRefusedPathMakesNoDirectory(t *testing.T) {
	h := startOps(t, 0, 0)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for i, file := range []string{"../env", "missing.csv"} {
		id := "txflow-refused-" + string(rune('a'+i))
		run, err := h.c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: workflows.TaskQueue},
			workflows.ProcessFile, workflows.ProcessFileInput{File: file, HeartbeatTimeout: testHeartbeat})
		require.NoError(t, err)
		err = run.Get(ctx, nil)
		var appErr *temporal.ApplicationError
		require.True(t, errors.As(err, &appErr), "%v", err)
		require.Equal(t, activities.ErrTypeBadPath, appErr.Type())

		require.Eventually(t, func() bool { return len(h.alert.notices()) == i+1 }, 30*time.Second, 100*time.Millisecond)
		alert := h.alert.notices()[i]
		require.Equal(t, id, alert.RunID)
		require.Equal(t, activities.ErrTypeBadPath, alert.ErrorType)
		require.Empty(t, alert.Outputs.Failure)
		require.NoDirExists(t, filepath.Join(h.output, id))
	}
	entries, err := os.ReadDir(h.output)
	require.NoError(t, err)
	require.Empty(t, entries)
}
