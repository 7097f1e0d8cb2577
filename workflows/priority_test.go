package workflows

import (
	"sync"
	"testing"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/txflow/txflow/activities"
)

// priorities runs a file of maxSeq lines whose activities all succeed, and returns the priority
// key the workflow asked for each activity type (0: none), as an interceptor sees it. (The test
// environment does not hand priorities to the activities themselves.)
func priorities(t *testing.T, maxSeq int64) map[string]int {
	env := newEnv(t)
	rec := &priorityRecorder{keys: map[string]int{}}
	env.SetWorkerOptions(worker.Options{Interceptors: []interceptor.WorkerInterceptor{rec}})
	env.OnActivity(a.Ingest, mock.Anything, mock.Anything).Return(ingestOK(maxSeq), nil)
	env.OnActivity(a.Tag, mock.Anything, mock.Anything).Return(chunkDoneCtx)
	env.OnActivity(a.Annotate, mock.Anything, mock.Anything).Return(chunkDoneCtx)
	outputsOK(env)
	env.OnActivity(a.Dump, mock.Anything, mock.Anything).Return(activities.DumpResult{Path: "/out/r/output_transactions.csv"}, nil)
	env.ExecuteWorkflow(ProcessFile, ProcessFileInput{File: "in.csv"})
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return rec.keys
}

// priorityRecorder records the priority key of each activity a workflow schedules.
type priorityRecorder struct {
	interceptor.WorkerInterceptorBase
	mu   sync.Mutex
	keys map[string]int
}

func (p *priorityRecorder) InterceptWorkflow(ctx workflow.Context, next interceptor.WorkflowInboundInterceptor) interceptor.WorkflowInboundInterceptor {
	return &priorityInbound{WorkflowInboundInterceptorBase: interceptor.WorkflowInboundInterceptorBase{Next: next}, rec: p}
}

type priorityInbound struct {
	interceptor.WorkflowInboundInterceptorBase
	rec *priorityRecorder
}

func (i *priorityInbound) Init(outbound interceptor.WorkflowOutboundInterceptor) error {
	return i.Next.Init(&priorityOutbound{WorkflowOutboundInterceptorBase: interceptor.WorkflowOutboundInterceptorBase{Next: outbound}, rec: i.rec})
}

type priorityOutbound struct {
	interceptor.WorkflowOutboundInterceptorBase
	rec *priorityRecorder
}

func (o *priorityOutbound) ExecuteActivity(ctx workflow.Context, activityType string, args ...interface{}) workflow.Future {
	o.rec.mu.Lock()
	o.rec.keys[activityType] = workflow.GetActivityOptions(ctx).Priority.PriorityKey
	o.rec.mu.Unlock()
	return o.Next.ExecuteActivity(ctx, activityType, args...)
}

// A run of more than BigRunLines lines yields once ingested: its activities after Ingest are
// scheduled with BigRunPriority, behind every other run's; a smaller run's have no priority (the
// default level).
func TestBigRunYieldsToSmallerRuns(t *testing.T) {
	require.Equal(t, map[string]int{"Ingest": 0, "Tag": BigRunPriority, "Annotate": BigRunPriority,
		"ReportErrors": BigRunPriority, "Dump": BigRunPriority, "WriteSummary": BigRunPriority, "Event": 0},
		priorities(t, BigRunLines+1), "the run's notice keeps the default: it is one small activity")
	require.Equal(t, map[string]int{"Ingest": 0, "Tag": 0, "Annotate": 0, "ReportErrors": 0, "Dump": 0, "WriteSummary": 0, "Event": 0},
		priorities(t, BigRunLines))
}
