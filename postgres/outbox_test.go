package postgres_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/txflow/txflow/postgres"
	"github.com/txflow/txflow/txn"
)

// ingestOutbox runs BeginIngest, one LoadBatch and FinishIngestFile for a run of account acme,
// with delivery on or off.
func ingestOutbox(t *testing.T, db *postgres.DB, runID string, recs []txn.Record, outbox bool) postgres.IngestCounts {
	t.Helper()
	ctx := context.Background()
	_, err := db.BeginIngest(ctx, postgres.Run{ID: runID, File: runID + ".csv", SHA256: "sha-" + runID, Account: "acme"}, false)
	require.NoError(t, err)
	require.NoError(t, db.LoadBatch(ctx, runID, 1, recs, nil))
	c, err := db.FinishIngestFile(ctx, runID, postgres.FileFacts{RowsRead: int64(len(recs)), DateColumn: true, Outbox: outbox})
	require.NoError(t, err)
	return c
}

// messageKeys returns the outbox keys of messages.
func messageKeys(msgs []postgres.OutboxMessage) []postgres.OutboxKey {
	keys := make([]postgres.OutboxKey, len(msgs))
	for i, m := range msgs {
		keys[i] = m.OutboxKey
	}
	return keys
}

// pending returns the run's messages not delivered yet.
func pending(t *testing.T, db *postgres.DB, runID string) int64 {
	t.Helper()
	n, err := db.PendingOutbox(context.Background(), runID)
	require.NoError(t, err)
	return n
}

