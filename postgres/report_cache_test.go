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
