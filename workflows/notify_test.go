package workflows

import (
	"context"
	"testing"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/txflow/txflow/activities"
)

var n *activities.Notifier

// An alert sent without its report (the output root could not be written) has the report
// written afterwards, on its own.
func TestNotifyWritesTheReportAfterTheAlert(t *testing.T) {
	env := newEnv(t)
	notice := activities.RunNotice{Kind: activities.NoticeRunFailed, RunID: "txflow-x", Attempt: "a1"}
	env.OnActivity(n.Alert, mock.Anything, mock.Anything).
		Return(activities.NotifyResult{Posted: true, ReportError: "failure report not written: disk full"}, nil).Once()
	calls := 0
	env.OnActivity(n.WriteFailureReport, mock.Anything, mock.Anything).Return(
		func(_ context.Context, got activities.RunNotice) (activities.NotifyResult, error) {
			calls++
			require.Equal(t, notice.RunID, got.RunID)
			if calls < 3 {
				return activities.NotifyResult{}, temporal.NewApplicationError("disk full", "")
			}
			return activities.NotifyResult{Report: "/out/txflow-x/failure.json"}, nil
		})
	env.ExecuteWorkflow(Notify, NotifyInput{Notice: notice})
	require.NoError(t, env.GetWorkflowError())
	var res activities.NotifyResult
	require.NoError(t, env.GetWorkflowResult(&res))
	require.Equal(t, 3, calls, "retried until written")
	require.True(t, res.Posted)
	require.Equal(t, "/out/txflow-x/failure.json", res.Report)
	require.Empty(t, res.ReportError)
}

// A run refused for its path tells its notice so (no failure report is written for it), with
// the attempt the notice belongs to.
func TestProcessFileNoticeCarriesErrorTypeAndAttempt(t *testing.T) {
	env := newEnv(t)
	env.OnActivity(a.Ingest, mock.Anything, mock.Anything).Return(activities.IngestResult{},
		temporal.NewNonRetryableApplicationError("../env: path is outside the root", activities.ErrTypeBadPath, nil))
	var got activities.RunNotice
	env.OnActivity(n.Alert, mock.Anything, mock.Anything).Return(
		func(_ context.Context, notice activities.RunNotice) (activities.NotifyResult, error) {
			got = notice
			return activities.NotifyResult{Posted: true}, nil
		}).Once()
	env.ExecuteWorkflow(ProcessFile, ProcessFileInput{File: "../env"})
	require.Error(t, env.GetWorkflowError())
	require.Equal(t, activities.ErrTypeBadPath, got.ErrorType)
	require.Equal(t, "default-test-run-id", got.Attempt)
	require.Equal(t, StageIngest, got.FailedStage)
	env.AssertExpectations(t)
}

// failedRunEnv is a ProcessFile run whose file is refused as bad: it fails at Ingest and
// alerts. It returns the environment and the ids of the Notify children it starts.
func failedRunEnv(t *testing.T) (*testsuite.TestWorkflowEnvironment, *[]string) {
	env := newEnv(t)
	env.OnActivity(a.Ingest, mock.Anything, mock.Anything).Return(activities.IngestResult{},
		temporal.NewNonRetryableApplicationError("line 1: expected a header", activities.ErrTypeBadFile, nil))
	var children []string
	env.SetOnChildWorkflowStartedListener(func(info *workflow.Info, _ workflow.Context, _ converter.EncodedValues) {
		children = append(children, info.WorkflowExecution.ID)
	})
	return env, &children
}

