package e2e

import (
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"

	"github.com/txflow/txflow/activities"
	"github.com/txflow/txflow/dev/internal/devtemporal"
	"github.com/txflow/txflow/internal/config"
	"github.com/txflow/txflow/internal/metrics"
	"github.com/txflow/txflow/internal/testdb"
	"github.com/txflow/txflow/workflows"
)

// observed is a harness whose worker serves HTTP on a known address, and whose Temporal server
// may run its Web UI.
type observed struct {
	*harness
	httpAddr string
}

// startObserved starts a Temporal server (with its Web UI when withUI), a database and an
// in-process worker serving /healthz, /readyz and /metrics on a free port.
func startObserved(t *testing.T, withUI bool) *observed {
	t.Helper()
	opts := devtemporal.Options{SearchAttributes: workflows.SearchAttributes()}
	if withUI {
		port, err := devtemporal.FreePort()
		require.NoError(t, err)
		opts.UIPort = port
	}
	srv := devtemporal.StartForTest(t, opts)
	port, err := devtemporal.FreePort()
	require.NoError(t, err)
	o := &observed{
		harness:  &harness{t: t, temporal: srv, dbURL: testdb.URL(t), input: t.TempDir(), output: t.TempDir()},
		httpAddr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
	}
	uiURL := srv.UIURL()
	if uiURL == "" {
		uiURL = "http://ui.example"
	}
	o.env = config.Map{
		"TEMPORAL_ADDRESS":     srv.FrontendHostPort(),
		"TEMPORAL_NAMESPACE":   srv.Namespace(),
		"TEMPORAL_CONFIG_FILE": os.DevNull,
		"DATABASE_URL":         o.dbURL,
		"TXFLOW_INPUT_DIR":     o.input,
		"TXFLOW_OUTPUT_DIR":    o.output,
		"TXFLOW_UI_URL":        uiURL,
		"TXFLOW_HTTP_ADDR":     o.httpAddr,
	}
	copySamples(t, o.input)
	runWorker(t, o.env)
	require.Eventually(t, func() bool {
		resp, err := http.Get("http://" + o.httpAddr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, time.Minute, 100*time.Millisecond, "worker never ready on %s", o.httpAddr)
	return o
}

// scrapeMetrics reads the worker's /metrics.
func (o *observed) scrapeMetrics() map[string]*dto.MetricFamily {
	o.t.Helper()
	resp, err := http.Get("http://" + o.httpAddr + "/metrics")
	require.NoError(o.t, err)
	defer resp.Body.Close()
	require.Equal(o.t, http.StatusOK, resp.StatusCode)
	var p expfmt.TextParser
	families, err := p.TextToMetricFamilies(resp.Body)
	require.NoError(o.t, err)
	return families
}

// metricValue returns the value of the counter or gauge name whose labels include want, summed over
// the series that match, and how many matched. For a histogram it sums the sample counts.
func metricValue(families map[string]*dto.MetricFamily, name string, want map[string]string) (float64, int) {
	f, ok := families[name]
	if !ok {
		return 0, 0
	}
	var sum float64
	n := 0
series:
	for _, m := range f.GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if labels[k] != v {
				continue series
			}
		}
		n++
		switch {
		case m.Counter != nil:
			sum += m.GetCounter().GetValue()
		case m.Gauge != nil:
			sum += m.GetGauge().GetValue()
		case m.Histogram != nil:
			sum += float64(m.GetHistogram().GetSampleCount())
		}
	}
	return sum, n
}

