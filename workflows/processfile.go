// Package workflows orchestrates the txflow pipeline on Temporal. ProcessFile is the whole
// pipeline of one file:
//
//	Ingest ──┬── Tag (chunk 1..n) ──────┬── Dump ──┬── WriteSummary
//	         ├── Annotate (chunk 1..n) ─┤          │
//	         ├── ReportErrors ──────────┘          │
//	         └── [Publish (chunk i once Tagged and Annotated)] ────┘
//
// Ingest streams the file into PostgreSQL and settles duplicates and conflicts. Tag and Annotate
// then run side by side, each as one activity per chunk of the run's lines with a bounded number
// in flight, so any worker can take any chunk; ReportErrors, which needs only the run's lines,
// writes the error report beside them. ReportErrors and Dump always run once ingestion
// succeeded, even when Tag or Annotate failed: the failed column is left empty, the summary says
// why, and the run then fails. When delivery is on and Ingest stored new transactions, Publish
// delivers their results to NATS JetStream, a chunk as soon as its Tag and its Annotate completed,
// alongside the other stages, retrying for as long as the broker is down; the summary is written
// once every chunk is delivered. Only references (run id, chunk bounds, paths) cross the workflow.
//
// A run of up to LocalRunLines lines runs its stages after Ingest (but Publish), and its notice,
// as local activities of the worker that runs its workflow; a lean run (a file of at most
// LocalFileBytes whose size the starter or the inbox gave) its Ingest too: a small file's run is
// one workflow task and no activity for the Temporal server to schedule, instead of seven.
//
// In the code: run.pipeline issues the stages in that order; run records what each activity
// returns into the Summary (summary.go, a plain value with the activities' Counts) and publishes
// it; chunkScheduler keeps at most MaxParallel chunk activities of a stage in flight, over a
// run's chunks (run) or over the chunks as readyChunks collects them (runAsReady, Publish).
//
// At the end the run delivers its notice (notify.go): an alert on failure, an event on
// completion, starting the Notify workflow only to keep retrying a receiver that is down;
// ProcessInbox (inbox.go), run by a schedule, starts one ProcessFile per file of the inbox.
package workflows

import (
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/txflow/txflow/activities"
	"github.com/txflow/txflow/txn"
)

// TaskQueue is the task queue txflow's workers poll and its starter submits to.
const TaskQueue = "txflow"

// ProgressQuery is the query that returns a run's current Summary.
const ProgressQuery = "progress"

// Defaults of ProcessFileInput.
const (
	DefaultChunkSize   = 100_000
	DefaultMaxParallel = 4
	// DefaultHeartbeatTimeout bounds how long a step stays with a worker that stopped answering.
	DefaultHeartbeatTimeout = 30 * time.Second
)

// ErrTypeStageFailed is the error type a run fails with when Tag or Annotate failed after the
// report and dump were written.
const ErrTypeStageFailed = "StageFailedError"

// ProcessFileInput is the input of ProcessFile.
type ProcessFileInput struct {
	File        string // path of the file, relative to the worker's input root
	SHA256      string // optional: the file's content hash; the run fails if the file differs
	ChunkSize   int64  // lines per Tag/Annotate activity; DefaultChunkSize when 0
	MaxParallel int    // chunk activities in flight per stage; DefaultMaxParallel when 0
	// HeartbeatTimeout is how soon an activity whose worker died is handed to another worker;
	// DefaultHeartbeatTimeout when 0.
	HeartbeatTimeout time.Duration
	// Account is the run's account, that of every row of a file without an account column
	// (rows of a file with one are under their own); txn.DefaultAccount when empty. An invalid
	// account fails the run at once with a non-retryable activities.ErrTypeBadAccount error.
	Account string `json:",omitempty"`
	// Profile names the mapping profile to read the file with, resolved by the worker among its
	// profiles (the built-in ones and TXFLOW_PROFILES_DIR's); "" lets it choose one by the file's
	// name, or none. Only the name crosses Temporal. An unknown name fails the run at once with a
	// non-retryable activities.ErrTypeUnknownProfile error.
	Profile string `json:",omitempty"`
	// Size is the file's size in bytes when the caller knows it (the starter and the inbox
	// do), 0 otherwise. A file of at most LocalFileBytes makes a lean run (leanChange): Ingest
	// too runs as a local activity.
	Size int64 `json:",omitempty"`
}

// Stage names, in pipeline order.
const (
	StageIngest   = "ingest"
	StageTag      = "tag"
	StageAnnotate = "annotate"
	StageReport   = "report"
	StageDump     = "dump"
	StagePublish  = "publish" // only in runs with messages to deliver
	StageSummary  = "summary"
)