// A run settled with delivery on writes one outbox_runs row and no outbox row, in the
// settlement; its messages carry the stored result and are read by range of lines until its
// chunks are acknowledged.
func TestOutboxRunOfNewTransactions(t *testing.T) {
	db, dbURL := openDB(t)
	ctx := context.Background()
	big := rec(5, "C", "2000000.00", "TOTO big")
	big.Error = txn.ReasonAmountTooHigh
	run1 := []txn.Record{
		dated("2026-01-31", rec(2, "T1", "-12.5", "TAXI PARIS")),
		rec(3, "cafe\u0301", "300.00", "<rent> & \"more\""), // id not in NFC: the message carries it as read
		rec(4, "T1", "-12.50", "TAXI PARIS"),                // in-file duplicate: no message
		big,
	}
	before := time.Now().Add(-time.Minute)
	c := ingestOutbox(t, db, "run1", run1, true)
	require.Equal(t, postgres.IngestCounts{Accepted: 3, New: 3, Rejected: 1, Duplicates: 1, Errors: 1, MaxSeq: 4, Pending: 3}, c)
	require.Equal(t, int64(0), queryValue[int64](t, dbURL, "SELECT count(*) FROM outbox"), "no row per transaction")
	require.Equal(t, int64(1), queryValue[int64](t, dbURL, "SELECT count(*) FROM outbox_runs WHERE run_id = 'run1' AND max_seq = 4"))
	require.Equal(t, int64(3), pending(t, db, "run1"))

	// Settling again writes nothing and still counts the run's pending messages.
	again, err := db.FinishIngestFile(ctx, "run1", postgres.FileFacts{RowsRead: 4, DateColumn: true, Outbox: true})
	require.NoError(t, err)
	c.New = 0
	require.Equal(t, c, again)
	require.Equal(t, int64(1), queryValue[int64](t, dbURL, "SELECT count(*) FROM outbox_runs"))
	require.Equal(t, int64(0), queryValue[int64](t, dbURL, "SELECT count(*) FROM outbox"))

	// Before results are computed, the messages have none.
	start, byRun, err := db.RunChunkStart(ctx, "run1", 1)
	require.NoError(t, err)
	require.True(t, byRun)
	require.Equal(t, int64(1), start)
	msgs, err := db.RunMessages(ctx, "run1", 1, c.MaxSeq+1)
	require.NoError(t, err)
	require.Len(t, msgs, 3)
	require.Nil(t, msgs[0].Tag)
	require.Nil(t, msgs[0].Annotation)
	legacy, err := db.OutboxMessages(ctx, "run1", 1, c.MaxSeq+1)
	require.NoError(t, err)
	require.Empty(t, legacy, "no outbox row to join")

	process(t, db, "run1", c.MaxSeq)
	msgs, err = db.RunMessages(ctx, "run1", 1, c.MaxSeq+1)
	require.NoError(t, err)
	require.Len(t, msgs, 3)
	for _, m := range msgs {
		require.Equal(t, "run1", m.RunID)
		require.EqualValues(t, 1, m.Version)
		require.Equal(t, "acme", m.Account)
		require.True(t, m.CreatedAt.After(before), "created at the settlement")
	}
	first := msgs[0]
	first.RunID, first.CreatedAt, first.OutboxKey = "", time.Time{}, postgres.OutboxKey{}
	require.Equal(t, postgres.OutboxMessage{Account: "acme", ID: "T1", Date: "2026-01-31", Amount: "-12.50",
		Wording: "TAXI PARIS", Tag: ptr("TAXI"), Annotation: ptr("SMALL EXPENSE")}, first)
	second := msgs[1]
	require.Equal(t, "cafe\u0301", second.ID)
	require.Equal(t, "", second.Date, "no date on the line")
	require.Equal(t, "300.00", second.Amount)
	require.Equal(t, "<rent> & \"more\"", second.Wording)
	require.Nil(t, second.Tag, "tagged, no tag word")
	require.Equal(t, ptr("SALE"), second.Annotation)
	require.Nil(t, second.Error)
	third := msgs[2]
	require.Equal(t, "C", third.ID)
	require.Equal(t, "2000000.00", third.Amount)
	require.Equal(t, ptr("amount_too_high"), third.Error)
	require.Equal(t, ptr("TOTO"), third.Tag)
	require.Nil(t, third.Annotation, "a line in error has no annotation")
	require.Equal(t, queryValue[int64](t, dbURL, "SELECT key FROM transactions WHERE id = 'C'"), third.Key)

	// A range of lines: the run's lines are 1, 2 and 4 once the duplicate (seq 3) moved out.
	part, err := db.RunMessages(ctx, "run1", 2, 3)
	require.NoError(t, err)
	require.Equal(t, []postgres.OutboxKey{second.OutboxKey}, messageKeys(part))
	none, err := db.RunMessages(ctx, "run1", 3, 4)
	require.NoError(t, err)
	require.Empty(t, none)

	// Two chunks, [1,3) and [3,5): lines acknowledged are no longer pending, and a chunk starts
	// where it was acknowledged; the line never goes back.
	require.NoError(t, db.AckRunLines(ctx, "run1", 1, 2))
	require.Equal(t, int64(2), pending(t, db, "run1"))
	require.NoError(t, db.AckRunLines(ctx, "run1", 1, 1))
	start, byRun, err = db.RunChunkStart(ctx, "run1", 1)
	require.NoError(t, err)
	require.True(t, byRun)
	require.Equal(t, int64(2), start)
	purged, err := db.FinishRunChunk(ctx, "run1", 3, 5)
	require.NoError(t, err)
	require.False(t, purged, "chunk [1,3) is not acknowledged yet")
	require.Equal(t, int64(1), pending(t, db, "run1"))

	// A settled run resumed counts what is still pending.
	cp, err := db.BeginIngest(ctx, postgres.Run{ID: "run1", File: "run1.csv", SHA256: "sha-run1", Account: "acme"}, true)
	require.NoError(t, err)
	require.True(t, cp.Settled)
	require.Equal(t, int64(1), cp.Totals.Pending)

	// The last chunk purges the run's rows; finishing a chunk again changes nothing.
	purged, err = db.FinishRunChunk(ctx, "run1", 1, 3)
	require.NoError(t, err)
	require.True(t, purged)
	require.Zero(t, pending(t, db, "run1"))
	require.Equal(t, int64(0), queryValue[int64](t, dbURL, "SELECT count(*) FROM outbox_runs"))
	require.Equal(t, int64(0), queryValue[int64](t, dbURL, "SELECT count(*) FROM outbox_acked"))
	purged, err = db.FinishRunChunk(ctx, "run1", 1, 3)
	require.NoError(t, err)
	require.False(t, purged)
	require.NoError(t, db.AckRunLines(ctx, "run1", 3, 5))
	require.Equal(t, int64(0), queryValue[int64](t, dbURL, "SELECT count(*) FROM outbox_acked"), "nothing recorded for a run delivered")
	start, byRun, err = db.RunChunkStart(ctx, "run1", 1)
	require.NoError(t, err)
	require.False(t, byRun)
	require.Equal(t, int64(1), start)
	msgs, err = db.RunMessages(ctx, "run1", 1, c.MaxSeq+1)
	require.NoError(t, err)
	require.Empty(t, msgs)
}

