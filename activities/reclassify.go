package activities

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"
	"time"

	"github.com/shopspring/decimal"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/txflow/txflow/postgres"
	"github.com/txflow/txflow/txn"
)

// Names of the files a reclassification writes under <output root>/<reclassification id>/.
const (
	ReclassifyDiffFile    = "reclassify_diff.csv"
	ReclassifySummaryFile = "reclassify_summary.json"
)

// ReclassifyStore is what the reclassification's activities need of the database (*postgres.DB
// in the worker): see the postgres methods of the same names.
type ReclassifyStore interface {
	RulesStore
	PlanReclassify(ctx context.Context, t postgres.ReclassifyTarget) (postgres.ReclassifyPlan, error)
	DryRunReclassifyChunk(ctx context.Context, id string, r postgres.PageRange, classify postgres.Classifier) (postgres.ReclassifyCounts, error)
	ReclassifyDiffCounts(ctx context.Context, id string) (postgres.ReclassifyCounts, int64, error)
	WriteReclassifyDiff(ctx context.Context, id string, w io.Writer) (int64, error)
	ApplyReclassifyChunk(ctx context.Context, id string, chunk int, outbox bool) (int64, error)
	FinishReclassify(ctx context.Context, id, status string) error
}

// ReclassifyOutboxStore reads the messages a reclassification wrote to the outbox and forgets
// those delivered (Delivery.PublishReclassified).
type ReclassifyOutboxStore interface {
	ReclassifiedMessages(ctx context.Context, id string, chunk int, after int64, limit int) ([]postgres.OutboxMessage, error)
	MarkDelivered(ctx context.Context, keys []postgres.OutboxKey) (int64, error)
}

var (
	_ ReclassifyStore       = (*postgres.DB)(nil)
	_ ReclassifyOutboxStore = (*postgres.DB)(nil)
)

// Reclassifier computes stored transactions again under a version of the rules (the Reclassify
// workflow): plan, dry run, report, apply, finish. Its methods are Temporal activities,
// registered apart from Activities.
type Reclassifier struct {
	DB ReclassifyStore // *postgres.DB in the worker
	// Rules are the worker's TXFLOW_* rules: they make version 1 when there is none yet.
	Rules      txn.Rules
	OutputRoot string // the diff and summary are written below <OutputRoot>/<id>/
	// Outbox is on when delivery is (TXFLOW_NATS_URL set): the plan says so to the workflow,
	// which then has the applied results written to the outbox and published.
	Outbox bool
	// WorkflowOpen says whether the workflow of a reclassification is still open, so that one
	// terminated by hand (which never recorded its end) does not block the next; when nil, the
	// worker's Temporal client is asked.
	WorkflowOpen func(ctx context.Context, id string) (bool, error)

	rulesCache sync.Map // version (int) -> txn.Rules
}

// StatusAbandoned is the status recorded for a reclassification whose workflow ended without
// recording its end (terminated by hand): found by the next plan, which then goes on.
const StatusAbandoned = "abandoned"

// workflowOpen says whether reclassification id's workflow is open (r.WorkflowOpen, else the
// worker's Temporal client; outside an activity it is taken as open). A workflow Temporal no
// longer knows (past its retention) is not open.
func (r *Reclassifier) workflowOpen(ctx context.Context, id string) (bool, error) {
	if r.WorkflowOpen != nil {
		return r.WorkflowOpen(ctx, id)
	}
	if !activity.IsActivity(ctx) {
		return true, nil
	}
	desc, err := activity.GetClient(ctx).DescribeWorkflowExecution(ctx, id, "")
	var notFound *serviceerror.NotFound
	if errors.As(err, &notFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("describe workflow %s: %w", id, err)
	}
	return desc.GetWorkflowExecutionInfo().GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING, nil
}

// ReclassifyPlanInput names a reclassification and its target set.
type ReclassifyPlanInput struct {
	ID      string
	Account string // "" for every account
	// From and To bound the transactions' dates (YYYY-MM-DD, both included); "" for none.
	From, To string `json:",omitempty"`
	// RulesVersion is the version of the rules to apply; 0 for the current one.
	RulesVersion int `json:",omitempty"`
	// ChunkSize is about how many stored transactions (of any account) each dry-run chunk reads;
	// postgres.DefaultReclassifyChunkRows when 0.
	ChunkSize int64 `json:",omitempty"`
}

// ReclassifyPlanResult is what the plan recorded.
type ReclassifyPlanResult struct {
	// Pages is the size of the table of transactions in pages when planned, ChunkPages the pages
	// a dry-run chunk reads (Chunks).
	Pages, ChunkPages int64
	RulesVersion      int // the version the reclassification applies
	// Delivery says the worker delivers results: the applied ones are then written to the outbox
	// and published.
	Delivery bool
}

