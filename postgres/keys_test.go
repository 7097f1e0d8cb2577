package postgres_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/txflow/txflow/internal/testdb"
	"github.com/txflow/txflow/postgres"
	"github.com/txflow/txflow/txn"
)

// A line is stored under the NFC form of its id, the column every statement joins on, with the id
// as read beside it only when it differs; amounts are stored with two decimals.
func TestLinesStoredUnderTheirKeyWithTwoDecimals(t *testing.T) {
	db, dbURL := openDB(t)
	ctx := context.Background()
	const nfd = "cafe\u0301"
	c := ingest(t, db, "keys", []txn.Record{
		rec(2, nfd, "12.5", "TAXI"),
		rec(3, "A", "3", "x"),
		rec(4, "B", "-1.25", "y"),
		checked(5, "C", "10000000000000000", "big"),
	}, nil)
	require.Equal(t, postgres.IngestCounts{Accepted: 4, New: 4, Errors: 1, MaxSeq: 4}, c)

	conn, err := pgx.Connect(ctx, dbURL)
	require.NoError(t, err)
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, "SELECT id, coalesce(id_as_read, '-'), amount::text, scale(amount) FROM run_lines ORDER BY seq")
	require.NoError(t, err)
	got, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) ([4]string, error) {
		var v [3]string
		var scale int
		err := r.Scan(&v[0], &v[1], &v[2], &scale)
		return [4]string{v[0], v[1], v[2], map[bool]string{true: "2", false: "not 2"}[scale == 2]}, err
	})
	require.NoError(t, err)
	require.Equal(t, [][4]string{
		{"caf\u00e9", nfd, "12.50", "2"},
		{"A", "-", "3.00", "2"},
		{"B", "-", "-1.25", "2"},
		{"C", "-", "10000000000000000.00", "2"},
	}, got)
	require.Equal(t, "12.50", queryValue[string](t, dbURL, "SELECT amount::text FROM transactions WHERE id = 'caf\u00e9'"))
	require.Equal(t, nfd, queryValue[string](t, dbURL, "SELECT id_as_read FROM transactions WHERE id = 'caf\u00e9'"))

	out, rep := process(t, db, "keys", c.MaxSeq)
	require.Equal(t, "id,amount,wording,tag,annotation,error\n"+
		nfd+",12.50,TAXI,TAXI,SALE,\n"+
		"A,3.00,x,,SALE,\n"+
		"B,-1.25,y,,SMALL EXPENSE,\n"+
		"C,10000000000000000.00,big,,,amount_too_high\n", out)
	require.Equal(t, "line,id,amount,wording,reason\n"+
		"5,C,10000000000000000,big,amount_too_high\n", rep)
}

// Rows stored before run_lines.id became the key move to it, and their amounts get two decimals.
func TestMigrationMovesLinesToTheirKeyAndScalesAmounts(t *testing.T) {
	dbURL := testdb.URL(t)
	ctx := context.Background()
	migrateUpTo(t, dbURL, 4)

	conn, err := pgx.Connect(ctx, dbURL)
	require.NoError(t, err)
	defer conn.Close(ctx)
	const nfc, nfd = "caf\u00e9", "cafe\u0301"
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{`INSERT INTO runs (run_id, file, sha256, account, ingested_at, rows_read, new_count)
			VALUES ('old', 'old.csv', 'ab', 'default', now(), 3, 3)`, nil},
		{`INSERT INTO transactions (account, id, id_as_read, amount, wording, first_run_id) VALUES
			('default', 'A', NULL, 12.5, 'TAXI', 'old'), ('default', $1, $2, -300, 'rent', 'old'),
			('default', 'B', NULL, 1.25, 'x', 'old')`, []any{nfc, nfd}},
		{`INSERT INTO run_lines (run_id, seq, line, account, id, id_nfc, amount, raw_amount, wording, error) VALUES
			('old', 1, 2, 'default', 'A', NULL, 12.5, '12.5', 'TAXI', NULL),
			('old', 2, 3, 'default', $2, $1, -300, '-300', 'rent', NULL),
			('old', 3, 4, 'default', 'B', NULL, 1.25, '1.25', 'x', NULL)`, []any{nfc, nfd}},
		{"INSERT INTO tags (account, transaction_id, tag, run_id) VALUES ('default', 'A', 'TAXI', 'old'), ('default', $1, 'RENT', 'old')", []any{nfc}},
	} {
		_, err = conn.Exec(ctx, q.sql, q.args...)
		require.NoError(t, err, q.sql)
	}

	db, err := postgres.Open(ctx, dbURL)
	require.NoError(t, err)
	defer db.Close()
	require.NoError(t, db.Migrate(ctx))

	require.Equal(t, nfc, queryValue[string](t, dbURL, "SELECT id FROM run_lines WHERE seq = 2"))
	require.Equal(t, nfd, queryValue[string](t, dbURL, "SELECT id_as_read FROM run_lines WHERE seq = 2"))
	require.Equal(t, int64(2), queryValue[int64](t, dbURL, "SELECT count(*) FROM run_lines WHERE id_as_read IS NULL"))
	require.Equal(t, int64(0), queryValue[int64](t, dbURL, "SELECT count(*) FROM pg_attribute WHERE attrelid = 'run_lines'::regclass AND attname = 'id_nfc' AND NOT attisdropped"))
	for _, table := range []string{"run_lines", "transactions"} {
		require.Equal(t, int64(0), queryValue[int64](t, dbURL, "SELECT count(*) FROM "+table+" WHERE scale(amount) <> 2"), table)
	}
	require.Equal(t, "12.50", queryValue[string](t, dbURL, "SELECT amount::text FROM transactions WHERE id = 'A'"))

	var out bytes.Buffer
	_, err = db.WriteOutput(ctx, "old", postgres.OutputOptions{}, &out)
	require.NoError(t, err)
	require.Equal(t, "id,amount,wording,tag,annotation,error\n"+
		"A,12.50,TAXI,TAXI,,\n"+
		nfd+",-300.00,rent,RENT,,\n"+
		"B,1.25,x,,,\n", out.String())
	counts, err := db.RunCounts(ctx, "old")
	require.NoError(t, err)
	require.Equal(t, postgres.RunCounts{Accepted: 3, Tagged: 2}, counts)

	// A new run finds the migrated transaction under either form of its id.
	c := ingest(t, db, "new", []txn.Record{rec(2, nfd, "-300", "rent"), rec(3, nfc, "-300.00", "rent")}, nil)
	require.Equal(t, postgres.IngestCounts{Accepted: 1, Rejected: 1, Duplicates: 1, MaxSeq: 1}, c)
}