// A run's messages are its new transactions only: a line of a transaction stored (and still
// pending) under another run is that run's to publish, and a run settled with delivery off
// writes no row.
func TestOutboxOnlyTheRunsNewTransactions(t *testing.T) {
	db, dbURL := openDB(t)
	ctx := context.Background()
	c1 := ingestOutbox(t, db, "run1", []txn.Record{rec(2, "A", "1.00", "a"), rec(3, "B", "2.00", "b")}, true)
	require.Equal(t, int64(2), c1.Pending)

	c2 := ingestOutbox(t, db, "run2", []txn.Record{rec(2, "A", "1.00", "a"), rec(3, "D", "4.00", "d")}, true)
	require.Equal(t, postgres.IngestCounts{Accepted: 2, New: 1, MaxSeq: 2, Pending: 1}, c2)
	msgs, err := db.RunMessages(ctx, "run2", 1, 3)
	require.NoError(t, err)
	require.Len(t, msgs, 1)
	require.Equal(t, "D", msgs[0].ID)
	require.Equal(t, "run2", msgs[0].RunID)

	c3 := ingestOutbox(t, db, "run3", []txn.Record{rec(2, "E", "5.00", "e")}, false)
	require.Equal(t, postgres.IngestCounts{Accepted: 1, New: 1, MaxSeq: 1}, c3)
	require.Equal(t, int64(2), queryValue[int64](t, dbURL, "SELECT count(*) FROM outbox_runs"))
	require.Equal(t, int64(0), queryValue[int64](t, dbURL, "SELECT count(*) FROM outbox"))
	msgs, err = db.RunMessages(ctx, "run3", 1, 2)
	require.NoError(t, err)
	require.Empty(t, msgs)

	// A run with no new transaction writes no row.
	c4 := ingestOutbox(t, db, "run4", []txn.Record{rec(2, "A", "1.00", "a")}, true)
	require.Equal(t, postgres.IngestCounts{Accepted: 1, MaxSeq: 1}, c4)
	_, byRun, err := db.RunChunkStart(ctx, "run4", 1)
	require.NoError(t, err)
	require.False(t, byRun)

	// Running the first file again (its ingestion starts over), with its messages still
	// pending and a chunk acknowledged in part, adds none and finds them all: the lines were
	// reloaded, their earlier acknowledgements are dropped.
	require.NoError(t, db.AckRunLines(ctx, "run1", 1, 2))
	require.Equal(t, int64(1), pending(t, db, "run1"))
	c1again := ingestOutbox(t, db, "run1", []txn.Record{rec(2, "A", "1.00", "a"), rec(3, "B", "2.00", "b")}, true)
	require.Equal(t, postgres.IngestCounts{Accepted: 2, MaxSeq: 2, Pending: 2}, c1again)
	start, byRun, err := db.RunChunkStart(ctx, "run1", 1)
	require.NoError(t, err)
	require.True(t, byRun)
	require.Equal(t, int64(1), start)
	// The lines' keys are the earlier ingestion's: they are found line by line, not by range.
	plan, err := db.ExplainRunMessages(ctx, "run1", 1, 3)
	require.NoError(t, err)
	require.Regexp(t, `Index Scan using tags_pkey on tags t[^\n]*\n\s+Index Cond: \(txn_key = rl\.txn_key\)`, plan)
	msgs, err = db.RunMessages(ctx, "run1", 1, 3)
	require.NoError(t, err)
	require.Len(t, msgs, 2)
	require.Equal(t, "A", msgs[0].ID)
	require.Equal(t, "B", msgs[1].ID)

	// Run again with a line less, and with a new transaction once its account was purged: the
	// messages of both ingestions become outbox rows.
	c1less := ingestOutbox(t, db, "run1", []txn.Record{rec(2, "B", "2.00", "b")}, true)
	require.Equal(t, postgres.IngestCounts{Accepted: 1, MaxSeq: 1, Pending: 1}, c1less)
	msgs, err = db.RunMessages(ctx, "run1", 1, 2)
	require.NoError(t, err)
	require.Len(t, msgs, 1)
	require.Equal(t, "B", msgs[0].ID)

	// Purging the account leaves no message to publish.
	_, err = db.PurgeAccount(ctx, "acme")
	require.NoError(t, err)
	for _, run := range []string{"run1", "run2", "run3", "run4"} {
		require.Zero(t, pending(t, db, run), run)
	}
}

