package postgres_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/txflow/txflow/postgres"
	"github.com/txflow/txflow/txn"
)

// The figures kept for a run are read back as they were computed, for the same options and the
// same ingestion only.
func TestRunReportKeptForTheRunsIngestion(t *testing.T) {
	db, _ := openDB(t)
	ctx := context.Background()
	recs := []txn.Record{rec(2, "A", "0.50", "TAXI tip"), rec(3, "B", "-350.00", "<b>rent</b>")}
	rejected := []txn.Rejected{{Line: 4, ID: "R1", Amount: "abc", Wording: "bad", Reason: txn.ReasonInvalidAmount, Detail: "not a number"}}
	c := ingestAccount(t, db, accountRun{id: "rep", account: "acme", recs: recs, rejected: rejected})
	_, err := db.TagChunk(ctx, "rep", 1, c.MaxSeq+1, tagWord)
	require.NoError(t, err)

	_, ok, err := db.CachedRunReport(ctx, "rep", postgres.ReportOptions{})
	require.NoError(t, err)
	require.False(t, ok, "nothing kept yet")

	opts := postgres.ReportOptions{OmitAnnotations: true}
	r, err := db.RunReport(ctx, "rep", opts)
	require.NoError(t, err)
	require.NoError(t, db.SaveRunReport(ctx, r, opts))
	kept, ok, err := db.CachedRunReport(ctx, "rep", opts)
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, r, kept)
	require.NotEmpty(t, kept.Tags)
	require.NotEmpty(t, kept.Reasons)
	require.NotEmpty(t, kept.LargestDebits)

	_, ok, err = db.CachedRunReport(ctx, "rep", postgres.ReportOptions{})
	require.NoError(t, err)
	require.False(t, ok, "computed with other options")

	// Saved again: replaced.
	r.New = 99
	require.NoError(t, db.SaveRunReport(ctx, r, opts))
	kept, _, err = db.CachedRunReport(ctx, "rep", opts)
	require.NoError(t, err)
	require.EqualValues(t, 99, kept.New)

	// The run's ingestion started over: what was kept is stale.
	_, err = db.BeginIngest(ctx, postgres.Run{ID: "rep", File: "rep.csv", SHA256: "sha-rep", Account: "acme"}, false)
	require.NoError(t, err)
	_, ok, err = db.CachedRunReport(ctx, "rep", opts)
	require.NoError(t, err)
	require.False(t, ok, "kept for an ingestion since started over")

	require.ErrorIs(t, db.SaveRunReport(ctx, postgres.RunReport{RunID: "nope"}, opts), postgres.ErrRunNotFound)
}

// The figures of a run's lines, computed before its results and kept, make with the rest the
// same report as one computed at once; they are kept for the run's ingestion only.
func TestRunReportLinesThenTheRest(t *testing.T) {
	db, _ := openDB(t)
	ctx := context.Background()
	big := rec(5, "E", "-2000000.00", "TOTO loan")
	big.Error = txn.ReasonAmountTooHigh
	recs := []txn.Record{rec(2, "A", "0.50", "TAXI tip"), rec(3, "B", "-350.00", "<b>rent</b>"), rec(4, "C", "1200.00", "TATA"), big}
	rejected := []txn.Rejected{{Line: 6, ID: "R1", Amount: "abc", Wording: "bad", Reason: txn.ReasonInvalidAmount, Detail: "not a number"}}
	c := ingestAccount(t, db, accountRun{id: "lines", account: "acme", recs: recs, rejected: rejected})

	// Computed right after the settlement, before any result.
	lines, err := db.RunReportLines(ctx, "lines")
	require.NoError(t, err)
	require.EqualValues(t, 4, lines.Accepted)
	require.EqualValues(t, 1, lines.Rejected)
	require.EqualValues(t, 1, lines.InError)
	require.Len(t, lines.LargestDebits, 2)
	require.Empty(t, lines.Tags)
	require.NoError(t, db.SaveRunReportLines(ctx, lines))

	_, err = db.TagChunk(ctx, "lines", 1, c.MaxSeq+1, tagWord)
	require.NoError(t, err)
	kept, ok, err := db.CachedRunReportLines(ctx, "lines")
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, lines, kept)

	opts := postgres.ReportOptions{OmitAnnotations: true}
	whole, err := db.RunReport(ctx, "lines", opts)
	require.NoError(t, err)
	with, err := db.RunReportWith(ctx, "lines", opts, kept)
	require.NoError(t, err)
	require.Equal(t, whole, with)
	require.NotEmpty(t, with.Tags)
	require.Equal(t, "acme", with.Account)

	// The run's ingestion started over: what was kept is stale.
	_, err = db.BeginIngest(ctx, postgres.Run{ID: "lines", File: "lines.csv", SHA256: "sha-lines", Account: "acme"}, false)
	require.NoError(t, err)
	_, ok, err = db.CachedRunReportLines(ctx, "lines")
	require.NoError(t, err)
	require.False(t, ok, "kept for an ingestion since started over")

	_, err = db.RunReportLines(ctx, "nope")
	require.ErrorIs(t, err, postgres.ErrRunNotFound)
	require.ErrorIs(t, db.SaveRunReportLines(ctx, postgres.RunReport{RunID: "nope"}), postgres.ErrRunNotFound)
}

