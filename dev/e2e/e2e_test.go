// Package e2e runs txflow end to end: an in-process Temporal server, a real PostgreSQL, the real
// worker and starter code, and real files.
package e2e

import (
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/temporalproto"
	"go.temporal.io/sdk/client"

	"github.com/txflow/txflow/dev/internal/devstack"
	"github.com/txflow/txflow/dev/internal/devtemporal"
	"github.com/txflow/txflow/internal/config"
	"github.com/txflow/txflow/internal/starterapp"
	"github.com/txflow/txflow/internal/testdb"
	"github.com/txflow/txflow/workflows"
)

var update = flag.Bool("update", false, "rewrite the golden files")

func TestMain(m *testing.M) { testdb.Main(m) }

// harness is one Temporal server, one database, one worker and the roots they share.
type harness struct {
	t        *testing.T
	temporal *devtemporal.Server
	dbURL    string
	input    string
	output   string
	env      config.Map
}

func start(t *testing.T) *harness {
	t.Helper()
	h := newHarness(t, devtemporal.StartForTest(t, devtemporal.Options{SearchAttributes: workflows.SearchAttributes()}))
	runWorker(t, h.env)
	return h
}

// newHarness prepares a database, input (the samples) and output directories for srv, and the
// environment of the worker and the starter; no worker runs yet.
func newHarness(t *testing.T, srv *devtemporal.Server) *harness {
	t.Helper()
	h := &harness{t: t, temporal: srv, dbURL: testdb.URL(t), input: t.TempDir(), output: t.TempDir()}
	h.env = config.Map{
		"TEMPORAL_ADDRESS":     srv.FrontendHostPort(),
		"TEMPORAL_NAMESPACE":   srv.Namespace(),
		"TEMPORAL_CONFIG_FILE": os.DevNull,
		"DATABASE_URL":         h.dbURL,
		"TXFLOW_INPUT_DIR":     h.input,
		"TXFLOW_OUTPUT_DIR":    h.output,
		"TXFLOW_UI_URL":        "http://ui.example",
		"TXFLOW_HTTP_ADDR":     "127.0.0.1:0",
	}
	copySamples(t, h.input)
	return h
}

// starter runs the starter command and returns its exit code and output.
func (h *harness) starter(args ...string) (int, string, string) {
	h.t.Helper()
	return runStarter(h.t, h.env, args...)
}

func (h *harness) runID(name string) string {
	id, err := devstack.RunIDOf(filepath.Join(h.input, name))
	require.NoError(h.t, err)
	return id
}

func (h *harness) summary(runID string) workflows.Summary {
	b, err := os.ReadFile(filepath.Join(h.output, runID, "summary.json"))
	require.NoError(h.t, err)
	var s workflows.Summary
	require.NoError(h.t, json.Unmarshal(b, &s))
	return s
}

func (h *harness) count(table string) int64 {
	h.t.Helper()
	return countRows(h.t, h.dbURL, table)
}

// countRows returns the rows of table in the database at dbURL.
func countRows(t *testing.T, dbURL, table string) int64 {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dbURL)
	require.NoError(t, err)
	defer conn.Close(ctx)
	var n int64
	require.NoError(t, conn.QueryRow(ctx, "SELECT count(*) FROM "+pgx.Identifier{table}.Sanitize()).Scan(&n))
	return n
}

// golden compares a produced file with its golden copy, or rewrites the copy under -update.
func golden(t *testing.T, got, goldenPath string) {
	t.Helper()
	b, err := os.ReadFile(got)
	require.NoError(t, err)
	if *update {
		require.NoError(t, os.MkdirAll(filepath.Dir(goldenPath), 0o755))
		require.NoError(t, os.WriteFile(goldenPath, b, 0o644))
	}
	want, err := os.ReadFile(goldenPath)
	require.NoError(t, err)
	require.Equal(t, string(want), string(b), "%s differs from %s", got, goldenPath)
}