func TestMetricsExposedByWorker(t *testing.T) {
	o := startObserved(t, false)

	// Before any run: the endpoint answers, with the runtime's metrics.
	before := o.scrapeMetrics()
	require.Contains(t, before, "go_goroutines")
	require.Contains(t, before, "process_resident_memory_bytes")

	// The starter tells the run its file is small: a lean run, all local activities. The second
	// run is started without the size, as a caller that does not know it would: its Ingest is
	// an activity.
	code, out, errOut := o.starter("run", "transactions.csv")
	require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", out, errOut)
	c := dial(t, o.temporal)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sum, err := activities.HashFile(filepath.Join(o.input, "transactions_with_errors.csv"))
	require.NoError(t, err)
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: workflows.RunID("", sum), TaskQueue: workflows.TaskQueue},
		workflows.ProcessFile, workflows.ProcessFileInput{File: "transactions_with_errors.csv", SHA256: sum})
	require.NoError(t, err)
	require.NoError(t, run.Get(ctx, nil))
	s1, s2 := o.summary(o.runID("transactions.csv")), o.summary(o.runID("transactions_with_errors.csv"))

	pf := map[string]string{"namespace": "default", "task_queue": workflows.TaskQueue, "workflow_type": "ProcessFile"}
	var families map[string]*dto.MetricFamily
	// Counter increments reach the registry at the next interval (a second).
	require.Eventually(t, func() bool {
		families = o.scrapeMetrics()
		v, _ := metricValue(families, "temporal_workflow_completed_total", pf)
		return v == 2
	}, 15*time.Second, 200*time.Millisecond, "temporal_workflow_completed_total for ProcessFile never reached 2")

	// The SDK's metrics, as Prometheus names them.
	// The ones the operations page names (activities are dispatched eagerly to the worker that
	// scheduled them, so the SDK records no activity schedule-to-start latency here).
	for _, name := range []string{"temporal_workflow_task_schedule_to_start_latency_seconds",
		"temporal_activity_succeed_endtoend_latency_seconds", "temporal_worker_task_slots_available"} {
		require.Contains(t, families, name)
	}
	for name, help := range metrics.Help {
		if name == "txflow_messages_published_total" || name == "txflow_delivery_lag_seconds" {
			continue // emitted by Publish, with delivery on: this worker has none
		}
		require.Equal(t, help, families[name].GetHelp(), name)
	}
	require.Equal(t, "COUNTER", families["temporal_workflow_completed_total"].GetType().String())
	require.Equal(t, "HISTOGRAM", families["temporal_activity_execution_latency_seconds"].GetType().String())
	n, series := metricValue(families, "temporal_activity_execution_latency_seconds",
		map[string]string{"activity_type": "Ingest", "workflow_type": "ProcessFile", "task_queue": workflows.TaskQueue})
	require.Equal(t, 1, series, "one latency series for Ingest")
	require.Equal(t, 1.0, n, "one Ingest activity, that of the run started without the size")
	n, _ = metricValue(families, "temporal_local_activity_execution_latency_seconds",
		map[string]string{"activity_type": "Ingest", "workflow_type": "ProcessFile", "task_queue": workflows.TaskQueue})
	require.Equal(t, 1.0, n, "one local Ingest, that of the lean run")
	// Small runs: the other stages are local activities, with metrics of their own.
	for _, activity := range []string{"Tag", "Annotate", "ReportErrors", "Dump", "WriteSummary"} {
		n, series := metricValue(families, "temporal_local_activity_execution_latency_seconds",
			map[string]string{"activity_type": activity, "workflow_type": "ProcessFile", "task_queue": workflows.TaskQueue})
		require.Equal(t, 1, series, "one local latency series for %s", activity)
		require.GreaterOrEqual(t, n, 2.0, "%s ran at least once per run", activity)
	}
	v, _ := metricValue(families, "temporal_activity_execution_failed_total", nil)
	require.Zero(t, v, "no activity failed")
	v, _ = metricValue(families, "temporal_local_activity_execution_failed_total", nil)
	require.Zero(t, v, "no local activity failed")

	// txflow's own metrics, emitted by ProcessFile.
	expect := map[string]int64{
		"txflow_rows_ingested_total":  s1.Ingested + s2.Ingested,
		"txflow_rows_rejected_total":  s1.Rejected + s2.Rejected,
		"txflow_rows_in_error_total":  s1.InError + s2.InError,
		"txflow_rows_tagged_total":    s1.Tagged + s2.Tagged,
		"txflow_rows_annotated_total": s1.Annotated + s2.Annotated,
	}
	require.EqualValues(t, 27, expect["txflow_rows_ingested_total"], "20 clean rows and 7 accepted from the file with errors")
	require.EqualValues(t, 7, expect["txflow_rows_rejected_total"])
	require.EqualValues(t, 2, expect["txflow_rows_in_error_total"])
	for name, want := range expect {
		got, series := metricValue(families, name, pf)
		require.Equal(t, 1, series, "%s: one series", name)
		require.EqualValues(t, want, got, name)
	}
	runs, _ := metricValue(families, "txflow_runs_total", map[string]string{"status": workflows.StatusCompleted})
	require.Equal(t, 2.0, runs, "txflow_runs_total{status=%q}", workflows.StatusCompleted)
	require.Equal(t, "HISTOGRAM", families["txflow_stage_duration_seconds"].GetType().String())
	for _, stage := range []string{"ingest", "tag", "annotate", "report", "dump"} {
		n, series := metricValue(families, "txflow_stage_duration_seconds", map[string]string{"stage": stage})
		require.Equal(t, 1, series, "stage %s", stage)
		require.Equal(t, 2.0, n, "stage %s timed once per run", stage)
	}
}
