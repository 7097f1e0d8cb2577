package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

// The outbox (migration 007) holds one row per message still to publish: FinishIngestFile
// writes one per new transaction (version 1) when FileFacts.Outbox is set, in the same database
// transaction as the transaction itself, so that a result is never stored without its message
// nor a message written for a result that was not. The publisher reads a run's messages with
// OutboxMessages, publishes them and deletes the rows the broker acknowledged with
// MarkDelivered: delivery is at least once.

const (
	// New transactions and their outbox rows, in one statement: RowsAffected counts the outbox
	// rows, one per inserted transaction. $1 is the run id.
	sqlInsertNewWithOutbox = `
WITH ins AS (` + sqlInsertNew + `
    RETURNING key
)
INSERT INTO outbox (txn_key, version, run_id)
SELECT key, 1, $1 FROM ins`

	// A run's messages still to publish; $1 is the run id.
	sqlCountPending = `SELECT count(*) FROM outbox WHERE run_id = $1`

	// The messages of a run's lines in [$2, $3) that have an outbox row of the run: the fields
	// come from the line (the transaction as first stored, since the run that writes a
	// transaction's outbox row is the run that stored it), its tag and its annotation. No join on
	// transactions, which has no index on key.
	sqlOutboxMessages = `
SELECT o.txn_key, o.version, o.run_id, o.created_at,
       rl.account, coalesce(rl.id_as_read, rl.id), to_char(rl.date, 'YYYY-MM-DD'),
       rl.amount::text, rl.wording, rl.error, t.tag, a.annotation
FROM run_lines rl
JOIN outbox o ON o.txn_key = rl.txn_key AND o.run_id = rl.run_id
LEFT JOIN tags t ON t.txn_key = rl.txn_key
LEFT JOIN annotations a ON a.txn_key = rl.txn_key
WHERE rl.run_id = $1 AND rl.seq >= $2 AND rl.seq < $3
ORDER BY rl.seq, o.version`

	// The plan settings of sqlOutboxMessages (see OutboxMessages).
	sqlOutboxPlan = `SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off;
SET LOCAL enable_seqscan = off; SET LOCAL join_collapse_limit = 1`

	// Delete delivered rows; $1 and $2 are the keys and versions, in pairs.
	sqlMarkDelivered = `
DELETE FROM outbox o
USING unnest($1::bigint[], $2::integer[]) AS d(txn_key, version)
WHERE o.txn_key = d.txn_key AND o.version = d.version`
)

// OutboxKey names one outbox row: a transaction's key and the version of its result.
type OutboxKey struct {
	Key     int64
	Version int32
}

// OutboxMessage is one message still to publish: a transaction's result as stored.
type OutboxMessage struct {
	OutboxKey
	RunID     string    // the run that wrote the row
	CreatedAt time.Time // when the row was written (the run's settlement)
	Account   string
	ID        string // the id as read
	Date      string // YYYY-MM-DD, "" when unknown
	Amount    string // the stored decimal, with two decimals
	Wording   string
	// Tag, Annotation and Error are nil when none (no tag word, no annotation, no error) or not
	// computed.
	Tag, Annotation, Error *string
}

// OutboxMessages returns the messages of the run's lines with from <= seq < to that have an
// outbox row of the run, in the order of the lines. It returns the wrapped connection or SQL
// error.
func (db *DB) OutboxMessages(ctx context.Context, runID string, from, to int64) ([]OutboxMessage, error) {
	// Probe the outbox's and the result tables' primary keys for each line of the slice, the
	// lines first, as the query is written: hashing whole result tables for every slice is
	// what the planner picks otherwise, and it costs their size, not the slice's. No
	// sequential scan either: an outbox just filled, not analyzed yet, looks empty to the
	// planner, which then scans all of it once per line (minutes for 200,000 rows).
	out, err := db.readMessages(ctx, sqlOutboxPlan, sqlOutboxMessages, runID, from, to)
	if err != nil {
		return nil, db.wrap(fmt.Sprintf("read outbox [%d,%d) of run %s", from, to, runID), err)
	}
	return out, nil
}

// readMessages runs query, which selects messages (the columns of OutboxMessage, in its order),
// in a read-only transaction with the plan settings plan.
func (db *DB) readMessages(ctx context.Context, plan, query string, args ...any) ([]OutboxMessage, error) {
	var out []OutboxMessage
	err := pgx.BeginTxFunc(ctx, db.pool, pgx.TxOptions{AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, plan); err != nil {
			return fmt.Errorf("set plan options: %w", err)
		}
		rows, err := tx.Query(ctx, query, args...)
		if err != nil {
			return err
		}
		var m OutboxMessage
		var date pgtype.Text
		_, err = pgx.ForEachRow(rows, []any{&m.Key, &m.Version, &m.RunID, &m.CreatedAt, &m.Account, &m.ID, &date,
			&m.Amount, &m.Wording, &m.Error, &m.Tag, &m.Annotation}, func() error {
			m.Date = date.String
			out = append(out, m)
			m.Error, m.Tag, m.Annotation = nil, nil, nil
			return nil
		})
		return err
	})
	return out, err
}

// MarkDelivered deletes the outbox rows of keys, whose messages the broker acknowledged, and
// returns how many it deleted (rows already deleted are not counted). It returns the wrapped
// connection or SQL error; on error nothing is deleted.
func (db *DB) MarkDelivered(ctx context.Context, keys []OutboxKey) (int64, error) {
	if len(keys) == 0 {
		return 0, nil
	}
	ks := make([]int64, len(keys))
	vs := make([]int32, len(keys))
	for i, k := range keys {
		ks[i], vs[i] = k.Key, k.Version
	}
	var deleted int64
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		// Probe the outbox's primary key for each key, as OutboxMessages does, for the same reason.
		if _, err := tx.Exec(ctx, sqlOutboxPlan); err != nil {
			return fmt.Errorf("set plan options: %w", err)
		}
		tag, err := tx.Exec(ctx, sqlMarkDelivered, ks, vs)
		deleted = tag.RowsAffected()
		return err
	})
	if err != nil {
		return 0, db.wrap(fmt.Sprintf("mark %d messages delivered", len(keys)), err)
	}
	return deleted, nil
}

// PendingOutbox returns the number of the run's messages not delivered yet.
func (db *DB) PendingOutbox(ctx context.Context, runID string) (int64, error) {
	var n int64
	if err := db.pool.QueryRow(ctx, sqlCountPending, runID).Scan(&n); err != nil {
		return 0, db.wrap("count pending messages of run "+runID, err)
	}
	return n, nil
}
