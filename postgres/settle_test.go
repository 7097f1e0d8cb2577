package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/txflow/txflow/internal/testdb"
	"github.com/txflow/txflow/postgres"
	"github.com/txflow/txflow/txn"
)

// partsLines are the 40 lines of the run settleScenario loads: new transactions, one amount too
// high, S1 stored before as it is, S2 stored before with another amount (a conflict), and P3
// again on line 21 (a duplicate).
func partsLines() []txn.Record {
	var lines []txn.Record
	for i := int64(1); i <= 40; i++ {
		r := rec(i+1, fmt.Sprintf("P%d", i), fmt.Sprintf("%d.50", i*10-150), fmt.Sprintf("wording TOTO %d", i))
		switch i {
		case 5:
			r = rec(i+1, "S1", "10.00", "kept")
		case 9:
			r = rec(i+1, "S2", "99.00", "kept")
		case 13:
			r.Error = txn.ReasonAmountTooHigh
		case 20:
			r.ID = "P3"
		}
		lines = append(lines, r)
	}
	return lines
}

// partsWant are the counts of partsLines' settlement.
var partsWant = postgres.IngestCounts{Accepted: 38, New: 37, Errors: 1, Rejected: 2, Duplicates: 1, Conflicts: 1, MaxSeq: 40}

// settleScenario stores S1 and S2 in a run of their own, then loads partsLines as run "big".
func settleScenario(t *testing.T, db *postgres.DB) {
	t.Helper()
	ingest(t, db, "stored", []txn.Record{rec(2, "S1", "10.00", "kept"), rec(3, "S2", "20.00", "kept")}, nil)
	mustBegin(t, db, postgres.Run{ID: "big", File: "big.csv", SHA256: "00", Execution: "first"})
	require.NoError(t, db.LoadBatch(context.Background(), "big", 1, partsLines(), nil))
}

// settledState is what a settlement of run "big" leaves, the run's number taken out of keys.
func settledState(t *testing.T, dbURL string) []string {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dbURL)
	require.NoError(t, err)
	defer conn.Close(ctx)
	var state []string
	for _, q := range []string{
		`SELECT account, id, amount::text, wording, error, key - (SELECT num FROM runs WHERE run_id = 'big') * 4294967296
		 FROM transactions WHERE first_run_id = 'big' ORDER BY account, id`,
		`SELECT seq, id, txn_key = (SELECT key FROM transactions t WHERE t.account = rl.account AND t.id = rl.id)
		 FROM run_lines rl WHERE run_id = 'big' ORDER BY seq`,
		`SELECT line, id, reason, detail FROM rejected_rows WHERE run_id = 'big' ORDER BY line`,
		`SELECT ingested_at IS NOT NULL, new_count, all_new, settling_new FROM runs WHERE run_id = 'big'`,
		`SELECT max_seq, o.num = r.num FROM outbox_runs o JOIN runs r USING (run_id) WHERE run_id = 'big'`,
	} {
		rows, err := conn.Query(ctx, q)
		require.NoError(t, err)
		for rows.Next() {
			v, err := rows.Values()
			require.NoError(t, err)
			state = append(state, fmt.Sprint(v...))
		}
		require.NoError(t, rows.Err())
		state = append(state, "--")
	}
	return state
}

func TestSettlementInPartsMatchesOneTransaction(t *testing.T) {
	ctx := context.Background()
	for _, outbox := range []bool{false, true} {
		t.Run(fmt.Sprintf("outbox %v", outbox), func(t *testing.T) {
			facts := postgres.FileFacts{RowsRead: 40, Outbox: outbox, Loaded: true, ErrorLines: 1}
			one, oneURL := openDB(t)
			settleScenario(t, one)
			inOne, err := one.FinishIngestFile(ctx, "big", facts)
			require.NoError(t, err)

			parts, partsURL := openDB(t)
			var committed atomic.Int64
			parts.SettleInParts(2, 10, 3, func(int64) error { committed.Add(1); return nil })
			settleScenario(t, parts)
			inParts, err := parts.FinishIngestFile(ctx, "big", facts)
			require.NoError(t, err)
			require.Equal(t, int64(4), committed.Load(), "40 lines in parts of 10")

			want := partsWant
			if outbox {
				want.Pending = want.New
			}
			require.Equal(t, want, inOne, "in one transaction")
			require.Equal(t, want, inParts, "in parts")
			require.Equal(t, settledState(t, oneURL), settledState(t, partsURL))

			again, err := parts.FinishIngestFile(ctx, "big", facts)
			require.NoError(t, err)
			want.New = 0
			require.Equal(t, want, again, "a second settlement inserts nothing")
		})
	}
}

