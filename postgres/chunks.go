package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/shopspring/decimal"
)

// ChunkCounts reports the work of TagChunk or AnnotateChunk.
type ChunkCounts struct {
	Lines    int64 // run lines with from <= seq < to
	Computed int64 // results newly written by this call
}

// resultTable describes tags or annotations.
type resultTable struct {
	name   string // table
	column string // result column
	// pending selects (transaction key, input) of the lines in range whose
	// transaction has no result yet; $1 run id, $2 from, $3 to.
	pending string
	// fresh selects (transaction key, input) of all the lines in range, for a
	// run whose transactions are all its own (runs.all_new).
	fresh string
}

var (
	tagsTable = resultTable{
		name:   "tags",
		column: "tag",
		pending: `
SELECT rl.txn_key, rl.wording
FROM run_lines rl
WHERE rl.run_id = $1 AND rl.seq >= $2 AND rl.seq < $3
  AND NOT EXISTS (SELECT 1 FROM tags t WHERE t.txn_key = rl.txn_key)`,
		fresh: `
SELECT rl.txn_key, rl.wording
FROM run_lines rl
WHERE rl.run_id = $1 AND rl.seq >= $2 AND rl.seq < $3`,
	}
	annotationsTable = resultTable{
		name:   "annotations",
		column: "annotation",
		pending: `
SELECT rl.txn_key, rl.amount
FROM run_lines rl
WHERE rl.run_id = $1 AND rl.seq >= $2 AND rl.seq < $3 AND rl.error IS NULL
  AND NOT EXISTS (SELECT 1 FROM annotations a WHERE a.txn_key = rl.txn_key)`,
		fresh: `
SELECT rl.txn_key, rl.amount
FROM run_lines rl
WHERE rl.run_id = $1 AND rl.seq >= $2 AND rl.seq < $3 AND rl.error IS NULL`,
	}
)

// sqlChunkLines reads whether the run ($1) is settled, whether its transactions are all its own
// (runs.all_new), its number, and how many of its lines have $2 <= seq < $3. A settled run whose
// every loaded line stored its transaction (new_count = next_seq - 1: each new transaction is one
// line of the run, each line's seq is below next_seq) has every seq from 1 to next_seq - 1: its
// lines in range are counted from the bounds instead of read from the index (a chunk of 100,000
// lines, about 30 ms of PostgreSQL). The lines of any other run (one with a line moved out as a
// duplicate or a conflict, or a line whose transaction was stored before) are counted. (An account
// purge deletes settled lines too, but not while one of the account's runs is in progress: see
// PurgeAccount.)
const sqlChunkLines = `
SELECT r.ingested_at IS NOT NULL, r.all_new, r.num,
       CASE WHEN r.ingested_at IS NOT NULL AND r.new_count = r.next_seq - 1
            THEN greatest(0, least($3::bigint, r.next_seq) - greatest($2::bigint, 1))
            ELSE (SELECT count(*) FROM run_lines WHERE run_id = r.run_id AND seq >= $2 AND seq < $3)
       END
FROM runs r WHERE r.run_id = $1`

// TagChunk computes tags for the run_lines of runID with from <= seq < to
// whose transaction has no row in tags yet: it reads (transaction key, wording) in one
// query, calls tag(wording) for each, and writes the results with one COPY
// ("" is stored as NULL: tagged, no tag word). If a concurrent run wrote some
// of the same ids first, it retries through a staging table and INSERT ... ON
// CONFLICT DO NOTHING. It is idempotent: a second call computes nothing.
// It returns ErrRunNotFound or ErrRunNotIngested (wrapped) for a run that is
// unknown or not settled by FinishIngest, and the wrapped connection or SQL
// error.
func (db *DB) TagChunk(ctx context.Context, runID string, from, to int64, tag func(wording string) string) (ChunkCounts, error) {
	return db.TagChunkVersion(ctx, runID, from, to, 0, tag)
}

