package postgres_test

import (
	"bytes"
	"context"
	"os"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/txflow/txflow/postgres"
	"github.com/txflow/txflow/txn"
)

// TestOutputFilesExactBytes checks both output files byte for byte against
// testdata: two decimals, empty fields, CSV quoting, SafeCell, order, and a
// wording that is an SQL injection attempt stored and exported verbatim.
func TestOutputFilesExactBytes(t *testing.T) {
	db, dbURL := openDB(t)
	ctx := context.Background()

	tooHigh := rec(6, "T4", "2000000", `=HYPERLINK("TUTU")`)
	tooHigh.Error = txn.ReasonAmountTooHigh
	zero := rec(5, "T3", "0", "multi\nline TOTO")
	zero.RawAmount = "0,00"
	recs := []txn.Record{
		rec(2, "T1", "12.5", "TAXI to airport"),
		rec(4, "T2", "-3", `Lunch, "big" one`),
		zero,
		tooHigh,
		rec(7, "T5", "-250.00", "'); DROP TABLE transactions; --"),
		rec(8, "-T6", "301", "TATA and TUTU"),
		rec(9, "T1", "12.50", "TAXI to airport"),
		rec(10, "T7", "1.05", ""),
	}
	rejected := []txn.Rejected{
		{Line: 3, ID: "R1", Amount: "abc", Wording: "@SUM(A1)", Reason: txn.ReasonInvalidAmount, Detail: "not a number"},
		{Line: 11, ID: "R2", Amount: "+5", Wording: "fine", Reason: txn.ReasonFieldTooLong, Detail: "wording too long"},
	}
	c := ingest(t, db, "out", recs, rejected)
	_, err := db.TagChunk(ctx, "out", 1, c.MaxSeq+1, tagWord)
	require.NoError(t, err)
	_, err = db.AnnotateChunk(ctx, "out", 1, c.MaxSeq+1, annotate)
	require.NoError(t, err)

	var out bytes.Buffer
	n, err := db.WriteOutput(ctx, "out", postgres.OutputOptions{}, &out)
	require.NoError(t, err)
	require.Equal(t, int64(7), n)
	want, err := os.ReadFile("testdata/output_transactions.csv")
	require.NoError(t, err)
	require.Equal(t, string(want), out.String())

	var report bytes.Buffer
	n, err = db.WriteErrorReport(ctx, "out", &report)
	require.NoError(t, err)
	require.Equal(t, int64(4), n)
	want, err = os.ReadFile("testdata/error_report.csv")
	require.NoError(t, err)
	require.Equal(t, string(want), report.String())

	require.Equal(t, "'); DROP TABLE transactions; --",
		queryValue[string](t, dbURL, "SELECT wording FROM transactions WHERE id = 'T5'"))
}

func TestWriteOutputOmitsFailedColumns(t *testing.T) {
	db, _ := openDB(t)
	ctx := context.Background()
	c := ingest(t, db, "omit", []txn.Record{rec(2, "O1", "350", "TAXI"), rec(3, "O2", "-5", "TOTO")}, nil)
	_, err := db.TagChunk(ctx, "omit", 1, c.MaxSeq+1, tagWord)
	require.NoError(t, err)
	_, err = db.AnnotateChunk(ctx, "omit", 1, c.MaxSeq+1, annotate)
	require.NoError(t, err)
	for _, tc := range []struct {
		opts postgres.OutputOptions
		want string
	}{
		{postgres.OutputOptions{}, "O1,350.00,TAXI,TAXI,LARGE SALE,\nO2,-5.00,TOTO,TOTO,SMALL EXPENSE,\n"},
		{postgres.OutputOptions{OmitTags: true}, "O1,350.00,TAXI,,LARGE SALE,\nO2,-5.00,TOTO,,SMALL EXPENSE,\n"},
		{postgres.OutputOptions{OmitAnnotations: true}, "O1,350.00,TAXI,TAXI,,\nO2,-5.00,TOTO,TOTO,,\n"},
		{postgres.OutputOptions{OmitTags: true, OmitAnnotations: true}, "O1,350.00,TAXI,,,\nO2,-5.00,TOTO,,,\n"},
	} {
		var out bytes.Buffer
		_, err := db.WriteOutput(ctx, "omit", tc.opts, &out)
		require.NoError(t, err)
		require.Equal(t, "id,amount,wording,tag,annotation,error\n"+tc.want, out.String(), "%+v", tc.opts)
	}
}

func TestWriteOutputEmptyRun(t *testing.T) {
	db, _ := openDB(t)
	ctx := context.Background()
	ingest(t, db, "empty", nil, nil)
	var out bytes.Buffer
	n, err := db.WriteOutput(ctx, "empty", postgres.OutputOptions{}, &out)
	require.NoError(t, err)
	require.Zero(t, n)
	require.Equal(t, "id,amount,wording,tag,annotation,error\n", out.String())
}
