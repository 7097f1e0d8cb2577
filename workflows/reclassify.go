package workflows

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/txflow/txflow/activities"
)

// Reclassify computes the stored transactions of an account (or of all) again under one version
// of the rules, shows what would change, and applies it once approved:
//
//	Plan ── Dry run (chunk 1..n) ── Report ── [awaiting approval] ── Apply (chunk 1..n) ── [Publish (chunk 1..n)] ── Finish
//
// Plan records the reclassification and the version of the rules (the current one unless one is
// given) in PostgreSQL, and splits the table of transactions into chunks, ranges of its pages;
// it copies nothing, and is refused while another reclassification has not ended. The dry run
// computes the target's transactions of each chunk where they are stored and keeps only what
// changes (the diff); Report writes reclassify_diff.csv and counts it. The workflow
// then waits for the approve or reject Update (refused, with the reason, before the diff is
// ready and after a decision), up to ReclassifyInput.Timeout, after which it ends "expired",
// applying nothing; with Yes it applies at once. Apply writes the new results chunk by chunk,
// each in one database transaction that also marks its diff rows applied; with delivery on the
// applied results are then published to NATS JetStream with their new result version, chunk by
// chunk of the dry run that has changes. Finish records the outcome and writes
// reclassify_summary.json. Like ProcessFile, only references cross Temporal.
//
// A new workflow type: its command sequence needs no workflow.GetVersion until it changes.
func Reclassify(ctx workflow.Context, in ReclassifyInput) (*ReclassifyState, error) {
	in = in.withDefaults()
	now := workflow.Now(ctx)
	rc := &reclassification{ctx: ctx, in: in, state: &ReclassifyState{
		ID: workflow.GetInfo(ctx).WorkflowExecution.ID, Account: in.Account, From: in.From, To: in.To,
		RulesVersion: in.RulesVersion, Yes: in.Yes, Status: ReclassifyPlanning, StartedAt: now,
	}}
	s := rc.state
	if err := workflow.SetQueryHandler(ctx, ProgressQuery, func() (*ReclassifyState, error) { return s, nil }); err != nil {
		return nil, fmt.Errorf("register progress query: %w", err)
	}
	for _, kind := range []string{ReclassifyApproveUpdate, ReclassifyRejectUpdate} {
		if err := workflow.SetUpdateHandlerWithOptions(ctx, kind,
			func(ctx workflow.Context, d Decision) (*ReclassifyState, error) { return rc.decide(kind, d), nil },
			workflow.UpdateHandlerOptions{Validator: func(ctx workflow.Context, d Decision) error { return rc.refusal() }},
		); err != nil {
			return nil, fmt.Errorf("register %s update: %w", kind, err)
		}
	}
	// PublishReclassified says so by signal when it waits for the broker.
	waiting := workflow.GetSignalChannel(ctx, activities.PublishWaitingSignal)
	workflow.Go(ctx, func(ctx workflow.Context) {
		for {
			var w activities.PublishWaiting
			waiting.Receive(ctx, &w)
			if s.Status == ReclassifyPublishing {
				s.Waiting = w.Error
				rc.publish()
			}
		}
	})
	rc.setStatus(ReclassifyPlanning)

	err := rc.steps(ctx)
	if err != nil {
		s.Error = rootCause(err)
		rc.setStatus(ReclassifyFailed)
	}
	end := workflow.Now(ctx)
	s.FinishedAt = &end
	rc.publish()
	if ferr := rc.finish(ctx); ferr != nil && err == nil {
		err = ferr
		s.Error = rootCause(err)
		rc.setStatus(ReclassifyFailed)
	}
	if err != nil {
		return nil, err
	}
	return s, nil
}

// Updates that decide a reclassification waiting for approval. Their argument is a Decision;
// they return the ReclassifyState once the decision is recorded.
const (
	ReclassifyApproveUpdate = "approve"
	ReclassifyRejectUpdate  = "reject"
)

