package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

// Results are delivered at least once through two transactional outboxes, written in the same
// database transaction as what they describe, so that a result is never stored without its
// message nor a message written for a result that was not:
//
//   - A run's new transactions (version 1): FinishIngestFile, when FileFacts.Outbox is set,
//     writes one outbox_runs row for the run (migration 011), which says that the run's lines of
//     transactions it inserted are to publish. The publisher reads a chunk's messages by range of
//     lines with RunMessages and records, per chunk, the line up to which the broker acknowledged
//     every message (AckRunLines); FinishRunChunk purges the run's rows once every chunk is
//     acknowledged. A retry starts at that line: what is sent again is at most a slice.
//   - Reclassifications, and runs settled before outbox_runs existed: one outbox row per message
//     (migration 007). The publisher reads them with OutboxMessages (or ReclassifiedMessages),
//     publishes them and deletes the rows the broker acknowledged with MarkDelivered.

const (
	// New transactions and their outbox rows, in one statement: RowsAffected counts the outbox
	// rows, one per inserted transaction. $1 is the run id. Only for a run that has outbox rows
	// already (settled before outbox_runs existed): a run's messages are of one kind.
	sqlInsertNewWithOutbox = `
WITH ins AS (` + sqlInsertNew + `
    RETURNING key
)
INSERT INTO outbox (txn_key, version, run_id)
SELECT key, 1, $1 FROM ins`

	// A run's messages still to publish: its outbox rows, and its lines of the transactions its
	// outbox_runs row names that no outbox_acked row of the run covers (the chunk whose first line
	// is the greatest at or before the line: the chunks of a run do not overlap), found by probing
	// outbox_acked's primary key for each line. The run's row is read once (uncorrelated
	// subqueries): without one, the lines' index scan finds nothing at once. $1 is the run id.
	sqlCountPending = `
SELECT (SELECT count(*) FROM outbox WHERE run_id = $1)
     + (SELECT count(*)
        FROM run_lines rl
        WHERE rl.run_id = $1 AND rl.seq <= (SELECT max_seq FROM outbox_runs WHERE run_id = $1)
          AND (rl.txn_key >> 32) = (SELECT num FROM outbox_runs WHERE run_id = $1)
          AND coalesce((SELECT a.next_seq FROM outbox_acked a
                        WHERE a.run_id = $1 AND a.from_seq <= rl.seq
                        ORDER BY a.from_seq DESC LIMIT 1), 0) <= rl.seq)`

	// The messages of a run's lines in [$2, $3) whose transaction the ingestion its outbox_runs row
	// names inserted (their key carries its number in the high 32 bits): the fields come from the
	// line, its tag and its annotation, as for sqlOutboxMessages, but no outbox row is probed. The
	// run's row is read once (uncorrelated subqueries), not once per line; none when it has none.
	sqlRunMessages = `
SELECT rl.txn_key, 1, rl.run_id, $6::timestamptz,
       rl.account, coalesce(rl.id_as_read, rl.id), to_char(rl.date, 'YYYY-MM-DD'),
       rl.amount::text, rl.wording, rl.error, t.tag, a.annotation
FROM run_lines rl
LEFT JOIN (SELECT txn_key, tag FROM tags WHERE txn_key >= $4 AND txn_key < $5) t ON t.txn_key = rl.txn_key
LEFT JOIN (SELECT txn_key, annotation FROM annotations WHERE txn_key >= $4 AND txn_key < $5) a ON a.txn_key = rl.txn_key
WHERE rl.run_id = $1 AND rl.seq >= $2 AND rl.seq < $3 AND rl.txn_key >= $4 AND rl.txn_key < $5
ORDER BY rl.txn_key`

	// The messages of the run's lines in [$2, $3) whose keys its outbox_runs row names, when that
	// row is of an earlier ingestion of the run (started over since): their keys are not the keys
	// of the lines (their seq may have changed), so the lines are read by range of seq and the
	// result tables probed by key for each line, as OutboxMessages does and for the same reasons.
	sqlRunMessagesOfEarlierIngestion = `
SELECT rl.txn_key, 1, rl.run_id, $5::timestamptz,
       rl.account, coalesce(rl.id_as_read, rl.id), to_char(rl.date, 'YYYY-MM-DD'),
       rl.amount::text, rl.wording, rl.error, t.tag, a.annotation
FROM run_lines rl
LEFT JOIN tags t ON t.txn_key = rl.txn_key
LEFT JOIN annotations a ON a.txn_key = rl.txn_key
WHERE rl.run_id = $1 AND rl.seq >= $2 AND rl.seq < $3 AND (rl.txn_key >> 32) = $4
ORDER BY rl.seq`

	// The plan of sqlRunMessages: the run's lines by range of seq, sorted by key (the lines of a
	// slice), merged with the result tables read by range of key. Probing the result tables line by
	// line cost PostgreSQL twice as much (7.4 s against 3.2 s of one core for 1,000,000 lines).
	sqlRunMessagesPlan = `SET LOCAL enable_hashjoin = off; SET LOCAL enable_nestloop = off;
SET LOCAL enable_seqscan = off; SET LOCAL enable_bitmapscan = off`

	// Where a run's chunk starting at line $2 stands: whether the run has an outbox_runs row, and
	// the chunk's acknowledged line (NULL when none). $1 is the run id.
	sqlRunChunkStart = `
SELECT EXISTS (SELECT 1 FROM outbox_runs WHERE run_id = $1),
       (SELECT next_seq FROM outbox_acked WHERE run_id = $1 AND from_seq = $2)`

	// Record that the chunk of run $1 starting at line $2 had every message of its lines before
	// $3 acknowledged; the line only grows. Nothing for a run already purged.
	sqlAckRunLines = `
INSERT INTO outbox_acked (run_id, from_seq, next_seq)
SELECT $1, $2, $3 WHERE EXISTS (SELECT 1 FROM outbox_runs WHERE run_id = $1)
ON CONFLICT (run_id, from_seq) DO UPDATE SET next_seq = greatest(outbox_acked.next_seq, excluded.next_seq)`

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

// RunChunkStart returns where the run's chunk of lines starting at from stands: byRun is whether
// the run's new transactions are delivered by range of lines (the run has an outbox_runs row:
// RunMessages, AckRunLines, FinishRunChunk), and start the chunk's first line not known to be
// acknowledged, from when none is. Without byRun, the run's messages, if any, are outbox rows
// (OutboxMessages, MarkDelivered). It returns the wrapped connection or SQL error.
func (db *DB) RunChunkStart(ctx context.Context, runID string, from int64) (start int64, byRun bool, err error) {
	var next *int64
	if err := db.pool.QueryRow(ctx, sqlRunChunkStart, runID, from).Scan(&byRun, &next); err != nil {
		return 0, false, db.wrap(fmt.Sprintf("read where chunk %d of run %s stands", from, runID), err)
	}
	start = from
	if next != nil && *next > from {
		start = *next
	}
	return start, byRun, nil
}

// RunMessages returns the messages of the run's lines with from <= seq < to whose transactions
// its outbox_runs row says are to publish (the run's new transactions), in the order of the
// lines; none when the run has no such row. It returns the wrapped connection or SQL error.
func (db *DB) RunMessages(ctx context.Context, runID string, from, to int64) ([]OutboxMessage, error) {
	var out []OutboxMessage
	err := pgx.BeginTxFunc(ctx, db.pool, pgx.TxOptions{AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		plan, query, args, err := runMessagesQuery(ctx, tx, runID, from, to)
		if err != nil || args == nil {
			return err
		}
		out, err = queryMessages(ctx, tx, plan, query, args...)
		return err
	})
	if err != nil {
		return nil, db.wrap(fmt.Sprintf("read messages [%d,%d) of run %s", from, to, runID), err)
	}
	return out, nil
}

// runMessagesQuery returns the statement that reads the messages of the run's lines in
// [from, to), its plan settings and its arguments; no arguments when there is nothing to read (no
// outbox_runs row, or no line in the range). The run's new transactions are the lines whose keys
// carry the number of the ingestion the outbox_runs row names. When that is the run's current
// ingestion, the key of line seq is lineKey(num, seq): those lines' keys, and their results', are
// the keys in [lineKey(num, from), lineKey(num, to)) (sqlRunMessages); otherwise they are found
// line by line (sqlRunMessagesOfEarlierIngestion).
func runMessagesQuery(ctx context.Context, tx pgx.Tx, runID string, from, to int64) (plan, query string, args []any, err error) {
	var num, current, maxSeq int64
	var created time.Time
	err = tx.QueryRow(ctx, `SELECT o.num, r.num, o.max_seq, o.created_at FROM outbox_runs o JOIN runs r USING (run_id)
		WHERE o.run_id = $1`, runID).Scan(&num, &current, &maxSeq, &created)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", "", nil, nil
	}
	if err != nil {
		return "", "", nil, fmt.Errorf("read outbox_runs: %w", err)
	}
	from, to = max(from, 1), min(to, maxSeq+1)
	if from >= to {
		return "", "", nil, nil
	}
	if num != current {
		return sqlOutboxPlan, sqlRunMessagesOfEarlierIngestion, []any{runID, from, to, num, created}, nil
	}
	return sqlRunMessagesPlan, sqlRunMessages, []any{runID, from, to, num<<32 + from, num<<32 + to, created}, nil
}

