package postgres_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/txflow/txflow/internal/testdb"
	"github.com/txflow/txflow/postgres"
	"github.com/txflow/txflow/txn"
)

// accountRun describes one run of the account tests.
type accountRun struct {
	id            string
	account       string // the run's account
	accountColumn bool   // the file had an account column
	dated         bool   // the file had a date column
	recs          []txn.Record
	rejected      []txn.Rejected
}

// ingestAccount runs BeginIngest, one LoadBatch and FinishIngestFile for r.
func ingestAccount(t *testing.T, db *postgres.DB, r accountRun) postgres.IngestCounts {
	t.Helper()
	ctx := context.Background()
	_, err := db.BeginIngest(ctx, postgres.Run{ID: r.id, File: r.id + ".csv", SHA256: "00", Account: r.account}, false)
	require.NoError(t, err)
	require.NoError(t, db.LoadBatch(ctx, r.id, 1, r.recs, r.rejected))
	c, err := db.FinishIngestFile(ctx, r.id, postgres.FileFacts{RowsRead: int64(len(r.recs) + len(r.rejected)),
		AccountColumn: r.accountColumn, DateColumn: r.dated})
	require.NoError(t, err)
	return c
}

// process tags and annotates a settled run and returns its two output files.
func process(t *testing.T, db *postgres.DB, runID string, maxSeq int64) (output, report string) {
	t.Helper()
	ctx := context.Background()
	_, err := db.TagChunk(ctx, runID, 1, maxSeq+1, tagWord)
	require.NoError(t, err)
	_, err = db.AnnotateChunk(ctx, runID, 1, maxSeq+1, annotate)
	require.NoError(t, err)
	var out, rep bytes.Buffer
	_, err = db.WriteOutput(ctx, runID, postgres.OutputOptions{}, &out)
	require.NoError(t, err)
	_, err = db.WriteErrorReport(ctx, runID, &rep)
	require.NoError(t, err)
	return out.String(), rep.String()
}

// inAccount sets the account of records read from a file with an account column.
func inAccount(account string, r txn.Record) txn.Record {
	r.Account = account
	return r
}

func TestSameIDsInTwoAccountsSequential(t *testing.T) {
	db, dbURL := openDB(t)
	acme := accountRun{id: "acme-1", account: "acme", recs: []txn.Record{
		rec(2, "1", "10.00", "coffee TAXI"), rec(3, "2", "-3.00", "lunch"), rec(4, "3", "400.00", "TOTO sale"),
	}}
	globex := accountRun{id: "globex-1", account: "globex", recs: []txn.Record{
		rec(2, "1", "-250.00", "rent TATA"), rec(3, "2", "5.00", "refund"), rec(4, "3", "400.00", "TOTO sale"),
	}}
	for _, r := range []accountRun{acme, globex} {
		c := ingestAccount(t, db, r)
		require.Equal(t, postgres.IngestCounts{Accepted: 3, New: 3, MaxSeq: 3}, c, r.id)
	}
	out, rep := process(t, db, "acme-1", 3)
	require.Equal(t, "id,amount,wording,tag,annotation,error\n"+
		"1,10.00,coffee TAXI,TAXI,SALE,\n"+
		"2,-3.00,lunch,,SMALL EXPENSE,\n"+
		"3,400.00,TOTO sale,TOTO,LARGE SALE,\n", out)
	require.Equal(t, "line,id,amount,wording,reason\n", rep)
	out, _ = process(t, db, "globex-1", 3)
	require.Equal(t, "id,amount,wording,tag,annotation,error\n"+
		"1,-250.00,rent TATA,TATA,EXPENSE,\n"+
		"2,5.00,refund,,SALE,\n"+
		"3,400.00,TOTO sale,TOTO,LARGE SALE,\n", out)
	require.Equal(t, int64(6), queryValue[int64](t, dbURL, "SELECT count(*) FROM transactions"))
	require.Equal(t, int64(6), queryValue[int64](t, dbURL, "SELECT count(*) FROM tags"))
	require.Equal(t, "globex", queryValue[string](t, dbURL, "SELECT account FROM runs WHERE run_id = 'globex-1'"))

	// Run again, each file adds nothing.
	for _, r := range []accountRun{acme, globex} {
		r.id += "-again"
		c := ingestAccount(t, db, r)
		require.Equal(t, postgres.IngestCounts{Accepted: 3, New: 0, MaxSeq: 3}, c, r.id)
	}
}

