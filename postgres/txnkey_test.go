package postgres_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/txflow/txflow/internal/testdb"
	"github.com/txflow/txflow/postgres"
	"github.com/txflow/txflow/txn"
)

func ptr[T any](v T) *T { return &v }

// dated sets the date of a record.
func dated(date string, r txn.Record) txn.Record {
	d, err := time.Parse(time.DateOnly, date)
	if err != nil {
		panic(err)
	}
	r.Date = d
	return r
}

// A line whose transaction was stored by another run takes that transaction's key: its results are
// found, and none is computed twice.
func TestLinesOfStoredTransactionsShareTheirResults(t *testing.T) {
	db, dbURL := openDB(t)
	ctx := context.Background()
	c := ingest(t, db, "first", []txn.Record{rec(2, "X", "10.00", "TAXI ride"), rec(3, "Y", "-250.00", "rent TATA")}, nil)
	out, _ := process(t, db, "first", c.MaxSeq)
	require.Equal(t, "id,amount,wording,tag,annotation,error\nX,10.00,TAXI ride,TAXI,SALE,\nY,-250.00,rent TATA,TATA,EXPENSE,\n", out)

	c = ingest(t, db, "second", []txn.Record{rec(2, "W", "1.00", "TUTU"), rec(3, "Y", "-250.00", "rent TATA"), rec(4, "X", "10.00", "TAXI ride")}, nil)
	require.Equal(t, postgres.IngestCounts{Accepted: 3, New: 1, MaxSeq: 3}, c)
	require.Equal(t, int64(2), queryValue[int64](t, dbURL, `SELECT count(*) FROM run_lines a JOIN run_lines b ON a.txn_key = b.txn_key
		WHERE a.run_id = 'first' AND b.run_id = 'second'`), "the lines of X and Y in both runs share their transaction's key")
	tagged, err := db.TagChunk(ctx, "second", 1, 4, tagWord)
	require.NoError(t, err)
	require.Equal(t, postgres.ChunkCounts{Lines: 3, Computed: 1}, tagged, "only W is new")
	annotated, err := db.AnnotateChunk(ctx, "second", 1, 4, annotate)
	require.NoError(t, err)
	require.Equal(t, postgres.ChunkCounts{Lines: 3, Computed: 1}, annotated)
	var buf bytes.Buffer
	_, err = db.WriteOutput(ctx, "second", postgres.OutputOptions{}, &buf)
	require.NoError(t, err)
	require.Equal(t, "id,amount,wording,tag,annotation,error\nW,1.00,TUTU,TUTU,SALE,\nY,-250.00,rent TATA,TATA,EXPENSE,\nX,10.00,TAXI ride,TAXI,SALE,\n", buf.String())
	require.Equal(t, int64(3), queryValue[int64](t, dbURL, "SELECT count(*) FROM tags"))
	require.Equal(t, int64(3), queryValue[int64](t, dbURL, "SELECT count(DISTINCT key) FROM transactions"))
}

// An ingestion started over, with other lines at the same seqs (the reader of a newer version reads
// the file differently), never gives a new transaction the key of one stored by the ingestion
// before: each start draws a new run number.
func TestIngestionStartedOverGivesFreshKeys(t *testing.T) {
	db, dbURL := openDB(t)
	c := ingest(t, db, "r", []txn.Record{rec(2, "X", "10.00", "TAXI"), rec(3, "Y", "20.00", "TOTO")}, nil)
	process(t, db, "r", c.MaxSeq)
	c = ingest(t, db, "r", []txn.Record{rec(2, "Z", "-500.00", "TUTU"), rec(3, "X", "10.00", "TAXI")}, nil)
	require.Equal(t, postgres.IngestCounts{Accepted: 2, New: 1, MaxSeq: 2}, c)
	out, _ := process(t, db, "r", c.MaxSeq)
	require.Equal(t, "id,amount,wording,tag,annotation,error\nZ,-500.00,TUTU,TUTU,EXPENSE,\nX,10.00,TAXI,TAXI,SALE,\n", out)
	require.Equal(t, int64(3), queryValue[int64](t, dbURL, "SELECT count(DISTINCT key) FROM transactions"))
	require.Equal(t, "X:TAXI,Y:TOTO,Z:TUTU", queryValue[string](t, dbURL,
		"SELECT string_agg(t.id || ':' || g.tag, ',' ORDER BY t.id) FROM tags g JOIN transactions t ON t.key = g.txn_key"))
}