// Stage statuses.
const (
	StatusPending   = "pending"
	StatusRunning   = "running"
	StatusCompleted = "completed"
	StatusFailed    = "failed"
	StatusSkipped   = "skipped"
)

// ProcessFile runs the pipeline on one file and returns its summary. The run id is the
// workflow id; outputs go to <output root>/<run id>/.
//
// While it runs it keeps the Txflow* search attributes (file, status, rows, rejected, errors)
// and the workflow's current details (a markdown table of the stages) up to date, and emits the
// metrics of metrics.go. When it ends it delivers its notice (notify): an alert and
// failure.json for a failed run, an event for a completed one.
func ProcessFile(ctx workflow.Context, in ProcessFileInput) (*Summary, error) {
	r := newRun(ctx, in.withDefaults())
	s := r.summary
	s.SHA256 = in.SHA256 // known before Ingest: the notice of a file refused by Ingest names it too
	s.Profile = in.Profile
	if err := workflow.SetQueryHandler(ctx, ProgressQuery, func() (*Summary, error) { return s, nil }); err != nil {
		return nil, fmt.Errorf("register progress query: %w", err)
	}
	// Ingest reports its progress by signal (a few per run); handling one issues no command.
	progress := workflow.GetSignalChannel(ctx, activities.IngestProgressSignal)
	workflow.Go(ctx, func(ctx workflow.Context) {
		for {
			var p activities.IngestProgress
			progress.Receive(ctx, &p)
			r.ingestProgressed(p)
		}
	})
	// Publish says so by signal when it waits for the broker (a few per chunk at most).
	waiting := workflow.GetSignalChannel(ctx, activities.PublishWaitingSignal)
	workflow.Go(ctx, func(ctx workflow.Context) {
		for {
			var w activities.PublishWaiting
			waiting.Receive(ctx, &w)
			r.publishWaiting(w)
		}
	})
	// A small file's run is lean: its Ingest, and its next stages when it has at most
	// LocalRunLines lines, are local activities, and it records no search attribute it was
	// started with (StartSearchAttributes). Runs started without the size do not ask.
	if in.Size > 0 && in.Size <= LocalFileBytes && workflow.GetVersion(ctx, leanChange, workflow.DefaultVersion, 1) == 1 {
		r.lean = true
	}
	if !r.lean || !startedWithSearchAttributes(ctx, s) {
		upsertSearchAttributes(ctx, s)
	}
	r.publish()

	err := r.pipeline(ctx)

	if err != nil && s.Status != StatusFailed {
		// The summary itself could not be written.
		s.Status, s.Error = StatusFailed, rootCause(err)
	}
	r.metrics.finished(s.Status)
	r.publish()
	upsertSearchAttributes(ctx, s)
	notify(ctx, s, err, r.local || r.lean, r.lean)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// run is one execution of ProcessFile under way: the summary it fills in, publishes (progress
// query, current details) and returns, and the metrics it emits. Its methods record what the
// pipeline learns and issue no command; the commands are issued by pipeline and chunkScheduler.
type run struct {
	// ctx is the workflow's root context, used only for what does not block (the clock, the
	// current details): each coroutine blocks on its own context.
	ctx     workflow.Context
	in      ProcessFileInput
	summary *Summary
	metrics runMetrics
	began   map[string]time.Time // when each stage started running, for the stage duration metric
	// local runs the activities after Ingest (but Publish) and the notice as local activities:
	// a small run (LocalRunLines).
	local bool
	// lean runs Ingest as a local activity too, and asks for none of the changes that
	// leanChange follows: a small file (LocalFileBytes).
	lean bool
}

func newRun(ctx workflow.Context, in ProcessFileInput) *run {
	return &run{
		ctx:     ctx,
		in:      in,
		summary: newSummary(workflow.GetInfo(ctx).WorkflowExecution.ID, in.File, in.account(), workflow.Now(ctx)),
		metrics: newRunMetrics(ctx),
		began:   map[string]time.Time{},
	}
}

// pipeline runs the stages of the package doc, in order.
func (r *run) pipeline(ctx workflow.Context) error {
	var a *activities.Activities
	s, hb := r.summary, r.in.HeartbeatTimeout

	// 1. Ingest: a file that cannot be read, or an invalid account, fails the run at once. The
	// account is checked here, before any command: runs recorded before accounts existed have
	// none, so their command sequence is unchanged.
	r.start(StageIngest)
	if _, err := activities.ValidAccount(r.in.Account); err != nil {
		r.fail(StageIngest, err)
		r.finish()
		return err
	}
	var ing activities.IngestResult
	err := execute(withOptions(ctx, ingestOptions, hb), r.lean, a.Ingest,
		activities.IngestInput{RunID: s.RunID, File: r.in.File, SHA256: r.in.SHA256, Account: r.in.Account, Profile: r.in.Profile}).Get(ctx, &ing)
	if err != nil {
		r.fail(StageIngest, err)
		r.finish()
		return err
	}
	r.ingested(ing)
	// A big run's next activities go to the bulk task queue, which every worker polls with slots
	// of its own: the run's chunks cannot take the slots of the main queue, so a small file
	// started meanwhile is not stuck behind them.
	// Its Publish activities go to a queue of their own, so that they neither starve its Tag and
	// Annotate of bulk slots nor take the main queue's.
	// A small run's next activities (but Publish, which may wait long for the broker) and its
	// notice are local activities of the worker that runs its workflow: they cost Temporal no
	// activity, and do not queue behind anything.
	// A lean small run publishes its counts with its final search attributes, normally in the
	// same workflow task.
	if r.lean && ing.MaxSeq <= LocalRunLines {
		r.local = true
	} else {
		upsertSearchAttributes(ctx, s)
		if ing.MaxSeq <= LocalRunLines && workflow.GetVersion(ctx, localChange, workflow.DefaultVersion, 1) == 1 {
			r.local = true
		}
	}
	yield, yieldPublish := func(o activityOptions) activityOptions { return o }, func(o activityOptions) activityOptions { return o }
	if ing.MaxSeq > BigRunLines && r.since(ctx, yieldChange) {
		yield = func(o activityOptions) activityOptions {
			o.TaskQueue = BulkTaskQueue
			return o
		}
		yieldPublish = func(o activityOptions) activityOptions {
			o.TaskQueue = PublishTaskQueue
			return o
		}
	}

	// 3. The error report needs only the run's lines: it is written alongside Tag and Annotate,
	// and computes beside it the figures of the report page that the lines give, so that Dump
	// has only the results' left (runs recorded before that write it after them).
	var report activities.FileResult
	var reportErr error
	reporting := workflow.NewWaitGroup(ctx)
	reportAlongside := r.since(ctx, reportAlongsideChange)
	if reportAlongside {
		// On TaskQueue even for a big run: a single activity of a second or two, which would
		// otherwise hold one of the few slots of its Tag and Annotate.
		reporting.Add(1)
		workflow.Go(ctx, func(ctx workflow.Context) {
			defer reporting.Done()
			report, reportErr = r.errorReport(withOptions(ctx, reportOptions, hb), true)
		})
	}

	// 2. Tag ‖ Annotate, chunk by chunk; neither waits for the other. When Ingest stored new
	// transactions to deliver, 5. Publish runs alongside: a chunk's messages as soon as its Tag and
	// its Annotate completed (runs recorded before that published after the dump).
	chunks := Chunks(ing.MaxSeq, r.in.ChunkSize)
	var ready *readyChunks
	var publishErr error
	publishing := workflow.NewWaitGroup(ctx)
	if ing.Pending > 0 && r.since(ctx, publishAlongsideChange) {
		ready = &readyChunks{stages: map[int64]int{}, total: len(chunks)}
		publishing.Add(1)
		workflow.Go(ctx, func(ctx workflow.Context) {
			defer publishing.Done()
			publishErr = r.deliveredAsReady(withOptions(ctx, yieldPublish(publishOptions), hb), ready, ing.Pending)
		})
	}
	var tagErr, annotateErr error
	wg := workflow.NewWaitGroup(ctx)
	wg.Add(2)
	workflow.Go(ctx, func(ctx workflow.Context) {
		defer wg.Done()
		tagErr = r.chunked(withOptions(ctx, yield(chunkOptions), hb), StageTag, a.Tag, chunks, ready)
	})
	workflow.Go(ctx, func(ctx workflow.Context) {
		defer wg.Done()
		annotateErr = r.chunked(withOptions(ctx, yield(chunkOptions), hb), StageAnnotate, a.Annotate, chunks, ready)
	})
	wg.Wait(ctx)
	ready.finish()

	// 3. The error report and 4. the dump are written whatever happened to Tag and Annotate.
	if reportAlongside {
		reporting.Wait(ctx)
	} else {
		report, reportErr = r.errorReport(withOptions(ctx, yield(reportOptions), hb), false)
	}
	if reportErr != nil {
		r.finish()
		return reportErr
	}
	s.Outputs.ErrorReport, s.Outputs.Dir = report.Path, path.Dir(report.Path)

	r.start(StageDump)
	var dump activities.DumpResult
	dumpIn := activities.DumpInput{RunID: s.RunID, OmitTags: tagErr != nil, OmitAnnotations: annotateErr != nil}
	if err := execute(withOptions(ctx, yield(dumpOptions), hb), r.local, a.Dump, dumpIn).Get(ctx, &dump); err != nil {
		r.fail(StageDump, err)
		r.finish()
		return err
	}
	s.Outputs.Transactions = dump.Path
	s.Tagged, s.Annotated = dump.Tagged, dump.Annotated
	r.complete(StageDump)
	r.metrics.dumped(s.Counts)

	// 5. Publish the new results, when there are any: a chunk whose results are incomplete (its
	// Tag or Annotate failed) leaves its messages in the outbox, for the file's next run.
	if ready != nil {
		publishing.Wait(ctx)
	} else if ing.Pending > 0 && tagErr == nil && annotateErr == nil &&
		workflow.GetVersion(ctx, publishChange, workflow.DefaultVersion, 1) == 1 {
		// A run recorded before Publish ran alongside Tag and Annotate.
		publishErr = r.delivered(withOptions(ctx, yieldPublish(publishOptions), hb), chunks, ing.Pending)
	}

	// 6. The summary, beside the outputs; then the run fails if a stage did.
	stageErr := errors.Join(tagErr, annotateErr, publishErr)
	r.finish()
	if err := r.writeSummary(withOptions(ctx, yield(summaryOptions), hb)); err != nil {
		return err
	}
	if stageErr != nil {
		return temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("%s; report and output were written to %s", s.failureText(), s.Outputs.Dir),
			ErrTypeStageFailed, stageErr)
	}
	return nil
}