// DefaultReclassifyTimeout is how long a reclassification waits for a decision.
const DefaultReclassifyTimeout = 7 * 24 * time.Hour

// Statuses of a reclassification, also its TxflowStatus search attribute.
const (
	ReclassifyPlanning   = "planning"
	ReclassifyDryRun     = "dry_run"
	ReclassifyAwaiting   = "awaiting_approval"
	ReclassifyApplying   = "applying"
	ReclassifyPublishing = "publishing"
	ReclassifyApplied    = "applied"   // approved (or --yes) and applied
	ReclassifyRejected   = "rejected"  // rejected: nothing applied
	ReclassifyExpired    = "expired"   // no decision within the timeout: nothing applied
	ReclassifyUnchanged  = "unchanged" // the rules change nothing: nothing to decide
	ReclassifyFailed     = "failed"
)

// Decisions recorded in ReclassifyState.Decision.
const (
	DecisionApproved = "approved"
	DecisionRejected = "rejected"
)

// ErrTypeBadReclassify is the error a reclassification fails with when its input names no
// target (neither an account nor all of them).
const ErrTypeBadReclassify = "BadReclassifyError"

// ReclassifyInput is the input of Reclassify. The workflow id names the reclassification and its
// output directory (ReclassifyID).
type ReclassifyInput struct {
	Account string `json:",omitempty"` // the account to reclassify; "" with All
	All     bool   `json:",omitempty"` // every account
	// From and To keep the transactions dated from From to To (YYYY-MM-DD, both included); a
	// transaction without a date is then left out. "": no bound.
	From string `json:",omitempty"`
	To   string `json:",omitempty"`
	// RulesVersion is the version of the rules to apply; 0 for the current one when the plan runs.
	RulesVersion int  `json:",omitempty"`
	Yes          bool `json:",omitempty"` // apply without waiting for a decision
	// Timeout is how long to wait for a decision; DefaultReclassifyTimeout when 0.
	Timeout time.Duration `json:",omitempty"`
	// ChunkSize is about how many stored transactions (of any account) each dry-run activity
	// reads, a range of pages; DefaultChunkSize when 0. Apply and publish go by the same chunks.
	ChunkSize        int64         `json:",omitempty"`
	MaxParallel      int           `json:",omitempty"` // chunk activities in flight; DefaultMaxParallel when 0
	HeartbeatTimeout time.Duration `json:",omitempty"` // DefaultHeartbeatTimeout when 0
}

