package metrics_test

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/txflow/txflow/internal/metrics"
)

func scrape(t *testing.T, h http.Handler) string {
	t.Helper()
	srv := httptest.NewServer(h)
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, resp.Header.Get("Content-Type"), "text/plain")
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return string(b)
}

func TestExposedNames(t *testing.T) {
	r, err := metrics.New(nil, time.Hour) // only Close hands values over
	require.NoError(t, err)
	h := r.Handler().WithTags(map[string]string{"namespace": "default", "workflow_type": "ProcessFile"})

	h.Counter("txflow_rows_ingested").Inc(20)
	h.Counter("txflow_rows_ingested").Inc(3)
	h.WithTags(map[string]string{"status": "completed"}).Counter("txflow_runs").Inc(1)
	h.WithTags(map[string]string{"stage": "ingest"}).Timer("txflow_stage_duration").Record(1500 * time.Millisecond)
	h.Gauge("txflow-in flight").Update(2)

	before := scrape(t, r.HTTPHandler())
	require.Contains(t, before, `txflow_rows_ingested_total{namespace="default",workflow_type="ProcessFile"} 0`+"\n",
		"counter increments are handed over at the interval")
	require.NotContains(t, before, "tally_internal")
	require.Contains(t, before, "go_goroutines ")
	require.Contains(t, before, "process_cpu_seconds_total ")

	require.NoError(t, r.Close())
	out := scrape(t, r.HTTPHandler())
	for _, line := range []string{
		"# TYPE txflow_rows_ingested_total counter",
		`txflow_rows_ingested_total{namespace="default",workflow_type="ProcessFile"} 23`,
		`txflow_runs_total{namespace="default",status="completed",workflow_type="ProcessFile"} 1`,
		"# TYPE txflow_stage_duration_seconds histogram",
		`txflow_stage_duration_seconds_bucket{namespace="default",stage="ingest",workflow_type="ProcessFile",le="1"} 0`,
		`txflow_stage_duration_seconds_bucket{namespace="default",stage="ingest",workflow_type="ProcessFile",le="2"} 1`,
		`txflow_stage_duration_seconds_bucket{namespace="default",stage="ingest",workflow_type="ProcessFile",le="3600"} 1`,
		`txflow_stage_duration_seconds_bucket{namespace="default",stage="ingest",workflow_type="ProcessFile",le="+Inf"} 1`,
		`txflow_stage_duration_seconds_sum{namespace="default",stage="ingest",workflow_type="ProcessFile"} 1.5`,
		`txflow_stage_duration_seconds_count{namespace="default",stage="ingest",workflow_type="ProcessFile"} 1`,
		`txflow_in_flight{namespace="default",workflow_type="ProcessFile"} 2`,
	} {
		require.Contains(t, out, line+"\n")
	}
}

func TestIntervalHandsValuesOver(t *testing.T) {
	r, err := metrics.New(nil, 20*time.Millisecond)
	require.NoError(t, err)
	defer r.Close()
	r.Handler().Counter("temporal_workflow_completed").Inc(1)
	require.Eventually(t, func() bool {
		return strings.Contains(scrape(t, r.HTTPHandler()), "temporal_workflow_completed_total 1\n")
	}, 5*time.Second, 20*time.Millisecond)
}

func TestConflictingLabelsAreLoggedNotFatal(t *testing.T) {
	var logs bytes.Buffer
	r, err := metrics.New(slog.New(slog.NewTextHandler(&logs, nil)), time.Hour)
	require.NoError(t, err)
	r.Handler().WithTags(map[string]string{"stage": "tag"}).Counter("txflow_chunks").Inc(1)
	r.Handler().WithTags(map[string]string{"other": "x"}).Counter("txflow_chunks").Inc(1)
	require.NoError(t, r.Close())
	out := scrape(t, r.HTTPHandler())
	require.Contains(t, out, `txflow_chunks_total{stage="tag"} 1`+"\n")
	require.Contains(t, logs.String(), "metric dropped")
}

// Each of txflow's own metrics has its help text in the exposition, not the reporter's generic
// "<name> counter"; the SDK's metrics keep theirs.
func TestTxflowMetricsHaveHelp(t *testing.T) {
	r, err := metrics.New(nil, time.Hour)
	require.NoError(t, err)
	h := r.Handler().WithTags(map[string]string{"namespace": "default", "workflow_type": "ProcessFile"})
	for _, name := range []string{"txflow_rows_ingested", "txflow_rows_rejected", "txflow_rows_in_error",
		"txflow_rows_tagged", "txflow_rows_annotated"} {
		h.Counter(name).Inc(2)
	}
	h.WithTags(map[string]string{"status": "failed"}).Counter("txflow_runs").Inc(1)
	h.WithTags(map[string]string{"stage": "dump"}).Timer("txflow_stage_duration").Record(250 * time.Millisecond)
	// Delivery's, emitted by the Publish activity.
	a := r.Handler().WithTags(map[string]string{"namespace": "default", "activity_type": "Publish"})
	a.Counter("txflow_messages_published").Inc(5000)
	a.Timer("txflow_delivery_lag").Record(90 * time.Second)
	// The rejections per reason, emitted by the WriteSummary activity.
	r.Handler().WithTags(map[string]string{"namespace": "default", "activity_type": "WriteSummary", "reason": "invalid_amount"}).
		Counter("txflow_rows_rejected_by_reason").Inc(3)
	h.Counter("temporal_request").Inc(1)
	require.NoError(t, r.Close())
	out := scrape(t, r.HTTPHandler())

	require.Len(t, metrics.Help, 10)
	for name, help := range metrics.Help {
		require.NotEmpty(t, help)
		require.Contains(t, out, "# HELP "+name+" "+help+"\n")
		require.NotContains(t, out, "# HELP "+name+" "+name, "no generic help")
	}
	require.Contains(t, out, "# HELP txflow_rows_ingested_total Rows accepted by Ingest")
	// The values are those recorded, through the help-carrying metrics.
	require.Contains(t, out, `txflow_rows_tagged_total{namespace="default",workflow_type="ProcessFile"} 2`+"\n")
	require.Contains(t, out, `txflow_runs_total{namespace="default",status="failed",workflow_type="ProcessFile"} 1`+"\n")
	require.Contains(t, out, `txflow_stage_duration_seconds_bucket{namespace="default",stage="dump",workflow_type="ProcessFile",le="0.5"} 1`+"\n")
	require.Contains(t, out, `txflow_stage_duration_seconds_sum{namespace="default",stage="dump",workflow_type="ProcessFile"} 0.25`+"\n")
	require.Contains(t, out, `txflow_messages_published_total{activity_type="Publish",namespace="default"} 5000`+"\n")
	require.Contains(t, out, `txflow_delivery_lag_seconds_bucket{activity_type="Publish",namespace="default",le="120"} 1`+"\n")
	require.Contains(t, out, `txflow_rows_rejected_by_reason_total{activity_type="WriteSummary",namespace="default",reason="invalid_amount"} 3`+"\n")
	require.Contains(t, out, "# HELP temporal_request_total temporal_request_total counter\n")
}
