package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	sdkpb "go.temporal.io/api/sdk/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"

	"github.com/txflow/txflow/activities"
	"github.com/txflow/txflow/dev/internal/devtemporal"
	"github.com/txflow/txflow/internal/config"
	"github.com/txflow/txflow/internal/starterapp"
	"github.com/txflow/txflow/internal/testdb"
	"github.com/txflow/txflow/internal/workerapp"
	"github.com/txflow/txflow/postgres"
	"github.com/txflow/txflow/workflows"
)

// receiver is a webhook receiver that answers 503 to its first failFirst requests.
type receiver struct {
	mu        sync.Mutex
	failFirst int
	attempts  int
	bodies    []activities.RunNotice
	keys      []string
	srv       *httptest.Server
}

func newReceiver(t *testing.T, failFirst int) *receiver {
	r := &receiver{failFirst: failFirst}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.attempts++
		if r.attempts <= r.failFirst {
			http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
			return
		}
		var n activities.RunNotice
		if err := json.NewDecoder(req.Body).Decode(&n); err != nil || req.Header.Get("Content-Type") != "application/json" {
			http.Error(w, "bad notice", http.StatusBadRequest)
			return
		}
		r.bodies = append(r.bodies, n)
		r.keys = append(r.keys, req.Header.Get("Idempotency-Key"))
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) notices() []activities.RunNotice {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]activities.RunNotice(nil), r.bodies...)
}

// metricsRecorder is a metrics handler that keeps the counter totals and timer records.
type metricsRecorder struct {
	mu       sync.Mutex
	tags     map[string]string
	counters map[string]int64
	timers   map[string]int
	root     *metricsRecorder
}

func newMetricsRecorder() *metricsRecorder {
	m := &metricsRecorder{counters: map[string]int64{}, timers: map[string]int{}}
	m.root = m
	return m
}

func (m *metricsRecorder) key(name string) string {
	var parts []string
	for _, k := range []string{workflows.MetricTagStatus, workflows.MetricTagStage} {
		if v, ok := m.tags[k]; ok {
			parts = append(parts, k+"="+v)
		}
	}
	if len(parts) == 0 {
		return name
	}
	return name + "{" + strings.Join(parts, ",") + "}"
}

func (m *metricsRecorder) WithTags(tags map[string]string) client.MetricsHandler {
	merged := map[string]string{}
	for k, v := range m.tags {
		merged[k] = v
	}
	for k, v := range tags {
		merged[k] = v
	}
	return &metricsRecorder{tags: merged, root: m.root}
}

func (m *metricsRecorder) Counter(name string) client.MetricsCounter {
	return counterFunc(func(d int64) {
		m.root.mu.Lock()
		defer m.root.mu.Unlock()
		m.root.counters[m.key(name)] += d
	})
}

func (m *metricsRecorder) Gauge(string) client.MetricsGauge {
	return gaugeFunc(func(float64) {})
}

func (m *metricsRecorder) Timer(name string) client.MetricsTimer {
	return timerFunc(func(time.Duration) {
		m.root.mu.Lock()
		defer m.root.mu.Unlock()
		m.root.timers[m.key(name)]++
	})
}

func (m *metricsRecorder) counter(key string) int64 {
	m.root.mu.Lock()
	defer m.root.mu.Unlock()
	return m.root.counters[key]
}

func (m *metricsRecorder) timer(key string) int {
	m.root.mu.Lock()
	defer m.root.mu.Unlock()
	return m.root.timers[key]
}

type (
	counterFunc func(int64)
	gaugeFunc   func(float64)
	timerFunc   func(time.Duration)
)

func (f counterFunc) Inc(d int64)          { f(d) }
func (f gaugeFunc) Update(v float64)       { f(v) }
func (f timerFunc) Record(d time.Duration) { f(d) }

// opsHarness is a Temporal server, a database and a worker with everything registered:
// ProcessFile, ProcessInbox, Notify, the activities and the notifier.
type opsHarness struct {
	t       *testing.T
	srv     *devtemporal.Server
	c       client.Client
	input   string
	output  string
	env     config.Map
	alert   *receiver
	events  *receiver
	metrics *metricsRecorder
}

