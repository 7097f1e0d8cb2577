package e2e

import (
	"context"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/txflow/txflow/activities"
	"github.com/txflow/txflow/dev/internal/devtemporal"
	"github.com/txflow/txflow/internal/testdb"
	"github.com/txflow/txflow/workflows"
)

// TestTwoWorkersShareOneRun runs one file's chunks on two worker processes against one server and
// one database, checks that both executed chunks, and that the outputs are byte-identical to a
// one-worker run of the same file on another database.
func TestTwoWorkersShareOneRun(t *testing.T) {
	srv := devtemporal.StartForTest(t, devtemporal.Options{})
	c := dial(t, srv)
	bin := buildWorker(t)
	input := t.TempDir()
	name := generate(t, input, 40_000, 7)

	run := func(workers int) (outDir string, chunkWorkers map[string]int) {
		dbURL, output := testdb.URL(t), t.TempDir()
		env := workerEnv(srv, dbURL, input, output)
		var procs []string
		logs := &syncBuffer{}
		defer func() {
			if t.Failed() {
				t.Logf("worker output:\n%s", logs.String())
			}
		}()
		for i := 0; i < workers; i++ {
			p := startWorker(t, c, bin, env, logs)
			procs = append(procs, pidPrefix(p.Pid()))
			defer p.Stop(30 * time.Second)
		}
		sum, err := activities.HashFile(filepath.Join(input, name))
		require.NoError(t, err)
		r, err := c.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{
			ID:                    workflows.RunID("", sum),
			TaskQueue:             workflows.TaskQueue,
			WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		}, workflows.ProcessFile, workflows.ProcessFileInput{File: name, SHA256: sum, ChunkSize: 2_000, MaxParallel: 8})
		require.NoError(t, err)
		defer func() {
			if t.Failed() {
				d, err := c.DescribeWorkflowExecution(context.Background(), r.GetID(), r.GetRunID())
				if err == nil {
					t.Logf("status %v, pending activities: %v", d.GetWorkflowExecutionInfo().GetStatus(), d.GetPendingActivities())
				}
				if s, err := progress(c, r); err == nil {
					t.Logf("progress: %+v", s)
				}
			}
		}()
		s := waitRun(t, r, 3*time.Minute)
		require.EqualValues(t, 40_000, s.RowsRead)

		// Which worker process started each chunk activity.
		chunkWorkers = map[string]int{}
		types := map[int64]string{}
		for _, ev := range history(t, c, r) {
			switch ev.GetEventType() {
			case enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
				types[ev.GetEventId()] = ev.GetActivityTaskScheduledEventAttributes().GetActivityType().GetName()
			case enumspb.EVENT_TYPE_ACTIVITY_TASK_STARTED:
				a := ev.GetActivityTaskStartedEventAttributes()
				if typ := types[a.GetScheduledEventId()]; typ == actTag || typ == actAnnotate {
					for _, p := range procs {
						if strings.HasPrefix(a.GetIdentity(), p) {
							chunkWorkers[p]++
						}
					}
				}
			}
		}
		return filepath.Join(output, r.GetID()), chunkWorkers
	}

	oneDir, one := run(1)
	require.Len(t, one, 1)
	twoDir, two := run(2)
	require.Len(t, two, 2, "both workers must execute chunks of the run: %v", two)
	total := 0
	for _, n := range two {
		total += n
	}
	require.Equal(t, 40, total, "20 tag and 20 annotate chunks")
	requireSameOutputs(t, oneDir, twoDir)
}

func pidPrefix(pid int) string { return strconv.Itoa(pid) + "@" }