// Chunks returns the plan's chunks, numbered from 1, for the reclassification id under the
// version recorded: ranges of ChunkPages pages, the last one reading to the end of the table
// (postgres.ReclassifyChunks).
func (p ReclassifyPlanResult) Chunks(id string) []ReclassifyChunkInput {
	ranges := postgres.ReclassifyChunks(p.Pages, p.ChunkPages)
	out := make([]ReclassifyChunkInput, len(ranges))
	for i, r := range ranges {
		out[i] = ReclassifyChunkInput{ID: id, Chunk: r.Chunk, FromPage: r.From, ToPage: r.To, RulesVersion: p.RulesVersion}
	}
	return out
}

// ReclassifyChunkInput names a chunk of a reclassification: for the dry run the transactions on
// the pages FromPage <= page < ToPage of the table (ToPage 0: to its end); for apply and publish
// the diff rows that dry-run chunk found.
type ReclassifyChunkInput struct {
	ID               string
	Chunk            int
	FromPage, ToPage int64 `json:",omitempty"`
	RulesVersion     int   // the version the plan recorded (the dry run applies it)
	Outbox           bool  `json:",omitempty"` // apply: write the outbox rows
}

// pages describes the chunk's pages for messages.
func (in ReclassifyChunkInput) pages() string {
	if in.ToPage == 0 {
		return fmt.Sprintf("chunk %d (pages %d to the end)", in.Chunk, in.FromPage)
	}
	return fmt.Sprintf("chunk %d (pages %d to %d)", in.Chunk, in.FromPage, in.ToPage-1)
}

// VersionCount counts transactions whose stored result a version of the rules computed (0: none
// recorded).
type VersionCount struct {
	Version int   `json:"version"`
	Items   int64 `json:"items"`
}

// ReclassifyCounts count what a dry run found.
type ReclassifyCounts struct {
	Items             int64          `json:"items"`   // transactions computed
	Changed           int64          `json:"changed"` // transactions whose result changes: rows of the diff
	TagChanged        int64          `json:"tag_changed"`
	AnnotationChanged int64          `json:"annotation_changed"`
	ErrorChanged      int64          `json:"error_changed"`
	Sources           []VersionCount `json:"source_versions,omitempty"`
}

// Add adds o's counts to c.
func (c *ReclassifyCounts) Add(o ReclassifyCounts) {
	c.Items += o.Items
	c.Changed += o.Changed
	c.TagChanged += o.TagChanged
	c.AnnotationChanged += o.AnnotationChanged
	c.ErrorChanged += o.ErrorChanged
	for _, s := range o.Sources {
		i := sort.Search(len(c.Sources), func(i int) bool { return c.Sources[i].Version >= s.Version })
		if i < len(c.Sources) && c.Sources[i].Version == s.Version {
			c.Sources[i].Items += s.Items
			continue
		}
		c.Sources = append(c.Sources, VersionCount{})
		copy(c.Sources[i+1:], c.Sources[i:])
		c.Sources[i] = s
	}
}

// ReclassifyReport describes reclassify_diff.csv and counts its rows by kind of change.
type ReclassifyReport struct {
	Path string
	ReclassifyCounts
}

// ReclassifyApplied counts what an apply chunk changed.
type ReclassifyApplied struct {
	Applied int64 // transactions whose new result this call wrote
	// Published counts the messages the broker acknowledged (PublishReclassified only).
	Published int64 `json:",omitempty"`
}

// ReclassifyFinishInput is the outcome of a reclassification and its summary, encoded as JSON by
// the workflow.
type ReclassifyFinishInput struct {
	ID      string
	Status  string
	Summary json.RawMessage
}