func (in ReclassifyInput) withDefaults() ReclassifyInput {
	if in.Timeout <= 0 {
		in.Timeout = DefaultReclassifyTimeout
	}
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

// ReclassifyID returns a reclassification's workflow id: reclassify-<account or "all">-<unique>,
// unique being a few characters the caller draws at random. It is also the name of the output
// directory, so it holds only the characters of an account.
func ReclassifyID(account, unique string) string {
	if account == "" {
		account = "all"
	}
	return "reclassify-" + account + "-" + unique
}

// Decision is the argument of the approve and reject Updates: who decides and why, both optional.
type Decision struct {
	By   string `json:"by,omitempty"`
	Note string `json:"note,omitempty"`
}

// DecisionRecord is the decision a reclassification received.
type DecisionRecord struct {
	Decision string    `json:"decision"` // DecisionApproved or DecisionRejected
	By       string    `json:"by,omitempty"`
	Note     string    `json:"note,omitempty"`
	At       time.Time `json:"at"`
	Auto     bool      `json:"auto,omitempty"` // approved by --yes, without waiting
}

// ReclassifyState is what a reclassification did and where it is: the progress query returns it,
// the updates return it, the workflow returns it and writes it as reclassify_summary.json.
type ReclassifyState struct {
	ID      string `json:"id"`
	Account string `json:"account,omitempty"` // absent for every account
	From    string `json:"from,omitempty"`
	To      string `json:"to,omitempty"`
	// RulesVersion is the version of the rules applied (the target): as given, or the current
	// one once the plan recorded it.
	RulesVersion int    `json:"rules_version,omitempty"`
	Yes          bool   `json:"yes,omitempty"`
	Status       string `json:"status"`
	Error        string `json:"error,omitempty"`
	// Counts of the dry run: Items in the target set (known once the dry run ended), Checked of
	// them computed so far, in ChunksChecked of its Chunks, and the changes by kind;
	// SourceVersions (in the counts) are the versions that computed the stored results.
	activities.ReclassifyCounts
	Checked       int64 `json:"checked"`
	Chunks        int   `json:"chunks,omitempty"`
	ChunksChecked int   `json:"chunks_checked,omitempty"`
	Applied       int64 `json:"applied"`
	Published     int64 `json:"published,omitempty"`
	Delivery      bool  `json:"delivery,omitempty"` // the applied results are published
	// Waiting is why publishing waits for the broker, while it does.
	Waiting    string          `json:"waiting,omitempty"`
	Diff       string          `json:"diff,omitempty"`    // reclassify_diff.csv, once written
	Summary    string          `json:"summary,omitempty"` // reclassify_summary.json, once written
	Decision   *DecisionRecord `json:"decision,omitempty"`
	StartedAt  time.Time       `json:"started_at"`
	ReadyAt    *time.Time      `json:"ready_at,omitempty"`   // when the diff was ready
	ExpiresAt  *time.Time      `json:"expires_at,omitempty"` // when waiting for a decision ends
	FinishedAt *time.Time      `json:"finished_at,omitempty"`
}

// Ended says whether the reclassification has ended.
func (s *ReclassifyState) Ended() bool {
	switch s.Status {
	case ReclassifyApplied, ReclassifyRejected, ReclassifyExpired, ReclassifyUnchanged, ReclassifyFailed:
		return true
	}
	return false
}

// target is the account reclassified as people read it.
func (s *ReclassifyState) target() string {
	if s.Account == "" {
		return "every account"
	}
	return "account " + s.Account
}

// Markdown is the state as the Web UI's current details show it: the counts, the diff and, while
// it waits, how to decide.
func (s *ReclassifyState) Markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "**Reclassification** of %s", s.target())
	if s.From != "" || s.To != "" {
		fmt.Fprintf(&b, ", dated %s to %s", orDots(s.From), orDots(s.To))
	}
	if s.RulesVersion > 0 {
		fmt.Fprintf(&b, " under rules version %d", s.RulesVersion)
	}
	fmt.Fprintf(&b, "\n\n**Status** %s", s.Status)
	if s.Status == ReclassifyAwaiting && s.ExpiresAt != nil {
		fmt.Fprintf(&b, " (until %s)", s.ExpiresAt.UTC().Format(time.RFC3339))
	}
	if s.Error != "" {
		fmt.Fprintf(&b, ": %s", s.Error)
	}
	if s.Waiting != "" {
		fmt.Fprintf(&b, " (%s)", s.Waiting)
	}
	// The target set is counted as the dry run computes it: until it ended, the chunks say how far
	// it got.
	items := strconv.FormatInt(s.Items, 10)
	if s.Status == ReclassifyPlanning || s.Status == ReclassifyDryRun {
		items = "…"
		if s.Chunks > 0 {
			items = fmt.Sprintf("… (%d of %d chunks read)", s.ChunksChecked, s.Chunks)
		}
	}
	b.WriteString("\n\n| transactions | computed | changed | tag | annotation | error | applied |\n|---:|---:|---:|---:|---:|---:|---:|\n")
	fmt.Fprintf(&b, "| %s | %d | %d | %d | %d | %d | %d |\n", items, s.Checked, s.Changed, s.TagChanged, s.AnnotationChanged,
		s.ErrorChanged, s.Applied)
	if s.Diff != "" {
		fmt.Fprintf(&b, "\n**Diff** `%s`\n", s.Diff)
	}
	if s.Decision != nil {
		fmt.Fprintf(&b, "\n**Decision** %s", s.Decision.describe())
	}
	if s.Status == ReclassifyAwaiting {
		fmt.Fprintf(&b, "\nApprove: `starter reclassify approve %s`  \nReject: `starter reclassify reject %s`\n", s.ID, s.ID)
	}
	return b.String()
}

