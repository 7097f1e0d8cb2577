package activities

import (
	"context"
	"sync"
	"time"

	"go.temporal.io/sdk/activity"
)

// heartbeatEvery is how often a running activity tells Temporal it is alive when its heartbeat
// timeout is unknown; with a timeout it beats three times per timeout.
const heartbeatEvery = 5 * time.Second

// keepAlive heartbeats in the background until the returned stop function is called, so that a
// worker that dies is noticed within the activity's heartbeat timeout, however long one database
// statement takes. details returns the progress to report (nil for none).
func keepAlive(ctx context.Context, details func() any) (stop func()) {
	if !activity.IsActivity(ctx) {
		return func() {}
	}
	every := heartbeatEvery
	if t := activity.GetInfo(ctx).HeartbeatTimeout; t > 0 && t/3 < every {
		every = max(t/3, 100*time.Millisecond)
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-tick.C:
				if details == nil {
					activity.RecordHeartbeat(ctx)
				} else {
					activity.RecordHeartbeat(ctx, details())
				}
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}
