package activities

import (
	"encoding/csv"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/txflow/txflow/postgres"
	"github.com/txflow/txflow/txn"
)

// writeBankFile writes a file of n data rows in input/bank.csv after a preamble, every seventh
// with an amount that cannot be read (rejected) and every eleventh above the amount limit (in
// error). It returns the file's hash, and the ids of the accepted rows and of the rejected ones.
func writeBankFile(t *testing.T, input string, n int) (sum string, accepted, rejected []string) {
	t.Helper()
	var b strings.Builder
	b.WriteString("Compte n° 12345678901;;;\n\nid;montant;libellé;\n")
	for i := 1; i <= n; i++ {
		id := fmt.Sprintf("T%04d", i)
		amount := fmt.Sprintf("%d,%02d", i, i%100)
		switch {
		case i%7 == 0:
			amount = "abc"
			rejected = append(rejected, id)
		case i%11 == 0:
			amount = "99999999,00"
			accepted = append(accepted, id)
		default:
			accepted = append(accepted, id)
		}
		fmt.Fprintf(&b, "%s;%s;CB TAXI %d;\n", id, amount, i)
	}
	path := filepath.Join(input, "bank.csv")
	require.NoError(t, os.WriteFile(path, []byte(b.String()), 0o644))
	sum, err := HashFile(path)
	require.NoError(t, err)
	return sum, accepted, rejected
}

// ingestWithRetries runs Ingest the way the pipeline does: retried by Temporal after a failure.
func ingestWithRetries(ctx workflow.Context, in IngestInput) (IngestResult, error) {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: time.Minute,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Millisecond, MaximumAttempts: 3},
	})
	var res IngestResult
	err := workflow.ExecuteActivity(ctx, "Ingest", in).Get(ctx, &res)
	return res, err
}

// runIngest ingests in through Temporal's test environment, retries included.
func runIngest(t *testing.T, a *Activities, in IngestInput) IngestResult {
	t.Helper()
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.RegisterActivity(a)
	env.RegisterWorkflow(ingestWithRetries)
	env.ExecuteWorkflow(ingestWithRetries, in)
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	var res IngestResult
	require.NoError(t, env.GetWorkflowResult(&res))
	return res
}

func newFakeActivities(t *testing.T, store *fakeStore) *Activities {
	return &Activities{DB: store, Rules: txn.DefaultRules(), InputRoot: t.TempDir(), OutputRoot: t.TempDir(),
		BatchSize: 4, Progress: &recordingSink{}}
}

// referenceIngest ingests the file once, without failure, into a store of its own.
func referenceIngest(t *testing.T, input string, in IngestInput) IngestResult {
	t.Helper()
	a := newFakeActivities(t, newFakeStore())
	a.InputRoot = input
	return runIngest(t, a, in)
}

// TestIngestRetryResumesAfterTheLastCommittedBatch fails the fourth batch of an ingest: Temporal
// retries the activity, which keeps the three batches committed and loads the rest, each record
// once and in order, and returns what an undisturbed ingest returns.
func TestIngestRetryResumesAfterTheLastCommittedBatch(t *testing.T) {
	store := newFakeStore()
	store.fail.loadCall = 4
	a := newFakeActivities(t, store)
	sum, accepted, rejected := writeBankFile(t, a.InputRoot, 40)
	in := IngestInput{RunID: "resume", File: "bank.csv", SHA256: sum}

	res := runIngest(t, a, in)
	require.Equal(t, referenceIngest(t, a.InputRoot, in), res)
	require.EqualValues(t, 40, res.RowsRead)

	require.Equal(t, []bool{false, true}, store.begins, "the retry resumes")
	var loaded int
	for i, l := range store.loads {
		if i < 3 {
			require.Equal(t, 1, l.Begin, "the first three batches are the first attempt's")
		} else {
			require.Equal(t, 2, l.Begin, "the rest are the retry's")
		}
		loaded += l.Records + l.Rejected
	}
	require.Equal(t, 40, loaded, "each record loaded once: the retry starts after the committed batches")
	require.Equal(t, store.loads[2].FirstSeq+int64(store.loads[2].Records), store.loads[3].FirstSeq)

	r := store.runs["resume"]
	var ids []string
	for _, seq := range r.seqs() {
		ids = append(ids, r.lines[seq].ID)
	}
	require.Equal(t, accepted, ids, "accepted records in file order, none skipped")
	var rejIDs []string
	for _, rej := range r.rejected {
		rejIDs = append(rejIDs, rej.ID)
		require.Equal(t, txn.ReasonInvalidAmount, rej.Reason, rej.ID)
	}
	require.Equal(t, rejected, rejIDs)
	require.EqualValues(t, len(accepted), res.MaxSeq, "seqs stay contiguous across the retry")
}