func TestSettlementInPartsResumed(t *testing.T) {
	ctx := context.Background()
	facts := postgres.FileFacts{RowsRead: 40, Outbox: true}
	for _, startOver := range []bool{false, true} {
		t.Run(fmt.Sprintf("started over %v", startOver), func(t *testing.T) {
			db, dbURL := openDB(t)
			var failed atomic.Bool
			db.SettleInParts(2, 10, 3, func(int64) error {
				if !failed.Swap(true) {
					return errors.New("killed")
				}
				return nil
			})
			settleScenario(t, db)
			_, err := db.FinishIngestFile(ctx, "big", facts)
			require.ErrorContains(t, err, "killed")
			stored := queryValue[int64](t, dbURL, "SELECT count(*) FROM transactions WHERE first_run_id = 'big'")
			require.Positive(t, stored, "a part committed")
			require.Less(t, stored, partsWant.New, "not every part committed")
			require.Equal(t, stored, queryValue[int64](t, dbURL, "SELECT settling_new FROM runs WHERE run_id = 'big'"))
			require.False(t, queryValue[bool](t, dbURL, "SELECT ingested_at IS NOT NULL FROM runs WHERE run_id = 'big'"), "not settled")

			want := partsWant
			if startOver {
				// Another execution loads the file again: the transactions of the parts that
				// committed were stored before it, and are still to publish.
				_, err := db.BeginIngest(ctx, postgres.Run{ID: "big", File: "big.csv", SHA256: "00", Execution: "second"}, true)
				require.NoError(t, err)
				require.NoError(t, db.LoadBatch(ctx, "big", 1, partsLines(), nil))
				want.New -= stored
			}
			got, err := db.FinishIngestFile(ctx, "big", facts)
			require.NoError(t, err)
			want.Pending = partsWant.New
			require.Equal(t, want, got)
			require.Equal(t, partsWant.New, queryValue[int64](t, dbURL, "SELECT count(*) FROM transactions WHERE first_run_id = 'big'"))
			require.Equal(t, int64(0), queryValue[int64](t, dbURL, "SELECT settling_new FROM runs WHERE run_id = 'big'"))
			pending, err := db.PendingOutbox(ctx, "big")
			require.NoError(t, err)
			require.Equal(t, partsWant.New, pending, "every new transaction's message is to publish")
		})
	}
}

func TestSettlementInPartsHoldsTheLock(t *testing.T) {
	ctx := context.Background()
	db, _ := openDB(t)
	release := make(chan struct{})
	var released sync.Once
	releaseParts := func() { released.Do(func() { close(release) }) }
	t.Cleanup(releaseParts) // before the database closes, should the test fail
	var once atomic.Bool
	db.SettleInParts(2, 10, 3, func(int64) error {
		if !once.Swap(true) {
			<-release
		}
		return nil
	})
	settleScenario(t, db)
	settled := make(chan error, 1)
	go func() {
		_, err := db.FinishIngestFile(ctx, "big", postgres.FileFacts{RowsRead: 40})
		settled <- err
	}()
	require.Eventually(t, func() bool { return once.Load() }, 10*time.Second, 10*time.Millisecond, "a part committed")
	purged := make(chan error, 1)
	go func() {
		_, err := db.PurgeAccount(ctx, "other")
		purged <- err
	}()
	select {
	case err := <-purged:
		t.Fatalf("an account purge ran during a settlement in parts: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	releaseParts()
	require.NoError(t, <-settled)
	require.NoError(t, <-purged)
}

func TestSettlementInPartsOnOneConnection(t *testing.T) {
	ctx := context.Background()
	dbURL := testdb.URL(t)
	u, err := url.Parse(dbURL)
	require.NoError(t, err)
	q := u.Query()
	q.Set("pool_max_conns", "1") // the helper never gets a connection: the settlement's own does every part
	u.RawQuery = q.Encode()
	db, err := postgres.Open(ctx, u.String())
	require.NoError(t, err)
	t.Cleanup(db.Close)
	require.NoError(t, db.Migrate(ctx))
	var committed atomic.Int64
	db.SettleInParts(2, 10, 3, func(int64) error { committed.Add(1); return nil })
	settleScenario(t, db)

	settleCtx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	got, err := db.FinishIngestFile(settleCtx, "big", postgres.FileFacts{RowsRead: 40})
	require.NoError(t, err)
	require.Equal(t, partsWant, got)
	require.Equal(t, int64(4), committed.Load())
}
