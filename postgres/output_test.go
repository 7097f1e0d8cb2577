package postgres_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
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
	counts, err := db.WriteOutput(ctx, "out", postgres.OutputOptions{}, &out)
	require.NoError(t, err)
	require.Equal(t, postgres.OutputCounts{Rows: 7, Tagged: 3, Annotated: 5}, counts,
		"a quoted wording holding commas, quotes and a line break does not shift the columns")
	want, err := os.ReadFile("testdata/output_transactions.csv")
	require.NoError(t, err)
	require.Equal(t, string(want), out.String())

	var report bytes.Buffer
	n, err := db.WriteErrorReport(ctx, "out", &report)
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
		opts   postgres.OutputOptions
		want   string
		counts postgres.OutputCounts
	}{
		{postgres.OutputOptions{}, "O1,350.00,TAXI,TAXI,LARGE SALE,\nO2,-5.00,TOTO,TOTO,SMALL EXPENSE,\n",
			postgres.OutputCounts{Rows: 2, Tagged: 2, Annotated: 2}},
		{postgres.OutputOptions{OmitTags: true}, "O1,350.00,TAXI,,LARGE SALE,\nO2,-5.00,TOTO,,SMALL EXPENSE,\n",
			postgres.OutputCounts{Rows: 2, Annotated: 2}},
		{postgres.OutputOptions{OmitAnnotations: true}, "O1,350.00,TAXI,TAXI,,\nO2,-5.00,TOTO,TOTO,,\n",
			postgres.OutputCounts{Rows: 2, Tagged: 2}},
		{postgres.OutputOptions{OmitTags: true, OmitAnnotations: true}, "O1,350.00,TAXI,,,\nO2,-5.00,TOTO,,,\n",
			postgres.OutputCounts{Rows: 2}},
	} {
		var out bytes.Buffer
		counts, err := db.WriteOutput(ctx, "omit", tc.opts, &out)
		require.NoError(t, err)
		require.Equal(t, "id,amount,wording,tag,annotation,error\n"+tc.want, out.String(), "%+v", tc.opts)
		require.Equal(t, tc.counts, counts, "%+v", tc.opts)
	}
}

func TestWriteOutputEmptyRun(t *testing.T) {
	db, _ := openDB(t)
	ctx := context.Background()
	ingest(t, db, "empty", nil, nil)
	var out bytes.Buffer
	counts, err := db.WriteOutput(ctx, "empty", postgres.OutputOptions{}, &out)
	require.NoError(t, err)
	require.Zero(t, counts)
	require.Equal(t, "id,amount,wording,tag,annotation,error\n", out.String())
}

// TestSafeCellSQLMatchesTxnOnSharedTable runs txflow_safe_cell over the table
// of txn's SafeCell test: the SQL function must return exactly what
// txn.SafeCell returns.
func TestSafeCellSQLMatchesTxnOnSharedTable(t *testing.T) {
	_, dbURL := openDB(t)
	ctx := context.Background()
	data, err := os.ReadFile("../txn/testdata/safe_cell.json")
	require.NoError(t, err)
	var cases []struct{ In, Want string }
	require.NoError(t, json.Unmarshal(data, &cases))
	require.Greater(t, len(cases), 40)
	conn, err := pgx.Connect(ctx, dbURL)
	require.NoError(t, err)
	defer conn.Close(ctx)
	for _, tc := range cases {
		var got string
		require.NoError(t, conn.QueryRow(ctx, "SELECT txflow_safe_cell($1)", tc.In).Scan(&got))
		require.Equal(t, txn.SafeCell(tc.In), got, "input %q", tc.In)
		require.Equal(t, tc.Want, got, "input %q", tc.In)
	}
	require.True(t, queryValue[bool](t, dbURL, "SELECT txflow_safe_cell(NULL) IS NULL"))

	// The function stays inlinable: the plan shows its body, not a call.
	rows, err := conn.Query(ctx, "EXPLAIN (VERBOSE) SELECT txflow_safe_cell(x) FROM (VALUES ('-1'), ('a')) v(x)")
	require.NoError(t, err)
	plan, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.NotContains(t, strings.Join(plan, "\n"), "txflow_safe_cell")
	require.Contains(t, strings.Join(plan, "\n"), "CASE")
}

// TestErrorReportLeavesPlainNumbersAlone: raw amounts that are plain numbers
// are written as read, formulas get an apostrophe.
func TestErrorReportLeavesPlainNumbersAlone(t *testing.T) {
	db, _ := openDB(t)
	ctx := context.Background()
	rejected := []txn.Rejected{
		{Line: 2, ID: "P1", Amount: "-1\u202f234,567", Wording: "w", Reason: txn.ReasonInvalidAmount, Detail: "d"},
		{Line: 3, ID: "P2", Amount: "+3500,00", Wording: "w", Reason: txn.ReasonInvalidAmount, Detail: "d"},
		{Line: 4, ID: "P3", Amount: "-2+3", Wording: "-12.50", Reason: txn.ReasonInvalidAmount, Detail: "d"},
		{Line: 5, ID: "P4", Amount: "-cmd|' /C calc'!A0", Wording: "w", Reason: txn.ReasonInvalidAmount, Detail: "d"},
	}
	ingest(t, db, "plain", nil, rejected)
	var report bytes.Buffer
	_, err := db.WriteErrorReport(ctx, "plain", &report)
	require.NoError(t, err)
	require.Equal(t, "line,id,amount,wording,reason\n"+
		"2,P1,\"-1\u202f234,567\",w,invalid_amount\n"+
		"3,P2,\"+3500,00\",w,invalid_amount\n"+
		"4,P3,'-2+3,-12.50,invalid_amount\n"+
		"5,P4,'-cmd|' /C calc'!A0,w,invalid_amount\n", report.String())
}
