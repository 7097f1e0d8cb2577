package workflows

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/txflow/txflow/activities"
)

const sum64 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// The default account keeps the ids of runs started before accounts existed; another account is
// named in the id, so the same file for two accounts is two runs. Every id is one directory name.
func TestRunIDAccount(t *testing.T) {
	require.Equal(t, "txflow-0123456789abcdef", RunID("", sum64))
	require.Equal(t, "txflow-0123456789abcdef", RunID("default", sum64))
	require.Equal(t, "txflow-acme-0123456789abcdef", RunID("acme", sum64))
	require.Equal(t, "txflow-FR76:3000_6.x-0123456789abcdef", RunID("FR76:3000_6.x", sum64))
	require.NotEqual(t, RunID("acme", sum64), RunID("globex", sum64))
	root := t.TempDir()
	for _, acc := range []string{"", "acme", "FR76:3000_6.x", "a..b", "..", strings.Repeat("a", 64)} {
		id := RunID(acc, sum64)
		require.True(t, filepath.IsLocal(id), id)
		require.Equal(t, id, filepath.Base(id), "one path element: %s", id)
		dir, err := activities.OutputDir(root, id)
		require.NoError(t, err, "the run's output directory: %s", id)
		require.Equal(t, filepath.Join(root, id), dir)
	}
}

func TestSearchAttributesHaveTheAccount(t *testing.T) {
	attrs := SearchAttributes()
	require.Equal(t, enumspb.INDEXED_VALUE_TYPE_KEYWORD, attrs["TxflowAccount"])
	keywords := 0
	for _, typ := range attrs {
		if typ == enumspb.INDEXED_VALUE_TYPE_KEYWORD {
			keywords++
		}
	}
	require.Equal(t, 4, keywords, "SQL visibility allows 10 Keyword attributes per namespace")
}