// TestIngestRetryAfterSettlingReturnsTheSameResult loses the answer of FinishIngest after it
// settled the run: the retry loads nothing and returns the result the first attempt would have.
func TestIngestRetryAfterSettlingReturnsTheSameResult(t *testing.T) {
	store := newFakeStore()
	store.fail.afterFinish = errConnectionLost
	a := newFakeActivities(t, store)
	sum, _, _ := writeBankFile(t, a.InputRoot, 30)
	in := IngestInput{RunID: "settled", File: "bank.csv", SHA256: sum}

	res := runIngest(t, a, in)
	want := referenceIngest(t, a.InputRoot, in)
	require.Equal(t, want, res)
	require.NotZero(t, res.New, "New is the settling attempt's count, not the retry's")
	require.Equal(t, []bool{false, true}, store.begins)
	require.Equal(t, 1, store.calls.finish, "the retry does not settle again")
	for _, l := range store.loads {
		require.Equal(t, 1, l.Begin, "the retry loads nothing")
	}
}

// TestIngestTellsTheSettlementWhenKeysAreDistinct checks when Ingest spares the settlement its
// search for duplicates (postgres.FileFacts.Distinct): only when it loaded every line of the run
// itself and saw no key twice (postgres.KeyHashes; TestKeyHashesAgreeWithTheSettlement checks it
// against PostgreSQL); and that it says whether it loaded every line, and how many with an
// amount above the limit (FileFacts.Loaded and ErrorLines, which TestSettlementCountsFromTheLoader
// checks against PostgreSQL's counts).
func TestIngestTellsTheSettlementWhenKeysAreDistinct(t *testing.T) {
	// What FinishIngestFile was told, per call: keys distinct, every line loaded by this
	// ingestion, and how many of them with an error.
	type told struct {
		distinct, loaded bool
		errorLines       int64
	}
	cases := []struct {
		name     string
		loadCall int    // the LoadBatch call that fails once, 0 for none
		extra    string // lines added to the file
		told     []told
	}{
		{name: "distinct ids", told: []told{{true, true, 0}}},
		{name: "an id twice", extra: "T0003;1,00;again;FR01\n", told: []told{{false, true, 0}}},
		{name: "the same id in two accounts", extra: "T0003;1,00;again;FR02\n", told: []told{{true, true, 0}}},
		{name: "amounts too high", extra: "T0100;2000000,00;big;FR01\nT0101;-1000000,01;big;FR01\nT0102;1000000,00;limit;FR01\n",
			told: []told{{true, true, 2}}},
		{name: "resumed after a failed batch", loadCall: 2, extra: "T0100;2000000,00;big;FR01\n", told: []told{{false, false, 1}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			store := newFakeStore()
			store.fail.loadCall = c.loadCall
			a := newFakeActivities(t, store)
			var b strings.Builder
			b.WriteString("id;montant;libellé;compte\n")
			for i := 1; i <= 12; i++ {
				fmt.Fprintf(&b, "T%04d;%d,00;CB %d;FR01\n", i, i, i)
			}
			b.WriteString(c.extra)
			path := filepath.Join(a.InputRoot, "bank.csv")
			require.NoError(t, os.WriteFile(path, []byte(b.String()), 0o644))
			sum, err := HashFile(path)
			require.NoError(t, err)
			runIngest(t, a, IngestInput{RunID: "keys", File: "bank.csv", SHA256: sum})
			var got []told
			for _, f := range store.facts {
				got = append(got, told{f.Distinct, f.Loaded, f.ErrorLines})
			}
			require.Equal(t, c.told, got)
		})
	}
}

// TestIngestFirstAttemptStartsAfresh checks that a first attempt never resumes: a run id ingested
// before (a file processed anew) is loaded again from its first record.
func TestIngestFirstAttemptStartsAfresh(t *testing.T) {
	store := newFakeStore()
	a := newFakeActivities(t, store)
	sum, accepted, _ := writeBankFile(t, a.InputRoot, 12)
	in := IngestInput{RunID: "again", File: "bank.csv", SHA256: sum}
	first := runIngest(t, a, in)
	second := runIngest(t, a, in)
	require.Equal(t, []bool{false, false}, store.begins)
	require.Equal(t, first, second)
	require.Len(t, store.runs["again"].lines, len(accepted))
}

// TestIngestFileChangedIsNotRetried checks that a file whose content no longer matches the hash
// the run was started for fails at once with a non-retryable error, before settling.
func TestIngestFileChangedIsNotRetried(t *testing.T) {
	store := newFakeStore()
	a := newFakeActivities(t, store)
	writeBankFile(t, a.InputRoot, 5)
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(a)
	_, err := env.ExecuteActivity(a.Ingest, IngestInput{RunID: "changed", File: "bank.csv", SHA256: strings.Repeat("0", 64)})
	requireErrorType(t, err, ErrTypeFileChanged)
	require.Zero(t, store.calls.finish)
}