func TestSameIDsInTwoAccountsConcurrent(t *testing.T) {
	db, dbURL := openDB(t)
	const n = 2000
	runs := make([]accountRun, 2)
	for i, account := range []string{"FR7630006000011234567890189", "DE89370400440532013000"} {
		r := accountRun{id: fmt.Sprintf("run-%d", i), account: account}
		for k := 1; k <= n; k++ {
			r.recs = append(r.recs, rec(int64(k+1), "TX"+strconv.Itoa(k), fmt.Sprintf("%d.%02d", i+1, k%100), fmt.Sprintf("payment %d TAXI of %d", k, i)))
		}
		runs[i] = r
	}
	var wg sync.WaitGroup
	outs := make([]string, len(runs))
	errs := make([]error, len(runs))
	for i, r := range runs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = func() error {
				ctx := context.Background()
				if _, err := db.BeginIngest(ctx, postgres.Run{ID: r.id, File: r.id, SHA256: "00", Account: r.account}, false); err != nil {
					return err
				}
				for from := 0; from < n; from += 500 {
					if err := db.LoadBatch(ctx, r.id, int64(from+1), r.recs[from:from+500], nil); err != nil {
						return err
					}
				}
				c, err := db.FinishIngest(ctx, r.id, n)
				if err != nil {
					return err
				}
				if c != (postgres.IngestCounts{Accepted: n, New: n, MaxSeq: n}) {
					return fmt.Errorf("run %s: counts %+v", r.id, c)
				}
				for from := int64(1); from <= n; from += 700 {
					if _, err := db.TagChunk(ctx, r.id, from, from+700, tagWord); err != nil {
						return err
					}
					if _, err := db.AnnotateChunk(ctx, r.id, from, from+700, annotate); err != nil {
						return err
					}
				}
				var out bytes.Buffer
				counts, err := db.WriteOutput(ctx, r.id, postgres.OutputOptions{}, &out)
				if err != nil {
					return err
				}
				if counts != (postgres.OutputCounts{Rows: n, Tagged: n, Annotated: n}) {
					return fmt.Errorf("run %s: output counts %+v", r.id, counts)
				}
				outs[i] = out.String()
				return nil
			}()
		}()
	}
	wg.Wait()
	require.NoError(t, errs[0])
	require.NoError(t, errs[1])
	for i, r := range runs {
		lines := strings.Split(strings.TrimSuffix(outs[i], "\n"), "\n")
		require.Len(t, lines, n+1)
		require.Equal(t, fmt.Sprintf("TX7,%d.07,payment 7 TAXI of %d,TAXI,SALE,", i+1, i), lines[7], r.account)
	}
	require.Equal(t, int64(2*n), queryValue[int64](t, dbURL, "SELECT count(*) FROM transactions"))
	require.Equal(t, int64(0), queryValue[int64](t, dbURL, "SELECT count(*) FROM rejected_rows"))
}

