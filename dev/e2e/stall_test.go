package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/txflow/txflow/dev/internal/devtemporal"
	"github.com/txflow/txflow/internal/testdb"
	"github.com/txflow/txflow/workflows"
)

// TestStalledDatabaseFailsFastAndRetries holds an ACCESS EXCLUSIVE lock on the transactions table,
// which Ingest needs to settle the file, from another session. With a 2 s lock timeout the Ingest
// activity must fail within seconds with a retryable error (not wait for its two-hour
// start-to-close timeout) and be retried; once the lock is released the run completes with the
// outputs of an undisturbed run.
func TestStalledDatabaseFailsFastAndRetries(t *testing.T) {
	srv := devtemporal.StartForTest(t, devtemporal.Options{SearchAttributes: workflows.SearchAttributes()})
	c := dial(t, srv)
	input, out, db := t.TempDir(), t.TempDir(), testdb.URL(t)
	copySamples(t, input)
	const lockTimeout = 2 * time.Second
	env := workerEnv(srv, db, input, out)
	env["TXFLOW_DB_LOCK_TIMEOUT"] = lockTimeout.String()
	env["TXFLOW_DB_STATEMENT_TIMEOUT"] = "20s"
	runWorker(t, env)
	eventually(t, time.Minute, "the worker to poll (its migrations applied)", func() bool {
		return hasPoller(c, os.Getpid())
	})

	release := testdb.LockTable(t, db, "transactions")
	began := time.Now()
	run := startRun(t, c, input, "transactions.csv", 10)

	// The blocked statement fails after the lock timeout, and the failure is retried.
	var failure string
	eventually(t, 30*time.Second, "ingest to fail on the lock timeout", func() bool {
		desc, err := c.DescribeWorkflowExecution(t.Context(), run.GetID(), run.GetRunID())
		if err != nil {
			return false
		}
		for _, pa := range desc.GetPendingActivities() {
			if f := pa.GetLastFailure(); pa.GetActivityType().GetName() == actIngest && f != nil {
				require.False(t, f.GetApplicationFailureInfo().GetNonRetryable(), "a timed-out statement is not bad data: %v", f)
				failure = f.GetMessage()
				return true
			}
		}
		return false
	})
	took := time.Since(began)
	t.Logf("ingest failed after %s: %s", took.Round(time.Millisecond), failure)
	require.Contains(t, failure, "lock timeout")
	require.Less(t, took, lockTimeout+10*time.Second, "the stall must be noticed within the lock timeout")

	// The run is still running, retrying; release the lock and it completes.
	s, err := progress(c, run)
	require.NoError(t, err)
	require.Equal(t, workflows.StatusRunning, s.Status)
	time.Sleep(lockTimeout) // at least one more attempt against the lock
	release()

	s = waitRun(t, run, 2*time.Minute)
	require.EqualValues(t, 20, s.RowsRead)
	require.EqualValues(t, 20, s.Ingested)
	require.EqualValues(t, 13, s.Tagged)
	require.EqualValues(t, 19, s.Annotated)
	golden(t, filepath.Join(out, s.RunID, "output_transactions.csv"), "testdata/golden/transactions/output_transactions.csv")
	golden(t, filepath.Join(out, s.RunID, "error_report.csv"), "testdata/golden/transactions/error_report.csv")
	requireNoDuplicates(t, db)
	att := maxAttempts(t, c, run)
	t.Logf("highest attempts: %v", att)
	require.GreaterOrEqual(t, att[actIngest], int32(2), "ingest was not retried")
}

// TestIngestProgressVisibleDuringIngest polls the progress query while a 300,000-row file is
// ingested: the rows read must show before the ingest stage completes, not only at its end.
// Ingest reports nothing in its first second (activities.progressReporter), and a fast machine
// loads such a file in less: the run's lines are locked by another session for the first 1.5 s of
// the run, so that every batch commits after that second, whatever the machine's pace.
func TestIngestProgressVisibleDuringIngest(t *testing.T) {
	if testing.Short() {
		t.Skip("ingests a large file")
	}
	srv := devtemporal.StartForTest(t, devtemporal.Options{SearchAttributes: workflows.SearchAttributes()})
	c := dial(t, srv)
	input, out, db := t.TempDir(), t.TempDir(), testdb.URL(t)
	name := generate(t, input, 300_000, 21)
	runWorker(t, workerEnv(srv, db, input, out))
	eventually(t, time.Minute, "the worker to poll (its migrations applied)", func() bool {
		return hasPoller(c, os.Getpid())
	})
	release := testdb.LockTable(t, db, "run_lines")
	run := startRun(t, c, input, name, 100_000)
	time.Sleep(1500 * time.Millisecond) // less than the worker's lock timeout (a minute)
	release()

	var seen []string
	var during workflows.Summary
	eventually(t, 3*time.Minute, "the ingest stage to end", func() bool {
		s, err := progress(c, run)
		if err != nil {
			return false
		}
		ing := stageOf(s, workflows.StageIngest)
		if ing.Status == workflows.StatusRunning && s.RowsRead > 0 {
			if during.RowsRead == 0 {
				during = s
			}
			seen = append(seen, ing.Phase)
		}
		return ing.Status != workflows.StatusPending && ing.Status != workflows.StatusRunning
	})
	ing := stageOf(during, workflows.StageIngest)
	t.Logf("during ingest: rows read %d, %d of %d bytes, phases seen %s", during.RowsRead, ing.Bytes, ing.Size, strings.Join(compact(seen), ", "))
	require.Positive(t, during.RowsRead, "no rows read reported before the ingest stage ended")
	require.Equal(t, during.RowsRead, ing.Done)
	require.Positive(t, ing.Bytes)
	st, err := os.Stat(filepath.Join(input, name))
	require.NoError(t, err)
	require.Equal(t, st.Size(), ing.Size)

	s := waitRun(t, run, 3*time.Minute)
	require.EqualValues(t, 300_000, s.RowsRead)
	require.Zero(t, stageOf(s, workflows.StageIngest).Size, "the final summary has the counts only")
}

// compact drops consecutive repeats.
func compact(xs []string) []string {
	var out []string
	for _, x := range xs {
		if len(out) == 0 || out[len(out)-1] != x {
			out = append(out, x)
		}
	}
	return out
}