func orDots(s string) string {
	if s == "" {
		return "…"
	}
	return s
}

func (d *DecisionRecord) describe() string {
	s := d.Decision
	if d.Auto {
		s += " (--yes)"
	}
	if d.By != "" {
		s += " by " + d.By
	}
	s += " at " + d.At.UTC().Format(time.RFC3339)
	if d.Note != "" {
		s += ": " + d.Note
	}
	return s
}

// reclassification is one execution of Reclassify under way. Its methods that record and publish
// issue no command (but the search attributes' upsert); steps and finish issue the activities.
type reclassification struct {
	ctx   workflow.Context
	in    ReclassifyInput
	state *ReclassifyState
}

// refusal says why an approve or reject Update cannot be accepted now; nil when it can.
func (rc *reclassification) refusal() error { return rc.state.Refusal() }

// Refusal says why a decision (approve or reject) cannot be taken in this state: started with
// --yes, already decided, expired, unchanged, failed, or the diff not ready yet; nil when the
// reclassification waits for one. The Updates' validator refuses with it; the starter uses it
// too for a reclassification that has ended, which no longer takes Updates.
func (s *ReclassifyState) Refusal() error {
	switch {
	case s.Yes:
		return fmt.Errorf("reclassification %s was started with --yes: it applies without approval", s.ID)
	case s.Decision != nil:
		return fmt.Errorf("reclassification %s was already %s: nothing left to decide", s.ID, s.Decision.describe())
	case s.Status == ReclassifyExpired:
		return fmt.Errorf("reclassification %s expired without a decision: nothing was applied; start a new one", s.ID)
	case s.Status == ReclassifyUnchanged:
		return fmt.Errorf("reclassification %s changes nothing: there is nothing to approve or reject", s.ID)
	case s.Status == ReclassifyFailed:
		return fmt.Errorf("reclassification %s failed: %s", s.ID, s.Error)
	case s.Status != ReclassifyAwaiting:
		return fmt.Errorf("reclassification %s: the diff is not ready yet (status %s); approve or reject it once its status is %s",
			s.ID, s.Status, ReclassifyAwaiting)
	}
	return nil
}

// decide records an accepted decision; the main coroutine acts on it.
func (rc *reclassification) decide(kind string, d Decision) *ReclassifyState {
	decision := DecisionApproved
	if kind == ReclassifyRejectUpdate {
		decision = DecisionRejected
	}
	rc.state.Decision = &DecisionRecord{Decision: decision, By: d.By, Note: d.Note, At: workflow.Now(rc.ctx)}
	rc.publish()
	return rc.state
}