// Each Tag and Annotate chunk keeps the counts of its lines' results; the report computed beside
// the dump adds them up when they cover the run's lines, for a run of new transactions as for one
// with transactions stored before, and scans the results when they do not.
func TestChunksKeepTheirResultCounts(t *testing.T) {
	db, dbURL := openDB(t)
	ctx := context.Background()
	big := rec(6, "E", "-2000000.00", "TOTO loan")
	big.Error = txn.ReasonAmountTooHigh
	first := []txn.Record{rec(2, "A", "0.50", "TAXI tip"), rec(3, "B", "-350.00", "rent TOTO"), rec(4, "C", "1200.00", "TATA"),
		rec(5, "D", "-10.00", "TAXI"), big, rec(7, "F", "0.00", "no tag word, no annotation")}
	for _, run := range []struct {
		id   string
		recs []txn.Record
	}{
		{"fresh", first},
		// Two lines stored by the first run, whose results it computed, and a new one.
		{"mixed", []txn.Record{rec(2, "A", "0.50", "TAXI tip"), rec(3, "B", "-350.00", "rent TOTO"), rec(4, "Z", "5.00", "TUTU")}},
	} {
		c := ingestAccount(t, db, accountRun{id: run.id, account: "acme", recs: run.recs})
		for from := int64(1); from <= c.MaxSeq; from += 2 { // chunks of 2 lines
			_, err := db.TagChunk(ctx, run.id, from, from+2, tagWord)
			require.NoError(t, err)
			_, err = db.AnnotateChunk(ctx, run.id, from, from+2, annotate)
			require.NoError(t, err)
		}
		require.Equal(t, (c.MaxSeq+1)/2*2, queryValue[int64](t, dbURL, "SELECT count(*) FROM run_report_chunks WHERE run_id = $1", run.id), run.id)

		lines, err := db.RunReportLines(ctx, run.id)
		require.NoError(t, err)
		whole, err := db.RunReport(ctx, run.id, postgres.ReportOptions{})
		require.NoError(t, err)
		with, err := db.RunReportWith(ctx, run.id, postgres.ReportOptions{}, lines)
		require.NoError(t, err)
		require.Equal(t, whole, with, run.id)
	}

	// The kept counts are what RunReportWith shows (marked here)...
	execSQL(t, dbURL, `UPDATE run_report_chunks SET counts = '{"KEPT": 1}' WHERE run_id = 'fresh' AND result = 'tags' AND from_seq = 1`)
	lines, err := db.RunReportLines(ctx, "fresh")
	require.NoError(t, err)
	with, err := db.RunReportWith(ctx, "fresh", postgres.ReportOptions{}, lines)
	require.NoError(t, err)
	require.Contains(t, with.Tags, postgres.LabelCount{Label: "KEPT", Count: 1})
	// ... unless a chunk is missing: the results are scanned.
	execSQL(t, dbURL, `DELETE FROM run_report_chunks WHERE run_id = 'fresh' AND result = 'tags' AND from_seq = 3`)
	with, err = db.RunReportWith(ctx, "fresh", postgres.ReportOptions{}, lines)
	require.NoError(t, err)
	require.NotContains(t, with.Tags, postgres.LabelCount{Label: "KEPT", Count: 1})
	require.Contains(t, with.Tags, postgres.LabelCount{Label: "TAXI", Count: 2})
}

// A chunk of a run of new transactions keeps the counts of the results it wrote, except when a
// result was there before: another run, with a line of one of its transactions, stored one first.
// The counts kept are then those of the stored results, as scanning them finds.
func TestChunkCountsWhenAnotherRunStoredAResultFirst(t *testing.T) {
	db, _ := openDB(t)
	ctx := context.Background()
	first := ingestAccount(t, db, accountRun{id: "first", account: "acme",
		recs: []txn.Record{rec(2, "A", "0.50", "TAXI tip"), rec(3, "B", "-350.00", "rent TOTO")}})
	later := ingestAccount(t, db, accountRun{id: "later", account: "acme", recs: []txn.Record{rec(2, "A", "0.50", "TAXI tip")}})
	require.Zero(t, later.New)
	other := func(string) string { return "OTHER" }
	_, err := db.TagChunk(ctx, "later", 1, later.MaxSeq+1, other)
	require.NoError(t, err)

	tags, err := db.TagChunk(ctx, "first", 1, first.MaxSeq+1, tagWord)
	require.NoError(t, err)
	require.Equal(t, postgres.ChunkCounts{Lines: 2, Computed: 1}, tags, "A's tag was stored by the later run")
	_, err = db.AnnotateChunk(ctx, "first", 1, first.MaxSeq+1, annotate)
	require.NoError(t, err)

	lines, err := db.RunReportLines(ctx, "first")
	require.NoError(t, err)
	whole, err := db.RunReport(ctx, "first", postgres.ReportOptions{})
	require.NoError(t, err)
	with, err := db.RunReportWith(ctx, "first", postgres.ReportOptions{}, lines)
	require.NoError(t, err)
	require.Equal(t, whole, with)
	require.ElementsMatch(t, []postgres.LabelCount{{Label: "OTHER", Count: 1}, {Label: "TOTO", Count: 1}}, with.Tags)
}
