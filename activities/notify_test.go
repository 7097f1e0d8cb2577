package activities

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
)

func TestNotifyWebhookAnswers(t *testing.T) {
	for _, tc := range []struct {
		status    int
		retryable bool
	}{
		{http.StatusServiceUnavailable, true},
		{http.StatusTooManyRequests, true},
		{http.StatusRequestTimeout, true},
		{http.StatusBadRequest, false},
		{http.StatusNotFound, false},
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, "no", tc.status)
		}))
		var s testsuite.WorkflowTestSuite
		env := s.NewTestActivityEnvironment()
		n := &Notifier{AlertWebhook: srv.URL, EventsWebhook: srv.URL, OutputRoot: t.TempDir()}
		env.RegisterActivity(n)
		_, err := env.ExecuteActivity(n.Event, RunNotice{RunID: "txflow-0123456789abcdef"})
		srv.Close()
		require.Error(t, err, tc.status)
		var appErr *temporal.ApplicationError
		require.True(t, errors.As(err, &appErr))
		require.Equal(t, tc.retryable, appErr.Type() != ErrTypeWebhookRejected, "status %d", tc.status)
	}
}

func TestNotifyWithoutWebhooks(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	n := &Notifier{OutputRoot: t.TempDir(), UIURL: "http://ui.example/"}
	env.RegisterActivity(n)
	v, err := env.ExecuteActivity(n.Event, RunNotice{RunID: "txflow-0123456789abcdef"})
	require.NoError(t, err)
	var res NotifyResult
	require.NoError(t, v.Get(&res))
	require.False(t, res.Posted)

	// An alert still leaves its failure report.
	v, err = env.ExecuteActivity(n.Alert, RunNotice{RunID: "txflow-0123456789abcdef", Error: "ingest failed: boom"})
	require.NoError(t, err)
	require.NoError(t, v.Get(&res))
	require.Equal(t, filepath.Join(n.OutputRoot, "txflow-0123456789abcdef", FailureFile), res.Report)
	b, err := os.ReadFile(res.Report)
	require.NoError(t, err)
	require.Contains(t, string(b), `"error": "ingest failed: boom"`)
	require.Contains(t, string(b), `"kind": "txflow.run.failed"`)
}