func startOps(t *testing.T, alertFailFirst, eventsFailFirst int) *opsHarness {
	t.Helper()
	srv := devtemporal.StartForTest(t, devtemporal.Options{SearchAttributes: workflows.SearchAttributes()})
	h := &opsHarness{t: t, srv: srv, input: t.TempDir(), output: t.TempDir(),
		alert: newReceiver(t, alertFailFirst), events: newReceiver(t, eventsFailFirst), metrics: newMetricsRecorder()}
	dbURL := testdb.URL(t)
	h.env = config.Map{
		"TEMPORAL_ADDRESS":      srv.FrontendHostPort(),
		"TEMPORAL_NAMESPACE":    srv.Namespace(),
		"TEMPORAL_CONFIG_FILE":  os.DevNull,
		"DATABASE_URL":          dbURL,
		"TXFLOW_INPUT_DIR":      h.input,
		"TXFLOW_OUTPUT_DIR":     h.output,
		"TXFLOW_UI_URL":         "http://ui.example",
		"TXFLOW_ALERT_WEBHOOK":  h.alert.srv.URL + "/alert",
		"TXFLOW_EVENTS_WEBHOOK": h.events.srv.URL + "/events",
	}
	cfg, err := config.Load(h.env)
	require.NoError(t, err)
	ctx := context.Background()
	db, err := postgres.Open(ctx, cfg.DatabaseURL)
	require.NoError(t, err)
	t.Cleanup(db.Close)
	require.NoError(t, db.Migrate(ctx))
	opts := cfg.Temporal
	opts.MetricsHandler = h.metrics
	h.c, err = client.Dial(opts)
	require.NoError(t, err)
	t.Cleanup(h.c.Close)
	w := worker.New(h.c, workflows.TaskQueue, worker.Options{})
	workerapp.Register(w, cfg, db)
	require.NoError(t, w.Start())
	t.Cleanup(w.Stop)
	bulk := worker.New(h.c, workflows.BulkTaskQueue, worker.Options{DisableWorkflowWorker: true})
	workerapp.RegisterActivities(bulk, cfg, db, nil)
	require.NoError(t, bulk.Start())
	t.Cleanup(bulk.Stop)
	return h
}

func (h *opsHarness) put(dir, name string, content []byte) {
	h.t.Helper()
	require.NoError(h.t, os.MkdirAll(filepath.Join(h.input, dir), 0o755))
	require.NoError(h.t, os.WriteFile(filepath.Join(h.input, dir, name), content, 0o644))
}

func sample(t *testing.T, name string) []byte {
	b, err := os.ReadFile(filepath.Join("..", "..", "testdata", name))
	require.NoError(t, err)
	return b
}

func (h *opsHarness) starter(args ...string) (int, string, string) {
	h.t.Helper()
	return runStarter(h.t, h.env, args...)
}

func (h *opsHarness) inbox(id string) workflows.InboxResult {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	run, err := h.c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: workflows.TaskQueue},
		workflows.ProcessInbox, workflows.ProcessInboxInput{})
	require.NoError(h.t, err)
	res, failed := inboxOutcome(h.t, ctx, run)
	require.Equal(h.t, failed, slices.ContainsFunc(res.Files, func(f workflows.InboxFileResult) bool {
		return f.Outcome == workflows.InboxFailed
	}), "an inbox run fails when one of its files did")
	return res
}

func (h *opsHarness) list(query string) []string {
	h.t.Helper()
	resp, err := h.c.ListWorkflow(context.Background(), &workflowservice.ListWorkflowExecutionsRequest{Query: query})
	require.NoError(h.t, err)
	var ids []string
	for _, e := range resp.GetExecutions() {
		ids = append(ids, e.GetExecution().GetWorkflowId())
	}
	return ids
}

