package activities

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

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

// alertReceiver is a webhook receiver that keeps the notices it got.
func alertReceiver(t *testing.T) (*httptest.Server, func() []RunNotice) {
	var mu sync.Mutex
	var got []RunNotice
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var n RunNotice
		if err := json.NewDecoder(r.Body).Decode(&n); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mu.Lock()
		got = append(got, n)
		mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	return srv, func() []RunNotice {
		mu.Lock()
		defer mu.Unlock()
		return append([]RunNotice(nil), got...)
	}
}

func TestAlertSentWhenOutputsCannotBeWritten(t *testing.T) {
	srv, notices := alertReceiver(t)
	// The output root lies below a regular file: nothing can be created there, whoever runs it.
	blocker := filepath.Join(t.TempDir(), "not-a-directory")
	require.NoError(t, os.WriteFile(blocker, nil, 0o644))
	n := &Notifier{AlertWebhook: srv.URL, OutputRoot: filepath.Join(blocker, "output")}
	notice := RunNotice{RunID: "txflow-0123456789abcdef", Attempt: "a1", Error: "ingest failed: boom"}

	res, err := n.Alert(context.Background(), notice)
	require.NoError(t, err)
	require.True(t, res.Posted)
	require.Empty(t, res.Report)
	require.Contains(t, res.ReportError, "failure report not written")
	got := notices()
	require.Len(t, got, 1)
	require.Equal(t, NoticeRunFailed, got[0].Kind)
	require.Equal(t, "ingest failed: boom", got[0].Error)
	require.Empty(t, got[0].Outputs.Failure)
	require.Contains(t, got[0].Outputs.Error, "failure report not written")
	require.Contains(t, got[0].Outputs.Error, "not a directory")

	// The report is written once the output root can be.
	_, err = n.WriteFailureReport(context.Background(), notice)
	require.Error(t, err)
	require.NoError(t, os.Remove(blocker))
	require.NoError(t, os.MkdirAll(blocker, 0o755))
	w, err := n.WriteFailureReport(context.Background(), notice)
	require.NoError(t, err)
	require.Equal(t, filepath.Join(blocker, "output", notice.RunID, FailureFile), w.Report)
	var fromFile RunNotice
	require.NoError(t, json.Unmarshal([]byte(read(t, w.Report)), &fromFile))
	require.Equal(t, "ingest failed: boom", fromFile.Error)
	require.Equal(t, w.Report, fromFile.Outputs.Failure)
	require.Empty(t, fromFile.Outputs.Error)
	require.Len(t, notices(), 1, "writing the report sends nothing")
}

func TestAlertOfRefusedPathWritesNothing(t *testing.T) {
	srv, notices := alertReceiver(t)
	root := t.TempDir()
	n := &Notifier{AlertWebhook: srv.URL, OutputRoot: root}
	res, err := n.Alert(context.Background(), RunNotice{RunID: "txflow-refused", ErrorType: ErrTypeBadPath,
		Error: "../env: path is outside the root"})
	require.NoError(t, err)
	require.True(t, res.Posted)
	require.Empty(t, res.Report)
	require.Empty(t, res.ReportError)
	require.Len(t, notices(), 1)
	require.Equal(t, ErrTypeBadPath, notices()[0].ErrorType)
	require.Empty(t, notices()[0].Outputs.Failure)
	entries, err := os.ReadDir(root)
	require.NoError(t, err)
	require.Empty(t, entries, "no output directory for a refused path")

	// Any other failure leaves its report.
	res, err = n.Alert(context.Background(), RunNotice{RunID: "txflow-bad-file", ErrorType: ErrTypeBadFile})
	require.NoError(t, err)
	require.FileExists(t, filepath.Join(root, "txflow-bad-file", FailureFile))
	require.Equal(t, res.Report, notices()[1].Outputs.Failure)
}

// The alert the documentation shows has the fields of a real alert, no more, no fewer: those of
// a file refused by Ingest, as its example is.
func TestDocumentedAlertMatchesTheRealBody(t *testing.T) {
	var raw []byte
	srv := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		raw, _ = io.ReadAll(r.Body)
	}))
	defer srv.Close()
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	n := &Notifier{AlertWebhook: srv.URL, OutputRoot: t.TempDir(), UIURL: "http://localhost:8233"}
	env.RegisterActivity(n)
	_, err := env.ExecuteActivity(n.Alert, RunNotice{RunID: "txflow-1b2666569dcef9c4", File: "inbox/page.csv", Account: "default",
		SHA256: "1b2666569dcef9c4aa", Status: "failed", FailedStage: "ingest", Error: "line 1: expected a header",
		ErrorType: ErrTypeBadFile, Attempt: "0190b5b2-…", StartedAt: time.Now(), FinishedAt: time.Now()})
	require.NoError(t, err)

	docs, err := filepath.Glob("../docs/*.md")
	require.NoError(t, err)
	var example []byte
	for _, p := range append(docs, "../README.md") {
		b, err := os.ReadFile(p)
		require.NoError(t, err)
		if i := bytes.Index(b, []byte("```json\n{\n  \"kind\": \"txflow.run.failed\"")); i >= 0 {
			example = b[i+len("```json\n"):]
			example = example[:bytes.Index(example, []byte("```"))]
		}
	}
	require.NotNil(t, example, "the documentation shows an alert")
	keys := func(b []byte) (top, counts, outputs []string) {
		var m map[string]json.RawMessage
		require.NoError(t, json.Unmarshal(b, &m), string(b))
		var c, o map[string]any
		require.NoError(t, json.Unmarshal(m["counts"], &c))
		require.NoError(t, json.Unmarshal(m["outputs"], &o))
		return slices.Sorted(maps.Keys(m)), slices.Sorted(maps.Keys(c)), slices.Sorted(maps.Keys(o))
	}
	wantTop, wantCounts, wantOutputs := keys(raw)
	top, counts, outputs := keys(example)
	require.Equal(t, wantTop, top)
	require.Equal(t, wantCounts, counts)
	require.Equal(t, wantOutputs, outputs)
}