// chunked runs a chunked stage, Tag or Annotate, over the run's chunks and records its progress;
// each completed chunk is told to ready (nil when nothing is published alongside).
func (r *run) chunked(ctx workflow.Context, stage string, fn any, chunks []activities.ChunkInput, ready *readyChunks) error {
	r.start(stage)
	st := r.summary.stage(stage)
	st.Total = r.summary.Ingested
	sched := chunkScheduler{runID: r.summary.RunID, rulesVersion: r.summary.RulesVersion, stage: stage, fn: fn, parallel: r.in.MaxParallel, local: r.local,
		done: func(chunk activities.ChunkInput, res activities.ChunkResult) {
			st.Done += res.Lines
			st.Computed += res.Computed
			ready.stageDone(chunk)
			r.publish()
		}}
	if err := sched.run(ctx, chunks); err != nil {
		r.fail(stage, err)
		return err
	}
	r.complete(stage)
	return nil
}

// BigRunLines is the size above which a run's activities after Ingest go to BulkTaskQueue: a run
// of more lines than one default chunk.
const BigRunLines = DefaultChunkSize

// LocalRunLines is the size up to which a run's activities after Ingest (but Publish) and its
// notice are local activities: a file of a few thousand lines goes through each of them in tens
// of milliseconds, less than Temporal spends scheduling, dispatching and recording an activity.
// An inbox of hundreds of small files then keeps the Temporal server busy with one activity per
// file instead of seven (none for a lean run, see LocalFileBytes), and a small file started while
// big runs fill the task queues waits behind none of their chunks.
const LocalRunLines = 10_000