func TestOpsInboxSearchAttributesNoticesAndMetrics(t *testing.T) {
	// The alert receiver is down for the first two deliveries.
	h := startOps(t, 2, 0)
	clean, withErrors := sample(t, "transactions.csv"), sample(t, "transactions_with_errors.csv")
	bad := []byte("<!DOCTYPE html>\n<html><body>Not found</body></html>\n")
	h.put("inbox", "a_transactions.csv", clean)
	h.put("inbox", "b_with_errors.csv", withErrors)
	h.put("inbox", "c_page.csv", bad)
	h.put("inbox", ".partial.csv", []byte("id,amount,wording\n"))
	// An older file of the same name already archived: it is kept.
	h.put(activities.ArchiveDir, "a_transactions.csv", []byte("id,amount,wording\nold,1,x\n"))

	res := h.inbox("inbox-1")
	require.Len(t, res.Files, 3, "hidden files are left alone")
	byFile := map[string]workflows.InboxFileResult{}
	for _, f := range res.Files {
		byFile[f.File] = f
	}
	sum := func(b []byte) string {
		p := filepath.Join(t.TempDir(), "f")
		require.NoError(t, os.WriteFile(p, b, 0o644))
		s, err := activities.HashFile(p)
		require.NoError(t, err)
		return s
	}
	cleanID, badID := workflows.RunID("", sum(clean)), workflows.RunID("", sum(bad))
	a := byFile["inbox/a_transactions.csv"]
	require.Equal(t, workflows.InboxArchived, a.Outcome, "%+v", a)
	require.Equal(t, cleanID, a.RunID)
	require.Equal(t, "archive/a_transactions-"+sum(clean)[:16]+".csv", a.MovedTo, "name collision")
	require.Equal(t, workflows.InboxArchived, byFile["inbox/b_with_errors.csv"].Outcome)
	require.Equal(t, "archive/b_with_errors.csv", byFile["inbox/b_with_errors.csv"].MovedTo)
	c := byFile["inbox/c_page.csv"]
	require.Equal(t, workflows.InboxFailed, c.Outcome)
	require.Equal(t, "failed/c_page.csv", c.MovedTo)
	require.Contains(t, c.Error, "expected")
	old, err := os.ReadFile(filepath.Join(h.input, "archive", "a_transactions.csv"))
	require.NoError(t, err)
	require.Contains(t, string(old), "old,1,x")
	require.FileExists(t, filepath.Join(h.input, "inbox", ".partial.csv"))
	require.NoFileExists(t, filepath.Join(h.input, "inbox", "a_transactions.csv"))
	require.FileExists(t, filepath.Join(h.output, cleanID, "output_transactions.csv"))

	// One alert for the failed run, delivered after the receiver came back, and a failure
	// report beside the outputs.
	require.Eventually(t, func() bool { return len(h.alert.notices()) == 1 }, time.Minute, 100*time.Millisecond)
	alert := h.alert.notices()[0]
	require.Equal(t, activities.NoticeRunFailed, alert.Kind)
	require.Equal(t, badID, alert.RunID)
	require.Equal(t, "inbox/c_page.csv", alert.File)
	require.Equal(t, workflows.StageIngest, alert.FailedStage)
	require.Contains(t, alert.Error, "expected")
	require.Equal(t, "http://ui.example/namespaces/default/workflows/"+badID, alert.WebUI)
	require.Equal(t, 3, h.alert.attempts, "two 503 answers, then delivered")
	require.Equal(t, []string{activities.NoticeRunFailed + "/" + badID}, h.alert.keys)
	report, err := os.ReadFile(filepath.Join(h.output, badID, activities.FailureFile))
	require.NoError(t, err)
	var fromFile activities.RunNotice
	require.NoError(t, json.Unmarshal(report, &fromFile))
	require.Equal(t, alert.Error, fromFile.Error)

	// One event per completed run, with counts and output paths.
	require.Eventually(t, func() bool { return len(h.events.notices()) == 2 }, time.Minute, 100*time.Millisecond)
	for _, ev := range h.events.notices() {
		require.Equal(t, activities.NoticeRunCompleted, ev.Kind)
		if ev.RunID == cleanID {
			require.EqualValues(t, 20, ev.Counts.RowsRead)
			require.EqualValues(t, 20, ev.Counts.Ingested+ev.Counts.Rejected)
			require.Positive(t, ev.Counts.Tagged)
			require.Equal(t, filepath.Join(h.output, cleanID, activities.OutputFile), ev.Outputs.Transactions)
		}
	}

	// The Web UI's context: search attributes and details.
	require.Eventually(t, func() bool {
		return len(h.list(`TxflowStatus = "completed" AND TxflowFile = "inbox/a_transactions.csv"`)) == 1
	}, 30*time.Second, 200*time.Millisecond)
	require.Equal(t, []string{cleanID}, h.list(`TxflowStatus = "completed" AND TxflowFile = "inbox/a_transactions.csv"`))
	require.Equal(t, []string{badID}, h.list(`WorkflowType = "ProcessFile" AND TxflowStatus = "failed"`))
	// The two files ran side by side: which one stored T001 first, and so how many rows the
	// second one rejected as conflicting, depends on timing. Read it from the summary.
	var b workflows.Summary
	bID := workflows.RunID("", sum(withErrors))
	bJSON, err := os.ReadFile(filepath.Join(h.output, bID, activities.SummaryFile))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(bJSON, &b))
	require.Equal(t, []string{bID}, h.list(fmt.Sprintf(`TxflowRejected = %d AND TxflowErrors = 2 AND TxflowRows = 14`, b.Rejected)))
	desc, err := h.c.DescribeWorkflow(context.Background(), cleanID, "")
	require.NoError(t, err)
	staticSummary, err := desc.GetStaticSummary()
	require.NoError(t, err)
	require.Equal(t, "Process inbox/a_transactions.csv", staticSummary)
	md, err := h.c.QueryWorkflow(context.Background(), cleanID, "", "__temporal_workflow_metadata")
	require.NoError(t, err)
	var meta sdkpb.WorkflowMetadata
	require.NoError(t, md.Get(&meta))
	require.Regexp(t, `\| tag \| completed \| \d+ / \d+ \(100%\) \|`, meta.GetCurrentDetails())
	require.Contains(t, meta.GetCurrentDetails(), "| ingest | completed | 20 / 20 (100%) |")

	// Metrics, emitted by the workflow once per run.
	require.EqualValues(t, 2, h.metrics.counter(workflows.MetricRuns+"{status=completed}"))
	require.EqualValues(t, 1, h.metrics.counter(workflows.MetricRuns+"{status=failed}"))
	var a0 workflows.Summary
	aJSON, err := os.ReadFile(filepath.Join(h.output, cleanID, activities.SummaryFile))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(aJSON, &a0))
	require.EqualValues(t, a0.Ingested+b.Ingested, h.metrics.counter(workflows.MetricRowsIngested))
	require.EqualValues(t, a0.Rejected+b.Rejected, h.metrics.counter(workflows.MetricRowsRejected))
	require.EqualValues(t, a0.Tagged+b.Tagged, h.metrics.counter(workflows.MetricRowsTagged))
	require.EqualValues(t, 2, h.metrics.counter(workflows.MetricRowsInError))
	require.EqualValues(t, 3, h.metrics.timer(workflows.MetricStageDuration+"{stage=ingest}"))
	require.EqualValues(t, 2, h.metrics.timer(workflows.MetricStageDuration+"{stage=dump}"))

	// The clean file again: processed successfully before, so archived without a new run.
	h.put("inbox", "again.csv", clean)
	res = h.inbox("inbox-2")
	require.Len(t, res.Files, 1)
	require.Equal(t, workflows.InboxArchived, res.Files[0].Outcome)
	require.Equal(t, "archive/again.csv", res.Files[0].MovedTo)
	require.EqualValues(t, 2, h.metrics.counter(workflows.MetricRuns+"{status=completed}"), "no second run")

	// A failed file put back is retried.
	h.put("inbox", "c_page.csv", bad)
	res = h.inbox("inbox-3")
	require.Equal(t, workflows.InboxFailed, res.Files[0].Outcome)
	require.Equal(t, "failed/c_page.csv", res.Files[0].MovedTo, "the same content is there already")
	require.Eventually(t, func() bool { return h.metrics.counter(workflows.MetricRuns+"{status=failed}") == 2 }, 30*time.Second, 100*time.Millisecond)
	require.Eventually(t, func() bool { return len(h.alert.notices()) == 2 }, time.Minute, 100*time.Millisecond, "one alert per run")
}