// A run whose ingestion started over after some of its transactions were deleted (with their
// account) inserts transactions again while the earlier ingestion's are still pending: the
// messages of both are then outbox rows, delivered one by one.
func TestOutboxRunStartedOverWithNewTransactions(t *testing.T) {
	db, dbURL := openDB(t)
	ctx := context.Background()
	two := func(id2 string) []txn.Record {
		a := rec(2, "A", "1.00", "a")
		a.Account = "other"
		return []txn.Record{a, rec(3, id2, "2.00", "b")}
	}
	_, err := db.BeginIngest(ctx, postgres.Run{ID: "run1", File: "f.csv", SHA256: "sha", Account: "acme"}, false)
	require.NoError(t, err)
	require.NoError(t, db.LoadBatch(ctx, "run1", 1, two("B"), nil))
	c, err := db.FinishIngestFile(ctx, "run1", postgres.FileFacts{RowsRead: 2, AccountColumn: true, Outbox: true})
	require.NoError(t, err)
	require.Equal(t, int64(2), c.Pending)
	_, err = db.PurgeAccount(ctx, "acme")
	require.NoError(t, err)

	_, err = db.BeginIngest(ctx, postgres.Run{ID: "run1", File: "f.csv", SHA256: "sha", Account: "acme"}, false)
	require.NoError(t, err)
	require.NoError(t, db.LoadBatch(ctx, "run1", 1, two("B"), nil))
	c, err = db.FinishIngestFile(ctx, "run1", postgres.FileFacts{RowsRead: 2, AccountColumn: true, Outbox: true})
	require.NoError(t, err)
	require.Equal(t, postgres.IngestCounts{Accepted: 2, New: 1, MaxSeq: 2, Pending: 2}, c)
	require.Equal(t, int64(0), queryValue[int64](t, dbURL, "SELECT count(*) FROM outbox_runs"))
	require.Equal(t, int64(2), queryValue[int64](t, dbURL, "SELECT count(*) FROM outbox WHERE run_id = 'run1'"))
	msgs, err := db.OutboxMessages(ctx, "run1", 1, 3)
	require.NoError(t, err)
	require.Len(t, msgs, 2)
	n, err := db.MarkDelivered(ctx, messageKeys(msgs))
	require.NoError(t, err)
	require.Equal(t, int64(2), n)
	require.Zero(t, pending(t, db, "run1"))
}

// A run settled before outbox_runs existed has one outbox row per message: they are read by
// joining the outbox, deleted once delivered, and a settlement again keeps writing rows.
func TestOutboxRowsOfARunSettledBefore(t *testing.T) {
	db, dbURL := openDB(t)
	ctx := context.Background()
	c := ingestOutbox(t, db, "old", []txn.Record{rec(2, "A", "1.00", "a"), rec(3, "B", "2.00", "b"), rec(4, "C", "3.00", "c")}, false)
	require.Zero(t, c.Pending)
	execSQL(t, dbURL, "INSERT INTO outbox (txn_key, version, run_id) SELECT key, 1, first_run_id FROM transactions")
	require.Equal(t, int64(3), pending(t, db, "old"))
	_, byRun, err := db.RunChunkStart(ctx, "old", 1)
	require.NoError(t, err)
	require.False(t, byRun)

	again, err := db.FinishIngestFile(ctx, "old", postgres.FileFacts{RowsRead: 3, DateColumn: true, Outbox: true})
	require.NoError(t, err)
	require.Equal(t, int64(3), again.Pending)
	require.Equal(t, int64(0), queryValue[int64](t, dbURL, "SELECT count(*) FROM outbox_runs"))

	msgs, err := db.OutboxMessages(ctx, "old", 1, 4)
	require.NoError(t, err)
	require.Len(t, msgs, 3)
	n, err := db.MarkDelivered(ctx, messageKeys(msgs[:2]))
	require.NoError(t, err)
	require.Equal(t, int64(2), n)
	n, err = db.MarkDelivered(ctx, append(messageKeys(msgs[:2]), postgres.OutboxKey{Key: msgs[2].Key, Version: 2}))
	require.NoError(t, err)
	require.Zero(t, n, "neither delivered rows nor another version of a pending one")
	require.Equal(t, int64(1), pending(t, db, "old"))
	left, err := db.OutboxMessages(ctx, "old", 1, 4)
	require.NoError(t, err)
	require.Equal(t, []postgres.OutboxKey{msgs[2].OutboxKey}, messageKeys(left))
}

