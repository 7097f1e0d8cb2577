package e2e

// Helpers for the failure tests: worker processes, runs started with a client, and checks on the
// database and the outputs.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/txflow/txflow/activities"
	"github.com/txflow/txflow/dev/internal/devstack"
	"github.com/txflow/txflow/dev/internal/devtemporal"
	"github.com/txflow/txflow/internal/config"
	"github.com/txflow/txflow/internal/gen"
	"github.com/txflow/txflow/internal/starterapp"
	"github.com/txflow/txflow/internal/workerapp"
	"github.com/txflow/txflow/workflows"
)

// Activity type names, as the worker registers them.
const (
	actIngest   = "Ingest"
	actTag      = "Tag"
	actAnnotate = "Annotate"
	actReport   = "ReportErrors"
	actDump     = "Dump"
)

// testHeartbeat is the heartbeat timeout of the runs the failure tests start: a killed worker's
// activity goes to another worker after it.
const testHeartbeat = 3 * time.Second

// buildWorker builds the worker command into a temporary directory and returns its path.
func buildWorker(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the worker, skipped with -short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	bins, err := devstack.Build(ctx, t.TempDir(), "worker")
	require.NoError(t, err)
	return bins["worker"]
}

// syncBuffer collects a process's output; it may be written and read concurrently.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// workerEnv is the environment of a worker (or starter) using srv, the database and the roots.
func workerEnv(srv *devtemporal.Server, dbURL, input, output string) config.Map {
	return workerEnvAt(srv.FrontendHostPort(), srv.Namespace(), dbURL, input, output)
}

// workerEnvAt is workerEnv for a Temporal server at address, in namespace.
func workerEnvAt(address, namespace, dbURL, input, output string) config.Map {
	return config.Map{
		"TEMPORAL_ADDRESS":     address,
		"TEMPORAL_NAMESPACE":   namespace,
		"TEMPORAL_CONFIG_FILE": os.DevNull,
		"DATABASE_URL":         dbURL,
		"TXFLOW_INPUT_DIR":     input,
		"TXFLOW_OUTPUT_DIR":    output,
		"TXFLOW_UI_URL":        "http://ui.example",
		"TXFLOW_HTTP_ADDR":     "127.0.0.1:0",
		"TXFLOW_LOG_LEVEL":     "info",
		"TXFLOW_BATCH_SIZE":    "10000", // several batches, so that a crash falls between two
	}
}

