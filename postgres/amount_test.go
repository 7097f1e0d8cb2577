package postgres_test

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/require"

	"github.com/txflow/txflow/internal/testdb"
	"github.com/txflow/txflow/postgres"
	"github.com/txflow/txflow/txn"
)

// checked builds an accepted record and sets its error with the default rules.
func checked(line int64, id, amount, wording string) txn.Record {
	r := rec(line, id, amount, wording)
	r.Error = txn.DefaultRules().Check(r.Amount)
	return r
}

func TestHugeAmountsAreStoredAndExported(t *testing.T) {
	db, dbURL := openDB(t)
	ctx := context.Background()

	long := "9" + strings.Repeat("0", 199) + ".05" // 200 integer digits
	grouped := checked(5, "H4", "-2500000.00", "TOTO grouped")
	grouped.RawAmount = "-2\u00a0500\u00a0000,00"
	recs := []txn.Record{
		rec(2, "H1", "12.50", "TAXI small"),
		checked(3, "H2", "100000000000000000", "TATA huge"),
		checked(4, "H3", "-99999999999999999.99", "TUTU huge negative"),
		grouped,
		checked(6, "H5", long, "long"),
	}
	for _, r := range recs[1:] {
		require.Equal(t, txn.ReasonAmountTooHigh, r.Error, r.RawAmount)
	}
	c := ingest(t, db, "big", recs, nil)
	require.Equal(t, postgres.IngestCounts{Accepted: 5, New: 5, Errors: 4, MaxSeq: 5}, c)
	require.Equal(t, "100000000000000000.00",
		queryValue[string](t, dbURL, "SELECT round(amount, 2)::text FROM transactions WHERE id = 'H2'"))
	require.True(t, queryValue[bool](t, dbURL, "SELECT amount = $1::numeric FROM run_lines WHERE id = 'H5'", long))

	_, err := db.TagChunk(ctx, "big", 1, c.MaxSeq+1, tagWord)
	require.NoError(t, err)
	anns, err := db.AnnotateChunk(ctx, "big", 1, c.MaxSeq+1, annotate)
	require.NoError(t, err)
	require.Equal(t, postgres.ChunkCounts{Lines: 5, Computed: 1}, anns, "lines in error are not annotated")

	var out bytes.Buffer
	counts, err := db.WriteOutput(ctx, "big", postgres.OutputOptions{}, &out)
	require.NoError(t, err)
	require.Equal(t, postgres.OutputCounts{Rows: 5, Tagged: 4, Annotated: 1}, counts)
	require.Equal(t, "id,amount,wording,tag,annotation,error\n"+
		"H1,12.50,TAXI small,TAXI,SALE,\n"+
		"H2,100000000000000000.00,TATA huge,TATA,,amount_too_high\n"+
		"H3,-99999999999999999.99,TUTU huge negative,TUTU,,amount_too_high\n"+
		"H4,-2500000.00,TOTO grouped,TOTO,,amount_too_high\n"+
		"H5,"+long+",long,,,amount_too_high\n", out.String())

	var report bytes.Buffer
	n, err := db.WriteErrorReport(ctx, "big", &report)
	require.NoError(t, err)
	require.Equal(t, int64(4), n)
	require.Equal(t, "line,id,amount,wording,reason\n"+
		"3,H2,100000000000000000,TATA huge,amount_too_high\n"+
		"4,H3,-99999999999999999.99,TUTU huge negative,amount_too_high\n"+
		"5,H4,\"-2\u00a0500\u00a0000,00\",TOTO grouped,amount_too_high\n"+
		"6,H5,"+long+",long,amount_too_high\n", report.String())

	// The same huge amount again is the same transaction; another one is a
	// conflict whose detail names the stored amount with two decimals.
	c2 := ingest(t, db, "big2", []txn.Record{
		checked(2, "H2", "100000000000000000.00", "TATA huge"),
		checked(3, "H3", "-99999999999999999.98", "TUTU huge negative"),
	}, nil)
	require.Equal(t, postgres.IngestCounts{Accepted: 1, Rejected: 1, Conflicts: 1, Errors: 1, MaxSeq: 1}, c2)
	require.Equal(t, "id already stored with amount -99999999999999999.99 and wording 'TUTU huge negative'",
		queryValue[string](t, dbURL, "SELECT detail FROM rejected_rows WHERE run_id = 'big2' AND id = 'H3'"))
}

