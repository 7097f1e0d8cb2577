package activities

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/txflow/txflow/natsjs"
)

// Kinds of notices the Notifier sends.
const (
	NoticeRunFailed    = "txflow.run.failed"
	NoticeRunCompleted = "txflow.run.completed"
)

// FailureFile is the failure report a failed run leaves under <output root>/<run id>/.
const FailureFile = "failure.json"

// ErrTypeWebhookRejected is the error type of a webhook delivery the receiver refused with a
// 4xx status other than 408 and 429: sending it again cannot succeed.
const ErrTypeWebhookRejected = "WebhookRejectedError"

// Notifier sends a run's alert and completion event to webhooks. Its methods are Temporal
// activities, registered apart from Activities. An empty webhook URL disables that webhook.
type Notifier struct {
	AlertWebhook  string       // TXFLOW_ALERT_WEBHOOK: receives one alert per failed run
	EventsWebhook string       // TXFLOW_EVENTS_WEBHOOK: receives one event per completed run
	OutputRoot    string       // failure reports are written to <OutputRoot>/<run id>/failure.json
	UIURL         string       // base address of the Temporal Web UI, for links; none when empty
	Client        *http.Client // http.DefaultClient with a 30 s timeout when nil
	// Broker also receives every notice, on txflow.runs.failed or txflow.runs.completed, when
	// delivery is on (TXFLOW_NATS_URL); nil otherwise.
	Broker Publisher
}

// NoticeOutputs are the paths of a run's output files, on the worker's file system.
type NoticeOutputs struct {
	Dir          string `json:"dir,omitempty"`
	Transactions string `json:"transactions,omitempty"`
	ErrorReport  string `json:"error_report,omitempty"`
	Summary      string `json:"summary,omitempty"`
	Failure      string `json:"failure,omitempty"`
	// Error says why the failure report could not be written (alerts only): the alert is sent
	// all the same.
	Error string `json:"error,omitempty"`
}

// RunNotice is the JSON body of an alert or an event, and the content of failure.json.
type RunNotice struct {
	Kind  string `json:"kind"` // NoticeRunFailed or NoticeRunCompleted
	RunID string `json:"run_id"`
	File  string `json:"file"`
	// Account is the run's account (ProcessFileInput.Account; "default" when none was given);
	// absent only from the notices of runs started before accounts existed.
	Account     string        `json:"account,omitempty"`
	SHA256      string        `json:"sha256,omitempty"`
	Status      string        `json:"status"`
	FailedStage string        `json:"failed_stage,omitempty"` // the first stage that failed
	Error       string        `json:"error,omitempty"`        // root cause of every failed stage
	ErrorType   string        `json:"error_type,omitempty"`   // type of the error the run failed with, e.g. BadPathError
	Counts      Counts        `json:"counts"`                 // as in the summary (counts.go)
	Outputs     NoticeOutputs `json:"outputs"`
	StartedAt   time.Time     `json:"started_at"`
	FinishedAt  time.Time     `json:"finished_at"`
	Namespace   string        `json:"namespace,omitempty"`
	WebUI       string        `json:"web_ui,omitempty"` // link to the run in the Web UI
	// Attempt is the Temporal run id of the run's workflow: a run id run again has several.
	Attempt string `json:"attempt,omitempty"`
	// RulesVersion is the version of the rules the run applied; absent when Ingest did not
	// complete, and for runs started before versions existed.
	RulesVersion int `json:"rules_version,omitempty"`
}

// NotifyResult says what a notice activity did.
type NotifyResult struct {
	Posted      bool   // the notice was delivered to a webhook
	Report      string // path of failure.json (alerts only)
	ReportError string // why failure.json could not be written, when it could not (alerts only)
	Published   bool   `json:",omitempty"` // the broker acknowledged the notice
}

