package workflows

import (
	"errors"
	"fmt"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/txflow/txflow/activities"
)

// NotifyInput is the input of Notify.
type NotifyInput struct {
	Notice activities.RunNotice // Kind says which: activities.NoticeRunFailed or NoticeRunCompleted
}

// Notify delivers a run's notice: for a failed run, one alert to TXFLOW_ALERT_WEBHOOK and the
// failure report (failure.json; none for a run refused for its path); for a completed run, one
// event to TXFLOW_EVENTS_WEBHOOK. The alert does not wait for the report: when the report cannot
// be written the alert says so, is sent, and the report is written by a later activity, retried
// like the deliveries. A
// receiver that is down or answers 408, 429 or 5xx is retried with exponential backoff (1 s
// doubling up to 10 min) for up to NotifyRetryFor; a receiver that refuses the notice with
// another 4xx is not retried. ProcessFile starts it as an abandoned child workflow, so a slow
// receiver never holds a run open nor changes its outcome.
func Notify(ctx workflow.Context, in NotifyInput) (activities.NotifyResult, error) {
	var n *activities.Notifier
	opts := notifyOptions
	fn := any(n.Event)
	if in.Notice.Kind == activities.NoticeRunFailed {
		fn = n.Alert
		opts.Summary = fmt.Sprintf("Alert: POST the failure of %s to the alert webhook and write failure.json", in.Notice.RunID)
	} else {
		opts.Summary = fmt.Sprintf("Event: POST the completion of %s to the events webhook", in.Notice.RunID)
	}
	var res activities.NotifyResult
	if err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, opts), fn, in.Notice).Get(ctx, &res); err != nil {
		return res, err
	}
	if res.ReportError != "" {
		// The alert went out without its report: write the report now, retried on its own.
		opts.Summary = fmt.Sprintf("Write failure.json of %s", in.Notice.RunID)
		var report activities.NotifyResult
		if err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, opts), n.WriteFailureReport, in.Notice).Get(ctx, &report); err != nil {
			return res, fmt.Errorf("write failure report: %w", err)
		}
		res.Report, res.ReportError = report.Report, ""
	}
	return res, nil
}

// NotifyRetryFor is how long Notify keeps trying to deliver a notice.
const NotifyRetryFor = 24 * time.Hour

var notifyNonRetryable = []string{activities.ErrTypeWebhookRejected, activities.ErrTypeBadPath,
	activities.ErrTypeConfig, activities.ErrTypeBadInput}

var notifyOptions = workflow.ActivityOptions{
	StartToCloseTimeout:    time.Minute,
	ScheduleToCloseTimeout: NotifyRetryFor,
	RetryPolicy: &temporal.RetryPolicy{
		InitialInterval:        time.Second,
		BackoffCoefficient:     2,
		MaximumInterval:        10 * time.Minute,
		NonRetryableErrorTypes: notifyNonRetryable,
	},
}

// notify starts the Notify child of a finished run, which ended with runErr, and waits only for
// it to start. Its workflow id is derived from this run's, so a run sends its notice once.
func notify(ctx workflow.Context, s *Summary, runErr error) {
	info := workflow.GetInfo(ctx)
	notice := s.notice()
	notice.Attempt = info.WorkflowExecution.RunID
	var appErr *temporal.ApplicationError
	if notice.Kind == activities.NoticeRunFailed && errors.As(runErr, &appErr) {
		notice.ErrorType = appErr.Type()
	}
	kind, summary := "event", fmt.Sprintf("Event: %s completed", s.RunID)
	if notice.Kind == activities.NoticeRunFailed {
		kind, summary = "alert", fmt.Sprintf("Alert: %s failed at %s", s.RunID, notice.FailedStage)
	}
	cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
		WorkflowID:        fmt.Sprintf("%s-%s-%s", info.WorkflowExecution.ID, kind, info.WorkflowExecution.RunID),
		ParentClosePolicy: enumspb.PARENT_CLOSE_POLICY_ABANDON,
		StaticSummary:     summary,
	})
	f := workflow.ExecuteChildWorkflow(cctx, Notify, NotifyInput{Notice: notice})
	if err := f.GetChildWorkflowExecution().Get(ctx, nil); err != nil {
		workflow.GetLogger(ctx).Error("start notice", "kind", kind, "error", err)
	}
}

// notice is the summary as the Notifier sends it.
func (s *Summary) notice() activities.RunNotice {
	n := activities.RunNotice{
		Kind:        activities.NoticeRunCompleted,
		RunID:       s.RunID,
		File:        s.File,
		SHA256:      s.SHA256,
		Status:      s.Status,
		FailedStage: s.FailedStage(),
		Error:       s.Error,
		Counts: activities.Counts{
			RowsRead: s.RowsRead, Ingested: s.Ingested, New: s.New, Rejected: s.Rejected,
			InError: s.InError, Tagged: s.Tagged, Annotated: s.Annotated,
		},
		Outputs: activities.NoticeOutputs{
			Dir: s.Outputs.Dir, Transactions: s.Outputs.Transactions,
			ErrorReport: s.Outputs.ErrorReport, Summary: s.Outputs.Summary,
		},
		StartedAt: s.StartedAt,
	}
	if s.FinishedAt != nil {
		n.FinishedAt = *s.FinishedAt
	}
	if s.Status == StatusFailed {
		n.Kind = activities.NoticeRunFailed
	}
	return n
}
