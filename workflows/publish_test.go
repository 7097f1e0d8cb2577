package workflows

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/txflow/txflow/activities"
)

var d *activities.Delivery

// deliveryEnv is a run of 25 lines whose Ingest stored pending new transactions, with every
// stage but Publish succeeding; it returns the summary.json the run writes.
func deliveryEnv(t *testing.T, pending int64) (*testsuite.TestWorkflowEnvironment, *[]byte) {
	return deliveryEnvWith(t, pending, chunkDoneCtx, chunkDoneCtx)
}

// chunkFunc is a Tag or Annotate activity of a test.
type chunkFunc = func(context.Context, activities.ChunkInput) (activities.ChunkResult, error)

// deliveryEnvWith is deliveryEnv with the given Tag and Annotate.
func deliveryEnvWith(t *testing.T, pending int64, tag, annotate chunkFunc) (*testsuite.TestWorkflowEnvironment, *[]byte) {
	env := newEnv(t)
	env.RegisterActivity(&activities.Delivery{})
	ing := ingestOK(25)
	ing.Pending = pending
	env.OnActivity(a.Ingest, mock.Anything, mock.Anything).Return(ing, nil).Once()
	env.OnActivity(a.Tag, mock.Anything, mock.Anything).Return(tag)
	env.OnActivity(a.Annotate, mock.Anything, mock.Anything).Return(annotate)
	env.OnActivity(a.ReportErrors, mock.Anything, mock.Anything).Return(activities.FileResult{Path: "/out/r/error_report.csv"}, nil).Once()
	env.OnActivity(a.Dump, mock.Anything, mock.Anything).Return(activities.DumpResult{Path: "/out/r/output_transactions.csv", Rows: 25}, nil).Once()
	written := new([]byte)
	env.OnActivity(a.WriteSummary, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.SummaryInput) (string, error) {
		*written = in.Summary
		return "/out/r/summary.json", nil
	}).Once()
	return env, written
}

func chunkDoneCtx(_ context.Context, c activities.ChunkInput) (activities.ChunkResult, error) {
	return chunkDone(c)
}

func stageNames(s Summary) []string {
	var names []string
	for _, st := range s.Stages {
		names = append(names, st.Name)
	}
	return names
}

// A run with new transactions to deliver publishes them chunk by chunk after the dump, before
// the summary, which counts them.
func TestPublishStageRunsWithPendingMessages(t *testing.T) {
	env, written := deliveryEnv(t, 20)
	var mu sync.Mutex
	var chunks []activities.ChunkInput
	env.OnActivity(d.Publish, mock.Anything, mock.Anything).Return(func(_ context.Context, c activities.ChunkInput) (activities.ChunkResult, error) {
		mu.Lock()
		defer mu.Unlock()
		chunks = append(chunks, c)
		return activities.ChunkResult{Published: min(c.To-c.From, 8)}, nil
	})
	var event activities.RunNotice
	env.OnActivity(n.Event, mock.Anything, mock.Anything).Return(func(_ context.Context, notice activities.RunNotice) (activities.NotifyResult, error) {
		event = notice
		return activities.NotifyResult{Published: true}, nil
	}).Once()

	env.ExecuteWorkflow(ProcessFile, ProcessFileInput{File: "in.csv", ChunkSize: 10, MaxParallel: 2})
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	require.ElementsMatch(t, []activities.ChunkInput{
		{RunID: "default-test-workflow-id", From: 1, To: 11},
		{RunID: "default-test-workflow-id", From: 11, To: 21},
		{RunID: "default-test-workflow-id", From: 21, To: 26},
	}, chunks, "the chunks of Tag and Annotate")

	var s Summary
	require.NoError(t, env.GetWorkflowResult(&s))
	require.Equal(t, []string{StageIngest, StageTag, StageAnnotate, StageReport, StageDump, StagePublish, StageSummary}, stageNames(s))
	st := s.stage(StagePublish)
	require.Equal(t, StatusCompleted, st.Status)
	require.EqualValues(t, 20, st.Total)
	require.EqualValues(t, 20, st.Done)
	require.EqualValues(t, 20, s.Published)
	require.EqualValues(t, 20, event.Counts.Published, "the notice counts them")

	var file map[string]any
	require.NoError(t, json.Unmarshal(*written, &file))
	require.EqualValues(t, 20, file["published"])
	var fromFile Summary
	require.NoError(t, json.Unmarshal(*written, &fromFile))
	require.Equal(t, StatusCompleted, fromFile.stage(StagePublish).Status, "summary.json is written after Publish")
	require.Contains(t, s.Markdown(), "| publish | completed | 20 / 20 (100%) |")
	require.Contains(t, s.Markdown(), "published 20")
	env.AssertExpectations(t)
}

