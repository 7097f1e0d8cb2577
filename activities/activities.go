// Package activities holds the steps of the txflow pipeline. Each exported method of Activities
// is one Temporal activity; they exchange only references (run id, chunk bounds, paths): the rows
// themselves stay in PostgreSQL and in the input and output roots.
package activities

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shopspring/decimal"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/txflow/txflow/postgres"
	"github.com/txflow/txflow/txn"
)

// Error types of the non-retryable application errors the activities return. A retry cannot fix
// any of them: the workflow lists them in its retry policies and fails the run with their message.
const (
	ErrTypeBadFile     = "BadFileError"     // the file is not a readable transaction file
	ErrTypeBadPath     = "BadPathError"     // the path is outside the root, or no such file
	ErrTypeFileChanged = "FileChangedError" // the file's content differs from the one the run was started for
	ErrTypeBadAccount  = "BadAccountError"  // the run's account is not a valid account (txn.ParseAccount)
	// ErrTypeReclassificationInProgress: another reclassification of the database has not ended.
	ErrTypeReclassificationInProgress = "ReclassificationInProgressError"
)

// NonRetryableErrorTypes lists every error type above and those of paths.go, for retry policies.
var NonRetryableErrorTypes = []string{ErrTypeBadFile, ErrTypeBadPath, ErrTypeFileChanged, ErrTypeBadAccount, ErrTypeConfig, ErrTypeBadInput,
	ErrTypeUnknownProfile, ErrTypeReclassificationInProgress}

// DefaultBatchSize is the number of rows Ingest loads per COPY batch.
const DefaultBatchSize = 50_000

// Ingest remembers a hash of 8 bytes of each line's key to spare the settlement its search for
// duplicates in the file (postgres.KeyHashes): at most DistinctKeysInMemory of them in memory,
// the others in a temporary file (os.TempDir), sorted, for runs of up to DistinctKeysMax lines
// (128 MiB of file at most). A run of more lines is searched, as one resumed after a failure is.
const (
	DistinctKeysInMemory = 1 << 20
	DistinctKeysMax      = 1 << 24
)

// firstBatchCap is the room for rows a run's first batch starts with.
const firstBatchCap = 1024

// Activities are the pipeline's steps, bound to their dependencies.
type Activities struct {
	DB Store // *postgres.DB in the worker
	// Rules are the worker's TXFLOW_* rules: they make version 1 of the stored rules when there
	// is none, and apply to the chunks of runs started before versions existed (rules.go).
	Rules      txn.Rules
	Reader     txn.ReaderOptions
	InputRoot  string // files are read only below this directory
	OutputRoot string // outputs are written only below this directory
	BatchSize  int    // rows per COPY batch; DefaultBatchSize when 0
	// Profiles are the mapping profiles Ingest resolves a run's profile name in (profiles.go);
	// the zero value holds the built-in ones.
	Profiles txn.Profiles

	// Progress receives Ingest's progress for the workflow that runs it; when nil, Ingest signals
	// that workflow (IngestProgressSignal) through the worker's Temporal client.
	Progress ProgressSink
	// ProgressEvery is the least time between two progress reports of one Ingest;
	// DefaultProgressEvery when 0 (see progressReporter).
	ProgressEvery time.Duration
	// Outbox is on when delivery is (TXFLOW_NATS_URL set): Ingest then records the run's new
	// transactions as to publish (one outbox_runs row), which Publish (publish.go) delivers.
	Outbox bool
	// Reports computes the figures of each run's report.html (report.go); none when nil: the
	// page then shows the summary's counts only.
	Reports ReportStore
	// UIURL is the Temporal Web UI's base address, for the report's link to the run; none when
	// empty.
	UIURL string

	rulesCache sync.Map // version (int) -> txn.Rules: versions never change
}

// IngestInput names the file of a run.
type IngestInput struct {
	RunID  string
	File   string // relative to the input root
	SHA256 string // optional: the content hash the run was started for
	// Account is the run's account: the account of every row of a file without an account
	// column; "" is txn.DefaultAccount.
	Account string `json:",omitempty"`
	// Profile names the mapping profile to read the file with (see profiles.go); "" chooses one
	// by the file's name, or none.
	Profile string `json:",omitempty"`
}

// ValidAccount returns the account of a run given account: txn.DefaultAccount for "", the
// account itself when valid (txn.ParseAccount), or a non-retryable ErrTypeBadAccount error
// naming what is wrong with it.
func ValidAccount(account string) (string, error) {
	if account == "" {
		return txn.DefaultAccount, nil
	}
	a, err := txn.ParseAccount(account)
	if err != nil {
		// No cause: the message, which names the account, is what the run's summary shows.
		return "", temporal.NewNonRetryableApplicationError("invalid account for the run: "+err.Error(), ErrTypeBadAccount, nil)
	}
	if a != account {
		// Surrounding spaces would make two run ids for one account.
		return "", temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("invalid account for the run: %q has surrounding spaces", account), ErrTypeBadAccount, nil)
	}
	return a, nil
}