func TestDuplicatesAndConflictsWithinOneAccountOnly(t *testing.T) {
	db, dbURL := openDB(t)
	c := ingestAccount(t, db, accountRun{id: "a1", account: "acme", recs: []txn.Record{
		rec(2, "1", "10.00", "coffee"), rec(3, "1", "11.00", "coffee again"), // duplicate_id in acme
	}})
	require.Equal(t, postgres.IngestCounts{Accepted: 1, New: 1, Rejected: 1, Duplicates: 1, MaxSeq: 1}, c)

	// Another amount under the same id: a conflict in acme, a new transaction in globex.
	c = ingestAccount(t, db, accountRun{id: "a2", account: "acme", recs: []txn.Record{rec(2, "1", "20.00", "coffee")}})
	require.Equal(t, postgres.IngestCounts{Accepted: 0, Rejected: 1, Conflicts: 1, MaxSeq: 0}, c)
	require.Equal(t, "acme", queryValue[string](t, dbURL, "SELECT account FROM rejected_rows WHERE run_id = 'a2'"))
	c = ingestAccount(t, db, accountRun{id: "g1", account: "globex", recs: []txn.Record{rec(2, "1", "20.00", "coffee")}})
	require.Equal(t, postgres.IngestCounts{Accepted: 1, New: 1, MaxSeq: 1}, c)

	// NFC still holds within an account: a decomposed é is the composed one.
	c = ingestAccount(t, db, accountRun{id: "a3", account: "acme", recs: []txn.Record{
		rec(2, "caf\u00e9", "1.00", "x"), rec(3, "cafe\u0301", "1.00", "x"),
	}})
	require.Equal(t, postgres.IngestCounts{Accepted: 1, New: 1, Rejected: 1, Duplicates: 1, MaxSeq: 1}, c)
	c = ingestAccount(t, db, accountRun{id: "g2", account: "globex", recs: []txn.Record{rec(2, "cafe\u0301", "2.00", "y")}})
	require.Equal(t, postgres.IngestCounts{Accepted: 1, New: 1, MaxSeq: 1}, c)
	c = ingestAccount(t, db, accountRun{id: "g3", account: "globex", recs: []txn.Record{rec(2, "caf\u00e9", "3.00", "y")}})
	require.Equal(t, postgres.IngestCounts{Rejected: 1, Conflicts: 1}, c)
}

func TestMultiAccountFile(t *testing.T) {
	db, dbURL := openDB(t)
	// A file with an account column: each row has its own account; the run's
	// account only fills in the rejected row whose account field was empty.
	recs := []txn.Record{
		inAccount("acme", rec(2, "1", "10.00", "coffee TAXI")),
		inAccount("globex", rec(3, "1", "-3.00", "lunch")),
		inAccount("acme", rec(4, "2", "2000000.00", "big TOTO")),
		inAccount("acme", rec(5, "1", "10.00", "coffee TAXI")), // duplicate within acme
		inAccount("globex", rec(7, "2", "5.00", "=cmd")),
	}
	recs[2].Error = txn.ReasonAmountTooHigh
	rejected := []txn.Rejected{
		{Line: 6, ID: "3", Amount: "1.00", Wording: "x", Account: "bad/acct", Reason: txn.ReasonInvalidAccount, Detail: "bad"},
		{Line: 8, ID: "4", Amount: "1.00", Wording: "y", Reason: txn.ReasonInvalidAccount, Detail: "account is empty"},
	}
	c := ingestAccount(t, db, accountRun{id: "multi", account: "fallback", accountColumn: true, recs: recs, rejected: rejected})
	require.Equal(t, postgres.IngestCounts{Accepted: 4, New: 4, Rejected: 3, Duplicates: 1, Errors: 1, MaxSeq: 5}, c)
	out, rep := process(t, db, "multi", c.MaxSeq)
	require.Equal(t, "account,id,amount,wording,tag,annotation,error\n"+
		"acme,1,10.00,coffee TAXI,TAXI,SALE,\n"+
		"globex,1,-3.00,lunch,,SMALL EXPENSE,\n"+
		"acme,2,2000000.00,big TOTO,TOTO,,amount_too_high\n"+
		"globex,2,5.00,'=cmd,,SALE,\n", out)
	require.Equal(t, "account,line,id,amount,wording,reason\n"+
		"acme,4,2,2000000.00,big TOTO,amount_too_high\n"+
		"acme,5,1,10.00,coffee TAXI,duplicate_id\n"+
		"bad/acct,6,3,1.00,x,invalid_account\n"+
		"fallback,8,4,1.00,y,invalid_account\n", rep)
	counts, err := db.RunCounts(context.Background(), "multi")
	require.NoError(t, err)
	require.Equal(t, postgres.RunCounts{Accepted: 4, Rejected: 3, Errors: 1, Tagged: 2, Annotated: 3}, counts)
	require.Equal(t, int64(0), queryValue[int64](t, dbURL, "SELECT count(*) FROM transactions WHERE account = 'fallback'"))

	// A file without an account column keeps today's columns.
	c = ingestAccount(t, db, accountRun{id: "plain", account: "acme", recs: []txn.Record{rec(2, "9", "1.00", "z")},
		rejected: []txn.Rejected{{Line: 3, ID: "", Amount: "1", Wording: "w", Reason: txn.ReasonMissingID, Detail: "id is empty"}}})
	out, rep = process(t, db, "plain", c.MaxSeq)
	require.Equal(t, "id,amount,wording,tag,annotation,error\n9,1.00,z,,SALE,\n", out)
	require.Equal(t, "line,id,amount,wording,reason\n3,,1,w,missing_id\n", rep)
}

