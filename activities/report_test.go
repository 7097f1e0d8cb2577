package activities

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/txflow/txflow/internal/testdb"
	"github.com/txflow/txflow/postgres"
	"github.com/txflow/txflow/txn"
)

// TestWriteSummaryWritesTheReport runs a file with rejected rows and rows in error through
// Ingest, Tag and Annotate on a real PostgreSQL, then WriteSummary: report.html is beside
// summary.json with the store's figures, and RewriteReport writes it again from summary.json.
func TestWriteSummaryWritesTheReport(t *testing.T) {
	db := openStore(t, testdb.URL(t))

	input, output := t.TempDir(), t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(input, "f.csv"), []byte("id,amount,wording\n"+
		"A1,350.00,TAXI NIGHT\n"+
		"A2,-45.90,<script>alert(1)</script>\n"+
		"A3,abc,BAD AMOUNT\n"+
		"A4,2000000.00,TOTO LOAN\n"), 0o644))
	a := &Activities{DB: db, Reports: db, Rules: txn.DefaultRules(), InputRoot: input, OutputRoot: output,
		UIURL: "http://ui.example/"}
	var suite testsuite.WorkflowTestSuite
	env := suite.NewTestActivityEnvironment()
	env.RegisterActivity(a)
	const id = "txflow-00000000000000aa"
	v, err := env.ExecuteActivity(a.Ingest, IngestInput{RunID: id, File: "f.csv"})
	require.NoError(t, err)
	var ing IngestResult
	require.NoError(t, v.Get(&ing))
	for _, fn := range []any{a.Tag, a.Annotate} {
		_, err := env.ExecuteActivity(fn, ChunkInput{RunID: id, From: 1, To: ing.MaxSeq + 1, RulesVersion: ing.RulesVersion})
		require.NoError(t, err)
	}

	finished := time.Date(2026, 1, 2, 6, 0, 3, 0, time.UTC)
	summary, err := json.Marshal(map[string]any{
		"run_id": id, "file": "f.csv", "account": "default", "rules_version": ing.RulesVersion,
		"status": "completed", "started_at": finished.Add(-2 * time.Second), "finished_at": finished,
		"rows_read": ing.RowsRead, "ingested": ing.Ingested, "new": ing.New, "rejected": ing.Rejected, "in_error": ing.InError,
		"stages": []map[string]string{{"name": "tag", "status": "completed"}, {"name": "annotate", "status": "completed"}},
	})
	require.NoError(t, err)
	_, err = env.ExecuteActivity(a.WriteSummary, SummaryInput{RunID: id, Summary: summary})
	require.NoError(t, err)
	path := filepath.Join(output, id, ReportFile)
	page := read(t, path)
	for _, want := range []string{
		`data-count="rows_read" data-value="4"`, `data-count="accepted" data-value="3"`, `data-count="new" data-value="3"`,
		`data-count="rejected" data-value="1"`, `data-count="in_error" data-value="1"`,
		`data-tag="TAXI" data-value="1"`, `data-tag="TOTO" data-value="1"`,
		`data-annotation="LARGE SALE" data-value="1"`, `data-annotation="SMALL EXPENSE" data-value="1"`,
		`data-reason="invalid_amount" data-kind="rejected" data-value="1"`,
		`data-reason="amount_too_high" data-kind="in_error" data-value="1"`,
		`data-field="duration">2s<`,
		`href="http://ui.example/namespaces/default-test-namespace/workflows/` + id + `"`,
		"&lt;script&gt;alert(1)&lt;/script&gt;",
	} {
		require.Contains(t, page, want)
	}
	require.NotContains(t, page, "<script")

	// Written again from summary.json, by another workflow: the same page, nothing claimed.
	require.NoError(t, os.Remove(path))
	v, err = env.ExecuteActivity(a.RewriteReport, RewriteReportInput{RunID: id})
	require.NoError(t, err)
	var rewritten string
	require.NoError(t, v.Get(&rewritten))
	require.Equal(t, path, rewritten)
	require.Equal(t, page, read(t, path))
	require.Equal(t, []string{AttemptFile, ReportFile, SummaryFile}, runFiles(t, filepath.Join(output, id)))

	// No such run, or a run without its summary: refused for good.
	_, err = env.ExecuteActivity(a.RewriteReport, RewriteReportInput{RunID: "txflow-00000000000000bb"})
	requireErrorType(t, err, ErrTypeBadInput)
	_, err = os.Stat(filepath.Join(output, "txflow-00000000000000bb"))
	require.True(t, os.IsNotExist(err), "no directory made for an unknown run")
	require.NoError(t, os.Remove(filepath.Join(output, id, SummaryFile)))
	_, err = env.ExecuteActivity(a.RewriteReport, RewriteReportInput{RunID: id})
	requireErrorType(t, err, ErrTypeBadInput)

	// The store unreachable: the activity fails for a retry.
	db.Close()
	_, err = env.ExecuteActivity(a.WriteSummary, SummaryInput{RunID: id, Summary: summary})
	require.Error(t, err)
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		require.False(t, appErr.NonRetryable(), "%v", err)
	}
	require.True(t, strings.Contains(err.Error(), "report figures"), "%v", err)
}