// IngestResult counts what the ingestion did: every count up to InError (Tagged and Annotated
// are the Dump's). It crosses Temporal in a wire form of its own (counts.go).
type IngestResult struct {
	SHA256 string
	Counts
	MaxSeq int64 // the run's lines are numbered 1..MaxSeq (with gaps where rows moved to rejected)
	// AccountColumn says the file had an account column: its rows are under their own accounts
	// and its outputs start with an account column.
	AccountColumn bool
	// Profile is the name of the mapping profile the file was read with, "" when none.
	Profile string
	// Pending counts the run's messages not delivered yet (postgres.DB.PendingOutbox), for
	// Publish: 0 when delivery is off.
	Pending int64
	// RulesVersion is the version of the rules the run applies (rules.go), for its chunks; 0
	// only for a run settled before versions existed.
	RulesVersion int
}

// Ingest streams the run's file into PostgreSQL in COPY batches, quarantining rows that cannot be
// accepted, then settles duplicates, conflicts and new transactions. Parsing and loading overlap.
// A retried Ingest (the worker died, the database went away) resumes after the last committed
// batch; one whose predecessor had already settled the run returns the same result.
//
// It returns a non-retryable ErrTypeBadPath error when the file is outside the input root or
// missing, ErrTypeBadFile when it has no usable header, ErrTypeFileChanged when its content no
// longer matches the hash given, ErrTypeBadAccount when the run's account is not valid; the
// file's outputs start with an account column when it had one. Database errors are returned as they are, for a retry.
func (a *Activities) Ingest(ctx context.Context, in IngestInput) (IngestResult, error) {
	// A retry resumes after the batches its predecessor committed. So does a local Ingest (a
	// small file's): when the worker running it dies, its workflow task is retried and the
	// activity starts again at attempt 1. Only an ingestion begun by the same workflow execution
	// is resumed (postgres.DB.BeginIngest): the file run again under the same run id starts over.
	var resume bool
	var execution string
	if activity.IsActivity(ctx) {
		info := activity.GetInfo(ctx)
		resume = info.Attempt > 1 || info.IsLocalActivity
		execution = info.WorkflowExecution.RunID
	}
	return a.ingest(ctx, in, execution, resume)
}