// localRetryBudget bounds the time a local activity spends over its attempts, retries included:
// beyond it the stage fails as an activity out of attempts would.
const localRetryBudget = time.Hour

// localChange marks, for workflow.GetVersion, the local activities of small runs: runs recorded
// before it schedule every activity. Runs of more than LocalRunLines lines do not ask for it,
// nor do lean runs, which came after it.
const localChange = "small-run-local-activities"

// LocalFileBytes is the file size up to which a run is lean (leanChange), when the file's size
// is known at its start: its Ingest runs as a local activity, well within a workflow task
// (a megabyte is tens of thousands of lines, a fraction of a second to ingest). With
// LocalRunLines, a small file's run is then one workflow task and no activity.
const LocalFileBytes = 1 << 20

// leanChange marks, for workflow.GetVersion, lean runs: the run of a file of at most
// LocalFileBytes (ProcessFileInput.Size) ingests it as a local activity, and, when it has at most
// LocalRunLines lines, runs its next stages as local activities without upserting its search
// attributes after Ingest; it does not upsert the ones it was started with. Each GetVersion
// costs the Temporal server a marker and a search attribute update, which a small run is
// mostly made of: a lean run asks only this one, and follows every change recorded before it
// without asking (run.since). Runs started without the size do not ask for it.
const leanChange = "small-file-lean"

// BulkTaskQueue is the task queue of big runs' activities after Ingest (but Publish). Every
// worker polls it beside TaskQueue, with half as many activity slots (TXFLOW_WORKER_CONCURRENCY
// / 2, at least 1): big runs keep at most those busy, and the slots of TaskQueue stay free for
// the other runs, whose statements then also find the CPU less crowded. A priority would only
// order the queue; it would not free a slot a long chunk holds.
const BulkTaskQueue = TaskQueue + "-bulk"

