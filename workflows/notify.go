package workflows

import (
	"errors"
	"fmt"
	"slices"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/txflow/txflow/activities"
)

// NotifyInput is the input of Notify.
type NotifyInput struct {
	Notice activities.RunNotice // Kind says which: activities.NoticeRunFailed or NoticeRunCompleted
	// Delivered says that the run delivered the alert itself but could not write failure.json:
	// Notify only writes the report.
	Delivered bool `json:",omitempty"`
}

// Notify keeps delivering a run's notice that the run could not deliver itself (notify): for a
// failed run, one alert to TXFLOW_ALERT_WEBHOOK and the failure report (failure.json; none for
// a run refused for its path); for a completed run, one event to TXFLOW_EVENTS_WEBHOOK. The
// alert does not wait for the report: when the report cannot be written the alert says so, is
// sent, and the report is written by a later activity, retried like the deliveries. A receiver
// that is down or answers 408, 429 or 5xx is retried with exponential backoff (1 s doubling up
// to 10 min) for up to NotifyRetryFor; a receiver that refuses the notice with another 4xx is
// not retried. ProcessFile starts it as an abandoned child workflow, so a slow receiver never
// holds a run open nor changes its outcome.
func Notify(ctx workflow.Context, in NotifyInput) (activities.NotifyResult, error) {
	var n *activities.Notifier
	opts := notifyOptions
	res := activities.NotifyResult{Posted: in.Delivered}
	if !in.Delivered {
		fn, summary := noticeActivity(in.Notice)
		opts.Summary = summary
		if err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, opts), fn, in.Notice).Get(ctx, &res); err != nil {
			return res, err
		}
		if res.ReportError == "" {
			return res, nil
		}
	}
	// The alert went out without its report: write the report now, retried on its own.
	opts.Summary = fmt.Sprintf("Write failure.json of %s", in.Notice.RunID)
	var report activities.NotifyResult
	if err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, opts), n.WriteFailureReport, in.Notice).Get(ctx, &report); err != nil {
		return res, fmt.Errorf("write failure report: %w", err)
	}
	res.Report, res.ReportError = report.Report, ""
	return res, nil
}

// noticeActivity returns the Notifier activity that delivers notice, and its summary for the
// Web UI.
func noticeActivity(notice activities.RunNotice) (any, string) {
	var n *activities.Notifier
	if notice.Kind == activities.NoticeRunFailed {
		return n.Alert, fmt.Sprintf("Alert: POST the failure of %s to the alert webhook and write failure.json", notice.RunID)
	}
	return n.Event, fmt.Sprintf("Event: POST the completion of %s to the events webhook", notice.RunID)
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

// Inline delivery, in the run's own history: a receiver that answers at once gets its notice
// within seconds; one that is down is left to the Notify child.
const (
	InlineNoticeTimeout  = 15 * time.Second
	InlineNoticeAttempts = 2
)

var inlineNoticeOptions = workflow.ActivityOptions{
	StartToCloseTimeout: InlineNoticeTimeout,
	RetryPolicy: &temporal.RetryPolicy{
		InitialInterval:        time.Second,
		BackoffCoefficient:     2,
		MaximumAttempts:        InlineNoticeAttempts,
		NonRetryableErrorTypes: notifyNonRetryable,
	},
}

// inlineNoticeChange marks, for workflow.GetVersion, a run delivering its notice itself and
// starting Notify only for a receiver that is down. Runs recorded before it start Notify always.
const inlineNoticeChange = "notice-delivered-by-the-run"

// notify delivers the notice of a finished run, which ended with runErr: an alert and
// failure.json for a failed run, an event for a completed one. It runs the Notifier activity in
// the run itself, with a short timeout and few attempts, and starts the abandoned Notify child
// to keep trying only when that failed with a retryable error (a receiver down or slow), or
// when the alert went out but failure.json could not be written. A receiver that refused the
// notice (a 4xx) is not tried again. The activity runs also when no webhook is configured: the
// worker's configuration is not the workflow's to read, and failure.json is written all the
// same. Nothing here changes the run's outcome. A small run (local) runs the activity as a
// local activity, as its stages; a lean run (leanChange, which came after inlineNoticeChange)
// delivers its notice itself without asking for the version.
func notify(ctx workflow.Context, s *Summary, runErr error, local, lean bool) {
	info := workflow.GetInfo(ctx)
	notice := s.notice()
	notice.Attempt = info.WorkflowExecution.RunID
	var appErr *temporal.ApplicationError
	if notice.Kind == activities.NoticeRunFailed && errors.As(runErr, &appErr) {
		notice.ErrorType = appErr.Type()
	}
	if !lean && workflow.GetVersion(ctx, inlineNoticeChange, workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		startNotify(ctx, NotifyInput{Notice: notice})
		return
	}
	fn, summary := noticeActivity(notice)
	opts := inlineNoticeOptions
	opts.Summary = summary
	var res activities.NotifyResult
	err := execute(workflow.WithActivityOptions(ctx, opts), local, fn, notice).Get(ctx, &res)
	switch {
	case err == nil && res.ReportError != "":
		startNotify(ctx, NotifyInput{Notice: notice, Delivered: true})
	case err == nil:
	case refused(err):
		workflow.GetLogger(ctx).Error("notice refused, not retried", "run_id", s.RunID, "kind", notice.Kind, "error", err)
	default:
		workflow.GetLogger(ctx).Warn("notice not delivered, retried by Notify", "run_id", s.RunID, "kind", notice.Kind, "error", err)
		startNotify(ctx, NotifyInput{Notice: notice})
	}
}

// refused says whether a notice activity failed with an error that trying again cannot mend.
func refused(err error) bool {
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) {
		return false
	}
	return appErr.NonRetryable() || slices.Contains(notifyNonRetryable, appErr.Type())
}

// startNotify starts the Notify child of the run and waits only for it to start. Its workflow id
// is derived from this run's, so a run starts it once.
func startNotify(ctx workflow.Context, in NotifyInput) {
	info := workflow.GetInfo(ctx)
	kind, summary := "event", fmt.Sprintf("Event: %s completed", in.Notice.RunID)
	if in.Notice.Kind == activities.NoticeRunFailed {
		kind, summary = "alert", fmt.Sprintf("Alert: %s failed at %s", in.Notice.RunID, in.Notice.FailedStage)
	}
	cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
		WorkflowID:        fmt.Sprintf("%s-%s-%s", info.WorkflowExecution.ID, kind, info.WorkflowExecution.RunID),
		ParentClosePolicy: enumspb.PARENT_CLOSE_POLICY_ABANDON,
		StaticSummary:     summary,
	})
	f := workflow.ExecuteChildWorkflow(cctx, Notify, in)
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
		Account:     s.Account,
		SHA256:      s.SHA256,
		Status:      s.Status,
		FailedStage: s.FailedStage(),
		Error:       s.Error,
		Counts:      s.Counts,
		Outputs: activities.NoticeOutputs{
			Dir: s.Outputs.Dir, Transactions: s.Outputs.Transactions,
			ErrorReport: s.Outputs.ErrorReport, Summary: s.Outputs.Summary,
		},
		StartedAt: s.StartedAt,
	}
	if s.FinishedAt != nil {
		n.FinishedAt = *s.FinishedAt
	}
	n.RulesVersion = s.RulesVersion
	if s.Status == StatusFailed {
		n.Kind = activities.NoticeRunFailed
	}
	return n
}
