package activities

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
)

// With delivery on, a run's notice also goes to the broker, with the webhook's body and an id
// naming the run's attempt and the kind; a broker that is down is retried like a webhook that is.
func TestNoticesPublishedToTheBroker(t *testing.T) {
	srv, broker := openBroker(t)
	var posted []string
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		posted = append(posted, string(b))
	}))
	t.Cleanup(hook.Close)
	n := &Notifier{AlertWebhook: hook.URL, OutputRoot: t.TempDir(), Broker: broker}
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(n)
	started := time.Date(2026, 1, 2, 6, 0, 0, 0, time.UTC)

	// A completed run without events webhook: published only.
	done := RunNotice{RunID: "txflow-acme-1b2666569dcef9c4", File: "a.csv", Account: "acme", Status: "completed", Attempt: "a1",
		Counts: Counts{RowsRead: 2, Ingested: 2, New: 2, Published: 2}, StartedAt: started, FinishedAt: started.Add(time.Second)}
	v, err := env.ExecuteActivity(n.Event, done)
	require.NoError(t, err)
	var res NotifyResult
	require.NoError(t, v.Get(&res))
	require.Equal(t, NotifyResult{Published: true}, res)

	// A failed run: failure.json, the broker and the webhook, all with one body.
	failed := RunNotice{RunID: "txflow-acme-1b2666569dcef9c4", File: "a.csv", Account: "acme", Status: "failed", Attempt: "a2",
		FailedStage: "ingest", Error: "bad", ErrorType: ErrTypeBadFile, StartedAt: started, FinishedAt: started.Add(time.Second)}
	v, err = env.ExecuteActivity(n.Alert, failed)
	require.NoError(t, err)
	require.NoError(t, v.Get(&res))
	require.True(t, res.Published)
	require.True(t, res.Posted)
	report, err := os.ReadFile(res.Report)
	require.NoError(t, err)

	msgs := streamMessages(t, broker.JetStream())
	require.Len(t, msgs, 2)
	id, subject, body := splitMessage(msgs[0])
	require.Equal(t, "run-txflow-acme-1b2666569dcef9c4-a1-txflow.run.completed", id)
	require.Equal(t, "txflow.runs.completed", subject)
	var got RunNotice
	require.NoError(t, json.Unmarshal([]byte(body), &got))
	require.Equal(t, NoticeRunCompleted, got.Kind)
	require.EqualValues(t, 2, got.Counts.Published)
	id, subject, body = splitMessage(msgs[1])
	require.Equal(t, "run-txflow-acme-1b2666569dcef9c4-a2-txflow.run.failed", id)
	require.Equal(t, "txflow.runs.failed", subject)
	require.Equal(t, []string{body}, posted, "the webhook's body")
	require.JSONEq(t, body, string(report))

	// The broker down: a retryable error, the report written all the same, the webhook not called.
	srv.Stop()
	require.Eventually(t, func() bool { return broker.Ready(context.Background()) != nil }, 10*time.Second, 20*time.Millisecond)
	require.NoError(t, os.Remove(res.Report))
	_, err = env.ExecuteActivity(n.Alert, failed)
	require.Error(t, err)
	require.Contains(t, err.Error(), "waiting for the broker: publish txflow.run.failed: nats is not reachable")
	var appErr *temporal.ApplicationError
	require.True(t, errors.As(err, &appErr))
	require.False(t, appErr.NonRetryable())
	require.NotEqual(t, ErrTypeWebhookRejected, appErr.Type())
	require.Len(t, posted, 1)
	require.FileExists(t, res.Report)
}

// splitMessage splits "<id> <subject> <body>".
func splitMessage(m string) (id, subject, body string) {
	parts := strings.SplitN(m, " ", 3)
	return parts[0], parts[1], parts[2]
}
