package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/txflow/txflow/postgres"
	"github.com/txflow/txflow/txn"
)

// TestRunReportCountsHistogramAndExamples checks every figure of a run's report against a run
// whose content is known: counts, tags and annotations as the output shows them, the histogram's
// buckets, the largest amounts, and the reasons with their first rows in line order.
func TestRunReportCountsHistogramAndExamples(t *testing.T) {
	db, dbURL := openDB(t)
	ctx := context.Background()

	tooHigh := rec(9, "E1", "2500000.00", "TOTO LOAN")
	tooHigh.Error = txn.ReasonAmountTooHigh
	tooHigh2 := rec(10, "E2", "-1000000000.00", "huge")
	tooHigh2.Error = txn.ReasonAmountTooHigh
	recs := []txn.Record{
		rec(2, "A", "0.50", "TAXI tip"),                   // credit, bucket 0 (< 1), TAXI, SALE
		rec(3, "B", "350.00", "TAXI night"),               // credit, bucket 3 (100..1000), TAXI, LARGE SALE
		rec(4, "C", "-45.90", "GROCERY TATA"),             // debit, bucket 2, TATA, SMALL EXPENSE
		rec(5, "D", "-300.00", "RENT"),                    // debit, bucket 3, no tag, EXPENSE
		rec(6, "E", "0", "ZERO"),                          // zero, no annotation
		rec(7, "F", "12.00", "<script>alert(1)</script>"), // credit, bucket 2, SALE
		rec(8, "G", "-1.00", "TOTO"),                      // debit, bucket 1 (1..10), TOTO, SMALL EXPENSE
		tooHigh,                                           // credit, bucket 7, TOTO, in error: no annotation
		tooHigh2,                                          // debit, bucket 10 (≥ 1e9), in error
		rec(11, "A", "0.50", "TAXI tip"),                  // in-file duplicate: rejected
	}
	rejected := []txn.Rejected{
		{Line: 12, ID: "R1", Amount: "abc", Wording: "<b>bad</b>", Reason: txn.ReasonInvalidAmount, Detail: "not a number"},
		{Line: 13, ID: "R2", Amount: "", Wording: "empty", Reason: txn.ReasonInvalidAmount, Detail: "empty amount"},
		{Line: 14, ID: "R3", Amount: "1.234", Wording: "three", Reason: txn.ReasonInvalidAmount, Detail: "three decimals"},
		{Line: 15, ID: "R4", Amount: "x", Wording: "four", Reason: txn.ReasonInvalidAmount, Detail: "not a number"},
		{Line: 16, ID: "", Amount: "1", Wording: "no id", Reason: txn.ReasonMissingID, Detail: "empty id"},
	}
	c := ingestAccount(t, db, accountRun{id: "rep", account: "acme", recs: recs, rejected: rejected})
	_, err := db.TagChunk(ctx, "rep", 1, c.MaxSeq+1, tagWord)
	require.NoError(t, err)
	_, err = db.AnnotateChunk(ctx, "rep", 1, c.MaxSeq+1, annotate)
	require.NoError(t, err)

	r, err := db.RunReport(ctx, "rep", postgres.ReportOptions{})
	require.NoError(t, err)
	require.Equal(t, "rep.csv", r.File)
	require.Equal(t, "acme", r.Account)
	require.EqualValues(t, 15, r.RowsRead)
	require.EqualValues(t, 9, r.Accepted)
	require.EqualValues(t, 9, r.New)
	require.EqualValues(t, 6, r.Rejected, "five rejected by the reader, one duplicate")
	require.EqualValues(t, 2, r.InError)

	require.Equal(t, []postgres.LabelCount{{"", 4}, {"TAXI", 2}, {"TOTO", 2}, {"TATA", 1}}, r.Tags)
	require.Equal(t, []postgres.LabelCount{{"", 3}, {"SALE", 2}, {"SMALL EXPENSE", 2}, {"EXPENSE", 1}, {"LARGE SALE", 1}},
		r.Annotations, "lines in error and the zero amount have none")

	require.Equal(t, []postgres.AmountBucket{
		{Sign: -1, Bucket: 1, Count: 1}, {Sign: -1, Bucket: 2, Count: 1}, {Sign: -1, Bucket: 3, Count: 1}, {Sign: -1, Bucket: 10, Count: 1},
		{Sign: 1, Bucket: 0, Count: 1}, {Sign: 1, Bucket: 2, Count: 1}, {Sign: 1, Bucket: 3, Count: 1}, {Sign: 1, Bucket: 7, Count: 1},
	}, r.Amounts)
	require.EqualValues(t, 1, r.Zero)

	require.Equal(t, []postgres.ReportLine{
		{Line: 10, ID: "E2", Amount: "-1000000000.00", Wording: "huge", Detail: "amount_too_high"},
		{Line: 5, ID: "D", Amount: "-300.00", Wording: "RENT"},
		{Line: 4, ID: "C", Amount: "-45.90", Wording: "GROCERY TATA"},
	}, r.LargestDebits)
	require.Equal(t, []postgres.ReportLine{
		{Line: 9, ID: "E1", Amount: "2500000.00", Wording: "TOTO LOAN", Detail: "amount_too_high"},
		{Line: 3, ID: "B", Amount: "350.00", Wording: "TAXI night"},
		{Line: 7, ID: "F", Amount: "12.00", Wording: "<script>alert(1)</script>"},
	}, r.LargestCredits)

	require.Len(t, r.Reasons, 4)
	inv := r.Reasons[0]
	require.Equal(t, postgres.KindRejected, inv.Kind)
	require.Equal(t, "invalid_amount", inv.Reason)
	require.EqualValues(t, 4, inv.Count)
	require.Equal(t, []postgres.ReportLine{
		{Line: 12, ID: "R1", Amount: "abc", Wording: "<b>bad</b>", Detail: "not a number"},
		{Line: 13, ID: "R2", Amount: "", Wording: "empty", Detail: "empty amount"},
		{Line: 14, ID: "R3", Amount: "1.234", Wording: "three", Detail: "three decimals"},
	}, inv.Examples, "the first rows of the reason, in line order, as many as ReportExamples")
	require.Equal(t, "duplicate_id", r.Reasons[1].Reason)
	require.EqualValues(t, 1, r.Reasons[1].Count)
	require.EqualValues(t, 11, r.Reasons[1].Examples[0].Line)
	require.Equal(t, "missing_id", r.Reasons[2].Reason)
	err2 := r.Reasons[3]
	require.Equal(t, postgres.KindInError, err2.Kind)
	require.Equal(t, "amount_too_high", err2.Reason)
	require.EqualValues(t, 2, err2.Count)
	require.Equal(t, []int64{9, 10}, []int64{err2.Examples[0].Line, err2.Examples[1].Line})
	require.Equal(t, "2500000.00", err2.Examples[0].Amount, "the amount as read")

	require.Zero(t, r.History.Runs, "no past run of the account")
	require.Empty(t, r.History.RowsFlag)

	// The same from a pool of one connection (its parts one after the other), and from several
	// reports at once (no report waits for ever for connections another holds).
	sep := "?"
	if strings.Contains(dbURL, "?") {
		sep = "&"
	}
	one, err := postgres.Open(ctx, dbURL+sep+"pool_max_conns=1")
	require.NoError(t, err)
	defer one.Close()
	alone, err := one.RunReport(ctx, "rep", postgres.ReportOptions{})
	require.NoError(t, err)
	require.Equal(t, r, alone)
	small, err := postgres.Open(ctx, dbURL+sep+"pool_max_conns=2")
	require.NoError(t, err)
	defer small.Close()
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := small.RunReport(ctx, "rep", postgres.ReportOptions{})
			assert.NoError(t, err)
			assert.Equal(t, r, got)
		}()
	}
	wg.Wait()

	// A stage that failed leaves its column out, as the output does.
	r, err = db.RunReport(ctx, "rep", postgres.ReportOptions{OmitTags: true})
	require.NoError(t, err)
	require.Empty(t, r.Tags)
	require.Len(t, r.Annotations, 5)
	require.EqualValues(t, 9, r.Accepted)
	r, err = db.RunReport(ctx, "rep", postgres.ReportOptions{OmitAnnotations: true})
	require.NoError(t, err)
	require.Len(t, r.Tags, 4)
	require.Empty(t, r.Annotations)

	// A run with lines of stored transactions: their results are the earlier run's.
	c = ingestAccount(t, db, accountRun{id: "rep2", account: "acme", recs: []txn.Record{
		rec(2, "B", "350.00", "TAXI night"), rec(3, "H", "5.00", "TAXI cab"), rec(4, "C", "-45.90", "GROCERY TATA"),
		rec(5, "I", "1.00", "nothing"),
	}})
	require.EqualValues(t, 2, c.New)
	_, err = db.TagChunk(ctx, "rep2", 1, c.MaxSeq+1, tagWord)
	require.NoError(t, err)
	_, err = db.AnnotateChunk(ctx, "rep2", 1, c.MaxSeq+1, annotate)
	require.NoError(t, err)
	r, err = db.RunReport(ctx, "rep2", postgres.ReportOptions{})
	require.NoError(t, err)
	require.Equal(t, []postgres.LabelCount{{"TAXI", 2}, {"TATA", 1}, {"", 1}}, r.Tags)
	require.Equal(t, []postgres.LabelCount{{"SALE", 2}, {"LARGE SALE", 1}, {"SMALL EXPENSE", 1}}, r.Annotations)
	require.Equal(t, 1, r.History.Runs, "the run before it")

	_, err = db.RunReport(ctx, "nope", postgres.ReportOptions{})
	require.True(t, errors.Is(err, postgres.ErrRunNotFound), "%v", err)
}