// The run's account reaches Ingest and names the run in its summary, progress query, search
// attributes and Web UI details; the account column Ingest found is in the summary.
func TestProcessFilePassesItsAccount(t *testing.T) {
	env := newEnv(t)
	res := ingestOK(5)
	res.AccountColumn = true
	env.OnActivity(a.Ingest, mock.Anything, activities.IngestInput{RunID: "default-test-workflow-id", File: "in.csv", Account: "acme"}).
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
	var mu sync.Mutex
	var upserted []string
	env.OnUpsertTypedSearchAttributes(mock.Anything).Run(func(args mock.Arguments) {
		if v, ok := args.Get(0).(temporal.SearchAttributes).GetKeyword(SearchAttrAccount); ok {
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
	env.ExecuteWorkflow(ProcessFile, ProcessFileInput{File: "in.csv", Account: "acme"})
	require.NoError(t, env.GetWorkflowError())
	require.Equal(t, "acme", event.Account, "the event names the account")
	env.AssertExpectations(t)

	var w map[string]any
	require.NoError(t, json.Unmarshal(written, &w))
	require.Equal(t, "acme", w["account"])
	require.Equal(t, true, w["account_column"])
	s := query(t, env)
	require.Equal(t, "acme", s.Account)
	require.Contains(t, s.Markdown(), "**Account** `acme`")
	require.NotEmpty(t, upserted)
	for _, v := range upserted {
		require.Equal(t, "acme", v)
	}
}

// A run without an account is of the default account; Ingest gets the input as it always did.
func TestProcessFileDefaultAccount(t *testing.T) {
	env := newEnv(t)
	env.OnActivity(a.Ingest, mock.Anything, activities.IngestInput{RunID: "default-test-workflow-id", File: "in.csv"}).
		Return(ingestOK(5), nil).Once()
	env.OnActivity(a.Tag, mock.Anything, mock.Anything).Return(activities.ChunkResult{Lines: 5}, nil)
	env.OnActivity(a.Annotate, mock.Anything, mock.Anything).Return(activities.ChunkResult{Lines: 5}, nil)
	env.OnActivity(a.ReportErrors, mock.Anything, mock.Anything).Return(activities.FileResult{Path: "/o/r/error_report.csv"}, nil)
	env.OnActivity(a.Dump, mock.Anything, mock.Anything).Return(activities.DumpResult{Path: "/o/r/output_transactions.csv"}, nil)
	env.OnActivity(a.WriteSummary, mock.Anything, mock.Anything).Return("/o/r/summary.json", nil)
	env.ExecuteWorkflow(ProcessFile, ProcessFileInput{File: "in.csv"})
	require.NoError(t, env.GetWorkflowError())
	env.AssertExpectations(t)
	s := query(t, env)
	require.Equal(t, "default", s.Account)
	require.False(t, s.AccountColumn)
}

// An invalid account fails the run at once, before Ingest, with a non-retryable error of its
// own type saying what is wrong.
func TestProcessFileInvalidAccountFailsAtOnce(t *testing.T) {
	for _, acc := range []string{"acme corp", "a/b", "..\x00", " acme", strings.Repeat("x", 65)} {
		t.Run(acc, func(t *testing.T) {
			env := newEnv(t)
			env.OnActivity(a.Ingest, mock.Anything, mock.Anything).Never()
			var alert activities.RunNotice
			env.OnActivity(n.Alert, mock.Anything, mock.Anything).Return(
				func(_ context.Context, notice activities.RunNotice) (activities.NotifyResult, error) {
					alert = notice
					return activities.NotifyResult{}, nil
				})
			env.ExecuteWorkflow(ProcessFile, ProcessFileInput{File: "in.csv", Account: acc})
			require.True(t, env.IsWorkflowCompleted())
			err := env.GetWorkflowError()
			var appErr *temporal.ApplicationError
			require.ErrorAs(t, err, &appErr)
			require.Equal(t, activities.ErrTypeBadAccount, appErr.Type())
			require.True(t, appErr.NonRetryable())
			require.Contains(t, appErr.Error(), "invalid account for the run")
			require.Contains(t, activities.NonRetryableErrorTypes, activities.ErrTypeBadAccount)
			env.AssertNumberOfCalls(t, "Ingest", 0)
			s := query(t, env)
			require.Equal(t, StatusFailed, s.Status)
			require.Equal(t, StatusFailed, s.stage(StageIngest).Status)
			require.Contains(t, s.stage(StageIngest).Error, "invalid account for the run")
			require.Equal(t, activities.ErrTypeBadAccount, alert.ErrorType, "the alert says why")
			require.Equal(t, acc, alert.Account)
		})
	}
}

// An inbox of account sub-folders: each file's run is of its folder's account, with the
// account in its id, and is filed under archive/<account>/; a sub-folder not named after an
// account is refused, reported by name, and fails the inbox run once every file is filed.
func TestInboxAccounts(t *testing.T) {
	env := newInboxEnv(t)
	env.OnActivity(a.ListInbox, mock.Anything, mock.Anything).Return([]activities.InboxFile{
		{File: "inbox/a.csv", SHA256: "aaaaaaaaaaaaaaaa00"},
		{File: "inbox/acme/x.csv", SHA256: "cccccccccccccccc00", Account: "acme"},
		{File: "inbox/bad name", Error: "sub-folder inbox/bad name/ of the inbox is not named after a valid account"},
		{File: "inbox/globex/x.csv", SHA256: "cccccccccccccccc00", Account: "globex"},
	}, nil)
	var mu sync.Mutex
	accounts := map[string]string{}
	env.OnWorkflow(ProcessFile, mock.Anything, mock.Anything).Return(
		func(ctx workflow.Context, in ProcessFileInput) (*Summary, error) {
			mu.Lock()
			defer mu.Unlock()
			accounts[in.File] = in.Account + " " + workflow.GetInfo(ctx).WorkflowExecution.ID
			return &Summary{}, nil
		})
	moved := map[string]activities.MoveInput{}
	env.OnActivity(a.MoveInboxFile, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.MoveInput) (string, error) {
			mu.Lock()
			defer mu.Unlock()
			moved[in.File] = in
			return filepath.Join(in.To, in.Account, filepath.Base(in.File)), nil
		})
	env.ExecuteWorkflow(ProcessInbox, ProcessInboxInput{})
	require.True(t, env.IsWorkflowCompleted())
	require.ErrorContains(t, env.GetWorkflowError(),
		"1 of 4 files not processed successfully (archived 3, failed 0, left in the inbox 0, sub-folders refused 1): inbox/bad name (refused: sub-folder inbox/bad name/")
	res := inboxResult(t, env, true)
	require.Equal(t, map[string]string{
		"inbox/a.csv":        " txflow-aaaaaaaaaaaaaaaa",
		"inbox/acme/x.csv":   "acme txflow-acme-cccccccccccccccc",
		"inbox/globex/x.csv": "globex txflow-globex-cccccccccccccccc",
	}, accounts)
	require.Equal(t, "acme", moved["inbox/acme/x.csv"].Account)
	require.Equal(t, "globex", moved["inbox/globex/x.csv"].Account)
	require.Empty(t, moved["inbox/a.csv"].Account)
	require.NotContains(t, moved, "inbox/bad name")
	require.Len(t, res.Files, 4)
	require.Equal(t, InboxFileResult{File: "inbox/bad name", Outcome: InboxRefused,
		Error: "sub-folder inbox/bad name/ of the inbox is not named after a valid account"}, res.Files[2])
	require.Equal(t, "archive/acme/x.csv", res.Files[1].MovedTo)
	require.Equal(t, "txflow-globex-cccccccccccccccc", res.Files[3].RunID)
	require.Equal(t, 1, res.Totals.Refused)
	require.Equal(t, 3, res.Totals.Archived)
}
