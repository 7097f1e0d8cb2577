package activities

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/testsuite"
)

// runFiles lists the files of a run directory, hidden ones included, sorted.
func runFiles(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	return names
}

// writeAs writes name in the run directory for attempt, as the output activities do.
func writeAs(t *testing.T, root, runID, attempt, name, content string) {
	t.Helper()
	d, err := OpenRunDir(root, runID)
	require.NoError(t, err)
	defer d.Close()
	require.NoError(t, d.Claim(attempt))
	require.NoError(t, writeBytes(d.Root, name, []byte(content)))
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return string(b)
}

func TestRunDirHoldsOneAttemptOnly(t *testing.T) {
	root := t.TempDir()
	const id = "txflow-0123456789abcdef"
	dir := filepath.Join(root, id)

	// A first attempt fails after its report and dump: summary (failed) and failure report.
	for _, name := range []string{ErrorReportFile, OutputFile, SummaryFile} {
		writeAs(t, root, id, "attempt-1", name, "1")
	}
	n := &Notifier{OutputRoot: root}
	_, err := n.WriteFailureReport(context.Background(), RunNotice{RunID: id, Attempt: "attempt-1", Error: "tag failed"})
	require.NoError(t, err)
	require.Equal(t, []string{AttemptFile, ErrorReportFile, FailureFile, OutputFile, SummaryFile}, runFiles(t, dir))

	// The run again: its first file replaces the whole set, failure report included.
	writeAs(t, root, id, "attempt-2", ErrorReportFile, "2")
	require.Equal(t, []string{AttemptFile, ErrorReportFile}, runFiles(t, dir),
		"no summary.json until this attempt writes it: the set does not look complete")
	require.Equal(t, "2", read(t, filepath.Join(dir, ErrorReportFile)))
	writeAs(t, root, id, "attempt-2", OutputFile, "2")
	writeAs(t, root, id, "attempt-2", SummaryFile, "2")
	require.Equal(t, []string{AttemptFile, ErrorReportFile, OutputFile, SummaryFile}, runFiles(t, dir))
	for _, name := range []string{ErrorReportFile, OutputFile, SummaryFile} {
		require.Equal(t, "2", read(t, filepath.Join(dir, name)), name)
	}

	// A third attempt dies after its first file, leaving the temporary file of its second.
	writeAs(t, root, id, "attempt-3", ErrorReportFile, "3")
	require.NoError(t, os.WriteFile(filepath.Join(dir, "."+OutputFile+".abc.tmp"), []byte("partial"), 0o644))
	require.NotContains(t, runFiles(t, dir), SummaryFile)
	require.NotContains(t, runFiles(t, dir), OutputFile, "no output of attempt 2 beside the report of attempt 3")
	// Its retry (same attempt) keeps what it wrote; a fourth attempt clears everything.
	writeAs(t, root, id, "attempt-3", OutputFile, "3")
	require.Equal(t, "3", read(t, filepath.Join(dir, ErrorReportFile)))
	writeAs(t, root, id, "attempt-4", SummaryFile, "4")
	require.Equal(t, []string{AttemptFile, SummaryFile}, runFiles(t, dir))

	// Files written before attempts were recorded are another attempt's too.
	legacy := filepath.Join(root, "txflow-legacy")
	require.NoError(t, os.MkdirAll(legacy, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(legacy, FailureFile), []byte("{}"), 0o644))
	writeAs(t, root, "txflow-legacy", "attempt-1", OutputFile, "1")
	require.Equal(t, []string{AttemptFile, OutputFile}, runFiles(t, legacy))
}

func TestWriteSummaryClaimsTheDirectory(t *testing.T) {
	root := t.TempDir()
	const id = "txflow-0123456789abcdef"
	// An earlier attempt's failure report.
	_, err := (&Notifier{OutputRoot: root}).WriteFailureReport(context.Background(), RunNotice{RunID: id, Attempt: "earlier"})
	require.NoError(t, err)

	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	a := &Activities{OutputRoot: root}
	env.RegisterActivity(a)
	v, err := env.ExecuteActivity(a.WriteSummary, SummaryInput{RunID: id, Summary: json.RawMessage(`{"status":"completed"}`)})
	require.NoError(t, err)
	var path string
	require.NoError(t, v.Get(&path))
	require.Equal(t, filepath.Join(root, id, SummaryFile), path)
	require.Equal(t, []string{AttemptFile, ReportFile, SummaryFile}, runFiles(t, filepath.Join(root, id)))
	st, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o644), st.Mode().Perm())

	_, err = a.WriteSummary(context.Background(), SummaryInput{RunID: id, Summary: json.RawMessage(`{"status":`)})
	requireErrorType(t, err, ErrTypeBadInput)
	_, err = env.ExecuteActivity(a.WriteSummary, SummaryInput{RunID: "../x", Summary: json.RawMessage(`{}`)})
	requireErrorType(t, err, ErrTypeBadPath)
}
