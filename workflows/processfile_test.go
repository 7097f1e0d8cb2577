package workflows

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/txflow/txflow/activities"
)

// These tests are about orchestration only: the activities are mocked. The end-to-end tests run
// the real activities against a real Temporal server and PostgreSQL.

func newEnv(t *testing.T) *testsuite.TestWorkflowEnvironment {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.RegisterWorkflow(ProcessFile)
	env.RegisterWorkflow(Notify)
	env.RegisterActivity(&activities.Activities{})
	env.RegisterActivity(&activities.Notifier{OutputRoot: t.TempDir()})
	return env
}

var a *activities.Activities

func ingestOK(maxSeq int64) activities.IngestResult {
	return activities.IngestResult{SHA256: "abc", MaxSeq: maxSeq,
		Counts: activities.Counts{RowsRead: maxSeq + 2, Ingested: maxSeq, New: maxSeq, Rejected: 2, InError: 1}}
}

func TestChunks(t *testing.T) {
	require.Empty(t, Chunks(0, 10))
	require.Equal(t, []activities.ChunkInput{{From: 1, To: 11}}, Chunks(10, 10))
	require.Equal(t, []activities.ChunkInput{{From: 1, To: 4}, {From: 4, To: 7}, {From: 7, To: 8}}, Chunks(7, 3))

	// However large the file, a stage never has more than MaxChunks chunks, and they cover it all.
	c := Chunks(1_000_000_000, 100_000)
	require.Len(t, c, MaxChunks)
	require.EqualValues(t, 1, c[0].From)
	require.EqualValues(t, 1_000_000_001, c[len(c)-1].To)
	for i := 1; i < len(c); i++ {
		require.Equal(t, c[i-1].To, c[i].From)
	}
	require.Len(t, Chunks(10_000_000, 100_000), 100)
}

func TestProcessFileSuccess(t *testing.T) {
	env := newEnv(t)
	env.OnActivity(a.Ingest, mock.Anything, activities.IngestInput{RunID: "default-test-workflow-id", File: "in.csv"}).
		Return(ingestOK(25), nil).Once()
	// The test environment runs activities in goroutines of their own.
	var mu sync.Mutex
	var tagged, annotated []activities.ChunkInput
	env.OnActivity(a.Tag, mock.Anything, mock.Anything).Return(func(_ context.Context, c activities.ChunkInput) (activities.ChunkResult, error) {
		mu.Lock()
		defer mu.Unlock()
		tagged = append(tagged, c)
		return activities.ChunkResult{Lines: c.To - c.From, Computed: c.To - c.From}, nil
	})
	env.OnActivity(a.Annotate, mock.Anything, mock.Anything).Return(func(_ context.Context, c activities.ChunkInput) (activities.ChunkResult, error) {
		mu.Lock()
		defer mu.Unlock()
		annotated = append(annotated, c)
		return activities.ChunkResult{Lines: c.To - c.From, Computed: c.To - c.From}, nil
	})
	env.OnActivity(a.ReportErrors, mock.Anything, activities.ReportInput{RunID: "default-test-workflow-id", Figures: true}).
		Return(activities.FileResult{Path: "/out/r/error_report.csv", Rows: 3}, nil).Once()
	env.OnActivity(a.Dump, mock.Anything, activities.DumpInput{RunID: "default-test-workflow-id"}).
		Return(activities.DumpResult{Path: "/out/r/output_transactions.csv", Rows: 25, Tagged: 9, Annotated: 20}, nil).Once()
	// The summary's path is the one the activity returns, not one the workflow rebuilds.
	env.OnActivity(a.WriteSummary, mock.Anything, mock.Anything).Return("/out/r/run-summary.json", nil).Once()

	env.ExecuteWorkflow(ProcessFile, ProcessFileInput{File: "in.csv", ChunkSize: 10, MaxParallel: 2})
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	var s Summary
	require.NoError(t, env.GetWorkflowResult(&s))
	require.Equal(t, StatusCompleted, s.Status)
	require.EqualValues(t, 27, s.RowsRead)
	require.EqualValues(t, 25, s.Ingested)
	require.EqualValues(t, 9, s.Tagged)
	require.EqualValues(t, 20, s.Annotated)
	require.Equal(t, Outputs{Dir: "/out/r", ErrorReport: "/out/r/error_report.csv",
		Transactions: "/out/r/output_transactions.csv", Summary: "/out/r/run-summary.json"}, s.Outputs)
	require.Equal(t, activities.Counts{RowsRead: 27, Ingested: 25, New: 25, Rejected: 2, InError: 1, Tagged: 9, Annotated: 20}, s.Counts)
	want := []activities.ChunkInput{
		{RunID: "default-test-workflow-id", From: 1, To: 11},
		{RunID: "default-test-workflow-id", From: 11, To: 21},
		{RunID: "default-test-workflow-id", From: 21, To: 26},
	}
	require.ElementsMatch(t, want, tagged)
	require.ElementsMatch(t, want, annotated)
	for _, st := range s.Stages {
		require.Equal(t, StatusCompleted, st.Status, st.Name)
	}
	require.EqualValues(t, 25, s.stage(StageTag).Done)
	env.AssertExpectations(t)
}