// PublishTaskQueue is the task queue of big runs' Publish activities, polled by every worker
// with slots of its own (TXFLOW_WORKER_CONCURRENCY of them): publishing a chunk mostly waits for
// the broker, and must neither hold the slots of the run's Tag and Annotate nor those of
// TaskQueue.
const PublishTaskQueue = TaskQueue + "-publish"

// yieldChange marks, for workflow.GetVersion, BulkTaskQueue and PublishTaskQueue: runs recorded
// before it schedule every activity on TaskQueue. Runs of up to BigRunLines lines do not ask for it.
const yieldChange = "big-run-yields"

// publishChange marks, for workflow.GetVersion, the Publish stage after the dump: runs recorded
// before it have none. Runs without messages to deliver do not ask for it.
const publishChange = "publish-results"

// publishAlongsideChange marks, for workflow.GetVersion, the Publish stage run alongside Tag and
// Annotate, a chunk as soon as both completed it: runs recorded before it publish after the dump
// (publishChange). Runs without messages to deliver do not ask for it.
const publishAlongsideChange = "publish-alongside"

// reportAlongsideChange marks, for workflow.GetVersion, the error report written alongside Tag
// and Annotate, computing the figures of the report page that the run's lines give: runs
// recorded before it write it after them, and Dump computes every figure.
const reportAlongsideChange = "report-alongside"

// since says whether the run follows change, one of the changes recorded before leanChange: a
// lean run does without asking.
func (r *run) since(ctx workflow.Context, change string) bool {
	return r.lean || workflow.GetVersion(ctx, change, workflow.DefaultVersion, 1) == 1
}

// errorReport runs the report stage: ReportErrors, with the figures of the run's lines when
// figures.
func (r *run) errorReport(ctx workflow.Context, figures bool) (activities.FileResult, error) {
	var a *activities.Activities
	r.start(StageReport)
	var report activities.FileResult
	in := activities.ReportInput{RunID: r.summary.RunID, Figures: figures}
	if err := execute(ctx, r.local, a.ReportErrors, in).Get(ctx, &report); err != nil {
		r.fail(StageReport, err)
		return report, err
	}
	r.complete(StageReport)
	return report, nil
}

// publishScheduler is the chunk scheduler of the Publish stage, which records its progress.
func (r *run) publishScheduler(pending int64) chunkScheduler {
	var d *activities.Delivery
	st := r.summary.stage(StagePublish)
	st.Total = pending
	return chunkScheduler{runID: r.summary.RunID, stage: StagePublish, fn: d.Publish, parallel: r.in.MaxParallel,
		done: func(_ activities.ChunkInput, res activities.ChunkResult) {
			st.Done = min(st.Done+res.Published, st.Total)
			st.Phase, st.Waiting = "", "" // a chunk went through: the broker is there
			r.publish()
		}}
}

// delivered runs the Publish stage over the run's chunks, after the dump (runs recorded before
// Publish ran alongside Tag and Annotate): it completes once the broker has acknowledged every
// one of the pending messages. While the broker is down the activities retry without end, and
// the stage shows that it waits for the broker (publishWaiting).
func (r *run) delivered(ctx workflow.Context, chunks []activities.ChunkInput, pending int64) error {
	r.start(StagePublish)
	sched := r.publishScheduler(pending)
	if err := sched.run(ctx, chunks); err != nil {
		r.fail(StagePublish, err)
		return err
	}
	r.allDelivered()
	return nil
}

// deliveredAsReady runs the Publish stage alongside Tag and Annotate: a chunk as soon as both
// completed it. It completes once the broker has acknowledged every pending message, or, when
// Tag or Annotate failed, the messages of every chunk they completed: the others stay in the
// outbox. While the broker is down the activities retry without end, and the stage shows that
// it waits for the broker (publishWaiting).
func (r *run) deliveredAsReady(ctx workflow.Context, ready *readyChunks, pending int64) error {
	sched := r.publishScheduler(pending)
	sched.started = func() { r.start(StagePublish) }
	if err := sched.runAsReady(ctx, ready); err != nil {
		r.fail(StagePublish, err)
		return err
	}
	if len(ready.chunks) == ready.total {
		r.allDelivered()
		return nil
	}
	// Tag or Annotate failed: what was published is counted; a stage never started is skipped.
	st := r.summary.stage(StagePublish)
	r.summary.Published = st.Done
	if st.Status == StatusRunning {
		r.complete(StagePublish)
	}
	return nil
}

// allDelivered completes the Publish stage once every chunk completed: every message pending at
// settlement was acknowledged (a retried chunk may have counted less than it delivered).
func (r *run) allDelivered() {
	st := r.summary.stage(StagePublish)
	st.Done = st.Total
	r.summary.Published = st.Total
	r.complete(StagePublish)
}

