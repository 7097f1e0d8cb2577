package postgres_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/txflow/txflow/postgres"
	"github.com/txflow/txflow/txn"
)

// batchesOf returns n batches of size records each, the second with a rejected row, and the
// channel that sends them, closed.
func batchesOf(n, size int) ([]postgres.Batch, chan postgres.Batch) {
	var out []postgres.Batch
	ch := make(chan postgres.Batch, n)
	line := int64(2)
	for i := range n {
		var b postgres.Batch
		for range size {
			b.Records = append(b.Records, rec(line, fmt.Sprintf("L%d", line), "1.00", "w"))
			line++
		}
		if i == 1 {
			b.Rejected = []txn.Rejected{{Line: line, ID: "x", Amount: "?", Wording: "w", Reason: txn.ReasonInvalidAmount}}
			line++
		}
		out = append(out, b)
		ch <- b
	}
	close(ch)
	return out, ch
}

// TestLoadBatchesCommitsInOrder checks that LoadBatches loads what LoadBatch would, batch after
// batch, with two COPYs at a time and never more, and that a batch that fails stops it with the
// batches before it committed and none after.
func TestLoadBatchesCommitsInOrder(t *testing.T) {
	db, dbURL := openDB(t)
	ctx := context.Background()
	run := postgres.Run{ID: "lb", File: "lb.csv", SHA256: "ab"}

	t.Run("in order, two at a time", func(t *testing.T) {
		mustBegin(t, db, run)
		// The run's row locked elsewhere: the first batch, COPYed, cannot commit; the second is
		// COPYed meanwhile and waits for it; the third waits for the first to commit.
		lock, err := pgx.Connect(ctx, dbURL)
		require.NoError(t, err)
		defer lock.Close(ctx)
		tx, err := lock.Begin(ctx)
		require.NoError(t, err)
		_, err = tx.Exec(ctx, "SELECT 1 FROM runs WHERE run_id = 'lb' FOR UPDATE")
		require.NoError(t, err)

		sent, batches := batchesOf(4, 3)
		var got []postgres.Batch
		done := make(chan error, 1)
		go func() {
			done <- db.LoadBatches(ctx, "lb", 1, batches, func(b postgres.Batch) { got = append(got, b) })
		}()
		// Of the store's connections, one waits for the lock (the first batch's commit) and one
		// holds a transaction open (the second batch, COPYed): no third. (Watched from a
		// connection of its own: a transaction sees one snapshot of pg_stat_activity.)
		watch, err := pgx.Connect(ctx, dbURL)
		require.NoError(t, err)
		defer watch.Close(ctx)
		var locker int64
		require.NoError(t, tx.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&locker))
		const backends = `SELECT count(*) FILTER (WHERE wait_event_type = 'Lock'),
			count(*) FILTER (WHERE state = 'idle in transaction')
			FROM pg_stat_activity WHERE datname = current_database() AND pid NOT IN (pg_backend_pid(), $1)`
		var waiting, open int64
		require.Eventually(t, func() bool {
			select {
			case err := <-done:
				require.NoError(t, err, "LoadBatches returned before the lock was released")
			default:
			}
			require.NoError(t, watch.QueryRow(ctx, backends, locker).Scan(&waiting, &open))
			return waiting == 1 && open == 1
		}, 30*time.Second, 20*time.Millisecond)
		time.Sleep(200 * time.Millisecond)
		require.NoError(t, watch.QueryRow(ctx, backends, locker).Scan(&waiting, &open))
		require.Equal(t, []int64{1, 1}, []int64{waiting, open}, "no third batch in flight")
		require.Zero(t, queryValue[int64](t, dbURL, "SELECT count(*) FROM run_lines WHERE run_id = 'lb'"), "nothing committed yet")

		require.NoError(t, tx.Rollback(ctx))
		require.NoError(t, <-done)
		require.Equal(t, sent, got, "each batch reported once committed, in order")
		require.Equal(t, "1 2 3 4 5 6 7 8 9 10 11 12",
			queryValue[string](t, dbURL, "SELECT string_agg(seq::text, ' ' ORDER BY line) FROM run_lines WHERE run_id = 'lb'"))
		cp, err := db.BeginIngest(ctx, run, true)
		require.NoError(t, err)
		require.Equal(t, postgres.Checkpoint{Records: 13, NextSeq: 13}, cp)
	})

	t.Run("a batch that fails", func(t *testing.T) {
		mustBegin(t, db, run)
		sent, _ := batchesOf(5, 3)
		// The third batch repeats the second's rejected line: its COPY fails on the key.
		sent[2].Rejected = sent[1].Rejected
		batches := make(chan postgres.Batch, len(sent))
		for _, b := range sent {
			batches <- b
		}
		close(batches)
		var got []postgres.Batch
		err := db.LoadBatches(ctx, "lb", 1, batches, func(b postgres.Batch) { got = append(got, b) })
		require.ErrorContains(t, err, "load batch of run lb at seq 7")
		require.ErrorContains(t, err, "rejected_rows_pkey")
		require.Equal(t, sent[:2], got)
		cp, err := db.BeginIngest(ctx, run, true)
		require.NoError(t, err)
		require.Equal(t, postgres.Checkpoint{Records: 7, NextSeq: 7}, cp, "the first two batches, and no other")
		require.EqualValues(t, 6, queryValue[int64](t, dbURL, "SELECT count(*) FROM run_lines WHERE run_id = 'lb'"))
	})
}
