package postgres_test

import (
	"context"
	"fmt"
	"os"
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
		mem        int    // hashes held in memory (0: 100)
		most       int64  // lines at most (0: 100)
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
		{name: "more lines than memory holds", mem: 2,
			lines:    []txn.Record{rec(2, "A", "1.00", "x"), rec(3, "B", "1.00", "x"), rec(4, "C", "1.00", "x"), rec(5, "D", "1.00", "x"), rec(6, "E", "1.00", "x")},
			distinct: true},
		{name: "a duplicate in two runs of hashes", mem: 2,
			lines:      []txn.Record{rec(2, "A", "1.00", "x"), rec(3, "B", "1.00", "x"), rec(4, "C", "1.00", "x"), rec(5, "A", "1.00", "x")},
			duplicates: 1},
		{name: "more lines than the most", most: 2,
			lines: []txn.Record{rec(2, "A", "1.00", "x"), rec(3, "B", "1.00", "x"), rec(4, "C", "1.00", "x")}},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			runID := fmt.Sprintf("keys%d", i)
			mem, most := c.mem, c.most
			if mem == 0 {
				mem = 100
			}
			if most == 0 {
				most = 100
			}
			keys := postgres.NewKeyHashes(mem, most, 2)
			defer keys.Close()
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

// TestKeyHashesSpill checks the hashes written to a temporary file once memory holds its most:
// a duplicate is found wherever its two lines are (the same run of hashes, two runs, the one left
// in memory), and Close removes the file.
func TestKeyHashesSpill(t *testing.T) {
	const lines, mem = 2000, 128
	at := func(i int) *txn.Record { r := rec(int64(i+2), fmt.Sprintf("K%d", i), "1.00", "x"); return &r }
	cases := []struct {
		name         string
		first, again int // the line whose id comes again, and where; -1: none
	}{
		{"none", -1, -1},
		{"in one run", 10, 20},
		{"in two runs", 10, 1500},
		{"the first and the last", 0, lines - 1},
		{"in the run left in memory", lines - 10, lines - 2},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			t.Setenv("TMPDIR", dir)
			keys := postgres.NewKeyHashes(mem, lines, 0)
			for i := range lines {
				r := at(i)
				if i == c.again {
					r.ID = at(c.first).ID
				}
				keys.Add(r, "")
			}
			require.Equal(t, c.first < 0, keys.Distinct())
			if c.first < 0 || c.again >= mem*(lines/mem) {
				files, err := os.ReadDir(dir)
				require.NoError(t, err)
				require.Len(t, files, 1, "the runs of hashes written")
			}
			keys.Close()
			files, err := os.ReadDir(dir)
			require.NoError(t, err)
			require.Empty(t, files, "the file removed")
		})
	}
}