func TestBeginIngestRefusesAnInvalidAccount(t *testing.T) {
	db, dbURL := openDB(t)
	_, err := db.BeginIngest(context.Background(), postgres.Run{ID: "r", File: "f", SHA256: "00", Account: "acme main"}, false)
	require.ErrorContains(t, err, "account")
	require.Equal(t, int64(0), queryValue[int64](t, dbURL, "SELECT count(*) FROM runs"))

	mustBegin(t, db, postgres.Run{ID: "r", File: "f", SHA256: "00"})
	require.Equal(t, txn.DefaultAccount, queryValue[string](t, dbURL, "SELECT account FROM runs WHERE run_id = 'r'"))
}

func TestExportAndPurgeAccount(t *testing.T) {
	db, dbURL := openDB(t)
	ctx := context.Background()
	big := rec(3, "B", "2000000.00", "TOTO big")
	big.Error = txn.ReasonAmountTooHigh
	c := ingestAccount(t, db, accountRun{id: "a1", account: "acme", recs: []txn.Record{
		rec(2, "A", "10.00", "coffee TAXI"), big, rec(4, "cafe\u0301", "-300.00", "@rent"),
	}, rejected: []txn.Rejected{{Line: 5, ID: "X", Amount: "?", Wording: "w", Reason: txn.ReasonInvalidAmount, Detail: "bad"}}})
	process(t, db, "a1", c.MaxSeq)
	c = ingestAccount(t, db, accountRun{id: "a2", account: "acme", recs: []txn.Record{rec(2, "A", "10.00", "coffee TAXI"), rec(3, "C", "1.00", "TUTU")}})
	process(t, db, "a2", c.MaxSeq)
	c = ingestAccount(t, db, accountRun{id: "g1", account: "globex", recs: []txn.Record{rec(2, "A", "7.00", "other")},
		rejected: []txn.Rejected{{Line: 3, ID: "", Amount: "1", Wording: "w", Reason: txn.ReasonMissingID, Detail: "id is empty"}}})
	process(t, db, "g1", c.MaxSeq)

	var out bytes.Buffer
	n, err := db.ExportAccount(ctx, "acme", nil, nil, &out)
	require.NoError(t, err)
	require.Equal(t, int64(4), n)
	require.Equal(t, "id,amount,wording,tag,annotation,error\n"+
		"A,10.00,coffee TAXI,TAXI,SALE,\n"+
		"B,2000000.00,TOTO big,TOTO,,amount_too_high\n"+
		"C,1.00,TUTU,TUTU,SALE,\n"+
		"cafe\u0301,-300.00,'@rent,,EXPENSE,\n", out.String())

	out.Reset()
	n, err = db.ExportAccount(ctx, "nobody", nil, nil, &out)
	require.NoError(t, err)
	require.Equal(t, int64(0), n)
	require.Equal(t, "id,amount,wording,tag,annotation,error\n", out.String())

	_, err = db.ExportAccount(ctx, "bad account", nil, nil, &out)
	require.ErrorContains(t, err, "account")
	now := time.Now()
	_, err = db.ExportAccount(ctx, "acme", &now, ptr(now.AddDate(0, 0, -1)), &out)
	require.ErrorContains(t, err, "ends")

	// Messages to publish by range of lines: a1's lines are all acme's, g1's globex's.
	execSQL(t, dbURL, `INSERT INTO outbox_runs (run_id, num, max_seq) SELECT run_id, num, 3 FROM runs WHERE run_id IN ('a1', 'g1');
		INSERT INTO outbox_acked (run_id, from_seq, next_seq) VALUES ('a1', 1, 2), ('g1', 1, 1)`)

	purged, err := db.PurgeAccount(ctx, "acme")
	require.NoError(t, err)
	require.Equal(t, postgres.PurgeCounts{Transactions: 4, Tags: 4, Annotations: 3, RunLines: 5, RejectedRows: 1}, purged)
	// A run with no line left has nothing to publish any more; the others keep their rows.
	require.Equal(t, "g1", queryValue[string](t, dbURL, "SELECT string_agg(run_id, ',') FROM outbox_runs"))
	require.Equal(t, "g1", queryValue[string](t, dbURL, "SELECT string_agg(run_id, ',') FROM outbox_acked"))
	for _, table := range []string{"transactions", "run_lines", "rejected_rows"} {
		require.Equal(t, int64(0), queryValue[int64](t, dbURL, "SELECT count(*) FROM "+table+" WHERE account = 'acme'"), table)
		require.Equal(t, int64(1), queryValue[int64](t, dbURL, "SELECT count(*) FROM "+table+" WHERE account = 'globex'"), table)
	}
	for _, table := range []string{"tags", "annotations"} {
		// The results left are globex's, and no result is left without its transaction.
		require.Equal(t, int64(1), queryValue[int64](t, dbURL, "SELECT count(*) FROM "+table), table)
		require.Equal(t, "globex", queryValue[string](t, dbURL, "SELECT t.account FROM "+table+" r JOIN transactions t ON t.key = r.txn_key"), table)
	}
	out.Reset()
	n, err = db.ExportAccount(ctx, "globex", nil, nil, &out)
	require.NoError(t, err)
	require.Equal(t, int64(1), n)
	require.Equal(t, "id,amount,wording,tag,annotation,error\nA,7.00,other,,SALE,\n", out.String())

	again, err := db.PurgeAccount(ctx, "acme")
	require.NoError(t, err)
	require.Equal(t, postgres.PurgeCounts{}, again)
	_, err = db.PurgeAccount(ctx, "")
	require.ErrorContains(t, err, "account is empty")

	// The purged account's file, ingested again, is new again.
	c = ingestAccount(t, db, accountRun{id: "a3", account: "acme", recs: []txn.Record{rec(2, "A", "99.00", "changed")}})
	require.Equal(t, postgres.IngestCounts{Accepted: 1, New: 1, MaxSeq: 1}, c)
}