func (a *Activities) ingest(ctx context.Context, in IngestInput, execution string, resume bool) (IngestResult, error) {
	account, err := ValidAccount(in.Account)
	if err != nil {
		return IngestResult{}, err
	}
	f, err := OpenInput(a.InputRoot, in.File)
	if err != nil {
		return IngestResult{}, err
	}
	defer f.Close()

	// Ids derived for a file without an id column include the run's account.
	opts := a.Reader
	opts.Account = account
	if opts.Profile, err = a.profile(in.Profile, in.File); err != nil {
		return IngestResult{}, err
	}

	began := time.Now()
	current, err := a.currentRules(ctx)
	if err != nil {
		return IngestResult{}, err
	}
	cp, err := a.DB.BeginIngest(ctx, postgres.Run{ID: in.RunID, File: in.File, SHA256: in.SHA256, Account: account,
		RulesVersion: current.Version, Execution: execution}, resume)
	if err != nil {
		return IngestResult{}, fmt.Errorf("begin ingest: %w", err)
	}
	// A resumed run keeps the version its first attempt recorded.
	rules, version := current.Rules, current.Version
	if cp.RulesVersion != version {
		version = cp.RulesVersion
		if rules, err = a.rulesOf(ctx, version); err != nil {
			return IngestResult{}, err
		}
	}
	if cp.Settled {
		// A predecessor settled the run but its result was lost: the totals are stored, the line
		// counts are read again.
		stats, err := txn.Read(f, opts, func(txn.Record) error { return nil }, func(txn.Rejected) error { return nil })
		if err != nil {
			return IngestResult{}, fmt.Errorf("read %s: %w", in.File, err)
		}
		return ingestResult(in.SHA256, cp.RowsRead, stats, cp.Totals, version), nil
	}

	hash := sha256.New()
	counter := &countingReader{r: io.TeeReader(f, hash)}
	var size int64
	if st, err := f.Stat(); err == nil {
		size = st.Size()
	}
	var committed atomic.Int64 // records committed, for the heartbeat and the progress reports
	committed.Store(cp.Records)
	var phase atomic.Value
	phase.Store(IngestLoading)
	progress := func() IngestProgress {
		return IngestProgress{Records: committed.Load(), Bytes: counter.n.Load(), Size: size, Phase: phase.Load().(string)}
	}
	defer keepAlive(ctx, func() any { return progress() })()
	reporter := a.progressReporter(ctx, began)
	defer reporter.wait()

	// An ingestion that loads every line of the run tells the settlement when they are all under
	// distinct keys (postgres.KeyHashes), room made for one line per 16 bytes of the file, and
	// how many it loaded with an error.
	loadsAll := cp.Records == 0 && cp.NextSeq == 1
	var keys *postgres.KeyHashes
	if loadsAll {
		keys = postgres.NewKeyHashes(DistinctKeysInMemory, DistinctKeysMax, int(min(size/16, DistinctKeysInMemory)))
		defer keys.Close()
	}

	// The file is parsed in one goroutine while the previous batch is COPYed in this one.
	batchSize := a.BatchSize
	if batchSize <= 0 {
		batchSize = DefaultBatchSize
	}
	type batch struct {
		recs     []txn.Record
		rejected []txn.Rejected
	}
	batches := make(chan batch, 1)
	readCtx, stopReading := context.WithCancel(ctx)
	defer stopReading()
	var (
		stats      txn.Stats
		readErr    error
		errorLines int64 // lines loaded with an error
	)
	go func() {
		defer close(batches)
		// A batch starts small and grows as rows come, then the next ones take the size of
		// the one before: a small file does not allocate (and clear) room for batchSize rows.
		newBatch := func(size int) batch {
			return batch{recs: make([]txn.Record, 0, min(batchSize, max(size, firstBatchCap)))}
		}
		cur := newBatch(0)
		skip := cp.Records
		send := func() error {
			select {
			case batches <- cur:
			case <-readCtx.Done():
				return readCtx.Err()
			}
			cur = newBatch(len(cur.recs))
			return nil
		}
		stats, readErr = txn.Read(counter, opts,
			func(r txn.Record) error {
				if skip > 0 {
					skip--
					return nil
				}
				r.Error = rules.Check(r.Amount)
				if r.Error != "" {
					errorLines++
				}
				if keys != nil {
					keys.Add(&r, account)
				}
				cur.recs = append(cur.recs, r)
				if len(cur.recs)+len(cur.rejected) >= batchSize {
					return send()
				}
				return nil
			},
			func(r txn.Rejected) error {
				if skip > 0 {
					skip--
					return nil
				}
				cur.rejected = append(cur.rejected, r)
				if len(cur.recs)+len(cur.rejected) >= batchSize {
					return send()
				}
				return nil
			})
		if readErr == nil && len(cur.recs)+len(cur.rejected) > 0 {
			readErr = send()
		}
	}()
	nextSeq := cp.NextSeq
	var loadErr error
	for b := range batches {
		if loadErr != nil {
			continue // drain until the reader stops
		}
		if err := a.DB.LoadBatch(ctx, in.RunID, nextSeq, b.recs, b.rejected); err != nil {
			loadErr = fmt.Errorf("load batch: %w", err)
			stopReading()
			continue
		}
		nextSeq += int64(len(b.recs))
		committed.Add(int64(len(b.recs) + len(b.rejected)))
		if activity.IsActivity(ctx) {
			// Progress as soon as a batch is committed (the SDK throttles what it sends).
			activity.RecordHeartbeat(ctx, progress())
		}
		reporter.report(ctx, progress(), false)
	}
	if loadErr != nil {
		return IngestResult{}, loadErr
	}
	if readErr != nil {
		var fe *txn.FileError
		if errors.As(readErr, &fe) {
			return IngestResult{}, temporal.NewNonRetryableApplicationError(
				fmt.Sprintf("%s: %s", in.File, fe.Error()), ErrTypeBadFile, readErr)
		}
		return IngestResult{}, fmt.Errorf("read %s: %w", in.File, readErr)
	}
	sum := hex.EncodeToString(hash.Sum(nil))
	if in.SHA256 != "" && in.SHA256 != sum {
		err := fmt.Errorf("%s changed since the run was started: sha256 %s, expected %s", in.File, sum, in.SHA256)
		return IngestResult{}, temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeFileChanged, err)
	}
	loaded := time.Now()
	phase.Store(IngestSettling)
	reporter.report(ctx, progress(), true)
	counts, err := a.DB.FinishIngestFile(ctx, in.RunID, postgres.FileFacts{RowsRead: stats.Records, AccountColumn: stats.AccountColumn,
		DateColumn: stats.DateColumn != "", Outbox: a.Outbox, Distinct: keys != nil && keys.Distinct(),
		Loaded: loadsAll, ErrorLines: errorLines})
	if err != nil {
		return IngestResult{}, fmt.Errorf("finish ingest: %w", err)
	}
	activity.GetLogger(ctx).Info("ingested", "run_id", in.RunID, "account", account, "rules_version", version, "records", stats.Records,
		"accepted", counts.Accepted, "new", counts.New, "rejected", counts.Rejected,
		"load", loaded.Sub(began).Round(time.Millisecond), "settle", time.Since(loaded).Round(time.Millisecond))
	return ingestResult(sum, stats.Records, stats, counts, version), nil
}

