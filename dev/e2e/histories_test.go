package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
	"google.golang.org/protobuf/proto"

	"github.com/txflow/txflow/activities"
	"github.com/txflow/txflow/workflows"
)

// TestRecordHistories runs the workflows on the real stack in the situations whose histories
// workflows.TestReplay replays: a failed run whose alert receiver is down (and so its Notify
// child), a run of many chunks, and an inbox that continues as new and fails. It replays each
// fresh history against the current code; with TXFLOW_RECORD_HISTORIES=1 it also writes them to
// workflows/testdata (docs/development.md, "Changing a workflow", says when).
func TestRecordHistories(t *testing.T) {
	// The alert receiver answers 503 to the run's own attempts, then takes the alert from Notify.
	h := startOps(t, workflows.InlineNoticeAttempts, 0)
	clean, bad := sample(t, "transactions.csv"), []byte("<!DOCTYPE html>\n<html><body>Not found</body></html>\n")
	h.put("inbox", "a_transactions.csv", clean)
	h.put("inbox", "c_page.csv", bad)
	h.put("", "with_errors.csv", sample(t, "transactions_with_errors.csv"))

	// An inbox run of one file per run: it continues as new once, then fails for c_page.csv.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	run, err := h.c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "inbox-recorded", TaskQueue: workflows.TaskQueue},
		workflows.ProcessInbox, workflows.ProcessInboxInput{FilesPerRun: 1})
	require.NoError(t, err)
	firstRunID := run.GetRunID() // Get follows the runs continued as new
	err = run.Get(ctx, nil)
	var appErr *temporal.ApplicationError
	require.ErrorAs(t, err, &appErr)
	require.Equal(t, workflows.ErrTypeInboxFilesFailed, appErr.Type())
	var res workflows.InboxResult
	require.NoError(t, appErr.Details(&res))
	require.Equal(t, 2, res.Totals.Runs)
	require.Equal(t, 1, res.Totals.Archived)
	require.Equal(t, 1, res.Totals.Failed)
	require.Len(t, res.Files, 1)
	require.Equal(t, "failed/c_page.csv", res.Files[0].MovedTo)
	inbox := fetchHistory(t, h.c, "inbox-recorded", firstRunID)
	require.Equal(t, enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW, last(inbox).GetEventType())
	continued := fetchHistory(t, h.c, "inbox-recorded", "")
	require.Equal(t, enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED, last(continued).GetEventType())

	// The failed file's run: its alert went out through Notify, once the receiver answered.
	badID := res.Files[0].RunID
	failed := fetchHistory(t, h.c, badID, "")
	require.Equal(t, enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED, last(failed).GetEventType())
	notifyID := childID(t, failed)
	require.True(t, strings.HasPrefix(notifyID, badID+"-alert-"), notifyID)
	require.Eventually(t, func() bool { return len(h.alert.notices()) == 1 }, time.Minute, 100*time.Millisecond)
	require.Equal(t, workflows.InlineNoticeAttempts+1, h.alert.attempts)
	var notified activities.NotifyResult
	require.NoError(t, h.c.GetWorkflow(ctx, notifyID, "").Get(ctx, &notified))
	require.True(t, notified.Posted)
	notify := fetchHistory(t, h.c, notifyID, "")

	// The completed file's event was delivered by its run: no Notify run beside it.
	cleanID := h.runIDOf(clean)
	require.Empty(t, childIDs(fetchHistory(t, h.c, cleanID, "")))
	require.Len(t, h.events.notices(), 1)

	// A run of many chunks.
	code, out, errOut := h.starter("run", "--chunk-size", "3", "with_errors.csv")
	require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", out, errOut)
	chunksID := h.runIDOf(sample(t, "transactions_with_errors.csv"))
	chunks := fetchHistory(t, h.c, chunksID, "")
	// A small run: its Tag chunks are local activities (version small-run-local-activities).
	runs := activityRuns(t, chunks)
	require.GreaterOrEqual(t, runs["Tag"], 3, "7 rows accepted, in chunks of 3 lines")
	require.Equal(t, 1, runs["Ingest"])
	// A lean run (version small-file-lean): the starter gave it the file's size and its search
	// attributes, so it schedules no activity, asks one version and upserts its attributes once,
	// at the end, beside the version's own upsert.
	requireLean(t, chunks)
	requireLean(t, failed)
	// The inbox moved its files as local activities (version inbox-lean): it scheduled only
	// the listings of its two runs.
	require.Equal(t, map[string]int{"ListInbox": 1}, scheduledActivities(inbox))
	require.Equal(t, map[string]int{"ListInbox": 1}, scheduledActivities(continued))
	require.Equal(t, 1, activityRuns(t, inbox)["MoveInboxFile"])

	for _, r := range []struct {
		name string
		id   string
		hist *historypb.History
	}{
		{"notify_history.json", notifyID, notify},
		// The run of many chunks was recorded as processfile_chunks_history.json, then as
		// processfile_report_alongside_history.json (version report-alongside), then as
		// processfile_local_history.json (version small-run-local-activities), the failed run
		// as processfile_failed_history.json, the inbox as inbox_history.json and
		// inbox_continued_history.json: all are kept for the runs of those versions.
		{"processfile_lean_failed_history.json", badID, failed},
		{"processfile_lean_history.json", chunksID, chunks},
		{"inbox_lean_history.json", "inbox-recorded", inbox},
		{"inbox_lean_continued_history.json", "inbox-recorded", continued},
	} {
		replayer := worker.NewWorkflowReplayer()
		replayer.RegisterWorkflow(workflows.ProcessFile)
		replayer.RegisterWorkflow(workflows.ProcessInbox)
		replayer.RegisterWorkflow(workflows.Notify)
		exec := workflow.Execution{ID: r.id,
			RunID: r.hist.GetEvents()[0].GetWorkflowExecutionStartedEventAttributes().GetOriginalExecutionRunId()}
		// The replayer merges the run's search attribute updates into its start event: it
		// replays a copy, and the history is saved as the server gave it.
		replayed := proto.Clone(r.hist).(*historypb.History)
		require.NoError(t, replayer.ReplayWorkflowHistoryWithOptions(nil, replayed,
			worker.ReplayWorkflowHistoryOptions{OriginalExecution: exec}), r.name)
		if recordHistories {
			saveHistory(t, r.hist, r.name)
		}
	}
}