func TestSampleFilesEndToEnd(t *testing.T) {
	h := start(t)

	// The clean sample.
	code, out, errOut := h.starter("run", "transactions.csv")
	require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", out, errOut)
	id := h.runID("transactions.csv")
	require.Contains(t, out, "run "+id)
	require.Contains(t, out, "http://ui.example/namespaces/default/workflows/"+id)
	require.Contains(t, out, filepath.Join(h.output, id, "output_transactions.csv"))
	golden(t, filepath.Join(h.output, id, "output_transactions.csv"), "testdata/golden/transactions/output_transactions.csv")
	golden(t, filepath.Join(h.output, id, "error_report.csv"), "testdata/golden/transactions/error_report.csv")
	s := h.summary(id)
	require.Equal(t, workflows.StatusCompleted, s.Status)
	require.EqualValues(t, 20, s.RowsRead)
	require.EqualValues(t, 20, s.Ingested)
	require.EqualValues(t, 20, s.New)
	require.EqualValues(t, 0, s.Rejected)
	require.EqualValues(t, 0, s.InError)
	require.EqualValues(t, 13, s.Tagged)
	require.EqualValues(t, 19, s.Annotated)

	// The sample with errors: rejected rows, rows in error, a duplicate and a conflict with the
	// clean sample stored before.
	code, out, errOut = h.starter("run", filepath.Join(h.input, "transactions_with_errors.csv"))
	require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", out, errOut)
	id2 := h.runID("transactions_with_errors.csv")
	golden(t, filepath.Join(h.output, id2, "output_transactions.csv"), "testdata/golden/transactions_with_errors/output_transactions.csv")
	golden(t, filepath.Join(h.output, id2, "error_report.csv"), "testdata/golden/transactions_with_errors/error_report.csv")
	s2 := h.summary(id2)
	require.EqualValues(t, 14, s2.RowsRead)
	require.EqualValues(t, 7, s2.Rejected, "abc, empty amount, missing id, three decimals, short row, duplicate, conflict")
	require.EqualValues(t, 2, s2.InError)
	require.EqualValues(t, s2.RowsRead, s2.Ingested+s2.Rejected)
	require.EqualValues(t, s2.Ingested-1, s2.New, "T001 was stored by the first file")

	// The same file again adds nothing and writes the same outputs.
	before := h.count("transactions")
	require.EqualValues(t, 20+s2.New, before)
	first, err := os.ReadFile(filepath.Join(h.output, id, "output_transactions.csv"))
	require.NoError(t, err)
	code, out, errOut = h.starter("run", "transactions.csv")
	require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", out, errOut)
	require.Equal(t, before, h.count("transactions"))
	again := h.summary(id)
	require.EqualValues(t, 0, again.New)
	require.EqualValues(t, 20, again.Ingested)
	second, err := os.ReadFile(filepath.Join(h.output, id, "output_transactions.csv"))
	require.NoError(t, err)
	require.Equal(t, string(first), string(second))
	require.EqualValues(t, 20+s2.New, h.count("tags"), "every transaction tagged once")
}

func TestUnreadableFileFailsFast(t *testing.T) {
	h := start(t)
	require.NoError(t, os.WriteFile(filepath.Join(h.input, "page.csv"), []byte("<!DOCTYPE html>\n<html><body>Not found</body></html>\n"), 0o644))
	began := time.Now()
	code, out, errOut := h.starter("run", "page.csv")
	require.Equal(t, starterapp.ExitRunFailed, code, "stdout:\n%s\nstderr:\n%s", out, errOut)
	require.Contains(t, errOut, "expected")
	require.Less(t, time.Since(began), 30*time.Second, "a bad file must not be retried")

	// One attempt only: the failure is non-retryable.
	c, err := client.Dial(client.Options{HostPort: h.temporal.FrontendHostPort()})
	require.NoError(t, err)
	defer c.Close()
	id := h.runID("page.csv")
	att := maxAttempts(t, c, c.GetWorkflow(context.Background(), id, ""))
	require.Equal(t, int32(1), att[actIngest], "highest attempts: %v", att)
}