func ingestResult(sha string, rowsRead int64, stats txn.Stats, c postgres.IngestCounts, rulesVersion int) IngestResult {
	return IngestResult{
		SHA256: sha,
		Counts: Counts{
			RowsRead:     rowsRead,
			Lines:        stats.Lines,
			SkippedLines: stats.SkippedLines,
			DerivedIDs:   stats.DerivedIDs,
			Ingested:     c.Accepted,
			New:          c.New,
			Rejected:     c.Rejected,
			InError:      c.Errors,
		},
		MaxSeq:        c.MaxSeq,
		AccountColumn: stats.AccountColumn,
		Profile:       stats.Profile,
		Pending:       c.Pending,
		RulesVersion:  rulesVersion,
	}
}

// IngestProgress is Ingest's heartbeat detail, and what it reports to its workflow.
type IngestProgress struct {
	Records int64  // data records committed
	Bytes   int64  // bytes of the file read
	Size    int64  // bytes of the file
	Phase   string // IngestLoading, then IngestSettling once every record is committed
}

// Phases of Ingest.
const (
	IngestLoading  = "loading"  // reading the file and committing its records in batches
	IngestSettling = "settling" // settling duplicates, conflicts and new transactions
)

// IngestProgressSignal is the signal through which Ingest reports an IngestProgress to the
// workflow that runs it, when Activities.Progress is nil.
const IngestProgressSignal = "ingest-progress"

// ProgressSink receives Ingest's progress reports for the workflow execution that runs it.
type ProgressSink interface {
	IngestProgress(ctx context.Context, workflowID, runID string, p IngestProgress) error
}

// signalSink reports progress by signalling the workflow through the worker's client.
type signalSink struct{}

func (signalSink) IngestProgress(ctx context.Context, workflowID, runID string, p IngestProgress) error {
	return activity.GetClient(ctx).SignalWorkflow(ctx, workflowID, runID, IngestProgressSignal, p)
}

type countingReader struct {
	r io.Reader
	n atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// ChunkInput names a chunk of a run's lines: From <= seq < To.
type ChunkInput struct {
	RunID    string
	From, To int64
	// RulesVersion is the version of the rules the run applies (IngestResult.RulesVersion), for
	// Tag and Annotate; absent from the chunks of runs started before versions existed, which
	// apply the worker's Rules.
	RulesVersion int `json:",omitempty"`
}

// ChunkResult counts what a chunk activity did.
type ChunkResult struct {
	Lines    int64 // lines of the run in the chunk
	Computed int64 // results newly computed (lines whose transaction had none yet)
	// Published counts the messages of the chunk the broker acknowledged (Publish only).
	Published int64 `json:",omitempty"`
}

// Tag computes the tag of every transaction of the chunk that has none yet, with the run's
// version of the rules (in.RulesVersion), which it records with each tag.
func (a *Activities) Tag(ctx context.Context, in ChunkInput) (ChunkResult, error) {
	defer keepAlive(ctx, nil)()
	rules, err := a.rulesOf(ctx, in.RulesVersion)
	if err != nil {
		return ChunkResult{}, err
	}
	c, err := a.DB.TagChunkVersion(ctx, in.RunID, in.From, in.To, in.RulesVersion, rules.Tag)
	if err != nil {
		return ChunkResult{}, fmt.Errorf("tag chunk [%d,%d): %w", in.From, in.To, err)
	}
	return ChunkResult{Lines: c.Lines, Computed: c.Computed}, nil
}

// Annotate computes the annotation of every transaction of the chunk that has none yet, like Tag
// with the run's version of the rules; lines in error get none.
func (a *Activities) Annotate(ctx context.Context, in ChunkInput) (ChunkResult, error) {
	defer keepAlive(ctx, nil)()
	rules, err := a.rulesOf(ctx, in.RulesVersion)
	if err != nil {
		return ChunkResult{}, err
	}
	annotate := func(amount decimal.Decimal) string { return string(rules.Annotate(amount)) }
	c, err := a.DB.AnnotateChunkVersion(ctx, in.RunID, in.From, in.To, in.RulesVersion, annotate)
	if err != nil {
		return ChunkResult{}, fmt.Errorf("annotate chunk [%d,%d): %w", in.From, in.To, err)
	}
	return ChunkResult{Lines: c.Lines, Computed: c.Computed}, nil
}