// readyChunks collects the chunks whose Tag and Annotate both completed, in the order they did,
// for the Publish stage to take as they come. Its methods are called by the coroutines of one
// workflow, which never run at once; a nil *readyChunks ignores them (nothing is published
// alongside).
type readyChunks struct {
	stages map[int64]int // chunk (by its first line) → stages that completed it
	chunks []activities.ChunkInput
	total  int  // chunks of the run
	over   bool // Tag and Annotate are over: no chunk is added any more
}

// stageDone records that a stage completed chunk.
func (rc *readyChunks) stageDone(chunk activities.ChunkInput) {
	if rc == nil {
		return
	}
	rc.stages[chunk.From]++
	if rc.stages[chunk.From] == 2 {
		rc.chunks = append(rc.chunks, activities.ChunkInput{From: chunk.From, To: chunk.To})
	}
}

// finish records that Tag and Annotate are over.
func (rc *readyChunks) finish() {
	if rc != nil {
		rc.over = true
	}
}

// publishWaiting records that Publish waits for the broker; a report that arrives when the stage
// does not run (a late one) is dropped.
func (r *run) publishWaiting(w activities.PublishWaiting) {
	st := r.summary.findStage(StagePublish)
	if st == nil || st.Status != StatusRunning {
		return
	}
	st.Phase, st.Waiting = activities.WaitingForBroker, w.Error
	r.publish()
}

// writeSummary has the summary written beside the outputs, and records the path the activity
// returns. The file says its own stage completed: it exists only once written.
func (r *run) writeSummary(ctx workflow.Context) error {
	var a *activities.Activities
	s := r.summary
	r.start(StageSummary)
	r.complete(StageSummary)
	b, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("encode summary: %w", err)
	}
	var written string
	if err := execute(ctx, r.local, a.WriteSummary, activities.SummaryInput{RunID: s.RunID, Summary: b}).Get(ctx, &written); err != nil {
		r.fail(StageSummary, err)
		return err
	}
	s.Outputs.Summary = written
	return nil
}

// chunkScheduler runs one activity per chunk of a stage, at most parallel of them in flight.
// After the first failure it schedules no more chunks, waits for those in flight and returns that
// failure: the stage has failed, and the chunks not yet started would be work for nothing.
type chunkScheduler struct {
	runID string
	// rulesVersion is the version of the rules the run applies, passed to every chunk (Tag,
	// Annotate); 0 for none (Publish, runs recorded before versions).
	rulesVersion int
	stage        string // names the activities in the Web UI
	fn           any    // the activity: Activities.Tag or Activities.Annotate
	parallel     int
	local        bool                                                // local activities (a small run's stages)
	done         func(activities.ChunkInput, activities.ChunkResult) // called as each chunk completes
	started      func()                                              // when not nil, called as runAsReady schedules its first chunk
}

func (c chunkScheduler) run(ctx workflow.Context, chunks []activities.ChunkInput) error {
	sel := workflow.NewSelector(ctx)
	var firstErr error
	next, inFlight := 0, 0
	for {
		for firstErr == nil && inFlight < c.parallel && next < len(chunks) {
			chunk := chunks[next]
			next++
			inFlight++
			sel.AddFuture(c.execute(ctx, chunk), func(f workflow.Future) {
				inFlight--
				var res activities.ChunkResult
				if err := f.Get(ctx, &res); err != nil {
					if firstErr == nil {
						firstErr = err
					}
					return
				}
				c.done(chunk, res)
			})
		}
		if inFlight == 0 {
			return firstErr
		}
		sel.Select(ctx)
	}
}

// runAsReady runs one activity per chunk of ready, in the order they are added to it, at most
// parallel of them in flight, until ready is over and each of its chunks ran. After the first
// failure it schedules no more chunks, waits for those in flight and returns that failure, as run
// does.
func (c chunkScheduler) runAsReady(ctx workflow.Context, ready *readyChunks) error {
	var firstErr error
	next, inFlight := 0, 0
	ended := func() bool {
		return inFlight == 0 && (firstErr != nil || ready.over && next == len(ready.chunks))
	}
	for {
		if err := workflow.Await(ctx, func() bool {
			return ended() || firstErr == nil && inFlight < c.parallel && next < len(ready.chunks)
		}); err != nil {
			return err
		}
		if ended() {
			return firstErr
		}
		chunk := ready.chunks[next]
		next++
		inFlight++
		if next == 1 && c.started != nil {
			c.started()
		}
		f := c.execute(ctx, chunk)
		workflow.Go(ctx, func(ctx workflow.Context) {
			var res activities.ChunkResult
			err := f.Get(ctx, &res)
			inFlight--
			if err != nil {
				if firstErr == nil {
					firstErr = err
				}
				return
			}
			c.done(chunk, res)
		})
	}
}

