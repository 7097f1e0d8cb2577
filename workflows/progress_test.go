package workflows

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"

	"github.com/txflow/txflow/activities"
)

// TestIngestProgressSignalUpdatesQuery checks that a progress report of Ingest, sent by signal
// while Ingest runs, shows in the progress query and the current details, and that the stage's
// final counts replace it when Ingest completes.
func TestIngestProgressSignalUpdatesQuery(t *testing.T) {
	env := newEnv(t)
	ing := ingestOK(25)
	ing.Lines, ing.SkippedLines = 31, 3
	env.OnActivity(a.Ingest, mock.Anything, mock.Anything).After(10*time.Minute).Return(ing, nil).Once()
	env.OnActivity(a.Tag, mock.Anything, mock.Anything).Return(activities.ChunkResult{Lines: 25}, nil)
	env.OnActivity(a.Annotate, mock.Anything, mock.Anything).Return(activities.ChunkResult{Lines: 25}, nil)
	env.OnActivity(a.ReportErrors, mock.Anything, mock.Anything).Return(activities.FileResult{Path: "/out/r/error_report.csv"}, nil)
	env.OnActivity(a.Dump, mock.Anything, mock.Anything).Return(activities.DumpResult{Path: "/out/r/output_transactions.csv"}, nil)
	env.OnActivity(a.WriteSummary, mock.Anything, mock.Anything).Return("/out/r/summary.json", nil)

	var before, loading, settling Summary
	env.RegisterDelayedCallback(func() {
		before = query(t, env)
		env.SignalWorkflow(activities.IngestProgressSignal,
			activities.IngestProgress{Records: 12, Bytes: 500, Size: 1000, Phase: activities.IngestLoading})
	}, time.Minute)
	env.RegisterDelayedCallback(func() {
		loading = query(t, env)
		env.SignalWorkflow(activities.IngestProgressSignal,
			activities.IngestProgress{Records: 27, Bytes: 1000, Size: 1000, Phase: activities.IngestSettling})
	}, 2*time.Minute)
	env.RegisterDelayedCallback(func() { settling = query(t, env) }, 3*time.Minute)

	env.ExecuteWorkflow(ProcessFile, ProcessFileInput{File: "in.csv", ChunkSize: 10})
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())

	require.EqualValues(t, 0, before.RowsRead)
	require.Equal(t, StatusRunning, before.stage(StageIngest).Status)

	st := loading.stage(StageIngest)
	require.Equal(t, StatusRunning, st.Status)
	require.EqualValues(t, 12, loading.RowsRead)
	require.EqualValues(t, 12, st.Done)
	require.EqualValues(t, 0, st.Total, "the file's record count is known only at the end")
	require.EqualValues(t, 500, st.Bytes)
	require.EqualValues(t, 1000, st.Size)
	require.Contains(t, loading.Markdown(), "| ingest | running | 12 read (50% of the file) |")

	require.Equal(t, activities.IngestSettling, settling.stage(StageIngest).Phase)
	require.EqualValues(t, 27, settling.RowsRead)
	require.Contains(t, settling.Markdown(), "| ingest | running | 27 read, settling |")

	var s Summary
	require.NoError(t, env.GetWorkflowResult(&s))
	st = s.stage(StageIngest)
	require.Equal(t, StatusCompleted, st.Status)
	require.EqualValues(t, 27, st.Done)
	require.EqualValues(t, 27, st.Total)
	require.Zero(t, st.Bytes)
	require.Empty(t, st.Phase)

	// The reader's line accounting reaches summary.json.
	require.EqualValues(t, 31, s.Lines)
	require.EqualValues(t, 3, s.SkippedLines)
	b, err := json.Marshal(s)
	require.NoError(t, err)
	require.Contains(t, string(b), `"lines":31,"skipped_lines":3,`)
}

// TestLateIngestProgressIsDropped checks that a progress report arriving once Ingest is over (from
// an attempt that was given up) changes nothing.
func TestLateIngestProgressIsDropped(t *testing.T) {
	env := newEnv(t)
	env.OnActivity(a.Ingest, mock.Anything, mock.Anything).Return(ingestOK(25), nil).Once()
	env.OnActivity(a.Tag, mock.Anything, mock.Anything).After(10*time.Minute).Return(activities.ChunkResult{Lines: 25}, nil)
	env.OnActivity(a.Annotate, mock.Anything, mock.Anything).Return(activities.ChunkResult{Lines: 25}, nil)
	env.OnActivity(a.ReportErrors, mock.Anything, mock.Anything).Return(activities.FileResult{Path: "/out/r/error_report.csv"}, nil)
	env.OnActivity(a.Dump, mock.Anything, mock.Anything).Return(activities.DumpResult{Path: "/out/r/output_transactions.csv"}, nil)
	env.OnActivity(a.WriteSummary, mock.Anything, mock.Anything).Return("/out/r/summary.json", nil)
	var after Summary
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(activities.IngestProgressSignal,
			activities.IngestProgress{Records: 3, Bytes: 10, Size: 100, Phase: activities.IngestLoading})
	}, time.Minute)
	env.RegisterDelayedCallback(func() { after = query(t, env) }, 2*time.Minute)

	env.ExecuteWorkflow(ProcessFile, ProcessFileInput{File: "in.csv"})
	require.NoError(t, env.GetWorkflowError())
	require.Equal(t, StatusRunning, after.stage(StageTag).Status, "the report came while Tag ran")
	require.EqualValues(t, 27, after.RowsRead)
	st := after.stage(StageIngest)
	require.Equal(t, StatusCompleted, st.Status)
	require.EqualValues(t, 27, st.Done)
	require.Zero(t, st.Size)
	require.Empty(t, st.Phase)
}