// TagChunkVersion is TagChunk recording rulesVersion, the version of the rules tag applies, with
// each result it writes (tags.rules_version; NULL when 0, for a run started before versions).
func (db *DB) TagChunkVersion(ctx context.Context, runID string, from, to int64, rulesVersion int, tag func(wording string) string) (ChunkCounts, error) {
	c, err := computeChunk(ctx, db, tagsTable, runID, from, to, rulesVersion, func(rows pgx.Rows) (int64, string, error) {
		var key int64
		var wording string
		if err := rows.Scan(&key, &wording); err != nil {
			return 0, "", err
		}
		return key, tag(wording), nil
	})
	if err != nil {
		return ChunkCounts{}, db.wrap(fmt.Sprintf("tag chunk [%d,%d) of run %s", from, to, runID), err)
	}
	return c, nil
}

// AnnotateChunk computes annotations, like TagChunk, for the run_lines of
// runID with from <= seq < to that have no error and whose transaction has no
// row in annotations yet, calling annotate(amount) for each ("" is stored as
// NULL: annotated, no annotation). Lines counts every line in range, errors
// included. It is idempotent and returns the same errors as TagChunk.
func (db *DB) AnnotateChunk(ctx context.Context, runID string, from, to int64, annotate func(amount decimal.Decimal) string) (ChunkCounts, error) {
	return db.AnnotateChunkVersion(ctx, runID, from, to, 0, annotate)
}

// AnnotateChunkVersion is AnnotateChunk recording rulesVersion with each result it writes
// (annotations.rules_version; NULL when 0), like TagChunkVersion.
func (db *DB) AnnotateChunkVersion(ctx context.Context, runID string, from, to int64, rulesVersion int, annotate func(amount decimal.Decimal) string) (ChunkCounts, error) {
	c, err := computeChunk(ctx, db, annotationsTable, runID, from, to, rulesVersion, func(rows pgx.Rows) (int64, string, error) {
		var key int64
		if err := rows.Scan(&key, nil); err != nil {
			return 0, "", err
		}
		amount, err := readAmount(rows.RawValues()[1], rows.FieldDescriptions()[1].Format)
		if err != nil {
			return 0, "", fmt.Errorf("amount of the transaction of key %d: %w", key, err)
		}
		return key, annotate(amount), nil
	})
	if err != nil {
		return ChunkCounts{}, db.wrap(fmt.Sprintf("annotate chunk [%d,%d) of run %s", from, to, runID), err)
	}
	return c, nil
}

func nullIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// chunkResult is the result of one line of a chunk; "" is stored as NULL.
type chunkResult struct {
	key    int64 // the transaction's key
	result string
}

// resultRows feeds results to COPY as (txn_key, result, run_id, rules_version) rows, one
// reused row at a time: a chunk's results are held as compact structs, not as
// a slice of values per line (several chunks are in flight at once, and this
// is most of a worker's memory).
type resultRows struct {
	results []chunkResult
	runID   any
	version any // the rules version, nil for none
	next    int
	row     [4]any
}

func newResultRows(results []chunkResult, runID string, rulesVersion int) *resultRows {
	r := &resultRows{results: results, runID: runID}
	if rulesVersion > 0 {
		r.version = int32(rulesVersion)
	}
	return r
}

func (r *resultRows) Next() bool {
	r.next++
	return r.next <= len(r.results)
}

func (r *resultRows) Values() ([]any, error) {
	x := &r.results[r.next-1]
	r.row = [4]any{x.key, nullIfEmpty(x.result), r.runID, r.version}
	return r.row[:], nil
}

func (r *resultRows) Err() error { return nil }