// execute schedules the stage's activity for chunk, named in the Web UI by its lines.
func (c chunkScheduler) execute(ctx workflow.Context, chunk activities.ChunkInput) workflow.Future {
	chunk.RunID, chunk.RulesVersion = c.runID, c.rulesVersion
	actCtx := workflow.WithActivityOptions(ctx, withSummary(workflow.GetActivityOptions(ctx),
		fmt.Sprintf("%s lines %d to %d: %s", c.stage, chunk.From, chunk.To-1, stageDoc[c.stage])))
	return execute(actCtx, c.local, c.fn, chunk)
}

// execute schedules the activity fn with the options of ctx; when local, as a local activity:
// the worker that runs the workflow task runs it at once, with the same start-to-close timeout
// and retry policy, and its attempts within localRetryBudget in all.
func execute(ctx workflow.Context, local bool, fn any, args ...any) workflow.Future {
	if !local {
		return workflow.ExecuteActivity(ctx, fn, args...)
	}
	o := workflow.GetActivityOptions(ctx)
	return workflow.ExecuteLocalActivity(workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
		ScheduleToCloseTimeout: localRetryBudget,
		StartToCloseTimeout:    o.StartToCloseTimeout,
		RetryPolicy:            o.RetryPolicy,
		Summary:                o.Summary,
	}), fn, args...)
}

// publish shows the summary in the workflow's current details (Web UI); it issues no command.
func (r *run) publish() {
	workflow.SetCurrentDetails(r.ctx, r.summary.Markdown())
}

func (r *run) start(stage string) {
	r.summary.stage(stage).Status = StatusRunning
	r.began[stage] = workflow.Now(r.ctx)
	r.publish()
}

func (r *run) complete(stage string) {
	r.summary.stage(stage).Status = StatusCompleted
	r.ended(stage)
}

func (r *run) fail(stage string, err error) {
	st := r.summary.stage(stage)
	st.Status, st.Error = StatusFailed, rootCause(err)
	r.ended(stage)
}

func (r *run) ended(stage string) {
	// The summary stage completes before its activity runs: it has no duration of its own.
	if began, ok := r.began[stage]; ok && stage != StageSummary {
		r.metrics.stage(stage, workflow.Now(r.ctx).Sub(began))
	}
	r.publish()
}

// finish closes the summary: stages never reached are skipped, the status says whether any failed.
func (r *run) finish() {
	s := r.summary
	now := workflow.Now(r.ctx)
	s.FinishedAt = &now
	s.Status = StatusCompleted
	for _, st := range s.Stages {
		switch st.Status {
		case StatusPending, StatusRunning:
			st.Status = StatusSkipped
		case StatusFailed:
			s.Status = StatusFailed
		}
	}
	if s.Status == StatusFailed {
		s.Error = s.failureText()
	}
}

// ingestProgressed records a progress report of Ingest; reports that arrive when the stage no
// longer runs (a late one from an abandoned attempt) are dropped.
func (r *run) ingestProgressed(p activities.IngestProgress) {
	st := r.summary.stage(StageIngest)
	if st.Status != StatusRunning {
		return
	}
	st.Done, st.Bytes, st.Size, st.Phase = p.Records, p.Bytes, p.Size, p.Phase
	r.summary.RowsRead = p.Records
	r.publish()
}

// ingested records Ingest's result: the counts it returns are the run's, as they are.
func (r *run) ingested(res activities.IngestResult) {
	s := r.summary
	st := s.stage(StageIngest)
	st.Done, st.Total = res.RowsRead, res.RowsRead
	st.Bytes, st.Size, st.Phase = 0, 0, ""
	s.SHA256 = res.SHA256
	s.Counts = res.Counts
	s.AccountColumn = res.AccountColumn
	s.Profile = res.Profile
	s.RulesVersion = res.RulesVersion
	if res.Pending > 0 {
		s.addStage(StagePublish, StageSummary) // shown from now on, pending
	}
	r.complete(StageIngest)
	r.metrics.ingested(s.Counts)
}

// rootCause is the innermost message of an activity failure, without Temporal's wrapping.
func rootCause(err error) string {
	for {
		u, ok := err.(interface{ Unwrap() error })
		if !ok || u.Unwrap() == nil {
			break
		}
		err = u.Unwrap()
	}
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		return appErr.Message()
	}
	return err.Error()
}

// account is the run's account as the summary names it: txn.DefaultAccount when none was given.
func (in ProcessFileInput) account() string {
	if in.Account == "" {
		return txn.DefaultAccount
	}
	return in.Account
}

