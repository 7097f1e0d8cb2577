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

// A run settled with delivery on writes one outbox row per new transaction, in the settlement;
// its messages carry the stored result and are read by range of lines until delivered.
func TestOutboxRowsOfNewTransactions(t *testing.T) {
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
	require.Equal(t, int64(3), queryValue[int64](t, dbURL, "SELECT count(*) FROM outbox WHERE run_id = 'run1' AND version = 1"))
	require.Equal(t, int64(3), queryValue[int64](t, dbURL, "SELECT count(*) FROM transactions t JOIN outbox o ON o.txn_key = t.key WHERE t.result_version = 1"),
		"one row per new transaction, under its key")

	// Settling again writes nothing and still counts the run's pending messages.
	again, err := db.FinishIngestFile(ctx, "run1", postgres.FileFacts{RowsRead: 4, DateColumn: true, Outbox: true})
	require.NoError(t, err)
	c.New = 0
	require.Equal(t, c, again)
	require.Equal(t, int64(3), queryValue[int64](t, dbURL, "SELECT count(*) FROM outbox"))

	// Before results are computed, the messages have none.
	msgs, err := db.OutboxMessages(ctx, "run1", 1, c.MaxSeq+1)
	require.NoError(t, err)
	require.Len(t, msgs, 3)
	require.Nil(t, msgs[0].Tag)
	require.Nil(t, msgs[0].Annotation)

	process(t, db, "run1", c.MaxSeq)
	msgs, err = db.OutboxMessages(ctx, "run1", 1, c.MaxSeq+1)
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
	part, err := db.OutboxMessages(ctx, "run1", 2, 3)
	require.NoError(t, err)
	require.Equal(t, []postgres.OutboxKey{second.OutboxKey}, messageKeys(part))
	none, err := db.OutboxMessages(ctx, "run1", 3, 4)
	require.NoError(t, err)
	require.Empty(t, none)

	// Delivered messages are gone; marking them again deletes nothing.
	n, err := db.MarkDelivered(ctx, messageKeys(msgs[:2]))
	require.NoError(t, err)
	require.Equal(t, int64(2), n)
	n, err = db.MarkDelivered(ctx, append(messageKeys(msgs[:2]), postgres.OutboxKey{Key: third.Key, Version: 2}))
	require.NoError(t, err)
	require.Zero(t, n, "neither delivered rows nor another version of a pending one")
	pending, err := db.PendingOutbox(ctx, "run1")
	require.NoError(t, err)
	require.Equal(t, int64(1), pending)
	left, err := db.OutboxMessages(ctx, "run1", 1, c.MaxSeq+1)
	require.NoError(t, err)
	require.Equal(t, []postgres.OutboxKey{third.OutboxKey}, messageKeys(left))

	// A settled run resumed counts what is still pending.
	cp, err := db.BeginIngest(ctx, postgres.Run{ID: "run1", File: "run1.csv", SHA256: "sha-run1", Account: "acme"}, true)
	require.NoError(t, err)
	require.True(t, cp.Settled)
	require.Equal(t, int64(1), cp.Totals.Pending)
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
	msgs, err := db.OutboxMessages(ctx, "run2", 1, 3)
	require.NoError(t, err)
	require.Len(t, msgs, 1)
	require.Equal(t, "D", msgs[0].ID)
	require.Equal(t, "run2", msgs[0].RunID)

	c3 := ingestOutbox(t, db, "run3", []txn.Record{rec(2, "E", "5.00", "e")}, false)
	require.Equal(t, postgres.IngestCounts{Accepted: 1, New: 1, MaxSeq: 1}, c3)
	require.Equal(t, int64(3), queryValue[int64](t, dbURL, "SELECT count(*) FROM outbox"))
	msgs, err = db.OutboxMessages(ctx, "run3", 1, 2)
	require.NoError(t, err)
	require.Empty(t, msgs)

	// Running the first file again, with its messages still pending, adds none and finds them.
	c1again := ingestOutbox(t, db, "run1", []txn.Record{rec(2, "A", "1.00", "a"), rec(3, "B", "2.00", "b")}, true)
	require.Equal(t, postgres.IngestCounts{Accepted: 2, MaxSeq: 2, Pending: 2}, c1again)
	msgs, err = db.OutboxMessages(ctx, "run1", 1, 3)
	require.NoError(t, err)
	require.Len(t, msgs, 2)

	// Purging the account drops its undelivered messages with its transactions.
	_, err = db.PurgeAccount(ctx, "acme")
	require.NoError(t, err)
	require.Equal(t, int64(0), queryValue[int64](t, dbURL, "SELECT count(*) FROM outbox"))
}

// The messages of a slice of lines are read by probing the outbox and the result tables for each
// line, even right after the run settled, when the outbox is not analyzed yet and looks empty to
// the planner: scanning all of it once per line took minutes for 200,000 rows.
func TestOutboxIsProbedByKeyWhenNotAnalyzed(t *testing.T) {
	db, dbURL := openDB(t)
	ctx := context.Background()
	recs := make([]txn.Record, 3000)
	for i := range recs {
		recs[i] = rec(int64(i+2), fmt.Sprintf("T%d", i), "-12.50", "TAXI PARIS")
	}
	ingestOutbox(t, db, "big", recs, true)
	require.Equal(t, int64(3000), queryValue[int64](t, dbURL, "SELECT count(*) FROM outbox"))
	require.Equal(t, int64(0), queryValue[int64](t, dbURL,
		"SELECT coalesce(max(greatest(analyze_count, autoanalyze_count)), 0) FROM pg_stat_user_tables WHERE relname = 'outbox'"),
		"the outbox is not analyzed yet")

	plan, err := db.ExplainOutboxMessages(ctx, "big", 1, 1001)
	require.NoError(t, err)
	require.NotContains(t, plan, "Seq Scan", plan)
	require.NotContains(t, plan, "Hash", plan)
	require.Regexp(t, `Index Scan (using|on) outbox_pkey`, plan)
	// The lines are the outer side: the outbox is probed from them.
	lines := strings.Index(plan, "run_lines")
	outbox := strings.Index(plan, "outbox_pkey")
	require.True(t, lines >= 0 && lines < outbox, plan)

	msgs, err := db.OutboxMessages(ctx, "big", 1, 1001)
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