// A file with a date column gets a date column after the id in its output (after the account too);
// any other file keeps today's columns. The counts of tags and annotations follow the columns.
func TestOutputHasADateColumnWhenTheFileHadOne(t *testing.T) {
	db, dbURL := openDB(t)
	ctx := context.Background()
	c := ingestAccount(t, db, accountRun{id: "d", account: "acme", dated: true, recs: []txn.Record{
		dated("2026-01-31", rec(2, "A", "10.00", "TAXI")), rec(3, "B", "-3.00", "lunch, TOTO"),
	}})
	out, _ := process(t, db, "d", c.MaxSeq)
	require.Equal(t, "id,date,amount,wording,tag,annotation,error\nA,2026-01-31,10.00,TAXI,TAXI,SALE,\nB,,-3.00,\"lunch, TOTO\",TOTO,SMALL EXPENSE,\n", out)
	require.Equal(t, "2026-01-31", queryValue[string](t, dbURL, "SELECT date::text FROM transactions WHERE id = 'A'"))

	c = ingestAccount(t, db, accountRun{id: "ad", account: "acme", dated: true, accountColumn: true, recs: []txn.Record{
		inAccount("globex", dated("2025-12-01", rec(2, "A", "-1.00", "x"))),
	}})
	out, _ = process(t, db, "ad", c.MaxSeq)
	require.Equal(t, "account,id,date,amount,wording,tag,annotation,error\nglobex,A,2025-12-01,-1.00,x,,SMALL EXPENSE,\n", out)
	var buf bytes.Buffer
	counts, err := db.WriteOutput(ctx, "d", postgres.OutputOptions{}, &buf)
	require.NoError(t, err)
	require.Equal(t, postgres.OutputCounts{Rows: 2, Tagged: 2, Annotated: 2}, counts)
}

// An account's export has a date column when any of its transactions has a date, and can be
// limited to a range of dates (both ends included); a transaction without a date is then left out.
func TestExportAccountByDate(t *testing.T) {
	db, _ := openDB(t)
	ctx := context.Background()
	c := ingestAccount(t, db, accountRun{id: "e", account: "acme", dated: true, recs: []txn.Record{
		dated("2026-01-01", rec(2, "A", "1.00", "a")), dated("2026-01-15", rec(3, "B", "2.00", "b")),
		dated("2026-01-31", rec(4, "C", "3.00", "c")), rec(5, "D", "4.00", "d"),
	}})
	process(t, db, "e", c.MaxSeq)
	day := func(s string) *time.Time { d, _ := time.Parse(time.DateOnly, s); return &d }
	for _, tc := range []struct {
		from, to *time.Time
		want     string
	}{
		{nil, nil, "A,2026-01-01\nB,2026-01-15\nC,2026-01-31\nD,\n"},
		{day("2026-01-15"), nil, "B,2026-01-15\nC,2026-01-31\n"},
		{nil, day("2026-01-15"), "A,2026-01-01\nB,2026-01-15\n"},
		{day("2026-01-02"), day("2026-01-30"), "B,2026-01-15\n"},
		{day("2026-02-01"), nil, ""},
	} {
		var buf bytes.Buffer
		_, err := db.ExportAccount(ctx, "acme", tc.from, tc.to, &buf)
		require.NoError(t, err)
		lines := bytes.Split(buf.Bytes(), []byte("\n"))
		require.Equal(t, "id,date,amount,wording,tag,annotation,error", string(lines[0]))
		var got string
		for _, l := range lines[1:] {
			if len(l) > 0 {
				f := bytes.SplitN(l, []byte(","), 3)
				got += string(f[0]) + "," + string(f[1]) + "\n"
			}
		}
		require.Equal(t, tc.want, got, "from %v to %v", tc.from, tc.to)
	}
}