func (in ProcessFileInput) withDefaults() ProcessFileInput {
	if in.ChunkSize <= 0 {
		in.ChunkSize = DefaultChunkSize
	}
	if in.MaxParallel <= 0 {
		in.MaxParallel = DefaultMaxParallel
	}
	if in.HeartbeatTimeout <= 0 {
		in.HeartbeatTimeout = DefaultHeartbeatTimeout
	}
	return in
}

// MaxChunks bounds the chunks of one stage of one run, whatever the file's size, so that a run's
// history stays far from Temporal's limits: a chunk costs about six events per stage (README,
// "Scale").
const MaxChunks = 1000

// Chunks splits the seq range 1..maxSeq into [From, To) ranges of at most size lines; when that
// would make more than MaxChunks chunks, the chunks are made larger instead.
func Chunks(maxSeq, size int64) []activities.ChunkInput {
	if n := (maxSeq + size - 1) / size; n > MaxChunks {
		size = (maxSeq + MaxChunks - 1) / MaxChunks
	}
	var out []activities.ChunkInput
	for from := int64(1); from <= maxSeq; from += size {
		out = append(out, activities.ChunkInput{From: from, To: min(from+size, maxSeq+1)})
	}
	return out
}

type activityOptions = workflow.ActivityOptions

var (
	retry = func(maxAttempts int32) *temporal.RetryPolicy {
		return &temporal.RetryPolicy{
			InitialInterval:        time.Second,
			BackoffCoefficient:     2,
			MaximumInterval:        time.Minute,
			MaximumAttempts:        maxAttempts,
			NonRetryableErrorTypes: activities.NonRetryableErrorTypes,
		}
	}
	// Ingest streams the whole file: a long timeout, kept honest by heartbeats.
	ingestOptions = activityOptions{
		StartToCloseTimeout: 2 * time.Hour,
		RetryPolicy:         retry(10),
		Summary:             "Ingest: stream the CSV file into PostgreSQL, quarantine unreadable rows",
	}
	// A chunk is at most ChunkSize lines: seconds of work.
	chunkOptions = activityOptions{
		StartToCloseTimeout: 10 * time.Minute,
		RetryPolicy:         retry(10),
	}
	// Report, dump and summary stream files out of PostgreSQL.
	outputOptions = activityOptions{
		StartToCloseTimeout: time.Hour,
		RetryPolicy:         retry(10),
	}
	reportOptions = withSummary(outputOptions, "Report: write error_report.csv, the rejected rows and rows in error with their reasons")
	dumpOptions   = withSummary(outputOptions, "Dump: write output_transactions.csv, every transaction with its tag, annotation and error")
	// Publish waits for the broker as long as it takes: the run completes only once every
	// message is acknowledged. A chunk is seconds of work when the broker answers.
	publishOptions = activityOptions{
		StartToCloseTimeout: time.Hour,
		RetryPolicy:         retry(0), // unlimited attempts, 1 s doubling to 1 min between them
	}
	summaryOptions = withSummary(outputOptions, "Summary: write summary.json beside the outputs")
)

// stageDoc says in a few words what each chunked stage does, for the Web UI.
var stageDoc = map[string]string{
	StageTag:      "find the one configured tag word in each wording",
	StageAnnotate: "classify each amount (LARGE SALE, SALE, EXPENSE, SMALL EXPENSE)",
	StagePublish:  "deliver the new results of these lines to NATS JetStream",
}

func withSummary(o activityOptions, summary string) activityOptions {
	o.Summary = summary
	return o
}

// withOptions sets the activity options of ctx, with the run's heartbeat timeout.
func withOptions(ctx workflow.Context, o activityOptions, heartbeat time.Duration) workflow.Context {
	o.HeartbeatTimeout = heartbeat
	return workflow.WithActivityOptions(ctx, o)
}

// RunID returns the workflow id, and so the run id, of a run of a file whose content has the
// given SHA-256 (hex) for account: the same content for the same account always gets the same
// id, so Temporal refuses to process one file twice at once for one account, while the same file
// for two accounts is two runs. The default account ("" or txn.DefaultAccount) keeps the ids of
// runs started before accounts existed: txflow-<16 hex digits>; another account is named in it:
// txflow-<account>-<16 hex digits>. An account's characters (letters, digits, '-', '_', '.',
// ':'; see txn.ParseAccount) are all valid in a workflow id and in a directory name on Linux,
// so the id also names the run's output directory. The caller validates the account first
// (activities.ValidAccount).
func RunID(account, sha256Hex string) string {
	if len(sha256Hex) > 16 {
		sha256Hex = sha256Hex[:16]
	}
	if account == "" || account == txn.DefaultAccount {
		return "txflow-" + sha256Hex
	}
	return "txflow-" + account + "-" + sha256Hex
}