// computeChunk reads the pending lines of a chunk, computes their results
// with compute and writes them to t, keyed by their transaction's key, with the rules version
// that computed them (none when 0).
func computeChunk(ctx context.Context, db *DB, t resultTable, runID string, from, to int64, rulesVersion int,
	compute func(rows pgx.Rows) (key int64, result string, err error)) (ChunkCounts, error) {
	var c ChunkCounts
	var results []chunkResult
	var run runKeys
	err := pgx.BeginTxFunc(ctx, db.pool, pgx.TxOptions{AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		var ingested, fresh bool
		err := tx.QueryRow(ctx, sqlChunkLines, runID, from, to).Scan(&ingested, &fresh, &run.num, &c.Lines)
		run.allNew = fresh
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			return ErrRunNotFound
		case err != nil:
			return fmt.Errorf("count lines: %w", err)
		case !ingested:
			return ErrRunNotIngested
		case c.Lines == 0:
			return nil
		}
		// Probe the result table's primary key for each line of the chunk:
		// hashing the whole (ever growing) result table for every chunk is
		// what the planner picks when its statistics lag behind.
		if _, err := tx.Exec(ctx, "SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off"); err != nil {
			return fmt.Errorf("set plan options: %w", err)
		}
		// A run whose transactions are all its own has results only from its
		// own chunks, which are disjoint: only a retry of this very chunk can
		// have written some, and then the COPY below fails on the primary key
		// and the chunk goes through the ON CONFLICT path. Skipping the probe
		// of the result table for every line halves the cost of a chunk.
		query := t.pending
		if fresh {
			query = t.fresh
		}
		rows, err := tx.Query(ctx, query, runID, from, to)
		if err != nil {
			return fmt.Errorf("read pending: %w", err)
		}
		defer rows.Close()
		results = make([]chunkResult, 0, c.Lines)
		for rows.Next() {
			key, result, err := compute(rows)
			if err != nil {
				return fmt.Errorf("read pending: %w", err)
			}
			results = append(results, chunkResult{key: key, result: result})
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("read pending: %w", err)
		}
		return nil
	})
	if err != nil {
		return c, err
	}
	if len(results) > 0 {
		if c.Computed, err = writeResults(ctx, db, t, runID, rulesVersion, results); err != nil {
			return c, err
		}
	}
	if c.Lines > 0 {
		// The chunk of a run whose every line stored its transaction wrote the results of all
		// its lines, and no result was there before (a retry, or a later run that stored a result
		// first, makes writeResults skip some): its results are those it counts as it wrote them.
		if run.allNew && c.Computed == int64(len(results)) {
			err = keepChunkCounts(ctx, db, t, runID, run, from, to, results)
		} else {
			err = countChunkResults(ctx, db, t, runID, run, from, to)
		}
		if err != nil {
			return c, fmt.Errorf("count %s of the chunk: %w", t.name, err)
		}
	}
	return c, nil
}

// writeResults writes a chunk's results to t and returns how many it wrote.
func writeResults(ctx context.Context, db *DB, t resultTable, runID string, rulesVersion int, results []chunkResult) (int64, error) {
	columns := []string{"txn_key", t.column, "run_id", "rules_version"}
	n, err := db.pool.CopyFrom(ctx, pgx.Identifier{t.name}, columns, newResultRows(results, runID, rulesVersion))
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" {
		// Another run stored some of these transactions' results since the read.
		n, err = insertSkippingExisting(ctx, db, t, newResultRows(results, runID, rulesVersion))
	}
	if err != nil {
		return 0, fmt.Errorf("write %s: %w", t.name, err)
	}
	return n, nil
}

// insertSkippingExisting writes results through a temporary staging table
// and INSERT ... ON CONFLICT DO NOTHING; it returns the rows inserted.
func insertSkippingExisting(ctx context.Context, db *DB, t resultTable, results pgx.CopyFromSource) (int64, error) {
	var n int64
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `CREATE TEMPORARY TABLE txflow_stage
			(txn_key bigint, result text, run_id text, rules_version integer) ON COMMIT DROP`); err != nil {
			return err
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"txflow_stage"},
			[]string{"txn_key", "result", "run_id", "rules_version"}, results); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, fmt.Sprintf(`
			INSERT INTO %[1]s (txn_key, %[2]s, run_id, rules_version)
			SELECT DISTINCT ON (txn_key) txn_key, result, run_id, rules_version FROM txflow_stage
			ON CONFLICT (txn_key) DO NOTHING`,
			pgx.Identifier{t.name}.Sanitize(), pgx.Identifier{t.column}.Sanitize()))
		n = tag.RowsAffected()
		return err
	})
	return n, err
}
