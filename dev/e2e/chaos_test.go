package e2e

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"

	"github.com/txflow/txflow/dev/internal/devtemporal"
	"github.com/txflow/txflow/internal/testdb"
	"github.com/txflow/txflow/workflows"
)

// Rows and chunk size of the crash tests' file: enough chunks that the tag and annotate stage
// lasts while it is watched.
const (
	chaosRows  = 150_000
	chaosChunk = 15_000
)

// TestChaosWorkerKilled runs a generated file with a worker process that is killed (SIGKILL) in
// every stage in turn, or stopped gracefully (SIGTERM) in the middle of the run, and restarted.
// Each run must complete with outputs byte-identical to an uninterrupted run of the same file in
// a fresh database, and store nothing twice.
func TestChaosWorkerKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the worker and runs a large file several times")
	}
	bin := buildWorker(t)
	srv := devtemporal.StartForTest(t, devtemporal.Options{SearchAttributes: workflows.SearchAttributes()})
	c := dial(t, srv)
	input := t.TempDir()
	name := generate(t, input, chaosRows, 7)

	// The uninterrupted run, in its own database.
	refOut := t.TempDir()
	refDB := testdb.URL(t)
	w := startWorker(t, c, bin, workerEnv(srv, refDB, input, refOut), nil)
	ref := waitRun(t, startRun(t, c, input, name, chaosChunk), 2*time.Minute)
	require.NoError(t, w.Stop(45*time.Second))
	refCounts := requireNoDuplicates(t, refDB)
	require.EqualValues(t, chaosRows, ref.RowsRead)
	require.EqualValues(t, ref.Ingested, refCounts["transactions"])
	refDir := filepath.Join(refOut, ref.RunID)

	t.Run("sigkill in every stage", func(t *testing.T) {
		out, db := t.TempDir(), testdb.URL(t)
		env := workerEnv(srv, db, input, out)
		w := startWorker(t, c, bin, env, nil)
		run := startRun(t, c, input, name, chaosChunk)
		restart := func(what string) {
			t.Logf("killing the worker %s", what)
			w.Kill()
			w = startWorker(t, c, bin, env, nil)
		}

		// Ingest: once some batches are committed. The report, which runs alongside Tag and
		// Annotate, keeps the figures of the run's lines in run_report_lines, which nothing else
		// writes: while it is locked, the report stays running.
		eventually(t, time.Minute, "ingest to commit a batch", func() bool {
			return ingestedRecords(startedActivity(c, run, actIngest)) > 0
		})
		releaseReport := testdb.LockTable(t, db, "run_report_lines")
		restart("during ingest")

		// Tag and annotate: with chunks done and chunks left.
		eventually(t, 2*time.Minute, "tag and annotate halfway", func() bool {
			s, err := progress(c, run)
			tag := stageOf(s, workflows.StageTag)
			return err == nil && tag.Status == workflows.StatusRunning && tag.Done > 0 && tag.Done < tag.Total &&
				startedActivity(c, run, actTag, actAnnotate) != nil
		})
		restart("during tag and annotate")

		// Report.
		reportWaits := func() bool {
			s, err := progress(c, run)
			return err == nil && stageOf(s, workflows.StageReport).Status == workflows.StatusRunning &&
				startedActivity(c, run, actReport) != nil && waitersOn(t, db, "run_report_lines") > 0
		}
		eventually(t, 2*time.Minute, "the report to wait for run_report_lines", reportWaits)
		restart("during the report")

		// The dump reads tags, which the finished tag stage no longer writes: locked once Tag and
		// Annotate are over, while the report (run again after the kill) still waits, so that the
		// dump starts only then.
		eventually(t, 2*time.Minute, "tag and annotate to complete, the report waiting", func() bool {
			s, err := progress(c, run)
			return err == nil && stageOf(s, workflows.StageTag).Status == workflows.StatusCompleted &&
				stageOf(s, workflows.StageAnnotate).Status == workflows.StatusCompleted && reportWaits()
		})
		releaseDump := testdb.LockTable(t, db, "tags")
		releaseReport()

		// Dump.
		eventually(t, 2*time.Minute, "the dump to wait for tags", func() bool {
			s, err := progress(c, run)
			return err == nil && stageOf(s, workflows.StageDump).Status == workflows.StatusRunning &&
				startedActivity(c, run, actDump) != nil && waitersOn(t, db, "tags") > 0
		})
		restart("during the dump")
		releaseDump()

		s := waitRun(t, run, 2*time.Minute)
		requireSameCounts(t, ref, s)
		requireSameOutputs(t, refDir, filepath.Join(out, s.RunID))
		require.Equal(t, refCounts, requireNoDuplicates(t, db))

		// Every kill interrupted its stage: each stage's activity ran again.
		att := maxAttempts(t, c, run)
		t.Logf("highest attempts: %v", att)
		for _, typ := range []string{actIngest, actReport, actDump} {
			require.GreaterOrEqual(t, att[typ], int32(2), "%s was not retried after the kill", typ)
		}
		require.GreaterOrEqual(t, max(att[actTag], att[actAnnotate]), int32(2), "no tag or annotate chunk was retried after the kill")
		require.NoError(t, w.Stop(45*time.Second))
	})

	t.Run("sigterm mid-run", func(t *testing.T) {
		out, db := t.TempDir(), testdb.URL(t)
		env := workerEnv(srv, db, input, out)
		logs := &syncBuffer{}
		w := startWorker(t, c, bin, env, logs)
		run := startRun(t, c, input, name, chaosChunk)
		eventually(t, 2*time.Minute, "tag and annotate to start", func() bool {
			s, err := progress(c, run)
			tag := stageOf(s, workflows.StageTag)
			return err == nil && tag.Status == workflows.StatusRunning && startedActivity(c, run, actTag, actAnnotate) != nil
		})
		began := time.Now()
		require.NoError(t, w.Stop(45*time.Second), "the worker must exit cleanly on SIGTERM\n%s", logs.String())
		require.Less(t, time.Since(began), 35*time.Second, "the worker must stop within its 30 s grace")
		require.Contains(t, logs.String(), "worker stopped")
		startWorker(t, c, bin, env, nil)

		s := waitRun(t, run, 2*time.Minute)
		requireSameCounts(t, ref, s)
		requireSameOutputs(t, refDir, filepath.Join(out, s.RunID))
		require.Equal(t, refCounts, requireNoDuplicates(t, db))
	})

	// A small run's steps after Ingest are local activities, run within its workflow's task by
	// the worker that holds it: killed there, the task times out, another worker takes the
	// workflow and runs again the local activities not recorded. A lean run (started with its
	// file's size, as the starter and the inbox do) ingests too as a local activity: killed in
	// the middle of it, or after it settled, Ingest runs again from attempt 1. It resumes what its
	// execution committed, and a settlement already made gives its totals back. Each case waits
	// for the run to block on a table it locks, kills the worker there, and expects the same
	// counts and outputs as an undisturbed run.
	for _, kill := range []struct {
		name  string
		lean  bool
		table string // locked until the worker is killed
	}{
		// The report keeps the figures of the run's lines in run_report_lines: while it is
		// locked, the local ReportErrors waits.
		{"sigkill during a small run's local activities", false, "run_report_lines"},
		{"sigkill during a lean run: its local Ingest, the batches committed, the settlement waiting", true, "transactions"},
		{"sigkill during a lean run: its local report, Ingest settled", true, "run_report_lines"},
	} {
		t.Run(kill.name, func(t *testing.T) {
			start, seed := startRun, uint64(13)
			if kill.lean {
				start, seed = startLeanRun, 17
			}
			small := generate(t, input, 5_000, seed)
			refOut, refDB := t.TempDir(), testdb.URL(t)
			w := startWorker(t, c, bin, workerEnv(srv, refDB, input, refOut), nil)
			ref := waitRun(t, start(t, c, input, small, 2_000), 2*time.Minute)
			require.NoError(t, w.Stop(45*time.Second))
			refCounts := requireNoDuplicates(t, refDB)

			out, db := t.TempDir(), testdb.URL(t)
			env := workerEnv(srv, db, input, out)
			w = startWorker(t, c, bin, env, nil) // it migrates the database: the table exists
			release := testdb.LockTable(t, db, kill.table)
			run := start(t, c, input, small, 2_000)
			// (Only the database is watched: the run's local activities run within its workflow task.)
			eventually(t, time.Minute, "the run to wait for "+kill.table, func() bool {
				return waitersOn(t, db, kill.table) > 0
			})
			if kill.table == "transactions" {
				require.Positive(t, countRows(t, db, "run_lines"), "the batches are committed")
			}
			w.Kill()
			release()
			startWorker(t, c, bin, env, nil)

			s := waitRun(t, run, 2*time.Minute)
			requireSameCounts(t, ref, s)
			require.Equal(t, ref.New, s.New, "the transactions the run stored are counted new once")
			requireSameOutputs(t, filepath.Join(refOut, ref.RunID), filepath.Join(out, s.RunID))
			require.Equal(t, refCounts, requireNoDuplicates(t, db))
			h := &historypb.History{Events: history(t, c, run)}
			runs := activityRuns(t, h)
			require.Equal(t, 1, runs[actIngest], "%v", runs)
			require.Equal(t, 1, runs[actReport], "the report is recorded once, as a local activity: %v", runs)
			if kill.lean {
				require.Empty(t, scheduledActivities(h), "a lean run schedules no activity")
			}
			timedOut := false
			for _, ev := range h.GetEvents() {
				timedOut = timedOut || ev.GetEventType() == enumspb.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT
			}
			require.True(t, timedOut, "the killed worker's workflow task timed out")
		})
	}
}
