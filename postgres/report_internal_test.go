package postgres

import (
	"context"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/require"

	"github.com/txflow/txflow/internal/testdb"
	"github.com/txflow/txflow/txn"
)

// The bounds of the largest amounts keep the fewest outermost buckets of each sign that hold
// at least n lines, all of the sign's lines when it has fewer, none when it has none.
func TestLargestBounds(t *testing.T) {
	str := func(s string) *string { return &s }
	for _, tc := range []struct {
		name          string
		lines         map[int]int64 // signed bucket -> lines
		debit, credit *string
	}{
		{"no lines", nil, nil, nil},
		{"only zeros", map[int]int64{11: 5}, nil, nil},
		{"one debit, one credit", map[int]int64{7: 1, 15: 1}, str("0"), str("0.01")},
		{"outermost bucket enough", map[int]int64{3: 4, 7: 100, 15: 100, 20: 3}, str("-999999.99"), str("10000000")},
		{"two buckets needed", map[int]int64{6: 1, 7: 100, 15: 100, 16: 2}, str("-99.99"), str("100")},
		{"beyond a billion", map[int]int64{0: 3, 22: 3}, str("-999999999.99"), str("1000000000")},
		{"below one", map[int]int64{10: 2, 12: 2}, str("0"), str("0.01")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var p linesPart
			for s, n := range tc.lines {
				p.signed[s] = n
			}
			debit, credit := p.largestBounds(3)
			require.Equal(t, tc.debit, debit, "debit bound")
			require.Equal(t, tc.credit, credit, "credit bound")
		})
	}
}

// A run's error report and dump compute their figures on one connection each, without waiting
// for the report slot a big run's full report holds: a small run is not held up by a big one.
func TestReportPartsDoNotWaitForTheSlot(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, err := Open(ctx, testdb.URL(t))
	require.NoError(t, err)
	t.Cleanup(db.Close)
	require.NoError(t, db.Migrate(ctx))
	_, err = db.BeginIngest(ctx, Run{ID: "small", File: "small.csv", SHA256: "00", Account: "acme"}, false)
	require.NoError(t, err)
	require.NoError(t, db.LoadBatch(ctx, "small", 1, []txn.Record{{Line: 2, ID: "A", Amount: decimal.RequireFromString("-12.50"),
		RawAmount: "-12.50", Wording: "TAXI"}}, nil))
	_, err = db.FinishIngestFile(ctx, "small", FileFacts{RowsRead: 1})
	require.NoError(t, err)

	reportSlot <- struct{}{} // a big run's report is being computed
	defer func() { <-reportSlot }()
	lines, err := db.RunReportLines(ctx, "small")
	require.NoError(t, err)
	require.EqualValues(t, 1, lines.Accepted)
	r, err := db.RunReportWith(ctx, "small", ReportOptions{}, lines)
	require.NoError(t, err)
	require.Equal(t, "acme", r.Account)
	require.Equal(t, []LabelCount{{Count: 1}}, r.Tags, "not tagged yet: no tag")

	// The full report waits for the slot.
	short, cancelShort := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancelShort()
	_, err = db.RunReport(short, "small", ReportOptions{})
	require.ErrorIs(t, err, context.DeadlineExceeded)
}
