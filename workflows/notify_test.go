package workflows

import (
	"context"
	"testing"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"

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