// startWorker starts a worker process with env, its output going to out (nil: discarded), and
// waits until it polls the task queue. The process is killed at the end of the test if it still
// runs.
func startWorker(t *testing.T, c client.Client, bin string, env config.Map, out *syncBuffer) *devstack.Process {
	t.Helper()
	var w *syncBuffer
	if out != nil {
		w = out
	} else {
		w = &syncBuffer{}
	}
	p, err := devstack.StartProcess(bin, devstack.Environ(env), w)
	require.NoError(t, err)
	t.Cleanup(func() {
		if !p.Exited() {
			p.Kill()
		}
	})
	// The SDK's default identity starts with the process id.
	deadline := time.Now().Add(time.Minute)
	for {
		if p.Exited() {
			t.Fatalf("worker exited at start: %v\n%s", p.Wait(), w.String())
		}
		if hasPoller(c, p.Pid()) {
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("worker pid %d not polling after a minute\n%s", p.Pid(), w.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// pollers returns the identities polling the activity task queue.
func pollers(c client.Client) []string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := c.DescribeTaskQueue(ctx, workflows.TaskQueue, enumspb.TASK_QUEUE_TYPE_ACTIVITY)
	if err != nil {
		return nil
	}
	var ids []string
	for _, p := range resp.GetPollers() {
		ids = append(ids, p.GetIdentity())
	}
	return ids
}

// hasPoller reports whether the worker process pid polls the queue: the SDK's default identity
// is pid@host@.
func hasPoller(c client.Client, pid int) bool {
	prefix := fmt.Sprintf("%d@", pid)
	for _, id := range pollers(c) {
		if len(id) > len(prefix) && id[:len(prefix)] == prefix {
			return true
		}
	}
	return false
}

// dial connects a client to srv.
func dial(t *testing.T, srv *devtemporal.Server) client.Client {
	t.Helper()
	c, err := client.Dial(client.Options{HostPort: srv.FrontendHostPort(), Namespace: srv.Namespace()})
	require.NoError(t, err)
	t.Cleanup(c.Close)
	return c
}

// generate writes a generated file of n rows into dir and returns its name.
func generate(t *testing.T, dir string, n int, seed uint64) string {
	t.Helper()
	name := fmt.Sprintf("gen-%d-%d.csv", n, seed)
	f, err := os.Create(filepath.Join(dir, name))
	require.NoError(t, err)
	require.NoError(t, gen.Write(f, n, seed))
	require.NoError(t, f.Close())
	return name
}

// startRun starts ProcessFile on the file name of the input root directly with the client, as the
// starter does, with the test heartbeat timeout.
func startRun(t *testing.T, c client.Client, input, name string, chunk int64) client.WorkflowRun {
	t.Helper()
	sum, err := activities.HashFile(filepath.Join(input, name))
	require.NoError(t, err)
	run, err := c.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{
		ID:                       workflows.RunID("", sum),
		TaskQueue:                workflows.TaskQueue,
		WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
	}, workflows.ProcessFile, workflows.ProcessFileInput{
		File: name, SHA256: sum, ChunkSize: chunk, MaxParallel: 2, HeartbeatTimeout: testHeartbeat,
	})
	require.NoError(t, err)
	return run
}

// startLeanRun starts a run of name as the starter does: with the file's size and the search
// attributes it starts with, so that a small file's run is lean.
func startLeanRun(t *testing.T, c client.Client, input, name string, chunk int64) client.WorkflowRun {
	t.Helper()
	path := filepath.Join(input, name)
	sum, err := activities.HashFile(path)
	require.NoError(t, err)
	st, err := os.Stat(path)
	require.NoError(t, err)
	in := workflows.ProcessFileInput{File: name, SHA256: sum, ChunkSize: chunk, MaxParallel: 2,
		HeartbeatTimeout: testHeartbeat, Size: st.Size()}
	run, err := c.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{
		ID:                       workflows.RunID("", sum),
		TaskQueue:                workflows.TaskQueue,
		WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
		TypedSearchAttributes:    workflows.StartSearchAttributes(in),
	}, workflows.ProcessFile, in)
	require.NoError(t, err)
	return run
}

// waitRun waits for run to end and returns its summary.
func waitRun(t *testing.T, run client.WorkflowRun, timeout time.Duration) workflows.Summary {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var s workflows.Summary
	require.NoError(t, run.Get(ctx, &s), "run %s", run.GetID())
	require.Equal(t, workflows.StatusCompleted, s.Status)
	return s
}

// progress asks a run for its summary through the progress query.
func progress(c client.Client, run client.WorkflowRun) (workflows.Summary, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var s workflows.Summary
	v, err := c.QueryWorkflow(ctx, run.GetID(), run.GetRunID(), workflows.ProgressQuery)
	if err != nil {
		return s, err
	}
	return s, v.Get(&s)
}

// stageOf returns the named stage of s.
func stageOf(s workflows.Summary, name string) workflows.Stage {
	for _, st := range s.Stages {
		if st.Name == name {
			return *st
		}
	}
	return workflows.Stage{}
}

// startedActivity returns a pending activity of the run of one of the given types that a worker
// has started, or nil.
func startedActivity(c client.Client, run client.WorkflowRun, types ...string) *workflowpb.PendingActivityInfo {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	desc, err := c.DescribeWorkflowExecution(ctx, run.GetID(), run.GetRunID())
	if err != nil {
		return nil
	}
	for _, pa := range desc.GetPendingActivities() {
		for _, typ := range types {
			if pa.GetActivityType().GetName() == typ && pa.GetState() == enumspb.PENDING_ACTIVITY_STATE_STARTED {
				return pa
			}
		}
	}
	return nil
}

// ingestedRecords decodes the records Ingest reported committed in its last heartbeat.
func ingestedRecords(pa *workflowpb.PendingActivityInfo) int64 {
	if pa == nil || pa.GetHeartbeatDetails() == nil {
		return 0
	}
	var p activities.IngestProgress
	if err := converter.GetDefaultDataConverter().FromPayloads(pa.GetHeartbeatDetails(), &p); err != nil {
		return 0
	}
	return p.Records
}

// eventually polls cond every 50 ms until it holds, failing the test after timeout.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// history returns the run's events.
func history(t *testing.T, c client.Client, run client.WorkflowRun) []*historypb.HistoryEvent {
	t.Helper()
	it := c.GetWorkflowHistory(context.Background(), run.GetID(), run.GetRunID(), false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	var evs []*historypb.HistoryEvent
	for it.HasNext() {
		ev, err := it.Next()
		require.NoError(t, err)
		evs = append(evs, ev)
	}
	return evs
}

// maxAttempts returns, per activity type, the highest attempt that started it (activities and
// local activities): above 1 means the activity was retried.
func maxAttempts(t *testing.T, c client.Client, run client.WorkflowRun) map[string]int32 {
	t.Helper()
	evs := history(t, c, run)
	types := map[int64]string{}
	out := map[string]int32{}
	for _, ev := range evs {
		switch ev.GetEventType() {
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
			types[ev.GetEventId()] = ev.GetActivityTaskScheduledEventAttributes().GetActivityType().GetName()
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_STARTED:
			a := ev.GetActivityTaskStartedEventAttributes()
			typ := types[a.GetScheduledEventId()]
			out[typ] = max(out[typ], a.GetAttempt())
		case enumspb.EVENT_TYPE_MARKER_RECORDED:
			if la, ok := localActivity(t, ev); ok {
				out[la.ActivityType] = max(out[la.ActivityType], la.Attempt)
			}
		}
	}
	return out
}

// localActivity decodes the local activity ev records, if it records one.
func localActivity(t *testing.T, ev *historypb.HistoryEvent) (devtemporal.LocalActivity, bool) {
	t.Helper()
	la, ok, err := devtemporal.LocalActivityOf(ev)
	require.NoError(t, err)
	return la, ok
}

// activityRuns counts, per activity type, the activities a run scheduled and the local
// activities it ran.
func activityRuns(t *testing.T, h *historypb.History) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, ev := range h.GetEvents() {
		if a := ev.GetActivityTaskScheduledEventAttributes(); a != nil {
			out[a.GetActivityType().GetName()]++
		} else if la, ok := localActivity(t, ev); ok {
			out[la.ActivityType]++
		}
	}
	return out
}

// requireNoDuplicates checks that no table of the database holds a key twice, and returns the
// row count of each table.
func requireNoDuplicates(t *testing.T, dbURL string) map[string]int64 {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dbURL)
	require.NoError(t, err)
	defer conn.Close(ctx)
	keys, err := devstack.CountKeys(ctx, conn)
	require.NoError(t, err)
	counts := map[string]int64{}
	for _, c := range keys {
		require.Equal(t, c.Distinct, c.Rows, "%s: %d rows but %d distinct (%s)", c.Table, c.Rows, c.Distinct, c.Key)
		counts[c.Table] = c.Rows
	}
	return counts
}