func TestProcessFileTagFailsStillReportsAndDumps(t *testing.T) {
	env := newEnv(t)
	env.OnActivity(a.Ingest, mock.Anything, mock.Anything).Return(ingestOK(25), nil).Once()
	env.OnActivity(a.Tag, mock.Anything, mock.Anything).
		Return(activities.ChunkResult{}, temporal.NewNonRetryableApplicationError("tag words table is gone", "Boom", nil))
	env.OnActivity(a.Annotate, mock.Anything, mock.Anything).Return(func(_ context.Context, c activities.ChunkInput) (activities.ChunkResult, error) {
		return activities.ChunkResult{Lines: c.To - c.From, Computed: c.To - c.From}, nil
	}).Times(3)
	env.OnActivity(a.ReportErrors, mock.Anything, mock.Anything).Return(activities.FileResult{Path: "/out/r/error_report.csv"}, nil).Once()
	// The dump is written with the failed stage's column left empty.
	env.OnActivity(a.Dump, mock.Anything, activities.DumpInput{RunID: "default-test-workflow-id", OmitTags: true}).
		Return(activities.DumpResult{Path: "/out/r/output_transactions.csv", Rows: 25, Annotated: 20}, nil).Once()
	var written []byte
	env.OnActivity(a.WriteSummary, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.SummaryInput) (string, error) {
		written = in.Summary
		return "/out/r/summary.json", nil
	}).Once()

	env.ExecuteWorkflow(ProcessFile, ProcessFileInput{File: "in.csv", ChunkSize: 10, MaxParallel: 1})
	require.True(t, env.IsWorkflowCompleted())
	err := env.GetWorkflowError()
	require.Error(t, err)
	var appErr *temporal.ApplicationError
	require.True(t, errors.As(err, &appErr))
	require.Equal(t, ErrTypeStageFailed, appErr.Type())
	require.Contains(t, appErr.Error(), "tag failed: tag words table is gone")
	var w Summary
	require.NoError(t, json.Unmarshal(written, &w))
	require.Equal(t, StatusFailed, w.Status)
	require.Equal(t, "tag words table is gone", w.stage(StageTag).Error)
	require.Equal(t, StatusCompleted, w.stage(StageSummary).Status)
	require.Empty(t, w.Outputs.Summary, "summary.json cannot know the path it is written to")

	// The progress query still answers with the final summary.
	s := query(t, env)
	require.Equal(t, StatusFailed, s.Status)
	require.Equal(t, StatusFailed, s.stage(StageTag).Status)
	require.Equal(t, StatusCompleted, s.stage(StageAnnotate).Status)
	require.Equal(t, StatusCompleted, s.stage(StageDump).Status)
	require.Zero(t, s.Tagged)
	env.AssertExpectations(t)
}

