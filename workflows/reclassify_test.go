package workflows

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/txflow/txflow/activities"
)

var (
	rcl *activities.Reclassifier
	dlv *activities.Delivery
)

// reclassifyEnv is a test environment with the reclassification's activities mocked: a plan of
// 25 pages in chunks of 10 under version 3 (delivery as given), three chunks of 10, 10 and 5
// transactions whose dry run finds 2, 0 and 1 changes, a report after reportAfter, and the calls of apply and publish recorded.
type reclassifyEnv struct {
	*testsuite.TestWorkflowEnvironment
	mu        sync.Mutex
	applied   []activities.ReclassifyChunkInput
	published []activities.ReclassifyChunkInput
	finished  *activities.ReclassifyFinishInput
	statuses  []string // TxflowStatus values upserted
}

func newReclassifyEnv(t *testing.T, delivery bool, reportAfter time.Duration) *reclassifyEnv {
	var s testsuite.WorkflowTestSuite
	e := &reclassifyEnv{TestWorkflowEnvironment: s.NewTestWorkflowEnvironment()}
	e.RegisterWorkflow(Reclassify)
	e.RegisterActivity(&activities.Reclassifier{})
	e.RegisterActivity(&activities.Delivery{})
	e.OnActivity(rcl.PlanReclassify, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.ReclassifyPlanInput) (activities.ReclassifyPlanResult, error) {
			require.Equal(t, "acme", in.Account)
			require.EqualValues(t, 10, in.ChunkSize)
			return activities.ReclassifyPlanResult{Pages: 25, ChunkPages: 10, RulesVersion: 3, Delivery: delivery}, nil
		}).Once()
	changes := map[int]int64{1: 2, 2: 0, 3: 1}
	items := map[int]int64{1: 10, 2: 10, 3: 5}
	e.OnActivity(rcl.DryRunReclassify, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.ReclassifyChunkInput) (activities.ReclassifyCounts, error) {
			require.Equal(t, 3, in.RulesVersion)
			require.Equal(t, int64(in.Chunk-1)*10, in.FromPage)
			return activities.ReclassifyCounts{Items: items[in.Chunk], Changed: changes[in.Chunk],
				Sources: []activities.VersionCount{{Version: 1, Items: items[in.Chunk]}}}, nil
		}).Times(3)
	e.OnActivity(rcl.ReportReclassify, mock.Anything, mock.Anything).After(reportAfter).Return(activities.ReclassifyReport{
		Path:             "/out/reclassify-acme-x/reclassify_diff.csv",
		ReclassifyCounts: activities.ReclassifyCounts{Changed: 3, TagChanged: 2, AnnotationChanged: 1, ErrorChanged: 1},
	}, nil).Once()
	e.OnActivity(rcl.ApplyReclassify, mock.Anything, mock.Anything).After(time.Minute).Return(
		func(_ context.Context, in activities.ReclassifyChunkInput) (activities.ReclassifyApplied, error) {
			e.mu.Lock()
			defer e.mu.Unlock()
			e.applied = append(e.applied, in)
			return activities.ReclassifyApplied{Applied: changes[in.Chunk]}, nil
		}).Maybe()
	e.OnActivity(dlv.PublishReclassified, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.ReclassifyChunkInput) (activities.ReclassifyApplied, error) {
			e.mu.Lock()
			defer e.mu.Unlock()
			e.published = append(e.published, in)
			return activities.ReclassifyApplied{Published: changes[in.Chunk]}, nil
		}).Maybe()
	e.OnActivity(rcl.FinishReclassify, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.ReclassifyFinishInput) (string, error) {
			e.finished = &in
			return "/out/reclassify-acme-x/reclassify_summary.json", nil
		}).Once()
	e.OnUpsertTypedSearchAttributes(mock.Anything).Run(func(args mock.Arguments) {
		if v, ok := args.Get(0).(temporal.SearchAttributes).GetKeyword(SearchAttrStatus); ok {
			e.mu.Lock()
			e.statuses = append(e.statuses, v)
			e.mu.Unlock()
		}
	}).Return(nil)
	return e
}

// outcome is what an Update came to, once the environment processed it: the error that
// refused it, or the state it returned.
type outcome struct {
	done    bool
	state   *ReclassifyState
	refused error
}

// update sends an approve or reject Update; the environment processes it after the callback
// that sends it returns.
func (e *reclassifyEnv) update(t *testing.T, name string, d Decision) *outcome {
	t.Helper()
	o := &outcome{}
	e.UpdateWorkflow(name, "", &testsuite.TestUpdateCallback{
		OnAccept: func() {},
		OnReject: func(err error) { o.refused, o.done = err, true },
		OnComplete: func(v any, err error) {
			require.NoError(t, err)
			o.state, o.done = v.(*ReclassifyState), true
		},
	}, d)
	return o
}

