package e2e

import (
	"context"
	"github.com/txflow/txflow/internal/testdb"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/txflow/txflow/activities"
	"github.com/txflow/txflow/workflows"
)

// waitingFor returns how many WaitForRun activities the workflow id has started.
func waitingFor(h *opsHarness, id string) int {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	desc, err := h.c.DescribeWorkflowExecution(ctx, id, "")
	if err != nil {
		return 0
	}
	n := 0
	for _, pa := range desc.GetPendingActivities() {
		if pa.GetActivityType().GetName() == "WaitForRun" && pa.GetState() == enumspb.PENDING_ACTIVITY_STATE_STARTED {
			n++
		}
	}
	return n
}

// Two inbox runs overlap (a scheduled run and `starter schedule trigger`, overlap allow-all):
// the second finds the files' runs already open. It must not archive them while they run: it
// waits, and files each by how its run ended, as the first inbox run does.
func TestInboxOverlappingRunsFileByOutcome(t *testing.T) {
	h := startOps(t, 0, 0)
	dbURL := h.env["DATABASE_URL"]
	clean, withErrors := sample(t, "transactions.csv"), sample(t, "transactions_with_errors.csv")
	h.put("inbox", "doomed.csv", clean)
	h.put("inbox", "fine.csv", withErrors)
	doomedID, fineID := workflows.RunID("", sha(t, clean)), workflows.RunID("", sha(t, withErrors))

	// Ingest waits on the runs table: both runs of the first inbox stay open.
	release := testdb.LockTable(t, dbURL, "runs")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	first, err := h.c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "inbox-scheduled", TaskQueue: workflows.TaskQueue},
		workflows.ProcessInbox, workflows.ProcessInboxInput{})
	require.NoError(t, err)
	eventually(t, time.Minute, "both runs blocked in ingest", func() bool { return waitersOn(t, dbURL, "runs") == 2 })

	second, err := h.c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "inbox-triggered", TaskQueue: workflows.TaskQueue},
		workflows.ProcessInbox, workflows.ProcessInboxInput{})
	require.NoError(t, err)
	eventually(t, time.Minute, "the second inbox run waiting for both runs", func() bool { return waitingFor(h, second.GetID()) == 2 })
	for _, dir := range []string{activities.ArchiveDir, activities.FailedDir} {
		require.NoDirExists(t, filepath.Join(h.input, dir), "nothing is filed while the runs are open")
	}

	// One run is ended by an operator, the other completes.
	require.NoError(t, h.c.TerminateWorkflow(ctx, doomedID, "", "operator stopped it"))
	release()

	for _, run := range []client.WorkflowRun{first, second} {
		res, failed := inboxOutcome(t, ctx, run)
		require.True(t, failed, "%s: doomed.csv failed", run.GetID())
		outcomes := map[string]workflows.InboxFileResult{}
		for _, f := range res.Files {
			outcomes[f.File] = f
		}
		doomed, fine := outcomes["inbox/doomed.csv"], outcomes["inbox/fine.csv"]
		require.Equal(t, workflows.InboxFailed, doomed.Outcome, "%s: %+v", run.GetID(), doomed)
		require.Equal(t, "failed/doomed.csv", doomed.MovedTo, run.GetID())
		require.Equal(t, doomedID, doomed.RunID)
		require.NotEmpty(t, doomed.Error, run.GetID())
		require.Equal(t, workflows.InboxArchived, fine.Outcome, "%s: %+v", run.GetID(), fine)
		require.Equal(t, "archive/fine.csv", fine.MovedTo, run.GetID())
		require.Equal(t, fineID, fine.RunID)
	}
	require.FileExists(t, filepath.Join(h.input, activities.FailedDir, "doomed.csv"))
	require.FileExists(t, filepath.Join(h.input, activities.ArchiveDir, "fine.csv"))
	require.NoFileExists(t, filepath.Join(h.input, activities.ArchiveDir, "doomed.csv"))
	entries, err := os.ReadDir(filepath.Join(h.input, "inbox"))
	require.NoError(t, err)
	require.Empty(t, entries)

	// `starter run` of an inbox file while an inbox runs: the inbox waits for that run too.
	h.put("inbox", "manual.csv", []byte("id,amount,wording\nM1,1.00,manual\n"))
	release = testdb.LockTable(t, dbURL, "runs")
	code, out, errOut := h.starter("run", "--no-wait", "inbox/manual.csv")
	require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", out, errOut)
	eventually(t, time.Minute, "the manual run blocked in ingest", func() bool { return waitersOn(t, dbURL, "runs") == 1 })
	third, err := h.c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "inbox-during-run", TaskQueue: workflows.TaskQueue},
		workflows.ProcessInbox, workflows.ProcessInboxInput{})
	require.NoError(t, err)
	eventually(t, time.Minute, "the inbox waiting for the manual run", func() bool { return waitingFor(h, third.GetID()) == 1 })
	require.FileExists(t, filepath.Join(h.input, "inbox", "manual.csv"))
	release()
	res, failed := inboxOutcome(t, ctx, third)
	require.False(t, failed)
	require.Len(t, res.Files, 1)
	require.Equal(t, workflows.InboxArchived, res.Files[0].Outcome, "%+v", res.Files[0])
	require.Equal(t, "archive/manual.csv", res.Files[0].MovedTo)
}

func sha(t *testing.T, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "f")
	require.NoError(t, os.WriteFile(p, b, 0o644))
	s, err := activities.HashFile(p)
	require.NoError(t, err)
	return s
}
