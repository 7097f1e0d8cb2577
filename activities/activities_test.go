package activities

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/testsuite"

	"github.com/txflow/txflow/internal/gen"
	"github.com/txflow/txflow/internal/testdb"
	"github.com/txflow/txflow/postgres"
	"github.com/txflow/txflow/txn"
)

func TestMain(m *testing.M) { testdb.Main(m) }

// recordingSink keeps the progress reports it receives.
type recordingSink struct {
	mu      sync.Mutex
	reports []IngestProgress
}

func (s *recordingSink) IngestProgress(_ context.Context, _, _ string, p IngestProgress) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reports = append(s.reports, p)
	return nil
}

func (s *recordingSink) all() []IngestProgress {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]IngestProgress(nil), s.reports...)
}

// TestIngestReportsProgress ingests a generated file into a real PostgreSQL in small batches with
// no rate limit, and checks what Ingest reports: growing record counts while loading, the file's
// size, then every record once settling begins.
func TestIngestReportsProgress(t *testing.T) {
	ctx := context.Background()
	db, err := postgres.Open(ctx, testdb.URL(t))
	require.NoError(t, err)
	t.Cleanup(db.Close)
	require.NoError(t, db.Migrate(ctx))

	input := t.TempDir()
	f, err := os.Create(filepath.Join(input, "gen.csv"))
	require.NoError(t, err)
	require.NoError(t, gen.Write(f, 30_000, 3))
	require.NoError(t, f.Close())
	st, err := os.Stat(filepath.Join(input, "gen.csv"))
	require.NoError(t, err)

	sink := &recordingSink{}
	a := &Activities{DB: db, Rules: txn.DefaultRules(), InputRoot: input, OutputRoot: t.TempDir(),
		BatchSize: 2_000, Progress: sink, ProgressEvery: time.Nanosecond}
	var suite testsuite.WorkflowTestSuite
	env := suite.NewTestActivityEnvironment()
	env.RegisterActivity(a)
	v, err := env.ExecuteActivity(a.Ingest, IngestInput{RunID: "progress", File: "gen.csv"})
	require.NoError(t, err)
	var res IngestResult
	require.NoError(t, v.Get(&res))
	require.EqualValues(t, 30_000, res.RowsRead)

	reports := sink.all()
	require.GreaterOrEqual(t, len(reports), 2, "%+v", reports)
	last := reports[len(reports)-1]
	require.Equal(t, IngestProgress{Records: 30_000, Bytes: st.Size(), Size: st.Size(), Phase: IngestSettling}, last)
	var prev int64
	for _, p := range reports[:len(reports)-1] {
		require.Equal(t, IngestLoading, p.Phase)
		require.Equal(t, st.Size(), p.Size)
		require.Greater(t, p.Records, prev, "records grow from one report to the next")
		require.LessOrEqual(t, p.Bytes, p.Size)
		prev = p.Records
	}
}

// TestProgressReporterRate checks the bounds on how often progress is reported.
func TestProgressReporterRate(t *testing.T) {
	ctx := context.Background()
	sink := &recordingSink{}
	a := &Activities{Progress: sink, ProgressEvery: time.Second}
	sent := func(r *progressReporter, p IngestProgress, phaseChange bool) bool {
		n := len(sink.all())
		r.report(ctx, p, phaseChange)
		r.wait()
		return len(sink.all()) > n
	}

	// Nothing during the first fifth of the interval: short ingests report nothing.
	r := a.progressReporter(ctx, time.Now())
	require.False(t, sent(r, IngestProgress{Records: 1}, false))
	require.False(t, sent(r, IngestProgress{Records: 1, Phase: IngestSettling}, true))

	// Then once; the next must wait for the interval, but a phase change goes at once.
	r = a.progressReporter(ctx, time.Now().Add(-time.Second))
	require.True(t, sent(r, IngestProgress{Records: 2}, false))
	require.False(t, sent(r, IngestProgress{Records: 3}, false))
	require.True(t, sent(r, IngestProgress{Records: 3, Phase: IngestSettling}, true))
	r.last = time.Now().Add(-1100 * time.Millisecond)
	require.True(t, sent(r, IngestProgress{Records: 4}, false))

	// After a long time, reports are a tenth of the elapsed time apart.
	r = a.progressReporter(ctx, time.Now().Add(-100*time.Second))
	r.last = time.Now().Add(-6 * time.Second)
	require.False(t, sent(r, IngestProgress{Records: 5}, false), "6 s since the last report, 10 s needed")
	r.last = time.Now().Add(-11 * time.Second)
	require.True(t, sent(r, IngestProgress{Records: 6}, false))

	// Without a sink, outside an activity, nothing is reported.
	r = (&Activities{}).progressReporter(ctx, time.Now().Add(-time.Hour))
	r.report(ctx, IngestProgress{Records: 7}, true)
	r.wait()
	require.Len(t, sink.all(), 4)
}

// TestIngestCountsLines checks the line accounting of the result, also when a retry finds the run
// already settled by its predecessor.
func TestIngestCountsLines(t *testing.T) {
	ctx := context.Background()
	db, err := postgres.Open(ctx, testdb.URL(t))
	require.NoError(t, err)
	t.Cleanup(db.Close)
	require.NoError(t, db.Migrate(ctx))
	input := t.TempDir()
	content := "Compte n° 12345678901;;;\n" +
		"Période du 01/03/2024 au 31/03/2024;;;\n" +
		";;;\n" +
		"\n" +
		"   \n" +
		"id;montant;libellé;\n" +
		"1;12,50;CB TAXI;\n" +
		"\n" +
		"2;-3,00;PRLV TOTO;\n"
	require.NoError(t, os.WriteFile(filepath.Join(input, "bank.csv"), []byte(content), 0o644))
	sum, err := HashFile(filepath.Join(input, "bank.csv"))
	require.NoError(t, err)

	a := &Activities{DB: db, Rules: txn.DefaultRules(), InputRoot: input, OutputRoot: t.TempDir()}
	var suite testsuite.WorkflowTestSuite
	env := suite.NewTestActivityEnvironment()
	env.RegisterActivity(a)
	in := IngestInput{RunID: "lines", File: "bank.csv", SHA256: sum}
	v, err := env.ExecuteActivity(a.Ingest, in)
	require.NoError(t, err)
	var res IngestResult
	require.NoError(t, v.Get(&res))
	require.EqualValues(t, 2, res.RowsRead)
	require.EqualValues(t, 9, res.Lines)
	require.EqualValues(t, 6, res.SkippedLines)

	again, err := a.ingest(ctx, in, "", true)
	require.NoError(t, err)
	require.Equal(t, res, again)
}