// migrateUpTo applies the embedded migration files up to version (included) and records them the
// way Migrate does, as a database made by an older txflow would be.
func migrateUpTo(t *testing.T, dbURL string, version int) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dbURL)
	require.NoError(t, err)
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, `CREATE TABLE schema_migrations (
		version    integer PRIMARY KEY,
		name       text NOT NULL,
		applied_at timestamptz NOT NULL DEFAULT now())`)
	require.NoError(t, err)
	files, err := filepath.Glob("migrations/*.sql")
	require.NoError(t, err)
	sort.Strings(files)
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".sql")
		v, err := strconv.Atoi(name[:3])
		require.NoError(t, err)
		if v > version {
			break
		}
		sql, err := os.ReadFile(f)
		require.NoError(t, err)
		_, err = conn.Exec(ctx, string(sql))
		require.NoError(t, err, name)
		_, err = conn.Exec(ctx, "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", v, name)
		require.NoError(t, err)
	}
}

func TestMigrationPutsStoredRowsUnderTheDefaultAccount(t *testing.T) {
	dbURL := testdb.URL(t)
	ctx := context.Background()
	migrateUpTo(t, dbURL, 3)

	conn, err := pgx.Connect(ctx, dbURL)
	require.NoError(t, err)
	defer conn.Close(ctx)
	const nfc = "caf\u00e9"
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{"INSERT INTO runs (run_id, file, sha256, ingested_at, rows_read, new_count) VALUES ('old', 'old.csv', 'ab', now(), 5, 3)", nil},
		{`INSERT INTO transactions (id, id_as_read, amount, wording, first_run_id) VALUES
			('A', NULL, 12.5, 'TAXI', 'old'), ('B', NULL, 2000000, 'TOTO', 'old'), ($1, $2, -300, '@rent', 'old')`,
			[]any{nfc, "cafe\u0301"}},
		{`INSERT INTO run_lines (run_id, seq, line, id, id_nfc, amount, raw_amount, wording, error) VALUES
			('old', 1, 2, 'A', NULL, 12.5, '12.5', 'TAXI', NULL),
			('old', 2, 3, 'B', NULL, 2000000, '2000000', 'TOTO', 'amount_too_high'),
			('old', 4, 5, $2, $1, -300, '-300', '@rent', NULL)`, []any{nfc, "cafe\u0301"}},
		{`INSERT INTO rejected_rows (run_id, line, id, amount, wording, reason, detail) VALUES
			('old', 4, 'A', '13', 'TAXI', 'duplicate_id', 'id already on line 2'),
			('old', 6, '', '1', 'w', 'missing_id', 'id is empty')`, nil},
		{"INSERT INTO tags (transaction_id, tag, run_id) VALUES ('A', 'TAXI', 'old'), ('B', 'TOTO', 'old'), ($1, NULL, 'old')", []any{nfc}},
		{"INSERT INTO annotations (transaction_id, annotation, run_id) VALUES ('A', 'SALE', 'old'), ($1, 'EXPENSE', 'old')", []any{nfc}},
	} {
		_, err = conn.Exec(ctx, q.sql, q.args...)
		require.NoError(t, err, q.sql)
	}

	db, err := postgres.Open(ctx, dbURL)
	require.NoError(t, err)
	defer db.Close()
	// What the previous schema exported, before the upgrade.
	var before, beforeReport bytes.Buffer
	_, err = db.WriteOutput(ctx, "old", postgres.OutputOptions{}, &before)
	require.Error(t, err, "the store needs its migrations") // runs.has_account_column is new
	require.NoError(t, db.Migrate(ctx))

	for _, table := range []string{"runs", "transactions", "run_lines", "rejected_rows"} {
		require.Equal(t, int64(0), queryValue[int64](t, dbURL, "SELECT count(*) FROM "+table+" WHERE account <> 'default'"), table)
		require.NotZero(t, queryValue[int64](t, dbURL, "SELECT count(*) FROM "+table+" WHERE account = 'default'"), table)
	}
	// Results are keyed by their transaction's key since: every one kept, under its transaction.
	require.Equal(t, "A:TAXI,B:TOTO,café:", queryValue[string](t, dbURL,
		"SELECT string_agg(t.id || ':' || coalesce(g.tag, ''), ',' ORDER BY t.id) FROM tags g JOIN transactions t ON t.key = g.txn_key"))
	require.Equal(t, "A:SALE,café:EXPENSE", queryValue[string](t, dbURL,
		"SELECT string_agg(t.id || ':' || a.annotation, ',' ORDER BY t.id) FROM annotations a JOIN transactions t ON t.key = a.txn_key"))
	require.Equal(t, "amount_too_high", queryValue[string](t, dbURL, "SELECT error FROM transactions WHERE id = 'B'"))

	_, err = db.WriteOutput(ctx, "old", postgres.OutputOptions{}, &before)
	require.NoError(t, err)
	require.Equal(t, "id,amount,wording,tag,annotation,error\n"+
		"A,12.50,TAXI,TAXI,SALE,\n"+
		"B,2000000.00,TOTO,TOTO,,amount_too_high\n"+
		"cafe\u0301,-300.00,'@rent,,EXPENSE,\n", before.String())
	_, err = db.WriteErrorReport(ctx, "old", &beforeReport)
	require.NoError(t, err)
	require.Equal(t, "line,id,amount,wording,reason\n"+
		"3,B,2000000,TOTO,amount_too_high\n"+
		"4,A,13,TAXI,duplicate_id\n"+
		"6,,1,w,missing_id\n", beforeReport.String())

	var export bytes.Buffer
	n, err := db.ExportAccount(ctx, txn.DefaultAccount, nil, nil, &export)
	require.NoError(t, err)
	require.Equal(t, int64(3), n)
	require.Equal(t, "id,amount,wording,tag,annotation,error\n"+
		"A,12.50,TAXI,TAXI,SALE,\n"+
		"B,2000000.00,TOTO,TOTO,,amount_too_high\n"+
		"cafe\u0301,-300.00,'@rent,,EXPENSE,\n", export.String())

	// A run without an account, after the upgrade, finds the old transactions under 'default'.
	c := ingest(t, db, "new", []txn.Record{rec(2, "A", "12.50", "TAXI"), rec(3, "A2", "1.00", "x"), rec(4, nfc, "-300", "@rent")}, nil)
	require.Equal(t, postgres.IngestCounts{Accepted: 3, New: 1, MaxSeq: 3}, c)
	// The same ids in another account are other transactions.
	c = ingestAccount(t, db, accountRun{id: "other", account: "acme", recs: []txn.Record{rec(2, "A", "1.00", "y")}})
	require.Equal(t, postgres.IngestCounts{Accepted: 1, New: 1, MaxSeq: 1}, c)
	assert.Equal(t, int64(5), queryValue[int64](t, dbURL, "SELECT count(*) FROM transactions"))
}