func (e *reclassifyEnv) progress(t *testing.T) ReclassifyState {
	t.Helper()
	v, err := e.QueryWorkflow(ProgressQuery)
	require.NoError(t, err)
	var s ReclassifyState
	require.NoError(t, v.Get(&s))
	return s
}

func (e *reclassifyEnv) summary(t *testing.T) ReclassifyState {
	t.Helper()
	require.NotNil(t, e.finished, "no summary written")
	var s ReclassifyState
	require.NoError(t, json.Unmarshal(e.finished.Summary, &s))
	return s
}

// Approved: the chunks with changes are applied, with the outbox when delivery is on, then
// published; a second decision is refused; the summary says who decided.
func TestReclassifyApproved(t *testing.T) {
	e := newReclassifyEnv(t, true, 0)
	var approved *outcome
	var refusals []*outcome
	e.RegisterDelayedCallback(func() {
		s := e.progress(t)
		require.Equal(t, ReclassifyAwaiting, s.Status)
		require.EqualValues(t, 25, s.Items)
		require.EqualValues(t, 25, s.Checked)
		require.EqualValues(t, 3, s.Changed)
		require.Equal(t, []activities.VersionCount{{Version: 1, Items: 25}}, s.Sources)
		require.NotNil(t, s.ExpiresAt)
		require.Equal(t, DefaultReclassifyTimeout, s.ExpiresAt.Sub(*s.ReadyAt))
		require.Contains(t, s.Markdown(), "starter reclassify approve "+s.ID)
		require.Empty(t, e.applied, "applied before the decision")

		approved = e.update(t, ReclassifyApproveUpdate, Decision{By: "alice", Note: "UBER rides"})
	}, time.Hour)
	e.RegisterDelayedCallback(func() { // while the chunks are applied
		require.Equal(t, ReclassifyApplying, e.progress(t).Status)
		refusals = append(refusals, e.update(t, ReclassifyApproveUpdate, Decision{By: "bob"}),
			e.update(t, ReclassifyRejectUpdate, Decision{}))
	}, time.Hour+30*time.Second)
	e.ExecuteWorkflow(Reclassify, ReclassifyInput{Account: "acme", ChunkSize: 10})
	require.NoError(t, e.GetWorkflowError())
	e.AssertExpectations(t)

	require.True(t, approved.done)
	require.NoError(t, approved.refused)
	require.Equal(t, DecisionApproved, approved.state.Decision.Decision)
	require.Len(t, refusals, 2)
	for _, o := range refusals {
		require.True(t, o.done)
		require.ErrorContains(t, o.refused, "was already approved by alice")
	}
	require.Equal(t, []activities.ReclassifyChunkInput{
		{ID: "default-test-workflow-id", Chunk: 1, FromPage: 0, ToPage: 10, RulesVersion: 3, Outbox: true},
		{ID: "default-test-workflow-id", Chunk: 3, FromPage: 20, RulesVersion: 3, Outbox: true},
	}, sortChunks(e.applied), "only the chunks with changes, with the outbox")
	require.Len(t, e.published, 2)
	require.Equal(t, []int{1, 3}, []int{sortChunks(e.published)[0].Chunk, sortChunks(e.published)[1].Chunk})
	s := e.summary(t)
	require.Equal(t, ReclassifyApplied, s.Status)
	require.Equal(t, ReclassifyApplied, e.finished.Status)
	require.EqualValues(t, 3, s.Applied)
	require.EqualValues(t, 3, s.Published)
	require.Equal(t, 3, s.RulesVersion)
	require.Equal(t, "alice", s.Decision.By)
	require.Equal(t, "UBER rides", s.Decision.Note)
	var res ReclassifyState
	require.NoError(t, e.GetWorkflowResult(&res))
	require.Equal(t, "/out/reclassify-acme-x/reclassify_summary.json", res.Summary)
	require.Equal(t, []string{ReclassifyPlanning, ReclassifyDryRun, ReclassifyAwaiting, ReclassifyApplying, ReclassifyPublishing,
		ReclassifyApplied}, e.statuses)
}