// AckRunLines records that the broker acknowledged every message of the run's lines from the
// chunk's first line, from, to next (excluded): a retried Publish of the chunk starts at next.
// The recorded line never goes back, and nothing is recorded for a run without an outbox_runs
// row. It returns the wrapped connection or SQL error.
func (db *DB) AckRunLines(ctx context.Context, runID string, from, next int64) error {
	if _, err := db.pool.Exec(ctx, sqlAckRunLines, runID, from, next); err != nil {
		return db.wrap(fmt.Sprintf("record lines [%d,%d) of run %s acknowledged", from, next, runID), err)
	}
	return nil
}

// FinishRunChunk records that the broker acknowledged every message of the run's chunk of lines
// [from, to) (AckRunLines up to to) and, when the run's acknowledged chunks now cover all its
// lines 1..max_seq, deletes the run's outbox_runs and outbox_acked rows: it returns whether it
// did. Chunks finishing at once are serialised by the run's outbox_runs row, so that the last one
// sees the others. It returns the wrapped connection or SQL error; on error nothing is changed.
func (db *DB) FinishRunChunk(ctx context.Context, runID string, from, to int64) (purged bool, err error) {
	err = pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		var maxSeq int64
		err := tx.QueryRow(ctx, "SELECT max_seq FROM outbox_runs WHERE run_id = $1 FOR UPDATE", runID).Scan(&maxSeq)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil // purged already, or delivered per outbox row
		}
		if err != nil {
			return fmt.Errorf("lock outbox_runs: %w", err)
		}
		if _, err := tx.Exec(ctx, sqlAckRunLines, runID, from, to); err != nil {
			return fmt.Errorf("record chunk: %w", err)
		}
		// A statement after the lock: it sees the chunks of others that finished first.
		rows, err := tx.Query(ctx, "SELECT from_seq, next_seq FROM outbox_acked WHERE run_id = $1 ORDER BY from_seq", runID)
		if err != nil {
			return fmt.Errorf("read acknowledged chunks: %w", err)
		}
		covered := int64(1) // every line before it is acknowledged
		var f, n int64
		_, err = pgx.ForEachRow(rows, []any{&f, &n}, func() error {
			if f <= covered {
				covered = max(covered, n)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("read acknowledged chunks: %w", err)
		}
		if covered <= maxSeq {
			return nil
		}
		if _, err := tx.Exec(ctx, "DELETE FROM outbox_acked WHERE run_id = $1", runID); err != nil {
			return fmt.Errorf("delete outbox_acked: %w", err)
		}
		if _, err := tx.Exec(ctx, "DELETE FROM outbox_runs WHERE run_id = $1", runID); err != nil {
			return fmt.Errorf("delete outbox_runs: %w", err)
		}
		purged = true
		return nil
	})
	if err != nil {
		return false, db.wrap(fmt.Sprintf("finish chunk [%d,%d) of run %s", from, to, runID), err)
	}
	return purged, nil
}

