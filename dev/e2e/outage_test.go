package e2e

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/txflow/txflow/dev/internal/devtemporal"
	"github.com/txflow/txflow/internal/devpg"
	"github.com/txflow/txflow/internal/testdb"
	"github.com/txflow/txflow/workflows"
)

// TestOutagePostgresRestartedMidRun stops the worker's PostgreSQL server twice in the middle of a
// run, during ingestion and during tag and annotate, for a few seconds each time, and starts it
// again on the same port. The activities retry with backoff: the run must complete with the
// outputs of an undisturbed run and store nothing twice.
func TestOutagePostgresRestartedMidRun(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a large file twice and restarts PostgreSQL")
	}
	srv := devtemporal.StartForTest(t, devtemporal.Options{SearchAttributes: workflows.SearchAttributes()})
	c := dial(t, srv)
	input := t.TempDir()
	name := generate(t, input, 100_000, 11)
	const chunk = 10_000

	// The undisturbed run, on the shared test server.
	refOut, refDB := t.TempDir(), testdb.URL(t)
	stopRef := runWorker(t, workerEnv(srv, refDB, input, refOut))
	ref := waitRun(t, startRun(t, c, input, name, chunk), 2*time.Minute)
	stopRef()

	// A cluster of our own, to stop and start.
	dir, err := os.MkdirTemp("", "txflow-outage-")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	require.NoError(t, os.Chmod(dir, 0o755)) // the server runs as postgres when tests run as root
	opts := devpg.Options{DataDir: filepath.Join(dir, "pg"), Fast: true}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	pg, err := devpg.Start(ctx, opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = pg.Stop() })
	require.NoError(t, pg.CreateDatabase(ctx, "txflow"))
	db := pg.URL("txflow")
	opts.Port = pg.Port() // the worker keeps its URL: the server must come back on the same port

	out := t.TempDir()
	runWorker(t, workerEnv(srv, db, input, out))
	run := startRun(t, c, input, name, chunk)
	outage := func(what string) {
		t.Logf("stopping PostgreSQL %s", what)
		require.NoError(t, pg.Stop())
		time.Sleep(4 * time.Second)
		pg, err = devpg.Start(ctx, opts)
		require.NoError(t, err)
		require.Equal(t, opts.Port, pg.Port())
		t.Cleanup(func() { _ = pg.Stop() })
	}

	eventually(t, time.Minute, "ingest to commit a batch", func() bool {
		return ingestedRecords(startedActivity(c, run, actIngest)) > 0
	})
	outage("during ingest")
	eventually(t, 2*time.Minute, "tag and annotate halfway", func() bool {
		s, err := progress(c, run)
		tag := stageOf(s, workflows.StageTag)
		return err == nil && tag.Status == workflows.StatusRunning && tag.Done > 0 && tag.Done < tag.Total
	})
	outage("during tag and annotate")

	s := waitRun(t, run, 3*time.Minute)
	requireSameCounts(t, ref, s)
	requireSameOutputs(t, filepath.Join(refOut, ref.RunID), filepath.Join(out, s.RunID))
	require.Equal(t, requireNoDuplicates(t, refDB), requireNoDuplicates(t, db))
	att := maxAttempts(t, c, run)
	t.Logf("highest attempts: %v", att)
	require.GreaterOrEqual(t, att[actIngest], int32(2), "ingest did not meet the outage")
}