// While the broker is down, Publish is retried without a limit of attempts, the stage showing
// that it waits for the broker; the run completes once the broker is back.
func TestPublishRetriesWhileTheBrokerIsDown(t *testing.T) {
	env, _ := deliveryEnv(t, 5)
	calls := 0
	env.OnActivity(d.Publish, mock.Anything, mock.Anything).Return(func(_ context.Context, c activities.ChunkInput) (activities.ChunkResult, error) {
		calls++
		if calls <= 8 {
			return activities.ChunkResult{}, temporal.NewApplicationError("waiting for the broker: nats is not reachable (connection reconnecting)", "")
		}
		return activities.ChunkResult{Published: 5}, nil
	})
	var during Summary
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(activities.PublishWaitingSignal, activities.PublishWaiting{
			Error: "waiting for the broker: nats is not reachable (connection reconnecting)", Attempt: 1})
	}, 3*time.Second)
	env.RegisterDelayedCallback(func() { during = query(t, env) }, 4*time.Second)

	env.ExecuteWorkflow(ProcessFile, ProcessFileInput{File: "in.csv"})
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError(), "calls %d", calls)
	require.Equal(t, 9, calls)
	// The test environment caps "unlimited" at 10 attempts: the policy itself has no limit.
	require.Zero(t, publishOptions.RetryPolicy.MaximumAttempts, "unlimited attempts")
	require.Equal(t, time.Minute, publishOptions.RetryPolicy.MaximumInterval)
	require.Equal(t, time.Second, publishOptions.RetryPolicy.InitialInterval)

	st := during.stage(StagePublish)
	require.Equal(t, StatusRunning, st.Status)
	require.Equal(t, activities.WaitingForBroker, st.Phase)
	require.Equal(t, "waiting for the broker: nats is not reachable (connection reconnecting)", st.Waiting)
	require.Equal(t, StatusPending, during.stage(StageSummary).Status)
	require.Contains(t, during.Markdown(), "| publish | running (waiting for the broker: nats is not reachable (connection reconnecting)) | 0 / 5 (0%) |")

	s := query(t, env)
	require.Equal(t, StatusCompleted, s.Status)
	st = s.stage(StagePublish)
	require.Equal(t, StatusCompleted, st.Status)
	require.Empty(t, st.Phase)
	require.Empty(t, st.Waiting)
	require.EqualValues(t, 5, s.Published)
}

// A run with nothing new (or delivery off) has no Publish stage and counts nothing published.
func TestPublishNothingNew(t *testing.T) {
	env, written := deliveryEnv(t, 0)
	env.OnActivity(d.Publish, mock.Anything, mock.Anything).Never()
	env.ExecuteWorkflow(ProcessFile, ProcessFileInput{File: "in.csv", ChunkSize: 10})
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	s := query(t, env)
	require.Equal(t, []string{StageIngest, StageTag, StageAnnotate, StageReport, StageDump, StageSummary}, stageNames(s))
	require.Zero(t, s.Published)
	require.NotContains(t, string(*written), "published")
	env.AssertNumberOfCalls(t, "Publish", 0)
}

// A run whose Tag failed does not publish incomplete results: its messages stay pending for the
// file's next run, the stage is skipped.
func TestPublishSkippedWhenAStageFailed(t *testing.T) {
	env := newEnv(t)
	env.RegisterActivity(&activities.Delivery{})
	ing := ingestOK(5)
	ing.Pending = 5
	env.OnActivity(a.Ingest, mock.Anything, mock.Anything).Return(ing, nil).Once()
	env.OnActivity(a.Tag, mock.Anything, mock.Anything).Return(activities.ChunkResult{}, temporal.NewNonRetryableApplicationError("tags table is gone", "Boom", nil))
	env.OnActivity(a.Annotate, mock.Anything, mock.Anything).Return(chunkDoneCtx)
	outputsOK(env)
	env.OnActivity(a.Dump, mock.Anything, mock.Anything).Return(activities.DumpResult{Path: "/out/r/output_transactions.csv"}, nil).Once()
	env.OnActivity(d.Publish, mock.Anything, mock.Anything).Never()
	env.ExecuteWorkflow(ProcessFile, ProcessFileInput{File: "in.csv"})
	require.True(t, env.IsWorkflowCompleted())
	var appErr *temporal.ApplicationError
	require.True(t, errors.As(env.GetWorkflowError(), &appErr))
	require.Equal(t, ErrTypeStageFailed, appErr.Type())
	s := query(t, env)
	require.Equal(t, StatusSkipped, s.stage(StagePublish).Status)
	env.AssertNumberOfCalls(t, "Publish", 0)
}

