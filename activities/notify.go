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
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
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
}

// Counts are a run's row counts, as in its summary.
type Counts struct {
	RowsRead  int64 `json:"rows_read"`
	Ingested  int64 `json:"ingested"`
	New       int64 `json:"new"`
	Rejected  int64 `json:"rejected"`
	InError   int64 `json:"in_error"`
	Tagged    int64 `json:"tagged"`
	Annotated int64 `json:"annotated"`
}

// NoticeOutputs are the paths of a run's output files, on the worker's file system.
type NoticeOutputs struct {
	Dir          string `json:"dir,omitempty"`
	Transactions string `json:"transactions,omitempty"`
	ErrorReport  string `json:"error_report,omitempty"`
	Summary      string `json:"summary,omitempty"`
	Failure      string `json:"failure,omitempty"`
}

// RunNotice is the JSON body of an alert or an event, and the content of failure.json.
type RunNotice struct {
	Kind        string        `json:"kind"` // NoticeRunFailed or NoticeRunCompleted
	RunID       string        `json:"run_id"`
	File        string        `json:"file"`
	SHA256      string        `json:"sha256,omitempty"`
	Status      string        `json:"status"`
	FailedStage string        `json:"failed_stage,omitempty"` // the first stage that failed
	Error       string        `json:"error,omitempty"`        // root cause of every failed stage
	Counts      Counts        `json:"counts"`
	Outputs     NoticeOutputs `json:"outputs"`
	StartedAt   time.Time     `json:"started_at"`
	FinishedAt  time.Time     `json:"finished_at"`
	Namespace   string        `json:"namespace,omitempty"`
	WebUI       string        `json:"web_ui,omitempty"` // link to the run in the Web UI
}

// NotifyResult says what a notice activity did.
type NotifyResult struct {
	Posted bool   // the notice was delivered to a webhook
	Report string // path of failure.json (alerts only)
}

// Alert writes the failure report of a failed run (failure.json beside its outputs) and POSTs
// the notice to the alert webhook, when one is configured.
//
// A webhook that cannot be reached, or answers 408, 429 or 5xx, yields a plain error: the
// activity is retried. Any other 4xx yields a non-retryable ErrTypeWebhookRejected error.
func (n *Notifier) Alert(ctx context.Context, notice RunNotice) (NotifyResult, error) {
	notice.Kind = NoticeRunFailed
	n.complete(ctx, &notice)
	dir, err := OutputDir(n.OutputRoot, notice.RunID)
	if err != nil {
		return NotifyResult{}, temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeBadPath, err)
	}
	notice.Outputs.Failure = filepath.Join(dir, FailureFile)
	body, err := json.MarshalIndent(notice, "", "  ")
	if err != nil {
		return NotifyResult{}, fmt.Errorf("encode alert: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return NotifyResult{}, fmt.Errorf("create output directory: %w", err)
	}
	if err := writeBytesAtomic(notice.Outputs.Failure, append(body, '\n')); err != nil {
		return NotifyResult{}, fmt.Errorf("write failure report: %w", err)
	}
	res := NotifyResult{Report: notice.Outputs.Failure}
	if n.AlertWebhook == "" {
		return res, nil
	}
	if err := n.post(ctx, n.AlertWebhook, notice, body); err != nil {
		return res, err
	}
	res.Posted = true
	return res, nil
}

// Event POSTs the notice of a completed run to the events webhook, when one is configured. It
// returns the same errors as Alert.
func (n *Notifier) Event(ctx context.Context, notice RunNotice) (NotifyResult, error) {
	if n.EventsWebhook == "" {
		return NotifyResult{}, nil
	}
	notice.Kind = NoticeRunCompleted
	n.complete(ctx, &notice)
	body, err := json.Marshal(notice)
	if err != nil {
		return NotifyResult{}, fmt.Errorf("encode event: %w", err)
	}
	if err := n.post(ctx, n.EventsWebhook, notice, body); err != nil {
		return NotifyResult{}, err
	}
	return NotifyResult{Posted: true}, nil
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

// writeBytesAtomic writes b to path through a temporary file, synced and renamed.
func writeBytesAtomic(path string, b []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
