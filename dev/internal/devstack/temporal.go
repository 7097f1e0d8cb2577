package devstack

import (
	"context"
	"fmt"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	taskqueuepb "go.temporal.io/api/taskqueue/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/txflow/txflow/activities"
	"github.com/txflow/txflow/workflows"
)

// WaitForPollers waits until at least n distinct workers poll the task queue for activities.
func WaitForPollers(ctx context.Context, c client.Client, namespace, taskQueue string, n int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		resp, err := c.WorkflowService().DescribeTaskQueue(ctx, &workflowservice.DescribeTaskQueueRequest{
			Namespace:     namespace,
			TaskQueue:     &taskqueuepb.TaskQueue{Name: taskQueue, Kind: enumspb.TASK_QUEUE_KIND_NORMAL},
			TaskQueueType: enumspb.TASK_QUEUE_TYPE_ACTIVITY,
		})
		if err == nil && len(resp.GetPollers()) >= n {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d worker(s) expected on task queue %s, not there after %s (last error: %v)", n, taskQueue, timeout, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// RunIDOf returns the run id the starter gives the file at path.
func RunIDOf(path string) (string, error) {
	sum, err := activities.HashFile(path)
	if err != nil {
		return "", err
	}
	return workflows.RunID("", sum), nil
}