// requireSameOutputs checks that two runs wrote byte-identical output and error report files.
func requireSameOutputs(t *testing.T, wantDir, gotDir string) {
	t.Helper()
	for _, name := range []string{"output_transactions.csv", "error_report.csv"} {
		want, err := os.ReadFile(filepath.Join(wantDir, name))
		require.NoError(t, err)
		got, err := os.ReadFile(filepath.Join(gotDir, name))
		require.NoError(t, err)
		require.Greater(t, len(want), len("id,amount\n"), "%s is empty", name)
		if !bytes.Equal(want, got) {
			t.Fatalf("%s differs from the uninterrupted run's (%d bytes, want %d): %s", name, len(got), len(want), firstDiff(want, got))
		}
	}
}

// firstDiff describes where two byte slices first differ.
func firstDiff(a, b []byte) string {
	i := 0
	for i < len(a) && i < len(b) && a[i] == b[i] {
		i++
	}
	line := bytes.Count(a[:i], []byte("\n")) + 1
	end := func(s []byte) string { return string(s[i:min(len(s), i+80)]) }
	return fmt.Sprintf("line %d: want %q, got %q", line, end(a), end(b))
}

// requireSameCounts checks that two summaries counted the same things.
func requireSameCounts(t *testing.T, want, got workflows.Summary) {
	t.Helper()
	type counts struct{ read, ingested, rejected, inError, tagged, annotated int64 }
	c := func(s workflows.Summary) counts {
		return counts{s.RowsRead, s.Ingested, s.Rejected, s.InError, s.Tagged, s.Annotated}
	}
	require.Equal(t, c(want), c(got))
}

// waitersOn returns how many sessions wait for a lock on table.
func waitersOn(t *testing.T, dbURL, table string) int {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dbURL)
	require.NoError(t, err)
	defer conn.Close(ctx)
	var n int
	require.NoError(t, conn.QueryRow(ctx,
		"SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = to_regclass($1)", table).Scan(&n))
	return n
}

// errorChain returns err and everything it wraps, for messages.
func errorChain(err error) string {
	var b bytes.Buffer
	for err != nil {
		fmt.Fprintf(&b, "%T: %v\n", err, err)
		err = errors.Unwrap(err)
	}
	return b.String()
}

// runWorker runs a worker in this process with env until the returned function is called (or the
// test ends).
func runWorker(t *testing.T, env config.Map) (stop func()) {
	t.Helper()
	cfg, err := config.Load(env)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- workerapp.Run(ctx, cfg, workerapp.NewLogger(io.Discard, "error")) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
				t.Errorf("worker: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// copySamples copies the bundled sample files into dir.
func copySamples(t *testing.T, dir string) {
	t.Helper()
	for _, name := range []string{"transactions.csv", "transactions_with_errors.csv"} {
		b, err := os.ReadFile(filepath.Join("..", "..", "testdata", name))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), b, 0o644))
	}
}

// runStarter runs the starter command with env and returns its exit code and output.
func runStarter(t *testing.T, env config.Map, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	code := starterapp.Main(ctx, args, env, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}
