package postgres_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/txflow/txflow/postgres"
	"github.com/txflow/txflow/txn"
)

// TestKeyHashesAgreeWithTheSettlement loads each case's lines into a run, asks PostgreSQL whether
// two of them share a key (the settlement's own search), and checks that KeyHashes says distinct
// exactly when PostgreSQL finds none, and that a settlement told so rejects what it should.
func TestKeyHashesAgreeWithTheSettlement(t *testing.T) {
	db, dbURL := openDB(t)
	ctx := context.Background()
	in := func(account string, r txn.Record) txn.Record { r.Account = account; return r }
	cases := []struct {
		name       string
		account    string // the run's
		limit      int
		lines      []txn.Record
		distinct   bool
		duplicates int64
	}{
		{name: "distinct ids", lines: []txn.Record{rec(2, "A", "1.00", "x"), rec(3, "B", "1.00", "x"), rec(4, "AB", "1.00", "x")},
			distinct: true},
		{name: "an id twice", lines: []txn.Record{rec(2, "A", "1.00", "x"), rec(3, "B", "1.00", "x"), rec(4, "A", "2.00", "y")},
			duplicates: 1},
		{name: "one id in two accounts", account: "shop",
			lines:    []txn.Record{in("north", rec(2, "A", "1.00", "x")), in("south", rec(3, "A", "1.00", "x")), rec(4, "A", "1.00", "x")},
			distinct: true},
		{name: "the run's account written and not", account: "shop",
			lines:      []txn.Record{rec(2, "A", "1.00", "x"), in("shop", rec(3, "A", "1.00", "x"))},
			duplicates: 1},
		{name: "an id composed and decomposed", lines: []txn.Record{rec(2, "caf\u00e9", "1.00", "x"), rec(3, "cafe\u0301", "1.00", "x")},
			duplicates: 1},
		{name: "a NUL byte stored as U+FFFD", lines: []txn.Record{rec(2, "a\x00", "1.00", "x"), rec(3, "a\uFFFD", "1.00", "x")},
			duplicates: 1},
		{name: "more lines than the limit", limit: 2,
			lines: []txn.Record{rec(2, "A", "1.00", "x"), rec(3, "B", "1.00", "x"), rec(4, "C", "1.00", "x")}},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			runID := fmt.Sprintf("keys%d", i)
			limit := c.limit
			if limit == 0 {
				limit = 100
			}
			keys := postgres.NewKeyHashes(limit, 2)
			for j := range c.lines {
				c.lines[j].ID = runID + "-" + c.lines[j].ID // new to the database
				keys.Add(&c.lines[j], c.account)
			}
			mustBegin(t, db, postgres.Run{ID: runID, File: runID + ".csv", SHA256: "00", Account: c.account})
			require.NoError(t, db.LoadBatch(ctx, runID, 1, c.lines, nil))
			shared := queryValue[bool](t, dbURL, `SELECT EXISTS (
				SELECT 1 FROM run_lines WHERE run_id = $1 GROUP BY account, id HAVING count(*) > 1)`, runID)
			require.Equal(t, c.duplicates > 0, shared, "PostgreSQL's answer")
			require.Equal(t, c.distinct, keys.Distinct())

			counts, err := db.FinishIngestFile(ctx, runID, postgres.FileFacts{RowsRead: int64(len(c.lines)), Distinct: keys.Distinct()})
			require.NoError(t, err)
			require.Equal(t, c.duplicates, counts.Duplicates)
			require.Equal(t, int64(len(c.lines))-c.duplicates, counts.New)
		})
	}

	t.Run("told distinct wrongly", func(t *testing.T) {
		mustBegin(t, db, postgres.Run{ID: "wrong", File: "wrong.csv", SHA256: "00"})
		require.NoError(t, db.LoadBatch(ctx, "wrong", 1, []txn.Record{rec(2, "W", "1.00", "x"), rec(3, "W", "1.00", "x")}, nil))
		_, err := db.FinishIngestFile(ctx, "wrong", postgres.FileFacts{RowsRead: 2, Distinct: true})
		require.ErrorContains(t, err, "transactions_pkey")
		require.Zero(t, queryValue[int64](t, dbURL, "SELECT count(*) FROM transactions WHERE id = 'W'"), "nothing settled")

		counts, err := db.FinishIngestFile(ctx, "wrong", postgres.FileFacts{RowsRead: 2})
		require.NoError(t, err)
		require.Equal(t, postgres.IngestCounts{Accepted: 1, New: 1, Rejected: 1, Duplicates: 1, MaxSeq: 1}, counts)
	})
}
