package starterapp

import (
	"context"
	"flag"
	"fmt"
	"path"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/txflow/txflow/activities"
	"github.com/txflow/txflow/workflows"
)

// ReportPath returns the path of the run's report page, report.html, beside its summary.json
// (WriteSummary writes both), "" before the summary is written. Paths are the worker's.
func ReportPath(s *workflows.Summary) string {
	if s.Outputs.Summary == "" {
		return ""
	}
	return path.Join(path.Dir(s.Outputs.Summary), activities.ReportFile)
}

// report writes a run's report.html again through the WriteReport workflow: a worker, which sees
// the output root the starter may not, rewrites it from the run's summary.json.
func (s *starter) report(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("starter report", flag.ContinueOnError)
	fs.SetOutput(s.stderr)
	fs.Usage = func() {
		fmt.Fprint(s.stderr, "Usage: starter report RUN_ID\n\nWrites the run's report page, report.html, again beside its outputs, from its\n"+
			"summary.json and the database (a worker does it: workflow report-RUN_ID), and prints its path.\n"+
			"Exits 1 when the run has no summary.json (not finished) or the page cannot be written.\n")
	}
	if code, ok := parse(fs, args, 1); !ok {
		return code
	}
	runID := fs.Arg(0)
	c, err := s.dial(ctx)
	if err != nil {
		fmt.Fprintln(s.stderr, "starter:", err)
		return ExitRunFailed
	}
	defer c.Close()
	id := workflows.ReportWorkflowID(runID)
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:                       id,
		TaskQueue:                workflows.TaskQueue,
		WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		StaticSummary:            "Report of " + runID,
	}, workflows.WriteReport, runID)
	if err != nil {
		fmt.Fprintf(s.stderr, "starter: start %s: %v\n", id, err)
		return ExitRunFailed
	}
	var written string
	if err := run.Get(ctx, &written); err != nil {
		fmt.Fprintf(s.stderr, "starter: report of %s: %v\n", runID, message(err))
		return ExitRunFailed
	}
	if written == "" {
		fmt.Fprintf(s.stderr, "starter: report of %s: the page could not be rendered (see the worker's log)\n", runID)
		return ExitRunFailed
	}
	fmt.Fprintf(s.stdout, "report: %s\n", written)
	return ExitOK
}