// readCSV reads a CSV file's data rows.
func readCSV(t *testing.T, path string) [][]string {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	require.NoError(t, err)
	return rows[1:]
}

// TestDumpReturnsTheStoresCounts runs Ingest, Tag, Annotate and Dump on the fake store: the
// result carries the rows, tags and annotations the store counted as it wrote the file, which
// are those of the file, also with a column left out.
func TestDumpReturnsTheStoresCounts(t *testing.T) {
	store := newFakeStore()
	a := newFakeActivities(t, store)
	sum, _, _ := writeBankFile(t, a.InputRoot, 25)
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(a)
	v, err := env.ExecuteActivity(a.Ingest, IngestInput{RunID: "dump", File: "bank.csv", SHA256: sum})
	require.NoError(t, err)
	var ing IngestResult
	require.NoError(t, v.Get(&ing))
	// Only half the lines get a tag: the counts are not simply the rows.
	_, err = env.ExecuteActivity(a.Tag, ChunkInput{RunID: "dump", From: 1, To: ing.MaxSeq/2 + 1})
	require.NoError(t, err)
	_, err = env.ExecuteActivity(a.Annotate, ChunkInput{RunID: "dump", From: 1, To: ing.MaxSeq + 1})
	require.NoError(t, err)

	for _, in := range []DumpInput{{RunID: "dump"}, {RunID: "dump", OmitTags: true}, {RunID: "dump", OmitAnnotations: true}} {
		v, err = env.ExecuteActivity(a.Dump, in)
		require.NoError(t, err)
		var res DumpResult
		require.NoError(t, v.Get(&res))
		require.Equal(t, filepath.Join(a.OutputRoot, "dump", OutputFile), res.Path)
		want := DumpResult{Path: res.Path}
		for _, row := range readCSV(t, res.Path) {
			want.Rows++
			if row[3] != "" {
				want.Tagged++
			}
			if row[4] != "" {
				want.Annotated++
			}
		}
		require.Equal(t, want, res, "%+v", in)
		require.NotZero(t, res.Rows)
		require.Equal(t, !in.OmitTags, res.Tagged > 0 && res.Tagged < res.Rows, "%+v: half the rows are tagged", in)
		require.Equal(t, !in.OmitAnnotations, res.Annotated > 0 && res.Annotated < res.Rows, "%+v: lines in error have no annotation", in)
	}
}

// TestDumpFailingMidwayLeavesNoFile fails the store's export halfway: Dump returns a retryable
// error and neither the output file nor its temporary file is left; the retry writes it whole.
func TestDumpFailingMidwayLeavesNoFile(t *testing.T) {
	store := newFakeStore()
	a := newFakeActivities(t, store)
	sum, accepted, _ := writeBankFile(t, a.InputRoot, 10)
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(a)
	_, err := env.ExecuteActivity(a.Ingest, IngestInput{RunID: "half", File: "bank.csv", SHA256: sum})
	require.NoError(t, err)

	store.fail.output = errConnectionLost
	_, err = env.ExecuteActivity(a.Dump, DumpInput{RunID: "half"})
	require.ErrorContains(t, err, errConnectionLost.Error())
	var appErr *temporal.ApplicationError
	require.ErrorAs(t, err, &appErr)
	require.False(t, appErr.NonRetryable(), "an interrupted export is retried")
	require.Equal(t, []string{AttemptFile}, runFiles(t, filepath.Join(a.OutputRoot, "half")))

	v, err := env.ExecuteActivity(a.Dump, DumpInput{RunID: "half"})
	require.NoError(t, err)
	var res DumpResult
	require.NoError(t, v.Get(&res))
	require.EqualValues(t, len(accepted), res.Rows)
	require.Len(t, readCSV(t, res.Path), len(accepted))
}

// TestReportErrorsCountsTheStoresRows checks ReportErrors' file and row count on the fake store.
func TestReportErrorsCountsTheStoresRows(t *testing.T) {
	store := newFakeStore()
	a := newFakeActivities(t, store)
	sum, _, rejected := writeBankFile(t, a.InputRoot, 30)
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(a)
	v, err := env.ExecuteActivity(a.Ingest, IngestInput{RunID: "report", File: "bank.csv", SHA256: sum})
	require.NoError(t, err)
	var ing IngestResult
	require.NoError(t, v.Get(&ing))
	v, err = env.ExecuteActivity(a.ReportErrors, ReportInput{RunID: "report"})
	require.NoError(t, err)
	var res FileResult
	require.NoError(t, v.Get(&res))
	inError := 2 // T0011 and T0022
	require.EqualValues(t, len(rejected)+inError, res.Rows)
	require.Len(t, readCSV(t, res.Path), len(rejected)+inError)
	_, err = env.ExecuteActivity(a.ReportErrors, ReportInput{RunID: "unknown"})
	require.ErrorContains(t, err, postgres.ErrRunNotFound.Error())
}