// TestWriteReportOfAPurgedRun: a run the store no longer holds gets a page with the summary's
// counts and a note saying why the rest is missing.
func TestWriteReportOfAPurgedRun(t *testing.T) {
	ctx := context.Background()
	db := openStore(t, testdb.URL(t))
	output := t.TempDir()
	a := &Activities{Reports: db, OutputRoot: output}
	const id = "txflow-00000000000000cc"
	_, err := a.WriteSummary(ctx, SummaryInput{RunID: id, Summary: json.RawMessage(`{"run_id":"` + id + `","status":"completed","rows_read":7,"rejected":2}`)})
	require.NoError(t, err)
	page := read(t, filepath.Join(output, id, ReportFile))
	require.Contains(t, page, `data-count="rows_read" data-value="7"`)
	require.Contains(t, page, `data-count="rejected" data-value="2"`)
	require.Contains(t, page, "no longer holds this run")
}

// Dump computes the report's figures beside the output and keeps them; the page written as the
// run ends reads what was kept, and `starter report` (RewriteReport) computes them afresh.
func TestDumpKeepsTheReportFigures(t *testing.T) {
	ctx := context.Background()
	const id = "txflow-00000000000000cc"
	db, a, env, ing := ingestForReport(t, id, "id,amount,wording\nA1,350.00,TAXI NIGHT\nA2,-45.90,TOTO\n")
	output := a.OutputRoot
	for _, fn := range []any{a.Tag, a.Annotate} {
		_, err := env.ExecuteActivity(fn, ChunkInput{RunID: id, From: 1, To: ing.MaxSeq + 1, RulesVersion: ing.RulesVersion})
		require.NoError(t, err)
	}
	_, err := env.ExecuteActivity(a.Dump, DumpInput{RunID: id})
	require.NoError(t, err)
	kept, ok, err := db.CachedRunReport(ctx, id, postgres.ReportOptions{})
	require.NoError(t, err)
	require.True(t, ok, "Dump kept the figures")
	require.Equal(t, []postgres.LabelCount{{Label: "TAXI", Count: 1}, {Label: "TOTO", Count: 1}}, kept.Tags)

	// What was kept is what the page shows (marked here to tell it from a fresh computation).
	kept.Tags = []postgres.LabelCount{{Label: "KEPT", Count: 2}}
	require.NoError(t, db.SaveRunReport(ctx, kept, postgres.ReportOptions{}))
	summary, err := json.Marshal(map[string]any{"run_id": id, "file": "f.csv", "account": "default", "status": "completed",
		"stages": []map[string]string{{"name": "tag", "status": "completed"}, {"name": "annotate", "status": "completed"}}})
	require.NoError(t, err)
	_, err = env.ExecuteActivity(a.WriteSummary, SummaryInput{RunID: id, Summary: summary})
	require.NoError(t, err)
	path := filepath.Join(output, id, ReportFile)
	require.Contains(t, read(t, path), `data-tag="KEPT" data-value="2"`)

	_, err = env.ExecuteActivity(a.RewriteReport, RewriteReportInput{RunID: id})
	require.NoError(t, err)
	page := read(t, path)
	require.NotContains(t, page, "KEPT")
	require.Contains(t, page, `data-tag="TAXI" data-value="1"`)
}