func TestProcessFileUnreadableFileFailsFast(t *testing.T) {
	env := newEnv(t)
	calls := 0
	env.OnActivity(a.Ingest, mock.Anything, mock.Anything).Return(func(_ context.Context, _ activities.IngestInput) (activities.IngestResult, error) {
		calls++
		// Returned as the real activity does: typed, and listed as non-retryable.
		return activities.IngestResult{}, temporal.NewApplicationError("in.csv: no usable header", activities.ErrTypeBadFile)
	})
	// Had any later stage run, its mock would be called (and panic).
	later := []string{"Tag", "Annotate", "ReportErrors", "Dump", "WriteSummary"}
	env.OnActivity(a.Tag, mock.Anything, mock.Anything).Never()
	env.OnActivity(a.Annotate, mock.Anything, mock.Anything).Never()
	env.OnActivity(a.ReportErrors, mock.Anything, mock.Anything).Never()
	env.OnActivity(a.Dump, mock.Anything, mock.Anything).Never()
	env.OnActivity(a.WriteSummary, mock.Anything, mock.Anything).Never()
	env.ExecuteWorkflow(ProcessFile, ProcessFileInput{File: "in.csv"})
	require.True(t, env.IsWorkflowCompleted())
	err := env.GetWorkflowError()
	require.Error(t, err)
	require.Contains(t, err.Error(), "no usable header")
	require.Equal(t, 1, calls, "a bad file must not be retried")
	for _, name := range later {
		env.AssertNumberOfCalls(t, name, 0)
	}
	s := query(t, env)
	require.Equal(t, StatusFailed, s.Status)
	require.Equal(t, StatusFailed, s.stage(StageIngest).Status)
	for _, name := range []string{StageTag, StageAnnotate, StageReport, StageDump, StageSummary} {
		require.Equal(t, StatusSkipped, s.stage(name).Status, name)
	}
}

func TestProcessFileRetriesInfrastructureErrors(t *testing.T) {
	env := newEnv(t)
	calls := 0
	env.OnActivity(a.Ingest, mock.Anything, mock.Anything).Return(func(_ context.Context, _ activities.IngestInput) (activities.IngestResult, error) {
		calls++
		if calls < 3 {
			return activities.IngestResult{}, errors.New("connection refused")
		}
		return ingestOK(5), nil
	})
	env.OnActivity(a.Tag, mock.Anything, mock.Anything).Return(activities.ChunkResult{Lines: 5}, nil)
	env.OnActivity(a.Annotate, mock.Anything, mock.Anything).Return(activities.ChunkResult{Lines: 5}, nil)
	env.OnActivity(a.ReportErrors, mock.Anything, mock.Anything).Return(activities.FileResult{Path: "/o/r/error_report.csv"}, nil)
	env.OnActivity(a.Dump, mock.Anything, mock.Anything).Return(activities.DumpResult{Path: "/o/r/output_transactions.csv"}, nil)
	env.OnActivity(a.WriteSummary, mock.Anything, mock.Anything).Return("/o/r/summary.json", nil)
	env.ExecuteWorkflow(ProcessFile, ProcessFileInput{File: "in.csv"})
	require.NoError(t, env.GetWorkflowError())
	require.Equal(t, 3, calls)
}

func TestRunID(t *testing.T) {
	require.Equal(t, "txflow-0123456789abcdef", RunID("", "0123456789abcdef0123456789abcdef"))
}

// query returns the run's summary as the progress query answers it.
func query(t *testing.T, env *testsuite.TestWorkflowEnvironment) Summary {
	t.Helper()
	v, err := env.QueryWorkflow(ProgressQuery)
	require.NoError(t, err)
	var s Summary
	require.NoError(t, v.Get(&s))
	return s
}

// inFlight counts the chunk activities of one stage running at once, as the mocked activities
// see them, and the most it saw.
type inFlight struct {
	mu        sync.Mutex
	now, most int
	chunks    []activities.ChunkInput
}