// With the amount limit raised, an amount too large for cents in a bigint is
// annotated like any other.
func TestAnnotateChunkHugeAmountWithoutError(t *testing.T) {
	db, _ := openDB(t)
	ctx := context.Background()
	c := ingest(t, db, "nolimit", []txn.Record{
		rec(2, "N1", "100000000000000000", "x"),
		rec(3, "N2", "-99999999999999999.99", "y"),
		rec(4, "N3", "99999999999999999.99", "z"),
	}, nil)
	got := map[string]bool{}
	anns, err := db.AnnotateChunk(ctx, "nolimit", 1, c.MaxSeq+1, func(a decimal.Decimal) string {
		got[a.StringFixed(2)] = true
		return annotate(a)
	})
	require.NoError(t, err)
	require.Equal(t, postgres.ChunkCounts{Lines: 3, Computed: 3}, anns)
	require.Equal(t, map[string]bool{"100000000000000000.00": true, "-99999999999999999.99": true, "99999999999999999.99": true}, got)
	var out bytes.Buffer
	_, err = db.WriteOutput(ctx, "nolimit", postgres.OutputOptions{OmitTags: true}, &out)
	require.NoError(t, err)
	require.Equal(t, "id,amount,wording,tag,annotation,error\n"+
		"N1,100000000000000000.00,x,,LARGE SALE,\n"+
		"N2,-99999999999999999.99,y,,EXPENSE,\n"+
		"N3,99999999999999999.99,z,,LARGE SALE,\n", out.String())
}