// A receiver that answers at once gets the notice from the run itself: no Notify run beside it.
func TestNotifyDeliveredByTheRun(t *testing.T) {
	t.Run("event", func(t *testing.T) {
		env := newEnv(t)
		env.OnActivity(a.Ingest, mock.Anything, mock.Anything).Return(ingestOK(5), nil)
		env.OnActivity(a.Tag, mock.Anything, mock.Anything).Return(activities.ChunkResult{Lines: 5}, nil)
		env.OnActivity(a.Annotate, mock.Anything, mock.Anything).Return(activities.ChunkResult{Lines: 5}, nil)
		env.OnActivity(a.ReportErrors, mock.Anything, mock.Anything).Return(activities.FileResult{Path: "/out/r/error_report.csv"}, nil)
		env.OnActivity(a.Dump, mock.Anything, mock.Anything).Return(activities.DumpResult{Path: "/out/r/output_transactions.csv"}, nil)
		env.OnActivity(a.WriteSummary, mock.Anything, mock.Anything).Return("/out/r/summary.json", nil)
		var got activities.RunNotice
		env.OnActivity(n.Event, mock.Anything, mock.Anything).Return(
			func(_ context.Context, notice activities.RunNotice) (activities.NotifyResult, error) {
				got = notice
				return activities.NotifyResult{Posted: true}, nil
			}).Once()
		children := 0
		env.SetOnChildWorkflowStartedListener(func(*workflow.Info, workflow.Context, converter.EncodedValues) { children++ })
		env.ExecuteWorkflow(ProcessFile, ProcessFileInput{File: "in.csv"})
		require.NoError(t, env.GetWorkflowError())
		require.Zero(t, children, "no Notify run")
		require.Equal(t, activities.NoticeRunCompleted, got.Kind)
		require.Equal(t, "abc", got.SHA256)
		env.AssertExpectations(t)
	})
	t.Run("alert", func(t *testing.T) {
		env, children := failedRunEnv(t)
		var got activities.RunNotice
		env.OnActivity(n.Alert, mock.Anything, mock.Anything).Return(
			func(_ context.Context, notice activities.RunNotice) (activities.NotifyResult, error) {
				got = notice
				return activities.NotifyResult{Posted: true, Report: "/out/x/failure.json"}, nil
			}).Once()
		const sum = "1b2666569dcef9c4aa000000000000000000000000000000000000000000ffff"
		env.ExecuteWorkflow(ProcessFile, ProcessFileInput{File: "page.csv", SHA256: sum})
		require.Error(t, env.GetWorkflowError())
		require.Empty(t, *children, "no Notify run")
		require.Equal(t, sum, got.SHA256, "the file's hash, although Ingest refused it")
		env.AssertExpectations(t)
	})
}

// A receiver that is down is tried a few times by the run, then by the Notify child it starts,
// until it answers; the run's outcome is the file's.
func TestNotifyReceiverDownStartsNotify(t *testing.T) {
	env, children := failedRunEnv(t)
	calls := 0
	env.OnActivity(n.Alert, mock.Anything, mock.Anything).Return(
		func(context.Context, activities.RunNotice) (activities.NotifyResult, error) {
			calls++
			if calls <= InlineNoticeAttempts+1 {
				return activities.NotifyResult{}, temporal.NewApplicationError("webhook answered 503 Service Unavailable", "")
			}
			return activities.NotifyResult{Posted: true}, nil
		})
	env.ExecuteWorkflow(ProcessFile, ProcessFileInput{File: "page.csv"})
	var appErr *temporal.ApplicationError
	require.ErrorAs(t, env.GetWorkflowError(), &appErr)
	require.Equal(t, activities.ErrTypeBadFile, appErr.Type())
	require.Equal(t, []string{"default-test-workflow-id-alert-default-test-run-id"}, *children)
	require.Equal(t, InlineNoticeAttempts+2, calls, "the run's attempts, then Notify's until delivered")
}

// A receiver that refuses the notice (a 4xx) is not asked again, neither by the run nor by a
// Notify child.
func TestNotifyRefusedIsNotRetried(t *testing.T) {
	env, children := failedRunEnv(t)
	env.OnActivity(n.Alert, mock.Anything, mock.Anything).Return(activities.NotifyResult{},
		temporal.NewNonRetryableApplicationError("webhook answered 400 Bad Request", activities.ErrTypeWebhookRejected, nil)).Once()
	env.ExecuteWorkflow(ProcessFile, ProcessFileInput{File: "page.csv"})
	var appErr *temporal.ApplicationError
	require.ErrorAs(t, env.GetWorkflowError(), &appErr)
	require.Equal(t, activities.ErrTypeBadFile, appErr.Type())
	require.Empty(t, *children)
	env.AssertExpectations(t)
}

// An alert delivered by the run whose failure.json could not be written: the Notify child
// writes the report, and does not send the alert again.
func TestNotifyWritesTheReportTheRunCouldNot(t *testing.T) {
	env, children := failedRunEnv(t)
	env.OnActivity(n.Alert, mock.Anything, mock.Anything).
		Return(activities.NotifyResult{Posted: true, ReportError: "failure report not written: disk full"}, nil).Once()
	env.OnActivity(n.WriteFailureReport, mock.Anything, mock.Anything).
		Return(activities.NotifyResult{Report: "/out/x/failure.json"}, nil).Once()
	env.ExecuteWorkflow(ProcessFile, ProcessFileInput{File: "page.csv", SHA256: "0123456789abcdef0123"})
	require.Error(t, env.GetWorkflowError())
	require.Len(t, *children, 1)
	env.AssertExpectations(t)
}
