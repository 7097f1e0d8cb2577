package workflows

import (
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/txflow/txflow/activities"
)

// ReportWorkflowID is the workflow id of WriteReport for a run: report-<run id>.
func ReportWorkflowID(runID string) string { return "report-" + runID }

// WriteReport writes a finished run's report.html again, from its summary.json and the store,
// and returns the page's path (`starter report RUN_ID`). The starter may not see the workers'
// output root: this workflow has a worker, which does, rewrite the page. It is a workflow of
// its own, with one activity, so that it leaves the run's history alone.
func WriteReport(ctx workflow.Context, runID string) (string, error) {
	var a *activities.Activities
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 10 * time.Minute,
		RetryPolicy:         retry(5),
		Summary:             "RewriteReport: write report.html again from summary.json and the store",
	})
	var path string
	err := workflow.ExecuteActivity(ctx, a.RewriteReport, activities.RewriteReportInput{RunID: runID}).Get(ctx, &path)
	return path, err
}