func TestFileOutsideInputRootIsRefused(t *testing.T) {
	h := start(t)
	outside := filepath.Join(t.TempDir(), "elsewhere.csv")
	require.NoError(t, os.WriteFile(outside, []byte("id,amount,wording\n1,2,x\n"), 0o644))
	code, _, errOut := h.starter("run", outside)
	require.Equal(t, starterapp.ExitUsage, code)
	require.Contains(t, errOut, "outside")
	require.NoError(t, os.Symlink(outside, filepath.Join(h.input, "link.csv")))
	code, _, errOut = h.starter("run", "link.csv")
	require.Equal(t, starterapp.ExitUsage, code)
	require.Contains(t, errOut, "outside")
}

func TestNoWaitAndStatus(t *testing.T) {
	h := start(t)
	code, out, errOut := h.starter("run", "--no-wait", "transactions.csv")
	require.Equal(t, 0, code, errOut)
	id := h.runID("transactions.csv")
	require.Contains(t, out, "workflow id: "+id)
	require.Contains(t, out, "http://ui.example/namespaces/default/workflows/"+id)
	require.Eventually(t, func() bool {
		code, out, _ := h.starter("status", id)
		return code == 0 && strings.Contains(out, "run "+id+": completed")
	}, time.Minute, 200*time.Millisecond)
	_, out, _ = h.starter("status", id)
	require.Contains(t, out, "ingested")
	require.Contains(t, out, "output_transactions.csv")
}

// recordHistories says whether TestRecordHistories rewrites the committed workflow histories.
var recordHistories = os.Getenv("TXFLOW_RECORD_HISTORIES") == "1"

// fetchHistory returns the whole history of a closed run (runID "" for the latest run of id).
func fetchHistory(t *testing.T, c client.Client, id, runID string) *historypb.History {
	t.Helper()
	it := c.GetWorkflowHistory(context.Background(), id, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	hist := &historypb.History{}
	for it.HasNext() {
		ev, err := it.Next()
		require.NoError(t, err)
		hist.Events = append(hist.Events, ev)
	}
	return hist
}

// saveHistory writes a run's history as JSON, as client.HistoryFromJSON reads it, to
// workflows/testdata/<name>, where workflows.TestReplay replays it.
func saveHistory(t *testing.T, hist *historypb.History, name string) {
	t.Helper()
	b, err := temporalproto.CustomJSONMarshalOptions{Indent: "  "}.Marshal(hist)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join("..", "..", "workflows", "testdata", name), append(b, '\n'), 0o644))
}

// TestStarterBeforeAnyWorker: on a namespace no worker has prepared yet (its search attributes
// are not registered), `starter run` still starts the run, without the attributes it would give
// it; the run waits for a worker, records them itself, and completes.
func TestStarterBeforeAnyWorker(t *testing.T) {
	srv := devtemporal.StartForTest(t, devtemporal.Options{}) // no custom search attributes
	h := newHarness(t, srv)
	code, out, errOut := h.starter("run", "--no-wait", "transactions.csv")
	require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", out, errOut)
	id := h.runID("transactions.csv")
	require.Contains(t, out, id)

	runWorker(t, h.env) // registers the attributes, then runs the run
	c := dial(t, srv)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var s workflows.Summary
	require.NoError(t, c.GetWorkflow(ctx, id, "").Get(ctx, &s))
	require.Equal(t, workflows.StatusCompleted, s.Status)
	require.EqualValues(t, 20, s.Ingested)
	desc, err := c.DescribeWorkflowExecution(ctx, id, "")
	require.NoError(t, err)
	sa := desc.GetWorkflowExecutionInfo().GetSearchAttributes().GetIndexedFields()
	for _, key := range []string{"TxflowFile", "TxflowStatus", "TxflowAccount", "TxflowRows"} {
		require.Contains(t, sa, key, "the run recorded %s itself", key)
	}
}