// run is a mocked chunk activity: it holds its chunk for hold (real time, so that the
// activities the workflow scheduled together overlap), then returns result.
func (f *inFlight) run(hold time.Duration, result func(activities.ChunkInput) (activities.ChunkResult, error)) func(context.Context, activities.ChunkInput) (activities.ChunkResult, error) {
	return func(_ context.Context, c activities.ChunkInput) (activities.ChunkResult, error) {
		f.mu.Lock()
		f.now++
		f.most = max(f.most, f.now)
		f.chunks = append(f.chunks, c)
		f.mu.Unlock()
		time.Sleep(hold)
		f.mu.Lock()
		f.now--
		f.mu.Unlock()
		return result(c)
	}
}

func chunkDone(c activities.ChunkInput) (activities.ChunkResult, error) {
	return activities.ChunkResult{Lines: c.To - c.From, Computed: c.To - c.From}, nil
}

func outputsOK(env *testsuite.TestWorkflowEnvironment) {
	env.OnActivity(a.ReportErrors, mock.Anything, mock.Anything).Return(activities.FileResult{Path: "/out/r/error_report.csv"}, nil).Once()
	env.OnActivity(a.WriteSummary, mock.Anything, mock.Anything).Return("/out/r/summary.json", nil).Once()
}

// TestChunkSchedulerBoundsInFlight checks that each chunked stage has at most MaxParallel
// activities in flight, and does reach that many.
func TestChunkSchedulerBoundsInFlight(t *testing.T) {
	for _, parallel := range []int{1, 3} {
		t.Run(fmt.Sprint(parallel), func(t *testing.T) {
			env := newEnv(t)
			env.OnActivity(a.Ingest, mock.Anything, mock.Anything).Return(ingestOK(70), nil).Once()
			var tag, annotate inFlight
			env.OnActivity(a.Tag, mock.Anything, mock.Anything).Return(tag.run(30*time.Millisecond, chunkDone)).Times(7)
			env.OnActivity(a.Annotate, mock.Anything, mock.Anything).Return(annotate.run(30*time.Millisecond, chunkDone)).Times(7)
			outputsOK(env)
			env.OnActivity(a.Dump, mock.Anything, mock.Anything).Return(activities.DumpResult{Path: "/out/r/output_transactions.csv"}, nil).Once()

			env.ExecuteWorkflow(ProcessFile, ProcessFileInput{File: "in.csv", ChunkSize: 10, MaxParallel: parallel})
			require.True(t, env.IsWorkflowCompleted())
			require.NoError(t, env.GetWorkflowError())
			require.Equal(t, parallel, tag.most, "tag chunks in flight at once")
			require.Equal(t, parallel, annotate.most, "annotate chunks in flight at once")
			require.Len(t, tag.chunks, 7)
			s := query(t, env)
			require.EqualValues(t, 70, s.stage(StageTag).Done)
			require.EqualValues(t, 70, s.stage(StageAnnotate).Done)
			env.AssertExpectations(t)
		})
	}
}