func TestMultiAccountFileReadAndStored(t *testing.T) {
	db, _ := openDB(t)
	ctx := context.Background()
	file := "id;compte;montant;libellé\n" +
		"1;FR7630006000011234567890189;12,50;CB TAXI\n" +
		"1;DE89370400440532013000;-3,00;PRLV TOTO\n" +
		"2;FR76 3000;1,00;bad account\n" +
		"1;FR7630006000011234567890189;12,50;CB TAXI\n"
	var recs []txn.Record
	var rejected []txn.Rejected
	rules := txn.DefaultRules()
	stats, err := txn.Read(strings.NewReader(file), txn.ReaderOptions{},
		func(r txn.Record) error { r.Error = rules.Check(r.Amount); recs = append(recs, r); return nil },
		func(r txn.Rejected) error { rejected = append(rejected, r); return nil })
	require.NoError(t, err)
	require.True(t, stats.AccountColumn)

	_, err = db.BeginIngest(ctx, postgres.Run{ID: "file", File: "file.csv", SHA256: "00", Account: "acme"}, false)
	require.NoError(t, err)
	require.NoError(t, db.LoadBatch(ctx, "file", 1, recs, rejected))
	c, err := db.FinishIngestFile(ctx, "file", postgres.FileFacts{RowsRead: stats.Records, AccountColumn: stats.AccountColumn})
	require.NoError(t, err)
	require.Equal(t, postgres.IngestCounts{Accepted: 2, New: 2, Rejected: 2, Duplicates: 1, MaxSeq: 2}, c)
	out, rep := process(t, db, "file", c.MaxSeq)
	require.Equal(t, "account,id,amount,wording,tag,annotation,error\n"+
		"FR7630006000011234567890189,1,12.50,CB TAXI,TAXI,SALE,\n"+
		"DE89370400440532013000,1,-3.00,PRLV TOTO,TOTO,SMALL EXPENSE,\n", out)
	require.Equal(t, "account,line,id,amount,wording,reason\n"+
		"FR76 3000,4,2,\"1,00\",bad account,invalid_account\n"+
		"FR7630006000011234567890189,5,1,\"12,50\",CB TAXI,duplicate_id\n", rep)
}