func (h *opsHarness) runIDOf(content []byte) string {
	h.t.Helper()
	sum := sha256.Sum256(content)
	return workflows.RunID("", hex.EncodeToString(sum[:]))
}

// requireLean checks that h is the history of a lean run (version small-file-lean): no activity
// scheduled, one version asked, its own search attributes upserted once (the other upsert is the
// version's).
func requireLean(t *testing.T, h *historypb.History) {
	t.Helper()
	require.Empty(t, scheduledActivities(h))
	versions, upserts := 0, 0
	for _, ev := range h.GetEvents() {
		switch {
		case ev.GetMarkerRecordedEventAttributes().GetMarkerName() == "Version":
			versions++
		case ev.GetEventType() == enumspb.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES:
			upserts++
		}
	}
	require.Equal(t, 1, versions)
	require.Equal(t, 2, upserts)
}

// scheduledActivities counts the activities of a history by type, local ones left out.
func scheduledActivities(h *historypb.History) map[string]int {
	out := map[string]int{}
	for _, ev := range h.GetEvents() {
		if a := ev.GetActivityTaskScheduledEventAttributes(); a != nil {
			out[a.GetActivityType().GetName()]++
		}
	}
	return out
}

func last(h *historypb.History) *historypb.HistoryEvent { return h.GetEvents()[len(h.GetEvents())-1] }

// childIDs returns the workflow ids of the children a run started.
func childIDs(h *historypb.History) []string {
	var ids []string
	for _, ev := range h.GetEvents() {
		if a := ev.GetStartChildWorkflowExecutionInitiatedEventAttributes(); a != nil {
			ids = append(ids, a.GetWorkflowId())
		}
	}
	return ids
}

func childID(t *testing.T, h *historypb.History) string {
	ids := childIDs(h)
	require.Len(t, ids, 1)
	return ids[0]
}

// inboxOutcome waits for an inbox run and returns its result: its value when it completed, the
// details of its error when it failed because some of its files did (failed says so). Any
// other error fails the test.
func inboxOutcome(t *testing.T, ctx context.Context, run client.WorkflowRun) (res workflows.InboxResult, failed bool) {
	t.Helper()
	err := run.Get(ctx, &res)
	if err == nil {
		return res, false
	}
	var appErr *temporal.ApplicationError
	require.ErrorAs(t, err, &appErr, run.GetID())
	require.Equal(t, workflows.ErrTypeInboxFilesFailed, appErr.Type(), run.GetID())
	require.NoError(t, appErr.Details(&res))
	return res, true
}