func sortChunks(cs []activities.ReclassifyChunkInput) []activities.ReclassifyChunkInput {
	out := append([]activities.ReclassifyChunkInput(nil), cs...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j].Chunk < out[i].Chunk {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

// Rejected: nothing applied, nothing published; a later approve is refused.
func TestReclassifyRejected(t *testing.T) {
	e := newReclassifyEnv(t, true, 0)
	var rejected, late *outcome
	e.RegisterDelayedCallback(func() {
		rejected = e.update(t, ReclassifyRejectUpdate, Decision{By: "carol", Note: "not now"})
		// The approve that follows at once is validated after the rejection was recorded.
		late = e.update(t, ReclassifyApproveUpdate, Decision{})
	}, time.Minute)
	e.ExecuteWorkflow(Reclassify, ReclassifyInput{Account: "acme", ChunkSize: 10})
	require.NoError(t, e.GetWorkflowError())
	require.True(t, rejected.done)
	require.NoError(t, rejected.refused)
	require.True(t, late.done)
	require.ErrorContains(t, late.refused, "was already rejected by carol")
	require.Empty(t, e.applied)
	require.Empty(t, e.published)
	s := e.summary(t)
	require.Equal(t, ReclassifyRejected, s.Status)
	require.Equal(t, DecisionRejected, s.Decision.Decision)
	require.Equal(t, "not now", s.Decision.Note)
	require.Zero(t, s.Applied)
}

// No decision within the timeout: expired, nothing applied.
func TestReclassifyExpires(t *testing.T) {
	e := newReclassifyEnv(t, false, 0)
	e.RegisterDelayedCallback(func() {
		require.Equal(t, ReclassifyAwaiting, e.progress(t).Status)
	}, 47*time.Hour)
	e.ExecuteWorkflow(Reclassify, ReclassifyInput{Account: "acme", ChunkSize: 10, Timeout: 48 * time.Hour})
	require.NoError(t, e.GetWorkflowError())
	require.Empty(t, e.applied)
	s := e.summary(t)
	require.Equal(t, ReclassifyExpired, s.Status)
	require.Nil(t, s.Decision)
	require.Equal(t, 48*time.Hour, s.FinishedAt.Sub(*s.ReadyAt))
	require.Contains(t, e.statuses, ReclassifyExpired)
}

// Once expired, a decision is refused with the reason.
func TestReclassifyRefusesADecisionAfterExpiry(t *testing.T) {
	rc := &reclassification{state: &ReclassifyState{ID: "reclassify-acme-x", Status: ReclassifyExpired}}
	require.ErrorContains(t, rc.refusal(), "reclassification reclassify-acme-x expired without a decision: nothing was applied")
	rc.state.Status = ReclassifyUnchanged
	require.ErrorContains(t, rc.refusal(), "changes nothing")
	rc.state.Status = ReclassifyAwaiting
	require.NoError(t, rc.refusal())
}

// Before the diff is ready a decision is refused, with the reason.
func TestReclassifyRefusesADecisionBeforeTheDiff(t *testing.T) {
	e := newReclassifyEnv(t, false, 2*time.Hour)
	var early, later *outcome
	e.RegisterDelayedCallback(func() {
		s := e.progress(t)
		require.Equal(t, ReclassifyDryRun, s.Status)
		require.Contains(t, s.Markdown(), "| … (3 of 3 chunks read) | 25 |", "the report waits: every chunk read")
		early = e.update(t, ReclassifyApproveUpdate, Decision{By: "eager"})
	}, time.Hour)
	e.RegisterDelayedCallback(func() {
		later = e.update(t, ReclassifyApproveUpdate, Decision{By: "patient"})
	}, 3*time.Hour)
	e.ExecuteWorkflow(Reclassify, ReclassifyInput{Account: "acme", ChunkSize: 10})
	require.NoError(t, e.GetWorkflowError())
	require.True(t, early.done)
	require.ErrorContains(t, early.refused, "the diff is not ready yet (status dry_run)")
	require.True(t, later.done)
	require.NoError(t, later.refused)
	require.Equal(t, "patient", e.summary(t).Decision.By)
	require.Len(t, e.applied, 2)
	require.Empty(t, e.published, "delivery off")
}

// --yes applies without waiting; a decision is refused.
func TestReclassifyYes(t *testing.T) {
	e := newReclassifyEnv(t, false, time.Hour)
	var refused *outcome
	e.RegisterDelayedCallback(func() {
		refused = e.update(t, ReclassifyApproveUpdate, Decision{})
	}, time.Hour+30*time.Second)
	e.ExecuteWorkflow(Reclassify, ReclassifyInput{Account: "acme", ChunkSize: 10, Yes: true})
	require.NoError(t, e.GetWorkflowError())
	require.True(t, refused.done)
	require.ErrorContains(t, refused.refused, "--yes")
	require.Len(t, e.applied, 2)
	for _, c := range e.applied {
		require.False(t, c.Outbox, "delivery off")
	}
	s := e.summary(t)
	require.Equal(t, ReclassifyApplied, s.Status)
	require.True(t, s.Decision.Auto)
	require.NotContains(t, e.statuses, ReclassifyAwaiting)
}

// An input that names no target fails at once, without activity.
func TestReclassifyNeedsATarget(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.RegisterWorkflow(Reclassify)
	env.RegisterActivity(&activities.Reclassifier{})
	env.OnActivity(rcl.FinishReclassify, mock.Anything, mock.Anything).Return("/out/x/reclassify_summary.json", nil)
	env.ExecuteWorkflow(Reclassify, ReclassifyInput{})
	require.ErrorContains(t, env.GetWorkflowError(), "name an account, or all of them")
}

func TestReclassifyID(t *testing.T) {
	require.Equal(t, "reclassify-acme-1a2b", ReclassifyID("acme", "1a2b"))
	require.Equal(t, "reclassify-all-1a2b", ReclassifyID("", "1a2b"))
}
