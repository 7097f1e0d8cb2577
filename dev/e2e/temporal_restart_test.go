package e2e

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/txflow/txflow/dev/internal/devstack"
	"github.com/txflow/txflow/dev/internal/devtemporal"
	"github.com/txflow/txflow/internal/config"
	"github.com/txflow/txflow/internal/testdb"
	"github.com/txflow/txflow/workflows"
)

// TestTemporalKilledMidRun runs a generated file with the Temporal dev server as a process of its
// own, on a SQLite file, and kills that server (SIGKILL) while the run tags and annotates, then
// starts it again on the same port and file. The starter, a process waiting on the run, must
// reconnect and print the completed summary; the outputs must be byte-identical to those of an
// undisturbed run of the same file in a fresh database, and no table may hold a key twice.
func TestTemporalKilledMidRun(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the dev server, the worker and the starter and runs a large file twice")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	bins, err := devstack.Build(ctx, t.TempDir(), "dev/devserver", "worker", "starter")
	require.NoError(t, err)

	port, err := devtemporal.FreePort()
	require.NoError(t, err)
	dbFile := filepath.Join(t.TempDir(), "temporal.db")
	temporal := startDevserver(t, bins["devserver"], port, dbFile)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	c, err := client.Dial(client.Options{HostPort: addr, Namespace: "default"})
	require.NoError(t, err)
	t.Cleanup(c.Close)

	input := t.TempDir()
	name := generate(t, input, chaosRows, 11)

	// The undisturbed run, in its own database.
	refOut, refDB := t.TempDir(), testdb.URL(t)
	w := startWorker(t, c, bins["worker"], workerEnvAt(addr, "default", refDB, input, refOut), nil)
	ref := waitRun(t, startRun(t, c, input, name, chaosChunk), 2*time.Minute)
	require.NoError(t, w.Stop(45*time.Second))
	refCounts := requireNoDuplicates(t, refDB)
	require.EqualValues(t, chaosRows, ref.RowsRead)

	// The same file again in a fresh database, started and waited on by the starter process.
	out, db := t.TempDir(), testdb.URL(t)
	env := workerEnvAt(addr, "default", db, input, out)
	w = startWorker(t, c, bins["worker"], env, nil)
	starterOut := &syncBuffer{}
	starter, err := devstack.StartProcess(bins["starter"], devstack.Environ(env), starterOut,
		"run", "--chunk-size", strconv.Itoa(chaosChunk), name)
	require.NoError(t, err)
	t.Cleanup(func() {
		if !starter.Exited() {
			starter.Kill()
		}
	})

	// Kill Temporal with chunks done and chunks left.
	var executionRunID string
	run := c.GetWorkflow(ctx, ref.RunID, "")
	eventually(t, 2*time.Minute, "tag and annotate halfway", func() bool {
		if starter.Exited() {
			t.Fatalf("the starter exited before the kill: %v\n%s", starter.Wait(), starterOut.String())
		}
		dctx, dcancel := context.WithTimeout(ctx, 5*time.Second)
		defer dcancel()
		desc, err := c.DescribeWorkflowExecution(dctx, ref.RunID, "")
		if err != nil || desc.GetWorkflowExecutionInfo().GetStatus() != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
			return false // not started yet: the latest execution is the undisturbed run's
		}
		executionRunID = desc.GetWorkflowExecutionInfo().GetExecution().GetRunId()
		s, err := progress(c, run)
		tag := stageOf(s, workflows.StageTag)
		return err == nil && tag.Status == workflows.StatusRunning && tag.Done > 0 && tag.Done < tag.Total &&
			startedActivity(c, run, actTag, actAnnotate) != nil
	})
	t.Log("killing the Temporal server during tag and annotate")
	temporal.Kill()

	// While the server is away, the worker and the starter keep waiting.
	time.Sleep(3 * time.Second)
	require.False(t, starter.Exited(), "the starter gave up while Temporal was down: %v\n%s", exitErr(starter), starterOut.String())
	require.False(t, w.Exited(), "the worker gave up while Temporal was down")
	restarted := time.Now()
	startDevserver(t, bins["devserver"], port, dbFile)
	t.Logf("Temporal restarted on the same port and file in %s", time.Since(restarted).Round(time.Millisecond))

	done := make(chan error, 1)
	go func() { done <- starter.Wait() }()
	select {
	case err := <-done:
		require.NoError(t, err, "the starter failed after the restart\n%s", starterOut.String())
	case <-time.After(2 * time.Minute):
		t.Fatalf("the starter did not finish within 2 minutes of the restart\n%s", starterOut.String())
	}

	// The starter printed the completed summary with the run's counts and outputs.
	printed := starterOut.String()
	require.Contains(t, printed, workflows.StatusCompleted+" in ", printed)
	require.Contains(t, printed, fmt.Sprintf("  %-10s %10d", "rows read", ref.RowsRead), printed)
	require.Contains(t, printed, fmt.Sprintf("  %-10s %10d", "annotated", ref.Annotated), printed)
	runDir := filepath.Join(out, ref.RunID)
	require.Contains(t, printed, filepath.Join(runDir, "output_transactions.csv"), printed)

	// The execution that completed is the one started before the kill: the restarted server
	// carried on from its file.
	desc, err := c.DescribeWorkflowExecution(ctx, ref.RunID, executionRunID)
	require.NoError(t, err)
	require.Equal(t, enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED, desc.GetWorkflowExecutionInfo().GetStatus())

	s := (&harness{t: t, output: out}).summary(ref.RunID)
	requireSameCounts(t, ref, s)
	requireSameOutputs(t, filepath.Join(refOut, ref.RunID), runDir)
	require.Equal(t, refCounts, requireNoDuplicates(t, db))
	require.NoError(t, w.Stop(45*time.Second))
}

// startDevserver starts the dev server command (headless, without PostgreSQL) on port with the
// SQLite file dbFile, and waits until it serves. The process is stopped at the end of the test if
// it still runs.
func startDevserver(t *testing.T, bin string, port int, dbFile string) *devstack.Process {
	t.Helper()
	logs := &syncBuffer{}
	p, err := devstack.StartProcess(bin, devstack.Environ(config.Map{}), logs,
		"--port", strconv.Itoa(port), "--db-filename", dbFile, "--headless", "--postgres=false", "--log-level", "error")
	require.NoError(t, err)
	t.Cleanup(func() {
		if !p.Exited() {
			_ = p.Stop(30 * time.Second)
		}
	})
	eventually(t, time.Minute, "the dev server to serve", func() bool {
		if p.Exited() {
			t.Fatalf("the dev server exited at start: %v\n%s", p.Wait(), logs.String())
		}
		return strings.Contains(logs.String(), "Press Ctrl+C")
	})
	return p
}

// exitErr returns the exit error of a process that has ended, for messages.
func exitErr(p *devstack.Process) error {
	if !p.Exited() {
		return nil
	}
	return p.Wait()
}
