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
	DryRunReclassifyChunk(ctx context.Context, id string, from, to int64, classify postgres.Classifier) (postgres.ReclassifyCounts, error)
	ReclassifyDiffCounts(ctx context.Context, id string) (postgres.ReclassifyCounts, int64, error)
	WriteReclassifyDiff(ctx context.Context, id string, w io.Writer) (int64, error)
	ApplyReclassifyChunk(ctx context.Context, id string, from, to int64, outbox bool) (int64, error)
	FinishReclassify(ctx context.Context, id, status string) error
}

// ReclassifyOutboxStore reads the messages a reclassification wrote to the outbox and forgets
// those delivered (Delivery.PublishReclassified).
type ReclassifyOutboxStore interface {
	ReclassifiedMessages(ctx context.Context, id string, from, to int64) ([]postgres.OutboxMessage, error)
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

	rulesCache sync.Map // version (int) -> txn.Rules
}

// ReclassifyPlanInput names a reclassification and its target set.
type ReclassifyPlanInput struct {
	ID      string
	Account string // "" for every account
	// From and To bound the transactions' dates (YYYY-MM-DD, both included); "" for none.
	From, To string `json:",omitempty"`
	// RulesVersion is the version of the rules to apply; 0 for the current one.
	RulesVersion int `json:",omitempty"`
}

// ReclassifyPlanResult is what the plan recorded.
type ReclassifyPlanResult struct {
	Items        int64 // the items are numbered 1..Items
	RulesVersion int   // the version the reclassification applies
	// Delivery says the worker delivers results: the applied ones are then written to the outbox
	// and published.
	Delivery bool
}

// ReclassifyChunkInput names a range of a reclassification's items: From <= seq < To.
type ReclassifyChunkInput struct {
	ID           string
	From, To     int64
	RulesVersion int  // the version the plan recorded (the dry run applies it)
	Outbox       bool `json:",omitempty"` // apply: write the outbox rows
}

// VersionCount counts items whose stored result a version of the rules computed (0: none
// recorded).
type VersionCount struct {
	Version int   `json:"version"`
	Items   int64 `json:"items"`
}

// ReclassifyCounts count what a dry run found.
type ReclassifyCounts struct {
	Items             int64          `json:"items"`   // items computed
	Changed           int64          `json:"changed"` // items whose result changes: rows of the diff
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

// PlanReclassify records the reclassification and snapshots its target set: the stored
// transactions of the account (all when none) dated in the range. The version of the rules is
// the one given, or the current one (made from the worker's settings when there is none),
// recorded by the first attempt: a retry keeps it. It returns a non-retryable ErrTypeBadInput
// error for a version that does not exist, an invalid account or a bad date, and database errors
// as they are, for a retry.
func (r *Reclassifier) PlanReclassify(ctx context.Context, in ReclassifyPlanInput) (ReclassifyPlanResult, error) {
	defer keepAlive(ctx, nil)()
	t := postgres.ReclassifyTarget{ID: in.ID, RulesVersion: in.RulesVersion}
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
	if errors.Is(err, postgres.ErrRulesVersionNotFound) {
		return ReclassifyPlanResult{}, badInput(fmt.Sprintf("reclassification %s: rules version %d does not exist", in.ID, t.RulesVersion))
	}
	if err != nil {
		return ReclassifyPlanResult{}, fmt.Errorf("plan: %w", err)
	}
	if activity.IsActivity(ctx) {
		activity.GetLogger(ctx).Info("reclassification planned", "id", in.ID, "account", p.Account, "rules_version", p.RulesVersion,
			"items", p.Items, "retried", p.Existing)
	}
	return ReclassifyPlanResult{Items: p.Items, RulesVersion: p.RulesVersion, Delivery: r.Outbox}, nil
}

func badInput(msg string) error {
	return temporal.NewNonRetryableApplicationError(msg, ErrTypeBadInput, nil)
}

// DryRunReclassify computes the chunk's items under the reclassification's version of the rules
// and writes those whose result changes into the diff (postgres.DryRunReclassifyChunk); it
// changes no result, and a retry writes the same rows once.
func (r *Reclassifier) DryRunReclassify(ctx context.Context, in ReclassifyChunkInput) (ReclassifyCounts, error) {
	defer keepAlive(ctx, nil)()
	rules, err := r.rulesOf(ctx, in.RulesVersion)
	if err != nil {
		return ReclassifyCounts{}, err
	}
	c, err := r.DB.DryRunReclassifyChunk(ctx, in.ID, in.From, in.To, Classify(rules))
	if err != nil {
		return ReclassifyCounts{}, fmt.Errorf("dry run [%d,%d): %w", in.From, in.To, err)
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

// ApplyReclassify applies the chunk's diff rows not applied yet (postgres.ApplyReclassifyChunk):
// new results with the reclassification's version, result versions bumped, outbox rows when
// in.Outbox; all in one database transaction, so a retried or killed chunk applies nothing twice.
func (r *Reclassifier) ApplyReclassify(ctx context.Context, in ReclassifyChunkInput) (ReclassifyApplied, error) {
	defer keepAlive(ctx, nil)()
	n, err := r.DB.ApplyReclassifyChunk(ctx, in.ID, in.From, in.To, in.Outbox)
	if err != nil {
		return ReclassifyApplied{}, fmt.Errorf("apply [%d,%d): %w", in.From, in.To, err)
	}
	return ReclassifyApplied{Applied: n}, nil
}

// FinishReclassify records the reclassification's outcome, drops its snapshot (the diff stays)
// and writes reclassify_summary.json, indented, beside the diff; it returns the summary's path.
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
	attempt := ""
	if activity.IsActivity(ctx) {
		attempt = activity.GetInfo(ctx).WorkflowExecution.RunID
	}
	d, err := OpenRunDir(r.OutputRoot, id)
	if err != nil {
		return nil, err
	}
	if err := d.Claim(attempt); err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}