func TestMigrationKeepsDataOfThePreviousSchema(t *testing.T) {
	dbURL := testdb.URL(t)
	ctx := context.Background()
	migrateUpTo(t, dbURL, 2)

	const (
		nfc  = "caf\u00e9-1" // café-1, composed
		nfd  = "cafe\u0301-1"
		nfd2 = "ide\u0301" // only in NFD: moves to its NFC key
	)
	conn, err := pgx.Connect(ctx, dbURL)
	require.NoError(t, err)
	defer conn.Close(ctx)
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{"INSERT INTO runs (run_id, file, sha256, ingested_at, rows_read, new_count) VALUES ('old', 'old.csv', 'ab', now(), 4, 4)", nil},
		{`INSERT INTO transactions (id, amount, wording, first_run_id) VALUES
			('A', 12.5, 'TAXI', 'old'), ('B', -9999999999999999.99, 'TOTO', 'old'),
			($1, 1, 'TATA', 'old'), ($2, 2, 'TUTU', 'old'), ($3, 3, 'x', 'old')`, []any{nfc, nfd, nfd2}},
		{`INSERT INTO run_lines (run_id, seq, line, id, amount, raw_amount, wording, error) VALUES
			('old', 1, 2, 'A', 12.5, '12.5', 'TAXI', NULL),
			('old', 2, 3, 'B', -9999999999999999.99, '-9999999999999999.99', 'TOTO', 'amount_too_high'),
			('old', 3, 4, $1, 3, '3', 'x', NULL)`, []any{nfd2}},
		{"INSERT INTO tags (transaction_id, tag, run_id) VALUES ('A', 'TAXI', 'old'), ($1, NULL, 'old'), ($2, 'TUTU', 'old')", []any{nfd2, nfd}},
		{"INSERT INTO annotations (transaction_id, annotation, run_id) VALUES ('A', 'SALE', 'old'), ($1, 'SALE', 'old')", []any{nfd2}},
	} {
		_, err = conn.Exec(ctx, q.sql, q.args...)
		require.NoError(t, err, q.sql)
	}
	// The old type rounds to two decimals and refuses 17 integer digits.
	_, err = conn.Exec(ctx, "INSERT INTO transactions (id, amount, wording, first_run_id) VALUES ('X', 1e16, 'x', 'old')")
	require.ErrorContains(t, err, "numeric field overflow")

	db, err := postgres.Open(ctx, dbURL)
	require.NoError(t, err)
	defer db.Close()
	require.NoError(t, db.Migrate(ctx))

	for _, table := range []string{"transactions", "run_lines"} {
		require.Equal(t, "numeric", queryValue[string](t, dbURL, `
			SELECT format_type(atttypid, atttypmod) FROM pg_attribute
			WHERE attrelid = $1::regclass AND attname = 'amount'`, table), table)
	}
	rows, err := conn.Query(ctx, "SELECT id, coalesce(id_as_read, ''), amount::text, wording FROM transactions ORDER BY id")
	require.NoError(t, err)
	got, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) ([4]string, error) {
		var v [4]string
		return v, r.Scan(&v[0], &v[1], &v[2], &v[3])
	})
	require.NoError(t, err)
	require.ElementsMatch(t, [][4]string{
		{"A", "", "12.50", "TAXI"},
		{"B", "", "-9999999999999999.99", "TOTO"},
		{nfc, "", "1.00", "TATA"},
		{nfd, "", "2.00", "TUTU"}, // its NFC key was taken: left as it was
		{"id\u00e9", nfd2, "3.00", "x"},
	}, got)
	require.Equal(t, "id\u00e9", queryValue[string](t, dbURL, "SELECT id FROM run_lines WHERE seq = 3"), "the key")
	require.Equal(t, nfd2, queryValue[string](t, dbURL, "SELECT id_as_read FROM run_lines WHERE seq = 3"), "as read")
	require.Equal(t, int64(2), queryValue[int64](t, dbURL, "SELECT count(*) FROM run_lines WHERE id_as_read IS NULL"))
	require.Equal(t, int64(1), queryValue[int64](t, dbURL, "SELECT count(*) FROM tags g JOIN transactions t ON t.key = g.txn_key WHERE t.id = 'id\u00e9' AND g.tag IS NULL"))
	require.Equal(t, int64(1), queryValue[int64](t, dbURL, "SELECT count(*) FROM annotations a JOIN transactions t ON t.key = a.txn_key WHERE t.id = 'id\u00e9'"))
	require.Equal(t, int64(1), queryValue[int64](t, dbURL, "SELECT count(*) FROM tags g JOIN transactions t ON t.key = g.txn_key WHERE t.id = $1", nfd))

	// The old run still exports the same, with the results of its lines.
	var out bytes.Buffer
	_, err = db.WriteOutput(ctx, "old", postgres.OutputOptions{}, &out)
	require.NoError(t, err)
	require.Equal(t, "id,amount,wording,tag,annotation,error\n"+
		"A,12.50,TAXI,TAXI,SALE,\n"+
		"B,-9999999999999999.99,TOTO,,,amount_too_high\n"+
		nfd2+",3.00,x,,SALE,\n", out.String())
	counts, err := db.RunCounts(ctx, "old")
	require.NoError(t, err)
	require.Equal(t, postgres.RunCounts{Accepted: 3, Errors: 1, Tagged: 1, Annotated: 2}, counts)

	// New data: a huge amount fits now, and the migrated transactions are
	// found again under either form of their id.
	c := ingest(t, db, "new", []txn.Record{
		checked(2, "X", "10000000000000000", "x"),
		rec(3, "id\u00e9", "3.00", "x"),
		rec(4, nfd, "1.00", "TATA"),
	}, nil)
	require.Equal(t, postgres.IngestCounts{Accepted: 3, New: 1, Errors: 1, MaxSeq: 3}, c)
	require.Equal(t, "10000000000000000.00", queryValue[string](t, dbURL, "SELECT round(amount, 2)::text FROM transactions WHERE id = 'X'"))
}
