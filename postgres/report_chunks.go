package postgres

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// The counts of a run's results per chunk (table run_report_chunks): each Tag or Annotate chunk
// counts, with set-based SQL, the results of its lines once written, and the report computed
// beside the dump (RunReportWith) adds them up when they cover the run's lines.

const (
	// Counts a chunk's results and keeps them: $1 run id, $2 ingestion number, $3 result table,
	// $4 and $5 the chunk's lines [from, to); %[1]s is the count query, selecting (value, lines).
	sqlSaveChunkCounts = `
INSERT INTO run_report_chunks (run_id, num, result, from_seq, to_seq, counts)
SELECT $1, $2, $3, $4, $5, coalesce(jsonb_object_agg(c.label, c.n), '{}') FROM (%[1]s) c(label, n)
ON CONFLICT (run_id, result, from_seq) DO UPDATE SET num = EXCLUDED.num, to_seq = EXCLUDED.to_seq, counts = EXCLUDED.counts`

	// The results of a chunk of a run whose every line stored its transaction: under the keys its
	// lines give, a range of the result table's primary key (see sqlReportOwnResults).
	sqlChunkOwnResults = `SELECT %[1]s, count(*) FROM %[2]s
WHERE txn_key >= $2 * 4294967296 + $4 AND txn_key < $2 * 4294967296 + $5 AND %[1]s IS NOT NULL
GROUP BY %[1]s`

	// The same for a run with lines of stored transactions: the chunk's lines joined with the
	// result table, probed by key (see sqlReportJoinedResults).
	sqlChunkJoinedResults = `SELECT x.%[1]s, count(*) FROM run_lines rl JOIN %[2]s x ON x.txn_key = rl.txn_key
WHERE rl.run_id = $1 AND rl.seq >= $4 AND rl.seq < $5 AND x.%[1]s IS NOT NULL %[3]s
GROUP BY x.%[1]s`
)

// outputFilter is the condition on a run's line under which the output shows its result of t:
// no annotation on a line in error.
func (t resultTable) outputFilter() string {
	if t.name == annotationsTable.name {
		return "AND rl.error IS NULL"
	}
	return ""
}

// countChunkResults counts the results of t of the run's lines [from, to) and keeps them.
func countChunkResults(ctx context.Context, db *DB, t resultTable, runID string, run runKeys, from, to int64) error {
	count := fmt.Sprintf(sqlChunkJoinedResults, t.column, t.name, t.outputFilter())
	if run.allNew {
		count = fmt.Sprintf(sqlChunkOwnResults, t.column, t.name)
	}
	return pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		// Probe the result table's primary key for each line, as computeChunk does.
		if _, err := tx.Exec(ctx, "SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off"); err != nil {
			return fmt.Errorf("set plan options: %w", err)
		}
		_, err := tx.Exec(ctx, fmt.Sprintf(sqlSaveChunkCounts, count), runID, run.num, t.name, from, to)
		return err
	})
}

// keepChunkCounts keeps the counts of the results of t of the run's lines [from, to) that the
// caller counted as it wrote them: the results written under the keys of a chunk of a run whose
// every line stored its transaction, when no result was there before (see computeChunk).
func keepChunkCounts(ctx context.Context, db *DB, t resultTable, runID string, run runKeys, from, to int64, results []chunkResult) error {
	counts := map[string]int64{}
	for _, r := range results {
		if r.result != "" { // stored as NULL, not counted
			counts[r.result]++
		}
	}
	raw, err := json.Marshal(counts)
	if err != nil {
		return fmt.Errorf("encode chunk counts: %w", err)
	}
	_, err = db.pool.Exec(ctx, fmt.Sprintf(sqlSaveChunkCounts, "SELECT key, value::bigint FROM jsonb_each_text($6::jsonb)"),
		runID, run.num, t.name, from, to, raw)
	return err
}

// chunkLabelCounts adds up the counts of table (tags, annotations) its chunks kept for the run's
// ingestion num, and says whether they cover the run's lines 1..maxSeq; when they do not, the
// caller scans the results instead.
func chunkLabelCounts(ctx context.Context, tx pgx.Tx, runID string, num, maxSeq int64, table string) ([]LabelCount, bool, error) {
	rows, err := tx.Query(ctx, `SELECT from_seq, to_seq, counts FROM run_report_chunks
		WHERE run_id = $1 AND num = $2 AND result = $3 ORDER BY from_seq`, runID, num, table)
	if err != nil {
		return nil, false, err
	}
	defer rows.Close()
	sums := map[string]int64{}
	next := int64(1) // the first line not covered yet
	for rows.Next() {
		var from, to int64
		var raw []byte
		if err := rows.Scan(&from, &to, &raw); err != nil {
			return nil, false, err
		}
		if from != next {
			return nil, false, nil // a gap, or chunks of another size
		}
		var counts map[string]int64
		if err := json.Unmarshal(raw, &counts); err != nil {
			return nil, false, fmt.Errorf("decode chunk counts: %w", err)
		}
		for label, n := range counts {
			sums[label] += n
		}
		next = to
	}
	if err := rows.Err(); err != nil {
		return nil, false, err
	}
	if next <= maxSeq {
		return nil, false, nil
	}
	out := make([]LabelCount, 0, len(sums))
	for label, n := range sums {
		out = append(out, LabelCount{Label: label, Count: n})
	}
	return out, true, nil
}
