package activities

import (
	"context"
	"io"

	"github.com/shopspring/decimal"

	"github.com/txflow/txflow/postgres"
	"github.com/txflow/txflow/txn"
)

// Store is what the activities need of the database: *postgres.DB in the worker, an in-memory
// fake in the activities' unit tests. Each interface is the part one group of activities uses.
type Store interface {
	IngestStore
	ChunkStore
	OutputStore
	RulesStore
}

// RulesStore reads the versions of the rules (rules.go): the current one, made from the worker's
// settings when there is none (Ingest), and a given one (Tag, Annotate).
type RulesStore interface {
	CurrentRules(ctx context.Context, seed txn.Rules) (postgres.RulesVersion, error)
	RulesByVersion(ctx context.Context, n int) (postgres.RulesVersion, error)
}

// IngestStore loads a run's file in batches and settles it (Ingest). See the methods of
// postgres.DB of the same names for the contract: BeginIngest with resume returns where a
// previous attempt stopped, or its totals when it had settled the run; FinishIngestFile settles
// the run and records whether its file had an account column.
type IngestStore interface {
	BeginIngest(ctx context.Context, run postgres.Run, resume bool) (postgres.Checkpoint, error)
	LoadBatch(ctx context.Context, runID string, firstSeq int64, recs []txn.Record, rejected []txn.Rejected) error
	FinishIngestFile(ctx context.Context, runID string, f postgres.FileFacts) (postgres.IngestCounts, error)
}

// ChunkStore computes the tags and annotations of a chunk of a run's lines (Tag, Annotate), and
// records with each the version of the rules that computed it (0: none).
type ChunkStore interface {
	TagChunkVersion(ctx context.Context, runID string, from, to int64, rulesVersion int, tag func(wording string) string) (postgres.ChunkCounts, error)
	AnnotateChunkVersion(ctx context.Context, runID string, from, to int64, rulesVersion int, annotate func(amount decimal.Decimal) string) (postgres.ChunkCounts, error)
}

// OutputStore streams a run's output files (Dump, ReportErrors).
type OutputStore interface {
	WriteOutput(ctx context.Context, runID string, opts postgres.OutputOptions, w io.Writer) (postgres.OutputCounts, error)
	WriteErrorReport(ctx context.Context, runID string, w io.Writer) (int64, error)
}

// OutboxStore reads a run's messages still to publish and forgets those delivered (Publish).
type OutboxStore interface {
	OutboxMessages(ctx context.Context, runID string, from, to int64) ([]postgres.OutboxMessage, error)
	MarkDelivered(ctx context.Context, keys []postgres.OutboxKey) (int64, error)
}

// RunOutboxStore is an OutboxStore that also delivers a run's new transactions by range of lines
// (postgres.DB.RunChunkStart and the methods it names): Publish uses it when its store has it.
type RunOutboxStore interface {
	OutboxStore
	RunChunkStart(ctx context.Context, runID string, from int64) (start int64, byRun bool, err error)
	RunMessages(ctx context.Context, runID string, from, to int64) ([]postgres.OutboxMessage, error)
	AckRunLines(ctx context.Context, runID string, from, next int64) error
	FinishRunChunk(ctx context.Context, runID string, from, to int64) (purged bool, err error)
}

var (
	_ Store          = (*postgres.DB)(nil)
	_ OutboxStore    = (*postgres.DB)(nil)
	_ RunOutboxStore = (*postgres.DB)(nil)
)