// Alert POSTs the notice of a failed run to the alert webhook, when one is configured, and
// writes its failure report (failure.json beside its outputs). The two do not depend on each
// other: when the report cannot be written (an output root full or not writable), the alert is
// sent all the same, its outputs.error saying why, and the result's ReportError asks the caller
// to write the report later with WriteFailureReport. A run refused for its path (ErrorType
// ErrTypeBadPath) gets no report and no output directory.
//
// With a Broker, the notice is also published to txflow.runs.failed, before the webhook is
// called; a broker that cannot be reached yields a plain error, for a retry.
//
// A webhook that cannot be reached, or answers 408, 429 or 5xx, yields a plain error: the
// activity is retried. Any other 4xx yields a non-retryable ErrTypeWebhookRejected error.
func (n *Notifier) Alert(ctx context.Context, notice RunNotice) (NotifyResult, error) {
	notice.Kind = NoticeRunFailed
	n.complete(ctx, &notice)
	var res NotifyResult
	if notice.ErrorType != ErrTypeBadPath {
		report, err := n.writeFailure(ctx, notice)
		switch {
		case errors.Is(err, errSuperseded):
			notice.Outputs.Error = fmt.Sprintf("failure report not written: %v", err)
		case err != nil:
			res.ReportError = fmt.Sprintf("failure report not written: %v", err)
			notice.Outputs.Error = res.ReportError
			if activity.IsActivity(ctx) {
				activity.GetLogger(ctx).Warn("write failure report", "run_id", notice.RunID, "error", err)
			}
		default:
			res.Report = report
			notice.Outputs.Failure = report
		}
	}
	if n.AlertWebhook == "" && n.Broker == nil {
		return res, nil
	}
	body, err := json.MarshalIndent(notice, "", "  ")
	if err != nil {
		return res, fmt.Errorf("encode alert: %w", err)
	}
	if n.Broker != nil {
		if err := n.publish(ctx, notice, body); err != nil {
			return res, err
		}
		res.Published = true
	}
	if n.AlertWebhook == "" {
		return res, nil
	}
	if err := n.post(ctx, n.AlertWebhook, notice, body); err != nil {
		return res, err
	}
	res.Posted = true
	return res, nil
}

// WriteFailureReport writes the failure report of a failed run, for an Alert that could not.
// Its errors are those of OpenRunDir and of the file system, for a retry.
func (n *Notifier) WriteFailureReport(ctx context.Context, notice RunNotice) (NotifyResult, error) {
	notice.Kind = NoticeRunFailed
	n.complete(ctx, &notice)
	report, err := n.writeFailure(ctx, notice)
	if errors.Is(err, errSuperseded) {
		return NotifyResult{}, nil // a later run owns the directory: nothing to report there
	}
	if err != nil {
		return NotifyResult{}, err
	}
	return NotifyResult{Report: report}, nil
}

// writeFailure writes failure.json in the run's output directory and returns its path. When the
// directory holds the files of another attempt of the run, it takes it over only if its own
// attempt is the run's latest: an alert retried late never removes the outputs of a newer run.
func (n *Notifier) writeFailure(ctx context.Context, notice RunNotice) (string, error) {
	dir, err := OpenRunDir(n.OutputRoot, notice.RunID)
	if err != nil {
		return "", err
	}
	defer dir.Close()
	if notice.Attempt != "" {
		owner, err := dir.Owner()
		if err != nil {
			return "", err
		}
		if owner != "" && owner != notice.Attempt {
			latest, err := latestAttempt(ctx, notice.RunID)
			if err != nil {
				return "", err
			}
			if latest != "" && latest != notice.Attempt {
				return "", fmt.Errorf("%s: %w (%s)", dir.Dir, errSuperseded, latest)
			}
		}
		if err := dir.Claim(notice.Attempt); err != nil {
			return "", typedError(err, false)
		}
	}
	notice.Outputs.Failure = dir.path(FailureFile)
	notice.Outputs.Error = ""
	body, err := json.MarshalIndent(notice, "", "  ")
	if err != nil {
		return "", fmt.Errorf("encode failure report: %w", err)
	}
	if err := writeBytes(dir.Root, FailureFile, append(body, '\n')); err != nil {
		return "", fmt.Errorf("write failure report: %w", typedError(err, false))
	}
	return notice.Outputs.Failure, nil
}

// errSuperseded says that a later run of the same run id owns the output directory.
var errSuperseded = errors.New("the directory holds the outputs of a later run")

