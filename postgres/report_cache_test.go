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