// steps runs the stages of the package doc, in order, up to the summary.
func (rc *reclassification) steps(ctx workflow.Context) error {
	var r *activities.Reclassifier
	s, hb := rc.state, rc.in.HeartbeatTimeout
	if rc.in.Account == "" && !rc.in.All {
		return temporal.NewNonRetryableApplicationError("reclassify: name an account, or all of them", ErrTypeBadReclassify, nil)
	}
	if rc.in.Account != "" {
		if rc.in.All {
			return temporal.NewNonRetryableApplicationError("reclassify: an account or all of them, not both", ErrTypeBadReclassify, nil)
		}
		if _, err := activities.ValidAccount(rc.in.Account); err != nil {
			return err
		}
	}

	// 1. Plan.
	var plan activities.ReclassifyPlanResult
	if err := workflow.ExecuteActivity(withOptions(ctx, reclassifyPlanOptions, hb), r.PlanReclassify, activities.ReclassifyPlanInput{
		ID: s.ID, Account: rc.in.Account, From: rc.in.From, To: rc.in.To, RulesVersion: rc.in.RulesVersion, ChunkSize: rc.in.ChunkSize,
	}).Get(ctx, &plan); err != nil {
		return err
	}
	s.RulesVersion, s.Delivery = plan.RulesVersion, plan.Delivery

	// 2. Dry run, chunk by chunk.
	chunks := plan.Chunks(s.ID)
	s.Chunks = len(chunks)
	rc.setStatus(ReclassifyDryRun)
	changed := make([]int64, len(chunks)) // rows of the diff in each chunk
	err := runChunks(ctx, len(chunks), rc.in.MaxParallel, func(i int) workflow.Future {
		c := chunks[i]
		return workflow.ExecuteActivity(withOptions(ctx, withSummary(chunkOptions,
			fmt.Sprintf("dry run of chunk %d of %d: compute its transactions under rules version %d, keep what changes", c.Chunk, len(chunks), plan.RulesVersion)), hb),
			r.DryRunReclassify, c)
	}, func(i int, f workflow.Future) error {
		var res activities.ReclassifyCounts
		if err := f.Get(ctx, &res); err != nil {
			return err
		}
		changed[i] = res.Changed
		s.Checked += res.Items
		s.ChunksChecked++
		src := activities.ReclassifyCounts{Sources: s.Sources}
		src.Add(activities.ReclassifyCounts{Sources: res.Sources})
		s.Sources = src.Sources
		rc.publish()
		return nil
	})
	if err != nil {
		return err
	}
	s.Items = s.Checked

	// 3. Report: the diff file and its counts.
	var report activities.ReclassifyReport
	if err := workflow.ExecuteActivity(withOptions(ctx, reclassifyReportOptions, hb), r.ReportReclassify,
		activities.ReclassifyRef{ID: s.ID}).Get(ctx, &report); err != nil {
		return err
	}
	s.Diff = report.Path
	s.Changed, s.TagChanged, s.AnnotationChanged, s.ErrorChanged = report.Changed, report.TagChanged, report.AnnotationChanged, report.ErrorChanged
	ready := workflow.Now(ctx)
	s.ReadyAt = &ready
	if s.Changed == 0 {
		rc.setStatus(ReclassifyUnchanged)
		return nil
	}

	// 4. The decision.
	if rc.in.Yes {
		s.Decision = &DecisionRecord{Decision: DecisionApproved, At: ready, Auto: true}
	} else {
		expires := ready.Add(rc.in.Timeout)
		s.ExpiresAt = &expires
		rc.setStatus(ReclassifyAwaiting)
		if _, err := workflow.AwaitWithTimeout(ctx, rc.in.Timeout, func() bool { return s.Decision != nil }); err != nil {
			return err
		}
		switch {
		case s.Decision == nil:
			rc.setStatus(ReclassifyExpired)
			return nil
		case s.Decision.Decision == DecisionRejected:
			rc.setStatus(ReclassifyRejected)
			return nil
		}
	}

	// 5. Apply, chunk by chunk (only the chunks with changes).
	rc.setStatus(ReclassifyApplying)
	var todo []int
	for i, n := range changed {
		if n > 0 {
			todo = append(todo, i)
		}
	}
	err = runChunks(ctx, len(todo), rc.in.MaxParallel, func(j int) workflow.Future {
		c := chunks[todo[j]]
		c.Outbox = plan.Delivery
		return workflow.ExecuteActivity(withOptions(ctx, withSummary(chunkOptions,
			fmt.Sprintf("apply chunk %d: write the new results of its %d changes", c.Chunk, changed[todo[j]])), hb),
			r.ApplyReclassify, c)
	}, func(_ int, f workflow.Future) error {
		var res activities.ReclassifyApplied
		if err := f.Get(ctx, &res); err != nil {
			return err
		}
		s.Applied = min(s.Applied+res.Applied, s.Changed)
		rc.publish()
		return nil
	})
	if err != nil {
		return err
	}
	// Every chunk completed: every row of the diff is applied (a retried chunk may have counted
	// less than its first attempt applied).
	s.Applied = s.Changed

	// 6. Publish the applied results, when delivery is on.
	if plan.Delivery {
		var d *activities.Delivery
		rc.setStatus(ReclassifyPublishing)
		err = runChunks(ctx, len(todo), rc.in.MaxParallel, func(j int) workflow.Future {
			c := chunks[todo[j]]
			return workflow.ExecuteActivity(withOptions(ctx, withSummary(publishOptions,
				fmt.Sprintf("publish chunk %d: deliver the new results of its %d changes to NATS JetStream", c.Chunk, changed[todo[j]])), hb),
				d.PublishReclassified, c)
		}, func(_ int, f workflow.Future) error {
			var res activities.ReclassifyApplied
			if err := f.Get(ctx, &res); err != nil {
				return err
			}
			s.Published = min(s.Published+res.Published, s.Changed)
			s.Waiting = ""
			rc.publish()
			return nil
		})
		if err != nil {
			return err
		}
		s.Published, s.Waiting = s.Changed, ""
	}
	rc.setStatus(ReclassifyApplied)
	return nil
}