// The messages of a slice of lines are read by ranges, even right after the run settled, when
// nothing is analyzed yet: the run's lines by range of seq, merged with the result tables read by
// range of key (hashing whole result tables would cost their size, not the slice's; probing them
// line by line cost twice as much as the merge). Outbox rows are probed by key: scanning all of
// the outbox once per line took minutes for 200,000 rows.
func TestOutboxIsProbedByKeyWhenNotAnalyzed(t *testing.T) {
	db, dbURL := openDB(t)
	ctx := context.Background()
	recs := make([]txn.Record, 3000)
	for i := range recs {
		recs[i] = rec(int64(i+2), fmt.Sprintf("T%d", i), "-12.50", "TAXI PARIS")
	}
	ingestOutbox(t, db, "big", recs, true)
	process(t, db, "big", 3000)

	plan, err := db.ExplainRunMessages(ctx, "big", 1, 1001)
	require.NoError(t, err)
	require.NotContains(t, plan, "Seq Scan", plan)
	require.NotContains(t, plan, "Hash", plan)
	require.NotContains(t, plan, "Nested Loop", plan)
	require.NotContains(t, plan, "outbox_pkey", plan)
	require.Regexp(t, `Index Scan using run_lines_pkey on run_lines rl[^\n]*\n\s+Index Cond: \(\(run_id = [^)]+\) AND \(seq >= [^)]+\) AND \(seq < [^)]+\)\)`, plan)
	require.Regexp(t, `Index Scan using tags_pkey on tags[^\n]*\n\s+Index Cond: \(\(txn_key >= [^)]+\) AND \(txn_key < [^)]+\)\)`, plan)
	require.Regexp(t, `Index Scan using annotations_pkey on annotations[^\n]*\n\s+Index Cond: \(\(txn_key >= [^)]+\) AND \(txn_key < [^)]+\)\)`, plan)
	require.Equal(t, 2, strings.Count(plan, "Merge Left Join"), plan)
	msgs, err := db.RunMessages(ctx, "big", 1, 1001)
	require.NoError(t, err)
	require.Len(t, msgs, 1000)

	// The same run's messages as outbox rows, as a run settled before outbox_runs existed.
	execSQL(t, dbURL, "DELETE FROM outbox_runs; INSERT INTO outbox (txn_key, version, run_id) SELECT key, 1, first_run_id FROM transactions")
	require.Equal(t, int64(0), queryValue[int64](t, dbURL,
		"SELECT coalesce(max(greatest(analyze_count, autoanalyze_count)), 0) FROM pg_stat_user_tables WHERE relname = 'outbox'"),
		"the outbox is not analyzed yet")
	plan, err = db.ExplainOutboxMessages(ctx, "big", 1, 1001)
	require.NoError(t, err)
	require.NotContains(t, plan, "Seq Scan", plan)
	require.NotContains(t, plan, "Hash", plan)
	require.Regexp(t, `Index Scan (using|on) outbox_pkey`, plan)
	// The lines are the outer side: the outbox is probed from them.
	lines := strings.Index(plan, "run_lines")
	outbox := strings.Index(plan, "outbox_pkey")
	require.True(t, lines >= 0 && lines < outbox, plan)

	msgs, err = db.OutboxMessages(ctx, "big", 1, 1001)
	require.NoError(t, err)
	require.Len(t, msgs, 1000)

	// Deleting the delivered rows probes the outbox too.
	plan, err = db.ExplainMarkDelivered(ctx, messageKeys(msgs))
	require.NoError(t, err)
	require.NotContains(t, plan, "Seq Scan", plan)
	require.Regexp(t, `Index Scan (using|on) outbox_pkey`, plan)
	n, err := db.MarkDelivered(ctx, messageKeys(msgs))
	require.NoError(t, err)
	require.Equal(t, int64(1000), n)
}
