package workflows

import (
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

// Notify delivers a run's notice: for a failed run, the failure report (failure.json) and one
// alert to TXFLOW_ALERT_WEBHOOK; for a completed run, one event to TXFLOW_EVENTS_WEBHOOK. A
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
		opts.Summary = fmt.Sprintf("Alert: write failure.json and POST the failure of %s to the alert webhook", in.Notice.RunID)
	} else {
		opts.Summary = fmt.Sprintf("Event: POST the completion of %s to the events webhook", in.Notice.RunID)
	}
	var res activities.NotifyResult
	err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, opts), fn, in.Notice).Get(ctx, &res)
	return res, err
}

// NotifyRetryFor is how long Notify keeps trying to deliver a notice.
const NotifyRetryFor = 24 * time.Hour

var notifyOptions = workflow.ActivityOptions{
	StartToCloseTimeout:    time.Minute,
	ScheduleToCloseTimeout: NotifyRetryFor,
	RetryPolicy: &temporal.RetryPolicy{
		InitialInterval:        time.Second,
		BackoffCoefficient:     2,
		MaximumInterval:        10 * time.Minute,
		NonRetryableErrorTypes: []string{activities.ErrTypeWebhookRejected, activities.ErrTypeBadPath},
	},
}

// notify starts the Notify child of a finished run and waits only for it to start. Its workflow
// id is derived from this run's, so a run sends its notice once.
func notify(ctx workflow.Context, s *Summary) {
	info := workflow.GetInfo(ctx)
	notice := s.notice()
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
