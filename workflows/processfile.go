// Package workflows orchestrates the txflow pipeline on Temporal. ProcessFile is the whole
// pipeline of one file:
//
//	Ingest ──┬── Tag (chunk 1..n) ──────┬── ReportErrors ── Dump ── WriteSummary
//	         └── Annotate (chunk 1..n) ─┘
//
// Ingest streams the file into PostgreSQL and settles duplicates and conflicts. Tag and Annotate
// then run side by side, each as one activity per chunk of the run's lines with a bounded number
// in flight, so any worker can take any chunk. ReportErrors and Dump always run once ingestion
// succeeded, even when Tag or Annotate failed: the failed column is left empty, the summary says
// why, and the run then fails. Only references (run id, chunk bounds, paths) cross the workflow.
// At the end the run starts Notify (notify.go), which alerts on failure or announces completion;
// ProcessInbox (inbox.go), run by a schedule, starts one ProcessFile per file of the inbox.
package workflows

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/txflow/txflow/activities"
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
}

// Stage names, in pipeline order.
const (
	StageIngest   = "ingest"
	StageTag      = "tag"
	StageAnnotate = "annotate"
	StageReport   = "report"
	StageDump     = "dump"
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
// metrics of metrics.go. When it ends it starts a Notify child workflow, abandoned to run on its
// own: an alert and failure.json for a failed run, an event for a completed one.
func ProcessFile(ctx workflow.Context, in ProcessFileInput) (*Summary, error) {
	in = in.withDefaults()
	info := workflow.GetInfo(ctx)
	s := newSummary(info.WorkflowExecution.ID, in.File, workflow.Now(ctx))
	if err := workflow.SetQueryHandler(ctx, ProgressQuery, func() (*Summary, error) { return s, nil }); err != nil {
		return nil, fmt.Errorf("register progress query: %w", err)
	}
	m := newRunMetrics(ctx)
	s.now = func() time.Time { return workflow.Now(ctx) }
	s.onStageEnd = func(st *Stage) {
		if st.Name != StageSummary && !st.began.IsZero() {
			m.stage(st.Name, workflow.Now(ctx).Sub(st.began))
		}
		workflow.SetCurrentDetails(ctx, s.Markdown())
	}
	s.onProgress = func() { workflow.SetCurrentDetails(ctx, s.Markdown()) }
	// Ingest reports its progress by signal (a few per run); handling one issues no command.
	progress := workflow.GetSignalChannel(ctx, activities.IngestProgressSignal)
	workflow.Go(ctx, func(ctx workflow.Context) {
		for {
			var p activities.IngestProgress
			progress.Receive(ctx, &p)
			s.ingestProgressed(p)
		}
	})
	upsertSearchAttributes(ctx, s)
	workflow.SetCurrentDetails(ctx, s.Markdown())

	res, err := processFile(ctx, in, s, m)

	if err != nil && s.Status != StatusFailed {
		// The summary itself could not be written.
		s.Status, s.Error = StatusFailed, rootCause(err)
	}
	m.finished(s.Status)
	workflow.SetCurrentDetails(ctx, s.Markdown())
	upsertSearchAttributes(ctx, s)
	notify(ctx, s, err)
	return res, err
}

// processFile is the pipeline itself.
func processFile(ctx workflow.Context, in ProcessFileInput, s *Summary, m runMetrics) (*Summary, error) {
	var a *activities.Activities

	// 1. Ingest: a file that cannot be read fails the run at once.
	s.start(StageIngest)
	var ing activities.IngestResult
	hb := in.HeartbeatTimeout
	err := workflow.ExecuteActivity(withOptions(ctx, ingestOptions, hb), a.Ingest,
		activities.IngestInput{RunID: s.RunID, File: in.File, SHA256: in.SHA256}).Get(ctx, &ing)
	if err != nil {
		s.fail(StageIngest, err)
		s.finish(workflow.Now(ctx))
		return nil, err
	}
	s.ingested(ing)
	m.ingested(s)
	upsertSearchAttributes(ctx, s)

	// 2. Tag ‖ Annotate, chunk by chunk; neither waits for the other.
	chunks := Chunks(ing.MaxSeq, in.ChunkSize)
	var tagErr, annotateErr error
	wg := workflow.NewWaitGroup(ctx)
	wg.Add(2)
	workflow.Go(ctx, func(ctx workflow.Context) {
		defer wg.Done()
		tagErr = s.runChunks(withOptions(ctx, chunkOptions, hb), StageTag, a.Tag, chunks, in.MaxParallel)
	})
	workflow.Go(ctx, func(ctx workflow.Context) {
		defer wg.Done()
		annotateErr = s.runChunks(withOptions(ctx, chunkOptions, hb), StageAnnotate, a.Annotate, chunks, in.MaxParallel)
	})
	wg.Wait(ctx)

	// 3. The error report and 4. the dump are written whatever happened to Tag and Annotate.
	s.start(StageReport)
	var report activities.FileResult
	if err := workflow.ExecuteActivity(withOptions(ctx, reportOptions, hb), a.ReportErrors, activities.ReportInput{RunID: s.RunID}).Get(ctx, &report); err != nil {
		s.fail(StageReport, err)
		s.finish(workflow.Now(ctx))
		return nil, err
	}
	s.reported(report)

	s.start(StageDump)
	var dump activities.DumpResult
	dumpIn := activities.DumpInput{RunID: s.RunID, OmitTags: tagErr != nil, OmitAnnotations: annotateErr != nil}
	if err := workflow.ExecuteActivity(withOptions(ctx, dumpOptions, hb), a.Dump, dumpIn).Get(ctx, &dump); err != nil {
		s.fail(StageDump, err)
		s.finish(workflow.Now(ctx))
		return nil, err
	}
	s.dumped(dump)
	m.dumped(s)

	// 5. The summary, beside the outputs; then the run fails if a stage did.
	stageErr := errors.Join(tagErr, annotateErr)
	s.finish(workflow.Now(ctx))
	if err := s.write(withOptions(ctx, summaryOptions, hb), a); err != nil {
		return nil, err
	}
	if stageErr != nil {
		return nil, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("%s; report and output were written to %s", s.failureText(), s.Outputs.Dir),
			ErrTypeStageFailed, stageErr)
	}
	return s, nil
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

// runChunks executes fn once per chunk with at most parallel activities in flight. After the
// first failure it schedules no more chunks, waits for those in flight and returns that failure.
func (s *Summary) runChunks(ctx workflow.Context, stage string, fn any, chunks []activities.ChunkInput, parallel int) error {
	s.start(stage)
	st := s.stage(stage)
	st.Total = s.Ingested
	sel := workflow.NewSelector(ctx)
	var firstErr error
	next, inFlight := 0, 0
	for {
		for firstErr == nil && inFlight < parallel && next < len(chunks) {
			c := chunks[next]
			c.RunID = s.RunID
			next++
			inFlight++
			actCtx := workflow.WithActivityOptions(ctx, withSummary(workflow.GetActivityOptions(ctx),
				fmt.Sprintf("%s lines %d to %d: %s", stage, c.From, c.To-1, stageDoc[stage])))
			sel.AddFuture(workflow.ExecuteActivity(actCtx, fn, c), func(f workflow.Future) {
				inFlight--
				var r activities.ChunkResult
				if err := f.Get(ctx, &r); err != nil {
					if firstErr == nil {
						firstErr = err
					}
					return
				}
				st.Done += r.Lines
				st.Computed += r.Computed
				s.progressed()
			})
		}
		if inFlight == 0 {
			break
		}
		sel.Select(ctx)
	}
	if firstErr != nil {
		s.fail(stage, firstErr)
		return firstErr
	}
	s.complete(stage)
	return nil
}

// write encodes the summary and has it written beside the outputs.
func (s *Summary) write(ctx workflow.Context, a *activities.Activities) error {
	s.start(StageSummary)
	s.Outputs.Summary = s.Outputs.Dir + "/" + activities.SummaryFile
	s.complete(StageSummary)
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("encode summary: %w", err)
	}
	var path string
	if err := workflow.ExecuteActivity(ctx, a.WriteSummary, activities.SummaryInput{RunID: s.RunID, Summary: b}).Get(ctx, &path); err != nil {
		s.fail(StageSummary, err)
		return err
	}
	return nil
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
	reportOptions  = withSummary(outputOptions, "Report: write error_report.csv, the rejected rows and rows in error with their reasons")
	dumpOptions    = withSummary(outputOptions, "Dump: write output_transactions.csv, every transaction with its tag, annotation and error")
	summaryOptions = withSummary(outputOptions, "Summary: write summary.json beside the outputs")
)

// stageDoc says in a few words what each chunked stage does, for the Web UI.
var stageDoc = map[string]string{
	StageTag:      "find the one configured tag word in each wording",
	StageAnnotate: "classify each amount (LARGE SALE, SALE, EXPENSE, SMALL EXPENSE)",
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
// given SHA-256 (hex): the same content always gets the same id, so Temporal refuses to process
// one file twice at once.
func RunID(sha256Hex string) string {
	if len(sha256Hex) > 16 {
		sha256Hex = sha256Hex[:16]
	}
	return "txflow-" + sha256Hex
}
