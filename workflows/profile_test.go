package workflows

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"

	"github.com/txflow/txflow/activities"
)

// The run's profile name, and only its name, reaches Ingest; summary.json names the profile
// Ingest used.
func TestProcessFilePassesItsProfile(t *testing.T) {
	env := newEnv(t)
	res := ingestOK(5)
	res.Profile = "bnp-loan"
	env.OnActivity(a.Ingest, mock.Anything, activities.IngestInput{RunID: "default-test-workflow-id", File: "in.csv", Profile: "bnp-loan"}).
		Return(res, nil).Once()
	env.OnActivity(a.Tag, mock.Anything, mock.Anything).Return(activities.ChunkResult{Lines: 5}, nil)
	env.OnActivity(a.Annotate, mock.Anything, mock.Anything).Return(activities.ChunkResult{Lines: 5}, nil)
	env.OnActivity(a.ReportErrors, mock.Anything, mock.Anything).Return(activities.FileResult{Path: "/o/r/error_report.csv"}, nil)
	env.OnActivity(a.Dump, mock.Anything, mock.Anything).Return(activities.DumpResult{Path: "/o/r/output_transactions.csv"}, nil)
	var written []byte
	env.OnActivity(a.WriteSummary, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.SummaryInput) (string, error) {
		written = in.Summary
		return "/o/r/summary.json", nil
	})
	env.OnActivity(n.Event, mock.Anything, mock.Anything).Return(activities.NotifyResult{}, nil)
	env.ExecuteWorkflow(ProcessFile, ProcessFileInput{File: "in.csv", Profile: "bnp-loan"})
	require.NoError(t, env.GetWorkflowError())
	env.AssertExpectations(t)
	var w map[string]any
	require.NoError(t, json.Unmarshal(written, &w))
	require.Equal(t, "bnp-loan", w["profile"])
	s := query(t, env)
	require.Equal(t, "bnp-loan", s.Profile)
	require.Contains(t, s.Markdown(), "**Profile** `bnp-loan`")
}

// A run without a profile: no profile key in its summary, and the input Ingest gets is the one it
// always got.
func TestProcessFileWithoutProfile(t *testing.T) {
	b, err := json.Marshal(activities.IngestInput{RunID: "r", File: "f.csv"})
	require.NoError(t, err)
	require.JSONEq(t, `{"RunID":"r","File":"f.csv","SHA256":""}`, string(b))
	b, err = json.Marshal(ProcessFileInput{File: "f.csv"})
	require.NoError(t, err)
	require.NotContains(t, string(b), "Profile")
	b, err = json.Marshal(newSummary("r", "f.csv", "default", time.Unix(0, 0)))
	require.NoError(t, err)
	require.NotContains(t, string(b), "profile")
}
