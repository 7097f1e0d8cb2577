package activities

import (
	"context"
	"sync"
	"sync/atomic"
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

// DefaultProgressEvery is the least time between two progress reports of one Ingest.
const DefaultProgressEvery = 5 * time.Second

// progressReporter sends Ingest's progress to its workflow at a bounded rate, so that the run's
// history stays small whatever the file's size: the first report once every/5 has passed (an
// ingest shorter than that reports nothing), then at most one per every or per tenth of the time
// elapsed, whichever is longer — a few dozen reports for an ingest of hours. Reports go out in
// the background, one at a time, and a report that fails is only logged: progress is never
// worth failing or slowing the ingestion.
type progressReporter struct {
	sink              ProgressSink
	workflowID, runID string
	every             time.Duration
	began, last       time.Time
	busy              atomic.Bool
	wg                sync.WaitGroup
}

// progressReporter returns the reporter of an Ingest that began at began; it reports nothing
// outside an activity unless a.Progress is set, nor in a local activity.
func (a *Activities) progressReporter(ctx context.Context, began time.Time) *progressReporter {
	r := &progressReporter{sink: a.Progress, every: a.ProgressEvery, began: began}
	if r.every <= 0 {
		r.every = DefaultProgressEvery
	}
	if activity.IsActivity(ctx) {
		info := activity.GetInfo(ctx)
		if info.IsLocalActivity {
			// A local Ingest (a small file's) runs within its workflow's task, which a signal
			// would only follow with another: it reports nothing.
			return &progressReporter{}
		}
		we := info.WorkflowExecution
		r.workflowID, r.runID = we.ID, we.RunID
		if r.sink == nil {
			r.sink = signalSink{}
		}
	}
	return r
}

// report sends p if a report is due; a phase change is due as soon as the first report is. It is
// called from one goroutine.
func (r *progressReporter) report(ctx context.Context, p IngestProgress, phaseChange bool) {
	if r.sink == nil {
		return
	}
	if phaseChange {
		r.wg.Wait() // a phase change is not dropped for a report still on its way
	}
	now := time.Now()
	elapsed := now.Sub(r.began)
	switch {
	case elapsed < r.every/5:
		return
	case !phaseChange && !r.last.IsZero() && now.Sub(r.last) < max(r.every, elapsed/10):
		return
	case !r.busy.CompareAndSwap(false, true):
		return // the previous report is still on its way
	}
	r.last = now
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		defer r.busy.Store(false)
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := r.sink.IngestProgress(ctx, r.workflowID, r.runID, p); err != nil && activity.IsActivity(ctx) {
			activity.GetLogger(ctx).Warn("ingest progress not reported", "error", err)
		}
	}()
}

// wait waits for the report on its way, if any.
func (r *progressReporter) wait() { r.wg.Wait() }