// finish records the outcome and writes reclassify_summary.json.
func (rc *reclassification) finish(ctx workflow.Context) error {
	var r *activities.Reclassifier
	s := rc.state
	b, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("encode summary: %w", err)
	}
	var written string
	if err := workflow.ExecuteActivity(withOptions(ctx, reclassifyFinishOptions, rc.in.HeartbeatTimeout), r.FinishReclassify,
		activities.ReclassifyFinishInput{ID: s.ID, Status: s.Status, Summary: b}).Get(ctx, &written); err != nil {
		return err
	}
	s.Summary = written
	rc.publish()
	return nil
}

// setStatus records a new status and publishes it (current details, search attributes).
func (rc *reclassification) setStatus(status string) {
	rc.state.Status = status
	rc.publish()
	s := rc.state
	updates := []temporal.SearchAttributeUpdate{SearchAttrStatus.ValueSet(status)}
	if s.Account != "" {
		updates = append(updates, SearchAttrAccount.ValueSet(s.Account))
	}
	if s.RulesVersion > 0 {
		updates = append(updates, SearchAttrRulesVersion.ValueSet(strconv.Itoa(s.RulesVersion)))
	}
	if err := workflow.UpsertTypedSearchAttributes(rc.ctx, updates...); err != nil {
		workflow.GetLogger(rc.ctx).Warn("upsert search attributes", "error", err)
	}
}

// publish shows the state in the workflow's current details (Web UI); it issues no command.
func (rc *reclassification) publish() {
	workflow.SetCurrentDetails(rc.ctx, rc.state.Markdown())
}

// runChunks starts start(i) for i in 0..n-1, at most parallel at once, and hands each completed
// future to done. After the first error it starts no more, waits for those in flight and returns
// that error.
func runChunks(ctx workflow.Context, n, parallel int, start func(i int) workflow.Future, done func(i int, f workflow.Future) error) error {
	sel := workflow.NewSelector(ctx)
	var firstErr error
	next, inFlight := 0, 0
	for {
		for firstErr == nil && inFlight < parallel && next < n {
			i := next
			next++
			inFlight++
			sel.AddFuture(start(i), func(f workflow.Future) {
				inFlight--
				if err := done(i, f); err != nil && firstErr == nil {
					firstErr = err
				}
			})
		}
		if inFlight == 0 {
			return firstErr
		}
		sel.Select(ctx)
	}
}

var (
	reclassifyPlanOptions   = withSummary(outputOptions, "Plan: record the reclassification and its rules version, split the transactions in chunks")
	reclassifyReportOptions = withSummary(outputOptions, "Report: write reclassify_diff.csv, what the new rules change, and count it")
	reclassifyFinishOptions = withSummary(outputOptions, "Finish: record the outcome, write reclassify_summary.json")
)