// PlanReclassify records the reclassification, its target (the stored transactions of the
// account, all when none, dated in the range) and its chunks: ranges of pages of the table of
// transactions, of about in.ChunkSize transactions each. It copies nothing. The version of the
// rules is the one given, or the current one (made from the worker's settings when there is
// none), recorded by the first attempt: a retry keeps it, and the chunks. It returns a
// non-retryable ErrTypeBadInput error for a version that does not exist, an invalid account or a
// bad date, a non-retryable ErrTypeReclassificationInProgress error while another
// reclassification of the database has not ended (one at a time: see postgres), and database
// errors as they are, for a retry.
func (r *Reclassifier) PlanReclassify(ctx context.Context, in ReclassifyPlanInput) (ReclassifyPlanResult, error) {
	defer keepAlive(ctx, nil)()
	t := postgres.ReclassifyTarget{ID: in.ID, RulesVersion: in.RulesVersion, ChunkRows: in.ChunkSize}
	if in.Account != "" {
		a, err := ValidAccount(in.Account)
		if err != nil {
			return ReclassifyPlanResult{}, err
		}
		t.Account = a
	}
	for _, d := range []struct {
		s   string
		dst **time.Time
	}{{in.From, &t.From}, {in.To, &t.To}} {
		if d.s == "" {
			continue
		}
		v, err := time.Parse(time.DateOnly, d.s)
		if err != nil {
			return ReclassifyPlanResult{}, badInput(fmt.Sprintf("reclassification %s: date %q is not YYYY-MM-DD", in.ID, d.s))
		}
		*d.dst = &v
	}
	if t.From != nil && t.To != nil && t.To.Before(*t.From) {
		return ReclassifyPlanResult{}, badInput(fmt.Sprintf("reclassification %s: the range ends (%s) before it starts (%s)", in.ID, in.To, in.From))
	}
	if t.RulesVersion == 0 {
		cur, err := r.DB.CurrentRules(ctx, r.Rules)
		if err != nil {
			return ReclassifyPlanResult{}, fmt.Errorf("current rules: %w", err)
		}
		t.RulesVersion = cur.Version
	}
	p, err := r.DB.PlanReclassify(ctx, t)
	if other := (*postgres.ReclassificationInProgressError)(nil); errors.As(err, &other) {
		// The other may have been terminated by hand: then it is recorded as abandoned, and the
		// plan goes on.
		open, oerr := r.workflowOpen(ctx, other.ID)
		if oerr != nil {
			return ReclassifyPlanResult{}, oerr
		}
		if !open {
			if ferr := r.DB.FinishReclassify(ctx, other.ID, StatusAbandoned); ferr != nil {
				return ReclassifyPlanResult{}, ferr
			}
			if activity.IsActivity(ctx) {
				activity.GetLogger(ctx).Warn("reclassification abandoned: its workflow ended without recording it", "id", other.ID)
			}
			p, err = r.DB.PlanReclassify(ctx, t)
		}
	}
	if errors.Is(err, postgres.ErrRulesVersionNotFound) {
		return ReclassifyPlanResult{}, badInput(fmt.Sprintf("reclassification %s: rules version %d does not exist", in.ID, t.RulesVersion))
	}
	if other := (*postgres.ReclassificationInProgressError)(nil); errors.As(err, &other) {
		return ReclassifyPlanResult{}, temporal.NewNonRetryableApplicationError(fmt.Sprintf(
			"reclassification %s not started: %v; one reclassification at a time: approve or reject it (starter reclassify approve|reject %s), or wait until it ends",
			in.ID, other, other.ID), ErrTypeReclassificationInProgress, nil)
	}
	if err != nil {
		return ReclassifyPlanResult{}, fmt.Errorf("plan: %w", err)
	}
	if activity.IsActivity(ctx) {
		activity.GetLogger(ctx).Info("reclassification planned", "id", in.ID, "account", p.Account, "rules_version", p.RulesVersion,
			"pages", p.Pages, "chunk_pages", p.ChunkPages, "retried", p.Existing)
	}
	return ReclassifyPlanResult{Pages: p.Pages, ChunkPages: p.ChunkPages, RulesVersion: p.RulesVersion, Delivery: r.Outbox}, nil
}

func badInput(msg string) error {
	return temporal.NewNonRetryableApplicationError(msg, ErrTypeBadInput, nil)
}

// DryRunReclassify computes the transactions of the reclassification's target on the chunk's
// pages under its version of the rules and writes those whose result changes into the diff
// (postgres.DryRunReclassifyChunk); it changes no result, and a retry writes the same rows once.
func (r *Reclassifier) DryRunReclassify(ctx context.Context, in ReclassifyChunkInput) (ReclassifyCounts, error) {
	defer keepAlive(ctx, nil)()
	rules, err := r.rulesOf(ctx, in.RulesVersion)
	if err != nil {
		return ReclassifyCounts{}, err
	}
	c, err := r.DB.DryRunReclassifyChunk(ctx, in.ID, postgres.PageRange{Chunk: in.Chunk, From: in.FromPage, To: in.ToPage}, Classify(rules))
	if err != nil {
		return ReclassifyCounts{}, fmt.Errorf("dry run of %s: %w", in.pages(), err)
	}
	out := ReclassifyCounts{Items: c.Items, Changed: c.Changed, TagChanged: c.TagChanged,
		AnnotationChanged: c.AnnotationChanged, ErrorChanged: c.ErrorChanged}
	for _, v := range c.SortedSources() {
		out.Sources = append(out.Sources, VersionCount{Version: v, Items: c.Sources[v]})
	}
	return out, nil
}

