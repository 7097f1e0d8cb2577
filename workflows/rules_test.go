package workflows

import (
	"context"
	"encoding/json"
	"sync"
	"testing"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"

	"github.com/txflow/txflow/activities"
)

// The rules version Ingest resolved reaches every Tag and Annotate chunk, the summary (progress
// query, summary.json, the Web UI's details), the run's event and the TxflowRulesVersion search
// attribute; Publish chunks do not carry it.
func TestProcessFilePassesItsRulesVersion(t *testing.T) {
	env, written := newEnv(t), new([]byte)
	env.RegisterActivity(&activities.Delivery{})
	ing := ingestOK(25)
	ing.Pending, ing.RulesVersion = 25, 7
	env.OnActivity(a.Ingest, mock.Anything, mock.Anything).Return(ing, nil).Once()
	var mu sync.Mutex
	var chunks = map[string][]activities.ChunkInput{}
	record := func(stage string) func(context.Context, activities.ChunkInput) (activities.ChunkResult, error) {
		return func(_ context.Context, c activities.ChunkInput) (activities.ChunkResult, error) {
			mu.Lock()
			defer mu.Unlock()
			chunks[stage] = append(chunks[stage], c)
			return activities.ChunkResult{Lines: c.To - c.From, Computed: c.To - c.From, Published: c.To - c.From}, nil
		}
	}
	env.OnActivity(a.Tag, mock.Anything, mock.Anything).Return(record(StageTag))
	env.OnActivity(a.Annotate, mock.Anything, mock.Anything).Return(record(StageAnnotate))
	env.OnActivity(d.Publish, mock.Anything, mock.Anything).Return(record(StagePublish))
	env.OnActivity(a.ReportErrors, mock.Anything, mock.Anything).Return(activities.FileResult{Path: "/out/r/error_report.csv"}, nil).Once()
	env.OnActivity(a.Dump, mock.Anything, mock.Anything).Return(activities.DumpResult{Path: "/out/r/output_transactions.csv", Rows: 25}, nil).Once()
	env.OnActivity(a.WriteSummary, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.SummaryInput) (string, error) {
		*written = in.Summary
		return "/out/r/summary.json", nil
	}).Once()
	var upserted []string
	env.OnUpsertTypedSearchAttributes(mock.Anything).Run(func(args mock.Arguments) {
		if v, ok := args.Get(0).(temporal.SearchAttributes).GetKeyword(SearchAttrRulesVersion); ok {
			mu.Lock()
			upserted = append(upserted, v)
			mu.Unlock()
		}
	}).Return(nil)
	var event activities.RunNotice
	env.OnActivity(n.Event, mock.Anything, mock.Anything).Return(
		func(_ context.Context, notice activities.RunNotice) (activities.NotifyResult, error) {
			event = notice
			return activities.NotifyResult{}, nil
		})

	env.ExecuteWorkflow(ProcessFile, ProcessFileInput{File: "in.csv", ChunkSize: 10})
	require.NoError(t, env.GetWorkflowError())
	env.AssertExpectations(t)

	for _, stage := range []string{StageTag, StageAnnotate} {
		require.Len(t, chunks[stage], 3, stage)
		for _, c := range chunks[stage] {
			require.Equal(t, 7, c.RulesVersion, "%s chunk %+v", stage, c)
		}
	}
	require.Len(t, chunks[StagePublish], 3)
	for _, c := range chunks[StagePublish] {
		require.Zero(t, c.RulesVersion, "publish chunk %+v", c)
	}
	var w map[string]any
	require.NoError(t, json.Unmarshal(*written, &w))
	require.EqualValues(t, 7, w["rules_version"])
	s := query(t, env)
	require.Equal(t, 7, s.RulesVersion)
	require.Contains(t, s.Markdown(), "**Rules** version 7")
	require.Equal(t, 7, event.RulesVersion)
	b, err := json.Marshal(event)
	require.NoError(t, err)
	require.Contains(t, string(b), `"rules_version":7`)
	require.NotEmpty(t, upserted)
	for _, v := range upserted {
		require.Equal(t, "7", v)
	}
}

// An Ingest result without a version (recorded before versions existed): chunks carry none, the
// summary and notice name none, and the attribute is not set.
func TestProcessFileWithoutRulesVersion(t *testing.T) {
	env := newEnv(t)
	env.OnActivity(a.Ingest, mock.Anything, mock.Anything).Return(ingestOK(5), nil).Once()
	var mu sync.Mutex
	var versions []int
	chunk := func(_ context.Context, c activities.ChunkInput) (activities.ChunkResult, error) {
		mu.Lock()
		defer mu.Unlock()
		versions = append(versions, c.RulesVersion)
		return activities.ChunkResult{Lines: c.To - c.From}, nil
	}
	env.OnActivity(a.Tag, mock.Anything, mock.Anything).Return(chunk)
	env.OnActivity(a.Annotate, mock.Anything, mock.Anything).Return(chunk)
	env.OnActivity(a.ReportErrors, mock.Anything, mock.Anything).Return(activities.FileResult{Path: "/o/r/error_report.csv"}, nil)
	env.OnActivity(a.Dump, mock.Anything, mock.Anything).Return(activities.DumpResult{Path: "/o/r/output_transactions.csv"}, nil)
	var written []byte
	env.OnActivity(a.WriteSummary, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.SummaryInput) (string, error) {
		written = in.Summary
		return "/o/r/summary.json", nil
	})
	set := false
	env.OnUpsertTypedSearchAttributes(mock.Anything).Run(func(args mock.Arguments) {
		if _, ok := args.Get(0).(temporal.SearchAttributes).GetKeyword(SearchAttrRulesVersion); ok {
			set = true
		}
	}).Return(nil)
	env.ExecuteWorkflow(ProcessFile, ProcessFileInput{File: "in.csv"})
	require.NoError(t, env.GetWorkflowError())
	require.Equal(t, []int{0, 0}, versions)
	require.NotContains(t, string(written), "rules_version")
	require.False(t, set)
}

func TestSearchAttributesHaveTheRulesVersion(t *testing.T) {
	attrs := SearchAttributes()
	require.Contains(t, attrs, "TxflowRulesVersion")
	require.Equal(t, SearchAttrRulesVersion.GetValueType(), attrs["TxflowRulesVersion"])
	counts := map[enumspb.IndexedValueType]int{}
	for _, typ := range attrs {
		counts[typ]++
	}
	require.Equal(t, enumspb.INDEXED_VALUE_TYPE_KEYWORD, attrs["TxflowRulesVersion"])
	require.Equal(t, 4, counts[enumspb.INDEXED_VALUE_TYPE_KEYWORD], "of the 10 Keyword attributes SQL visibility allows")
	require.Equal(t, 3, counts[enumspb.INDEXED_VALUE_TYPE_INT], "the 3 Int attributes SQL visibility allows")
	require.Len(t, attrs, 7)
}