// Publish runs alongside Tag and Annotate: a chunk's messages are published as soon as both
// completed it, while the other chunks are still being tagged or annotated.
func TestPublishRunsAlongsideTagAndAnnotate(t *testing.T) {
	var mu sync.Mutex
	done := map[string]bool{}       // "tag 1", "annotate 11", ... once completed
	var published []int64           // chunks published, in order
	var beforeLastAnnotated []int64 // chunks published before the last chunk was annotated
	stage := func(name string) func(context.Context, activities.ChunkInput) (activities.ChunkResult, error) {
		return func(_ context.Context, c activities.ChunkInput) (activities.ChunkResult, error) {
			if c.From == 21 {
				time.Sleep(300 * time.Millisecond) // the last chunk is slow
			}
			mu.Lock()
			defer mu.Unlock()
			if c.From == 21 && name == "annotate" {
				beforeLastAnnotated = append([]int64(nil), published...)
			}
			done[fmt.Sprintf("%s %d", name, c.From)] = true
			return chunkDone(c)
		}
	}
	env, _ := deliveryEnvWith(t, 25, stage("tag"), stage("annotate"))
	env.OnActivity(d.Publish, mock.Anything, mock.Anything).Return(func(_ context.Context, c activities.ChunkInput) (activities.ChunkResult, error) {
		mu.Lock()
		defer mu.Unlock()
		require.True(t, done[fmt.Sprintf("tag %d", c.From)] && done[fmt.Sprintf("annotate %d", c.From)],
			"chunk %d published before its Tag and Annotate completed", c.From)
		published = append(published, c.From)
		return activities.ChunkResult{Published: c.To - c.From}, nil
	})

	env.ExecuteWorkflow(ProcessFile, ProcessFileInput{File: "in.csv", ChunkSize: 10, MaxParallel: 4})
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	require.ElementsMatch(t, []int64{1, 11, 21}, published)
	require.ElementsMatch(t, []int64{1, 11}, beforeLastAnnotated, "the first chunks were published while the last was being annotated")
	s := query(t, env)
	require.Equal(t, StatusCompleted, s.stage(StagePublish).Status)
	require.EqualValues(t, 25, s.Published)
	require.Equal(t, []string{StageIngest, StageTag, StageAnnotate, StageReport, StageDump, StagePublish, StageSummary}, stageNames(s))
}

// When Tag fails on a chunk, the chunks Tag and Annotate both completed are still published; the
// failed chunk's messages stay in the outbox, and the run fails.
func TestPublishAlongsideOnlyCompleteChunks(t *testing.T) {
	env, _ := deliveryEnvWith(t, 25, func(_ context.Context, c activities.ChunkInput) (activities.ChunkResult, error) {
		if c.From == 21 {
			return activities.ChunkResult{}, temporal.NewNonRetryableApplicationError("tags table is gone", "Boom", nil)
		}
		return chunkDone(c)
	}, chunkDoneCtx)
	var mu sync.Mutex
	var published []int64
	env.OnActivity(d.Publish, mock.Anything, mock.Anything).Return(func(_ context.Context, c activities.ChunkInput) (activities.ChunkResult, error) {
		mu.Lock()
		defer mu.Unlock()
		published = append(published, c.From)
		return activities.ChunkResult{Published: c.To - c.From}, nil
	})
	env.OnActivity(n.Alert, mock.Anything, mock.Anything).Return(activities.NotifyResult{}, nil).Maybe()

	env.ExecuteWorkflow(ProcessFile, ProcessFileInput{File: "in.csv", ChunkSize: 10, MaxParallel: 4})
	require.True(t, env.IsWorkflowCompleted())
	var appErr *temporal.ApplicationError
	require.True(t, errors.As(env.GetWorkflowError(), &appErr))
	require.Equal(t, ErrTypeStageFailed, appErr.Type())
	require.ElementsMatch(t, []int64{1, 11}, published)
	s := query(t, env)
	require.Equal(t, StatusFailed, s.stage(StageTag).Status)
	require.Equal(t, StatusCompleted, s.stage(StagePublish).Status)
	require.EqualValues(t, 20, s.Published, "the messages of the complete chunks")
}
