package workflows

import (
	"context"
	"testing"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"

	"github.com/txflow/txflow/activities"
)

// WriteReport runs RewriteReport for the run and returns the page's path; a retryable failure
// is retried, a run without summary.json is not.
func TestWriteReportRewritesThePage(t *testing.T) {
	var a *activities.Activities
	env := newEnv(t)
	calls := 0
	env.OnActivity(a.RewriteReport, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.RewriteReportInput) (string, error) {
			calls++
			require.Equal(t, "txflow-x", in.RunID)
			if calls == 1 {
				return "", temporal.NewApplicationError("connection refused", "")
			}
			return "/out/txflow-x/report.html", nil
		})
	env.ExecuteWorkflow(WriteReport, "txflow-x")
	require.NoError(t, env.GetWorkflowError())
	var path string
	require.NoError(t, env.GetWorkflowResult(&path))
	require.Equal(t, "/out/txflow-x/report.html", path)
	require.Equal(t, 2, calls)

	env = newEnv(t)
	calls = 0
	env.OnActivity(a.RewriteReport, mock.Anything, mock.Anything).Return(
		func(context.Context, activities.RewriteReportInput) (string, error) {
			calls++
			return "", temporal.NewNonRetryableApplicationError("run txflow-y has no summary.json", activities.ErrTypeBadInput, nil)
		})
	env.ExecuteWorkflow(WriteReport, "txflow-y")
	require.ErrorContains(t, env.GetWorkflowError(), "no summary.json")
	require.Equal(t, 1, calls)
	require.Equal(t, "report-txflow-y", ReportWorkflowID("txflow-y"))
}