// TestChunkSchedulerStopsAfterFirstFailure checks that a chunked stage schedules no chunk after
// its first failure, still waits for (and counts) the chunks in flight, and that the other stage,
// the report and the dump run all the same.
func TestChunkSchedulerStopsAfterFirstFailure(t *testing.T) {
	env := newEnv(t)
	env.OnActivity(a.Ingest, mock.Anything, mock.Anything).Return(ingestOK(50), nil).Once()
	var tag, annotate inFlight
	// Chunk 1 fails at once while chunk 2 is in flight; chunks 3 to 5 must never start.
	env.OnActivity(a.Tag, mock.Anything, mock.Anything).Return(func(ctx context.Context, c activities.ChunkInput) (activities.ChunkResult, error) {
		if c.From == 1 {
			return tag.run(0, func(activities.ChunkInput) (activities.ChunkResult, error) {
				return activities.ChunkResult{}, temporal.NewNonRetryableApplicationError("tag words table is gone", "Boom", nil)
			})(ctx, c)
		}
		return tag.run(100*time.Millisecond, chunkDone)(ctx, c)
	})
	env.OnActivity(a.Annotate, mock.Anything, mock.Anything).Return(annotate.run(0, chunkDone)).Times(5)
	outputsOK(env)
	env.OnActivity(a.Dump, mock.Anything, activities.DumpInput{RunID: "default-test-workflow-id", OmitTags: true}).
		Return(activities.DumpResult{Path: "/out/r/output_transactions.csv", Annotated: 50}, nil).Once()

	env.ExecuteWorkflow(ProcessFile, ProcessFileInput{File: "in.csv", ChunkSize: 10, MaxParallel: 2})
	require.True(t, env.IsWorkflowCompleted())
	var appErr *temporal.ApplicationError
	require.ErrorAs(t, env.GetWorkflowError(), &appErr)
	require.Equal(t, ErrTypeStageFailed, appErr.Type())

	require.ElementsMatch(t, []activities.ChunkInput{
		{RunID: "default-test-workflow-id", From: 1, To: 11},
		{RunID: "default-test-workflow-id", From: 11, To: 21},
	}, tag.chunks)
	s := query(t, env)
	st := s.stage(StageTag)
	require.Equal(t, StatusFailed, st.Status)
	require.Equal(t, "tag words table is gone", st.Error)
	require.EqualValues(t, 10, st.Done, "the chunk in flight when the stage failed is waited for")
	require.Equal(t, StatusCompleted, s.stage(StageAnnotate).Status)
	require.EqualValues(t, 50, s.stage(StageAnnotate).Done)
	require.Equal(t, StatusCompleted, s.stage(StageReport).Status)
	require.Equal(t, StatusCompleted, s.stage(StageDump).Status)
	require.Equal(t, StatusCompleted, s.stage(StageSummary).Status)
	require.EqualValues(t, 50, s.Annotated)
	env.AssertExpectations(t)
}

// The error report, which needs only the run's lines, is written while the lines are tagged and
// annotated, and computes the report page's figures of the lines: Tag waits here for it.
func TestErrorReportAlongsideTagAndAnnotate(t *testing.T) {
	env := newEnv(t)
	env.OnActivity(a.Ingest, mock.Anything, mock.Anything).Return(ingestOK(5), nil).Once()
	reported := make(chan struct{})
	env.OnActivity(a.ReportErrors, mock.Anything, activities.ReportInput{RunID: "default-test-workflow-id", Figures: true}).
		Return(func(context.Context, activities.ReportInput) (activities.FileResult, error) {
			close(reported)
			return activities.FileResult{Path: "/out/r/error_report.csv"}, nil
		}).Once()
	env.OnActivity(a.Tag, mock.Anything, mock.Anything).Return(func(_ context.Context, c activities.ChunkInput) (activities.ChunkResult, error) {
		select {
		case <-reported:
			return activities.ChunkResult{Lines: c.To - c.From}, nil
		case <-time.After(10 * time.Second):
			return activities.ChunkResult{}, temporal.NewNonRetryableApplicationError("the error report was not written alongside", "Test", nil)
		}
	})
	env.OnActivity(a.Annotate, mock.Anything, mock.Anything).Return(activities.ChunkResult{Lines: 5}, nil)
	env.OnActivity(a.Dump, mock.Anything, mock.Anything).Return(activities.DumpResult{Path: "/out/r/output_transactions.csv", Rows: 5}, nil).Once()
	env.OnActivity(a.WriteSummary, mock.Anything, mock.Anything).Return("/out/r/summary.json", nil).Once()

	env.ExecuteWorkflow(ProcessFile, ProcessFileInput{File: "in.csv"})
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	var s Summary
	require.NoError(t, env.GetWorkflowResult(&s))
	require.Equal(t, StatusCompleted, s.Status)
	require.Equal(t, "/out/r/error_report.csv", s.Outputs.ErrorReport)
	require.Equal(t, StatusCompleted, s.stage(StageReport).Status)
}

