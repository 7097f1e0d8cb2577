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

// queues runs a file of maxSeq lines whose activities all succeed, and returns the task queue the
// workflow asked for each activity type, as an interceptor sees it. (The test
// environment runs every activity whatever its task queue.)
func queues(t *testing.T, maxSeq, pending int64) map[string]string {
	env := newEnv(t)
	env.RegisterActivity(&activities.Delivery{})
	rec := &queueRecorder{queues: map[string]string{}}
	env.SetWorkerOptions(worker.Options{Interceptors: []interceptor.WorkerInterceptor{rec}})
	ing := ingestOK(maxSeq)
	ing.Pending = pending
	env.OnActivity(a.Ingest, mock.Anything, mock.Anything).Return(ing, nil)
	env.OnActivity(d.Publish, mock.Anything, mock.Anything).Return(activities.ChunkResult{Published: 1}, nil).Maybe()
	env.OnActivity(a.Tag, mock.Anything, mock.Anything).Return(chunkDoneCtx)
	env.OnActivity(a.Annotate, mock.Anything, mock.Anything).Return(chunkDoneCtx)
	outputsOK(env)
	env.OnActivity(a.Dump, mock.Anything, mock.Anything).Return(activities.DumpResult{Path: "/out/r/output_transactions.csv"}, nil)
	env.ExecuteWorkflow(ProcessFile, ProcessFileInput{File: "in.csv"})
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return rec.queues
}

// queueRecorder records the task queue of each activity a workflow schedules.
type queueRecorder struct {
	interceptor.WorkerInterceptorBase
	mu     sync.Mutex
	queues map[string]string
}

func (p *queueRecorder) InterceptWorkflow(ctx workflow.Context, next interceptor.WorkflowInboundInterceptor) interceptor.WorkflowInboundInterceptor {
	return &queueInbound{WorkflowInboundInterceptorBase: interceptor.WorkflowInboundInterceptorBase{Next: next}, rec: p}
}

type queueInbound struct {
	interceptor.WorkflowInboundInterceptorBase
	rec *queueRecorder
}

func (i *queueInbound) Init(outbound interceptor.WorkflowOutboundInterceptor) error {
	return i.Next.Init(&queueOutbound{WorkflowOutboundInterceptorBase: interceptor.WorkflowOutboundInterceptorBase{Next: outbound}, rec: i.rec})
}

type queueOutbound struct {
	interceptor.WorkflowOutboundInterceptorBase
	rec *queueRecorder
}

func (o *queueOutbound) ExecuteActivity(ctx workflow.Context, activityType string, args ...interface{}) workflow.Future {
	o.rec.mu.Lock()
	o.rec.queues[activityType] = workflow.GetActivityOptions(ctx).TaskQueue
	o.rec.mu.Unlock()
	return o.Next.ExecuteActivity(ctx, activityType, args...)
}

// A run of more than BigRunLines lines sends its activities after Ingest to BulkTaskQueue (its
// Publish to PublishTaskQueue) but its error report, a single short activity alongside Tag and
// Annotate; a smaller run's stay on the workflow's task queue.
func TestBigRunUsesTheBulkTaskQueue(t *testing.T) {
	got := queues(t, BigRunLines+1, 0)
	require.Equal(t, BulkTaskQueue, got["Tag"])
	const own = "default-test-taskqueue" // the workflow's, in the test environment
	require.Equal(t, map[string]string{"Ingest": own, "Tag": BulkTaskQueue, "Annotate": BulkTaskQueue,
		"ReportErrors": own, "Dump": BulkTaskQueue, "WriteSummary": BulkTaskQueue, "Event": own},
		got, "the run's notice and its error report stay: each is one small activity")
	for name, q := range queues(t, BigRunLines, 0) {
		require.Equal(t, own, q, name)
	}
	// With messages to deliver: the big run's Publish on its own queue, a small run's on its own.
	require.Equal(t, PublishTaskQueue, queues(t, BigRunLines+1, 5)["Publish"])
	require.Equal(t, BulkTaskQueue, queues(t, BigRunLines+1, 5)["Tag"])
	require.Equal(t, own, queues(t, BigRunLines, 5)["Publish"])
}