// TestRunReportComparesWithThePastRunsMedian checks the comparison with the account's past runs:
// the median of the latest ones settled before the run, flags only from HistoryMinRuns runs on,
// other accounts and later runs left out.
func TestRunReportComparesWithThePastRunsMedian(t *testing.T) {
	db, _ := openDB(t)
	ctx := context.Background()
	n := 0
	run := func(account string, rows, rejections int) string {
		n++
		id := fmt.Sprintf("h%02d", n)
		var recs []txn.Record
		for i := range rows {
			recs = append(recs, rec(int64(i+2), fmt.Sprintf("%s-%d", id, i), "1.00", "w"))
		}
		var rej []txn.Rejected
		for i := range rejections {
			rej = append(rej, txn.Rejected{Line: int64(rows + i + 2), ID: "x", Amount: "x", Wording: "x",
				Reason: txn.ReasonInvalidAmount, Detail: "not a number"})
		}
		ingestAccount(t, db, accountRun{id: id, account: account, recs: recs, rejected: rej})
		return id
	}
	history := func(id string) postgres.RunHistory {
		t.Helper()
		r, err := db.RunReport(ctx, id, postgres.ReportOptions{})
		require.NoError(t, err)
		return r.History
	}

	// Four past runs: medians computed, nothing flagged yet.
	for _, rj := range []int{0, 2, 1, 1} {
		run("acme", 10, rj)
	}
	run("other", 1000, 500) // another account's runs are not compared
	big := run("acme", 100, 9)
	h := history(big)
	require.Equal(t, 4, h.Runs)
	require.InDelta(t, 11, h.MedianRows, 0.001, "rows read 10, 12, 11, 11 (rows and rejections)")
	require.InDelta(t, 1, h.MedianRejected, 0.001)
	require.Empty(t, h.RowsFlag, "fewer than %d past runs", postgres.HistoryMinRuns)
	require.Empty(t, h.RejectedFlag)

	// A fifth past run (before the next one): now far off is flagged, both ways.
	run("acme", 12, 1)
	big = run("acme", 100, 9)
	h = history(big)
	require.Equal(t, 6, h.Runs, "the earlier big run counts among the past runs")
	require.InDelta(t, 11.5, h.MedianRows, 0.001, "median of 10, 12, 11, 11, 109, 13")
	require.InDelta(t, 1, h.MedianRejected, 0.001, "median of 0, 2, 1, 1, 9, 1")
	require.Equal(t, "above", h.RowsFlag)
	require.Equal(t, "above", h.RejectedFlag)

	small := run("acme", 2, 1)
	h = history(small)
	require.Equal(t, "below", h.RowsFlag, "3 rows read < 12 / 3")
	require.Empty(t, h.RejectedFlag, "1 rejection, as usual")

	usual := run("acme", 11, 0)
	h = history(usual)
	require.Equal(t, 8, h.Runs)
	require.Empty(t, h.RowsFlag, "11 rows read against a median of 11.5")
	require.Equal(t, "below", h.RejectedFlag, "no rejection against a median of 1: under a third of it")

	// An earlier run's report compares it with the runs before it only, whenever it is rewritten.
	h = history("h01")
	require.Zero(t, h.Runs)
}