// readMessages runs query, which selects messages (the columns of OutboxMessage, in its order),
// in a read-only transaction with the plan settings plan.
func (db *DB) readMessages(ctx context.Context, plan, query string, args ...any) ([]OutboxMessage, error) {
	var out []OutboxMessage
	err := pgx.BeginTxFunc(ctx, db.pool, pgx.TxOptions{AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		var err error
		out, err = queryMessages(ctx, tx, plan, query, args...)
		return err
	})
	return out, err
}

// queryMessages runs query, which selects messages (the columns of OutboxMessage, in its order),
// in tx with the plan settings plan, and reads them.
func queryMessages(ctx context.Context, tx pgx.Tx, plan, query string, args ...any) ([]OutboxMessage, error) {
	if _, err := tx.Exec(ctx, plan); err != nil {
		return nil, fmt.Errorf("set plan options: %w", err)
	}
	rows, err := tx.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	var out []OutboxMessage
	var m OutboxMessage
	var date pgtype.Text
	_, err = pgx.ForEachRow(rows, []any{&m.Key, &m.Version, &m.RunID, &m.CreatedAt, &m.Account, &m.ID, &date,
		&m.Amount, &m.Wording, &m.Error, &m.Tag, &m.Annotation}, func() error {
		m.Date = date.String
		out = append(out, m)
		m.Error, m.Tag, m.Annotation = nil, nil, nil
		return nil
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

// PendingOutbox returns the number of the run's messages not delivered yet: its outbox rows, and
// its new transactions not acknowledged when it has an outbox_runs row.
func (db *DB) PendingOutbox(ctx context.Context, runID string) (int64, error) {
	var n int64
	if err := db.pool.QueryRow(ctx, sqlCountPending, runID).Scan(&n); err != nil {
		return 0, db.wrap("count pending messages of run "+runID, err)
	}
	return n, nil
}