// ReportErrors, told to, computes and keeps the figures of the run's lines beside the error
// report; Dump then computes only the rest and keeps the whole.
func TestReportErrorsKeepsTheLinesFigures(t *testing.T) {
	ctx := context.Background()
	const id = "txflow-00000000000000cd"
	db, a, env, ing := ingestForReport(t, id, "id,amount,wording\nA1,350.00,TAXI NIGHT\nA2,-45.90,TOTO\nA3,x,bad\n")

	_, err := env.ExecuteActivity(a.ReportErrors, ReportInput{RunID: id})
	require.NoError(t, err)
	_, ok, err := db.CachedRunReportLines(ctx, id)
	require.NoError(t, err)
	require.False(t, ok, "not asked for the figures")
	_, err = env.ExecuteActivity(a.ReportErrors, ReportInput{RunID: id, Figures: true})
	require.NoError(t, err)
	lines, ok, err := db.CachedRunReportLines(ctx, id)
	require.NoError(t, err)
	require.True(t, ok, "ReportErrors kept the lines' figures")
	require.EqualValues(t, 2, lines.Accepted)
	require.EqualValues(t, 1, lines.Rejected)
	require.Equal(t, "TAXI NIGHT", lines.LargestCredits[0].Wording)

	// What was kept is what Dump uses (marked here to tell it from a fresh computation).
	lines.LargestCredits[0].Wording = "KEPT"
	require.NoError(t, db.SaveRunReportLines(ctx, lines))
	for _, fn := range []any{a.Tag, a.Annotate} {
		_, err := env.ExecuteActivity(fn, ChunkInput{RunID: id, From: 1, To: ing.MaxSeq + 1, RulesVersion: ing.RulesVersion})
		require.NoError(t, err)
	}
	_, err = env.ExecuteActivity(a.Dump, DumpInput{RunID: id})
	require.NoError(t, err)
	kept, ok, err := db.CachedRunReport(ctx, id, postgres.ReportOptions{})
	require.NoError(t, err)
	require.True(t, ok, "Dump kept the figures")
	require.Equal(t, "KEPT", kept.LargestCredits[0].Wording)
	require.Equal(t, []postgres.LabelCount{{Label: "TAXI", Count: 1}, {Label: "TOTO", Count: 1}}, kept.Tags)
	require.EqualValues(t, 1, kept.Rejected)
}

// ingestForReport ingests csv as run id, with a report store, on a real database.
func ingestForReport(t *testing.T, id, csv string) (*postgres.DB, *Activities, *testsuite.TestActivityEnvironment, IngestResult) {
	t.Helper()
	db := openStore(t, testdb.URL(t))
	input, output := t.TempDir(), t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(input, "f.csv"), []byte(csv), 0o644))
	a := &Activities{DB: db, Reports: db, Rules: txn.DefaultRules(), InputRoot: input, OutputRoot: output}
	var suite testsuite.WorkflowTestSuite
	env := suite.NewTestActivityEnvironment()
	env.RegisterActivity(a)
	v, err := env.ExecuteActivity(a.Ingest, IngestInput{RunID: id, File: "f.csv"})
	require.NoError(t, err)
	var ing IngestResult
	require.NoError(t, v.Get(&ing))
	return db, a, env, ing
}