// Migration 006 keys the transactions, lines and results stored before it, and a run that was
// still loading when the database was upgraded settles and computes its results as any other.
func TestMigrationKeysStoredRowsAndALoadingRunGoesOn(t *testing.T) {
	dbURL := testdb.URL(t)
	ctx := context.Background()
	migrateUpTo(t, dbURL, 5)
	conn, err := pgx.Connect(ctx, dbURL)
	require.NoError(t, err)
	defer conn.Close(ctx)
	for _, q := range []string{
		`INSERT INTO runs (run_id, file, sha256, account, ingested_at, rows_read, new_count, all_new)
			VALUES ('old', 'old.csv', 'ab', 'default', now(), 2, 2, true)`,
		`INSERT INTO transactions (account, id, amount, wording, first_run_id) VALUES
			('default', 'A', 12.50, 'TAXI', 'old'), ('default', 'B', -300.00, 'rent', 'old')`,
		`INSERT INTO run_lines (run_id, seq, line, account, id, amount, raw_amount, wording) VALUES
			('old', 1, 2, 'default', 'A', 12.50, '12.5', 'TAXI'), ('old', 2, 3, 'default', 'B', -300.00, '-300', 'rent')`,
		`INSERT INTO tags (account, transaction_id, tag, run_id) VALUES ('default', 'A', 'TAXI', 'old'), ('default', 'B', NULL, 'old')`,
		`INSERT INTO annotations (account, transaction_id, annotation, run_id) VALUES ('default', 'A', 'SALE', 'old'), ('default', 'B', 'EXPENSE', 'old')`,
		// A run half loaded: one batch in, its next batch still to come.
		`INSERT INTO runs (run_id, file, sha256, account, records_loaded, next_seq) VALUES ('loading', 'l.csv', 'cd', 'default', 2, 3)`,
		`INSERT INTO run_lines (run_id, seq, line, account, id, amount, raw_amount, wording) VALUES
			('loading', 1, 2, 'default', 'A', 12.50, '12.5', 'TAXI'), ('loading', 2, 3, 'default', 'N', 500.00, '500', 'TOTO')`,
	} {
		_, err := conn.Exec(ctx, q)
		require.NoError(t, err, q)
	}
	db, err := postgres.Open(ctx, dbURL)
	require.NoError(t, err)
	defer db.Close()
	require.NoError(t, db.Migrate(ctx))

	require.Equal(t, int64(0), queryValue[int64](t, dbURL, "SELECT count(*) FROM transactions WHERE key >= 0"), "stored transactions get negative keys")
	var out bytes.Buffer
	_, err = db.WriteOutput(ctx, "old", postgres.OutputOptions{}, &out)
	require.NoError(t, err)
	require.Equal(t, "id,amount,wording,tag,annotation,error\nA,12.50,TAXI,TAXI,SALE,\nB,-300.00,rent,,EXPENSE,\n", out.String())

	require.NoError(t, db.LoadBatch(ctx, "loading", 3, []txn.Record{rec(4, "M", "-5.00", "TUTU")}, nil))
	c, err := db.FinishIngest(ctx, "loading", 3)
	require.NoError(t, err)
	require.Equal(t, postgres.IngestCounts{Accepted: 3, New: 2, MaxSeq: 3}, c)
	got, _ := process(t, db, "loading", c.MaxSeq)
	require.Equal(t, "id,amount,wording,tag,annotation,error\nA,12.50,TAXI,TAXI,SALE,\nN,500.00,TOTO,TOTO,LARGE SALE,\nM,-5.00,TUTU,TUTU,SMALL EXPENSE,\n", got)
	require.Equal(t, int64(4), queryValue[int64](t, dbURL, "SELECT count(DISTINCT key) FROM transactions"))
	require.Equal(t, int64(4), queryValue[int64](t, dbURL, "SELECT count(*) FROM tags"))
}

// LoadBatch refuses lines beyond the 2^32-1 a run's keys can number.
func TestLoadBatchRefusesASeqBeyondTheKeyRange(t *testing.T) {
	db, dbURL := openDB(t)
	ctx := context.Background()
	mustBegin(t, db, postgres.Run{ID: "big", File: "big.csv", SHA256: "00"})
	conn, err := pgx.Connect(ctx, dbURL)
	require.NoError(t, err)
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "UPDATE runs SET next_seq = 4294967295 WHERE run_id = 'big'")
	require.NoError(t, err)
	require.NoError(t, db.LoadBatch(ctx, "big", 4294967295, []txn.Record{rec(2, "A", "1", "a")}, nil))
	err = db.LoadBatch(ctx, "big", 4294967296, []txn.Record{rec(3, "B", "1", "b")}, nil)
	require.ErrorContains(t, err, "at most 4294967295 lines")
}