func TestOpsScheduleCommands(t *testing.T) {
	h := startOps(t, 0, 0)
	code, out, errOut := h.starter("schedule", "create", "daily", "--cron", "0 6 * * *", "--timezone", "Europe/Paris", "--paused")
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, `created schedule daily: cron "0 6 * * *" in time zone Europe/Paris, inbox inbox/, overlap skip, catch-up window 1h0m0s, paused`)

	code, _, errOut = h.starter("schedule", "create", "bad", "--cron", "0 6 * * *", "--overlap", "sometimes")
	require.Equal(t, starterapp.ExitUsage, code)
	require.Contains(t, errOut, "buffer-all")

	require.Eventually(t, func() bool {
		_, out, _ := h.starter("schedule", "list")
		return strings.Contains(out, "daily")
	}, 30*time.Second, 200*time.Millisecond)
	_, out, _ = h.starter("schedule", "list")
	require.Regexp(t, `daily\s+paused\s+next \S+T0[45]:00:00Z\s+0 6 \* \* \* \(Europe/Paris\)`, out, "06:00 in Paris is 05:00 or 04:00 UTC")

	code, out, errOut = h.starter("schedule", "describe", "daily")
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "schedule daily: paused")
	require.Contains(t, out, "overlap:        skip")
	require.Contains(t, out, "catch-up window: 1h0m0s")
	require.Contains(t, out, "ProcessInbox on task queue txflow")
	require.Contains(t, out, "spec:           0 6 * * * (Europe/Paris)")

	code, out, _ = h.starter("schedule", "unpause", "daily", "--note", "go")
	require.Equal(t, 0, code)
	require.Contains(t, out, "unpaused schedule daily")
	_, out, _ = h.starter("schedule", "describe", "daily")
	require.Contains(t, out, "schedule daily: active")
	code, _, _ = h.starter("schedule", "pause", "daily")
	require.Equal(t, 0, code)

	// Trigger runs the inbox now, even paused.
	h.put("inbox", "t.csv", sample(t, "transactions.csv"))
	code, out, errOut = h.starter("schedule", "trigger", "daily")
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "triggered schedule daily (overlap allow-all)")
	// It names the inbox run it started, waits for it and says what became of the file.
	require.Regexp(t, `workflow id: txflow-inbox-daily-\S+`, out)
	require.Contains(t, out, "inbox inbox/: 1 archived, 0 failed, 0 left in the inbox")
	sum := func(b []byte) string {
		s := sha256.Sum256(b)
		return hex.EncodeToString(s[:])
	}
	tID := workflows.RunID("", sum(sample(t, "transactions.csv")))
	require.Contains(t, out, "inbox/t.csv: archived → archive/t.csv (run "+tID+")")
	require.FileExists(t, filepath.Join(h.input, "archive", "t.csv"))
	code, out, errOut = h.starter("status", tID)
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "run "+tID+": completed")

	// A run that failed: starter status exits 1.
	html := []byte("<!DOCTYPE html>\n<html><body>Not found</body></html>\n")
	h.put("", "page.csv", html)
	code, _, _ = h.starter("run", "page.csv")
	require.Equal(t, starterapp.ExitRunFailed, code)
	code, out, _ = h.starter("status", workflows.RunID("", sum(html)))
	require.Equal(t, starterapp.ExitRunFailed, code, out)
	require.Contains(t, out, ": failed")

	// An inbox directory that does not exist fails the inbox run, naming it.
	code, _, errOut = h.starter("schedule", "create", "typo", "--cron", "0 6 * * *", "--dir", "inbxo", "--paused")
	require.Equal(t, 0, code, errOut)
	code, out, errOut = h.starter("schedule", "trigger", "typo")
	require.Equal(t, starterapp.ExitRunFailed, code, out)
	require.Contains(t, errOut, "directory inbxo does not exist under the input root")
	code, _, _ = h.starter("schedule", "delete", "typo")
	require.Equal(t, 0, code)

	// Backfill two days of 06:00 runs: both are taken, one after the other.
	code, out, errOut = h.starter("schedule", "backfill", "daily", "--start", "2026-01-01T00:00:00Z", "--end", "2026-01-02T23:00:00Z")
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "requested backfill of schedule daily from 2026-01-01T00:00:00Z to 2026-01-02T23:00:00Z (overlap buffer-all)")
	require.Eventually(t, func() bool {
		_, out, _ := h.starter("schedule", "describe", "daily")
		return strings.Contains(out, "actions taken:  3")
	}, time.Minute, 300*time.Millisecond)

	code, out, _ = h.starter("schedule", "delete", "daily")
	require.Equal(t, 0, code)
	require.Contains(t, out, "deleted schedule daily")
	code, _, errOut = h.starter("schedule", "describe", "daily")
	require.Equal(t, starterapp.ExitRunFailed, code)
	require.Contains(t, errOut, "describe schedule daily")
}

func TestOpsProgressOfStarterRun(t *testing.T) {
	h := startOps(t, 0, 0)
	h.put("", "p.csv", sample(t, "transactions.csv"))
	code, out, errOut := h.starter("run", "p.csv")
	require.Equal(t, 0, code, errOut)
	// Not a terminal: no bar, and the final summary as before.
	require.NotContains(t, out, "\r")
	require.Contains(t, out, "completed in")
	require.Contains(t, out, "outputs:")
}