// latestAttempt returns the Temporal run id of the latest run of the workflow runID, or ""
// outside an activity.
func latestAttempt(ctx context.Context, runID string) (string, error) {
	if !activity.IsActivity(ctx) {
		return "", nil
	}
	desc, err := activity.GetClient(ctx).DescribeWorkflowExecution(ctx, runID, "")
	if err != nil {
		return "", fmt.Errorf("describe %s: %w", runID, err)
	}
	return desc.GetWorkflowExecutionInfo().GetExecution().GetRunId(), nil
}

// Event POSTs the notice of a completed run to the events webhook, when one is configured, and
// publishes it to txflow.runs.completed with a Broker. It returns the same errors as Alert.
func (n *Notifier) Event(ctx context.Context, notice RunNotice) (NotifyResult, error) {
	if n.EventsWebhook == "" && n.Broker == nil {
		return NotifyResult{}, nil
	}
	notice.Kind = NoticeRunCompleted
	n.complete(ctx, &notice)
	body, err := json.Marshal(notice)
	if err != nil {
		return NotifyResult{}, fmt.Errorf("encode event: %w", err)
	}
	var res NotifyResult
	if n.Broker != nil {
		if err := n.publish(ctx, notice, body); err != nil {
			return res, err
		}
		res.Published = true
	}
	if n.EventsWebhook == "" {
		return res, nil
	}
	if err := n.post(ctx, n.EventsWebhook, notice, body); err != nil {
		return res, err
	}
	res.Posted = true
	return res, nil
}

// publish hands the notice to the broker, with the webhook's body. A broker that cannot be
// reached or does not acknowledge it yields a plain error, for a retry, like a webhook that is
// down; the message id (NoticeMsg) lets the stream drop a notice published again.
func (n *Notifier) publish(ctx context.Context, notice RunNotice, body []byte) error {
	if _, err := n.Broker.Publish(ctx, []natsjs.Msg{NoticeMsg(notice, body)}); err != nil {
		return fmt.Errorf("%s: publish %s: %w", WaitingForBroker, notice.Kind, err)
	}
	return nil
}

// complete fills in what the workflow cannot know: the namespace and the Web UI link.
func (n *Notifier) complete(ctx context.Context, notice *RunNotice) {
	if activity.IsActivity(ctx) && notice.Namespace == "" {
		notice.Namespace = activity.GetInfo(ctx).WorkflowNamespace
	}
	if n.UIURL != "" && notice.WebUI == "" && notice.Namespace != "" {
		notice.WebUI = fmt.Sprintf("%s/namespaces/%s/workflows/%s",
			strings.TrimRight(n.UIURL, "/"), url.PathEscape(notice.Namespace), url.PathEscape(notice.RunID))
	}
}

// post delivers body to the webhook. The Idempotency-Key header (kind and run id) lets a
// receiver drop a delivery retried after its answer was lost.
func (n *Notifier) post(ctx context.Context, webhook string, notice RunNotice, body []byte) error {
	client := n.Client
	if client == nil {
		client = &http.Client{Timeout: 30 * time.Second}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, webhook, bytes.NewReader(body))
	if err != nil {
		err = fmt.Errorf("webhook request: %w", err)
		return temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeWebhookRejected, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "txflow-notifier")
	req.Header.Set("Idempotency-Key", notice.Kind+"/"+notice.RunID)
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("post %s to webhook: %w", notice.Kind, redactURLError(err))
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil
	}
	msg := fmt.Sprintf("webhook answered %s to %s: %s", resp.Status, notice.Kind, strings.TrimSpace(string(answer)))
	if resp.StatusCode >= 400 && resp.StatusCode < 500 &&
		resp.StatusCode != http.StatusRequestTimeout && resp.StatusCode != http.StatusTooManyRequests {
		return temporal.NewNonRetryableApplicationError(msg, ErrTypeWebhookRejected, nil)
	}
	return errors.New(msg)
}

// redactURLError drops the URL from a transport error: webhook URLs often carry a secret token.
func redactURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s: %w", strings.ToLower(ue.Op), ue.Err)
	}
	return err
}