// Classify is the result of a transaction under rules, as a run computes it: the tag of its
// wording, the error of its amount, and its annotation when it is not in error.
func Classify(rules txn.Rules) postgres.Classifier {
	return func(wording string, amount decimal.Decimal) postgres.Classification {
		c := postgres.Classification{Tag: rules.Tag(wording), Error: string(rules.Check(amount))}
		if c.Error == "" {
			c.Annotation = string(rules.Annotate(amount))
		}
		return c
	}
}

// rulesOf returns version n of the rules, read once per worker (versions never change). A
// version the database does not have is a non-retryable ErrTypeConfig error.
func (r *Reclassifier) rulesOf(ctx context.Context, n int) (txn.Rules, error) {
	if v, ok := r.rulesCache.Load(n); ok {
		return v.(txn.Rules), nil
	}
	v, err := r.DB.RulesByVersion(ctx, n)
	if errors.Is(err, postgres.ErrRulesVersionNotFound) {
		return txn.Rules{}, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("rules version %d is not in the database", n), ErrTypeConfig, err)
	}
	if err != nil {
		return txn.Rules{}, fmt.Errorf("rules version %d: %w", n, err)
	}
	r.rulesCache.Store(n, v.Rules)
	return v.Rules, nil
}

// ReclassifyRef names a reclassification.
type ReclassifyRef struct {
	ID string
}

// ReportReclassify writes reclassify_diff.csv (account, id, old and new tag, annotation and
// error of every transaction whose result changes) atomically in the reclassification's output
// directory, and counts the diff by kind of change.
func (r *Reclassifier) ReportReclassify(ctx context.Context, in ReclassifyRef) (ReclassifyReport, error) {
	defer keepAlive(ctx, nil)()
	dir, err := r.dir(ctx, in.ID)
	if err != nil {
		return ReclassifyReport{}, err
	}
	defer dir.Close()
	if _, err := writeFileAtomic(dir.Root, ReclassifyDiffFile, func(w io.Writer) (int64, error) {
		return r.DB.WriteReclassifyDiff(ctx, in.ID, w)
	}); err != nil {
		return ReclassifyReport{}, fmt.Errorf("write diff: %w", typedError(err, false))
	}
	c, _, err := r.DB.ReclassifyDiffCounts(ctx, in.ID)
	if err != nil {
		return ReclassifyReport{}, fmt.Errorf("count diff: %w", err)
	}
	return ReclassifyReport{Path: dir.path(ReclassifyDiffFile), ReclassifyCounts: ReclassifyCounts{Changed: c.Changed,
		TagChanged: c.TagChanged, AnnotationChanged: c.AnnotationChanged, ErrorChanged: c.ErrorChanged}}, nil
}

// ApplyReclassify applies the diff rows the chunk's dry run found, those not applied yet
// (postgres.ApplyReclassifyChunk): new results with the reclassification's version, result
// versions bumped, outbox rows when in.Outbox; all in one database transaction, so a retried or
// killed chunk applies nothing twice.
func (r *Reclassifier) ApplyReclassify(ctx context.Context, in ReclassifyChunkInput) (ReclassifyApplied, error) {
	defer keepAlive(ctx, nil)()
	n, err := r.DB.ApplyReclassifyChunk(ctx, in.ID, in.Chunk, in.Outbox)
	if err != nil {
		return ReclassifyApplied{}, fmt.Errorf("apply chunk %d: %w", in.Chunk, err)
	}
	return ReclassifyApplied{Applied: n}, nil
}

// FinishReclassify records the reclassification's outcome (the diff stays; another
// reclassification can then start) and writes reclassify_summary.json, indented, beside the
// diff; it returns the summary's path.
// It returns a non-retryable ErrTypeBadInput error when the summary is not valid JSON.
func (r *Reclassifier) FinishReclassify(ctx context.Context, in ReclassifyFinishInput) (string, error) {
	var indented bytes.Buffer
	if err := json.Indent(&indented, in.Summary, "", "  "); err != nil {
		err := fmt.Errorf("summary of %s is not valid JSON: %w", in.ID, err)
		return "", temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeBadInput, err)
	}
	indented.WriteByte('\n')
	if err := r.DB.FinishReclassify(ctx, in.ID, in.Status); err != nil {
		return "", fmt.Errorf("finish: %w", err)
	}
	dir, err := r.dir(ctx, in.ID)
	if err != nil {
		return "", err
	}
	defer dir.Close()
	if err := writeBytes(dir.Root, ReclassifySummaryFile, indented.Bytes()); err != nil {
		return "", fmt.Errorf("write summary: %w", typedError(err, false))
	}
	return dir.path(ReclassifySummaryFile), nil
}

// dir opens the reclassification's output directory, <output root>/<id>/, like a run's.
func (r *Reclassifier) dir(ctx context.Context, id string) (*RunDir, error) {
	return openAttemptDir(ctx, r.OutputRoot, id)
}