// runOK makes every activity of a run of lines succeed.
func runOK(env *testsuite.TestWorkflowEnvironment, lines int64) {
	env.OnActivity(a.Ingest, mock.Anything, mock.Anything).Return(ingestOK(lines), nil).Once()
	done := func(_ context.Context, c activities.ChunkInput) (activities.ChunkResult, error) { return chunkDone(c) }
	env.OnActivity(a.Tag, mock.Anything, mock.Anything).Return(done)
	env.OnActivity(a.Annotate, mock.Anything, mock.Anything).Return(done)
	env.OnActivity(a.Dump, mock.Anything, mock.Anything).Return(activities.DumpResult{Path: "/out/r/output_transactions.csv"}, nil).Once()
	outputsOK(env)
}

// watchActivities records, by type, the activities env runs as local activities and those it
// schedules; read the maps once the workflow ended.
func watchActivities(env *testsuite.TestWorkflowEnvironment) (local, scheduled map[string]bool) {
	var mu sync.Mutex
	local, scheduled = map[string]bool{}, map[string]bool{}
	env.SetOnLocalActivityStartedListener(func(info *activity.Info, _ context.Context, _ []any) {
		mu.Lock()
		defer mu.Unlock()
		local[info.ActivityType.Name] = true
	})
	env.SetOnActivityStartedListener(func(info *activity.Info, _ context.Context, _ converter.EncodedValues) {
		mu.Lock()
		defer mu.Unlock()
		scheduled[info.ActivityType.Name] = true
	})
	return local, scheduled
}

// TestSmallRunsUseLocalActivities: a run of up to LocalRunLines lines runs its stages after
// Ingest, and its notice, as local activities; a run told its file is small (ProcessFileInput.Size,
// leanChange) ingests it as a local activity too, and upserts only the search attributes it was
// not started with: a small file's run schedules no activity at all.
func TestSmallRunsUseLocalActivities(t *testing.T) {
	all := []string{"Annotate", "Dump", "Event", "Ingest", "ReportErrors", "Tag", "WriteSummary"}
	afterIngest := []string{"Annotate", "Dump", "Event", "ReportErrors", "Tag", "WriteSummary"}
	for _, tc := range []struct {
		name       string
		size       int64 // of the file, as the run is told
		lines      int64
		startAttrs bool     // started with StartSearchAttributes
		local      []string // the activities run locally; the others are scheduled
		upserts    int      // of the run's own search attributes
	}{
		{"25 lines", 0, 25, false, afterIngest, 3},
		{"LocalRunLines lines", 0, LocalRunLines, false, afterIngest, 3},
		{"more lines", 0, LocalRunLines + 1, false, nil, 3},
		{"lean: small file started with its attributes", 40_000, 1000, true, all, 1},
		{"lean: small file started without them", 40_000, 1000, false, all, 2},
		{"lean: small file of many lines", LocalFileBytes, LocalRunLines + 1, true, []string{"Event", "Ingest"}, 2},
		{"big file", LocalFileBytes + 1, 1000, true, afterIngest, 3},
		{"size unknown", 0, 1000, true, afterIngest, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := newEnv(t)
			in := ProcessFileInput{File: "in.csv", Account: "acme", Size: tc.size, ChunkSize: LocalRunLines + 1}
			if tc.startAttrs {
				require.NoError(t, env.SetTypedSearchAttributesOnStart(StartSearchAttributes(in)))
			}
			runOK(env, tc.lines)
			upserts := 0
			env.OnUpsertTypedSearchAttributes(mock.Anything).Return(nil).Run(func(mock.Arguments) { upserts++ })
			local, scheduled := watchActivities(env)
			env.ExecuteWorkflow(ProcessFile, in)
			require.NoError(t, env.GetWorkflowError())
			var s Summary
			require.NoError(t, env.GetWorkflowResult(&s))
			require.Equal(t, StatusCompleted, s.Status)
			require.EqualValues(t, tc.lines, s.stage(StageTag).Done)
			require.ElementsMatch(t, tc.local, slices.Collect(maps.Keys(local)))
			for _, name := range all {
				require.NotEqual(t, local[name], scheduled[name], "%s: local %v, scheduled %v", name, local[name], scheduled[name])
			}
			require.Equal(t, tc.upserts, upserts)
			env.AssertExpectations(t)
		})
	}
}
