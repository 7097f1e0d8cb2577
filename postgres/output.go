package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/jackc/pgx/v5"
)

// COPY takes no bind parameters: the run id reaches the queries through the
// transaction-local setting txflow.run_id (set_config), never through string
// concatenation.
const (
	sqlOutput = `COPY (
    SELECT txflow_safe_cell(NULLIF(rl.id, '')) AS id,
           round(rl.amount, 2)::text AS amount,
           txflow_safe_cell(NULLIF(rl.wording, '')) AS wording,
           %s AS tag,
           %s AS annotation,
           txflow_safe_cell(NULLIF(rl.error, '')) AS error
    FROM run_lines rl
    %s
    WHERE rl.run_id = current_setting('txflow.run_id')
    ORDER BY rl.seq
) TO STDOUT (FORMAT csv, HEADER true)`

	sqlErrorReport = `COPY (
    SELECT line,
           txflow_safe_cell(NULLIF(id, '')) AS id,
           txflow_safe_cell(NULLIF(amount, '')) AS amount,
           txflow_safe_cell(NULLIF(wording, '')) AS wording,
           txflow_safe_cell(NULLIF(reason, '')) AS reason
    FROM (
        SELECT line, id, amount, wording, reason
        FROM rejected_rows
        WHERE run_id = current_setting('txflow.run_id')
        UNION ALL
        SELECT line, id, raw_amount, wording, error
        FROM run_lines
        WHERE run_id = current_setting('txflow.run_id') AND error IS NOT NULL
    ) r
    ORDER BY line
) TO STDOUT (FORMAT csv, HEADER true)`
)

// WriteOutput streams the run's output_transactions.csv to w with COPY ... TO
// STDOUT (FORMAT csv): header id,amount,wording,tag,annotation,error; one row
// per run line in seq order; amount with two decimals and a dot (12.50,
// -3.00, 0.00); an empty field where there is no tag, annotation or error;
// the annotation is empty on a line in error; text cells go through the
// txn.SafeCell rule (SQL function txflow_safe_cell). Rows end with "\n";
// fields are quoted only when they hold a comma, a quote or a line break.
// opts.OmitTags (OmitAnnotations) leaves the tag (annotation) column empty:
// the workflow asks for it when that stage failed, so that no partial column
// is exported. It returns the number of data rows, ErrRunNotFound (wrapped)
// for an unknown run, and the wrapped connection, SQL or w.Write error.
func (db *DB) WriteOutput(ctx context.Context, runID string, opts OutputOptions, w io.Writer) (int64, error) {
	tag, annotation := "txflow_safe_cell(NULLIF(tg.tag, ''))", "CASE WHEN rl.error IS NULL THEN txflow_safe_cell(NULLIF(an.annotation, '')) END"
	joins := []string{"LEFT JOIN tags tg ON tg.transaction_id = coalesce(rl.id_nfc, rl.id)",
		"LEFT JOIN annotations an ON an.transaction_id = coalesce(rl.id_nfc, rl.id)"}
	if opts.OmitTags {
		tag, joins[0] = "NULL::text", ""
	}
	if opts.OmitAnnotations {
		annotation, joins[1] = "NULL::text", ""
	}
	query := fmt.Sprintf(sqlOutput, tag, annotation, strings.Join(joins, "\n    "))
	n, err := db.copyOut(ctx, runID, query, w)
	if err != nil {
		return n, db.wrap("write output of run "+runID, err)
	}
	return n, nil
}

// OutputOptions leave columns of output_transactions.csv empty.
type OutputOptions struct {
	OmitTags        bool
	OmitAnnotations bool
}

// WriteErrorReport streams the run's error_report.csv to w: header
// line,id,amount,wording,reason; every rejected row of the run and every run
// line with an error (amount as read from the file), ordered by line, with
// the txn.SafeCell rule applied to text cells, the raw amount included (a
// plain number such as -2500000.00 or -1 234,56 is written as read). It returns
// the number of data rows, ErrRunNotFound (wrapped) for an unknown run, and
// the wrapped connection, SQL or w.Write error.
func (db *DB) WriteErrorReport(ctx context.Context, runID string, w io.Writer) (int64, error) {
	n, err := db.copyOut(ctx, runID, sqlErrorReport, w)
	if err != nil {
		return n, db.wrap("write error report of run "+runID, err)
	}
	return n, nil
}

// copyOut runs a COPY TO STDOUT query for runID in a read-only snapshot.
func (db *DB) copyOut(ctx context.Context, runID, query string, w io.Writer) (int64, error) {
	var n int64
	err := pgx.BeginTxFunc(ctx, db.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		var exists bool
		if err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM runs WHERE run_id = $1)", runID).Scan(&exists); err != nil {
			return err
		}
		if !exists {
			return ErrRunNotFound
		}
		if _, err := tx.Exec(ctx, "SET LOCAL work_mem = '256MB'"); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "SELECT set_config('txflow.run_id', $1, true)", runID); err != nil {
			return err
		}
		tag, err := tx.Conn().PgConn().CopyTo(ctx, w, query)
		if err != nil {
			return fmt.Errorf("copy: %w", err)
		}
		n = tag.RowsAffected()
		return nil
	})
	return n, err
}

// RunCounts are the current totals of a run.
type RunCounts struct {
	Accepted  int64 // run lines (including lines in error)
	Rejected  int64 // rejected rows
	Errors    int64 // run lines with an error
	Tagged    int64 // run lines whose transaction has a non-null tag
	Annotated int64 // run lines without error whose transaction has a non-null annotation
}

// RunCounts returns the run's current counts. It returns ErrRunNotFound
// (wrapped) for an unknown run and the wrapped connection or SQL error.
func (db *DB) RunCounts(ctx context.Context, runID string) (RunCounts, error) {
	var c RunCounts
	err := db.pool.QueryRow(ctx, `
SELECT
    (SELECT count(*) FROM run_lines WHERE run_id = r.run_id),
    (SELECT count(*) FROM rejected_rows WHERE run_id = r.run_id),
    (SELECT count(*) FROM run_lines WHERE run_id = r.run_id AND error IS NOT NULL),
    (SELECT count(*) FROM run_lines rl JOIN tags t ON t.transaction_id = coalesce(rl.id_nfc, rl.id)
     WHERE rl.run_id = r.run_id AND t.tag IS NOT NULL),
    (SELECT count(*) FROM run_lines rl JOIN annotations a ON a.transaction_id = coalesce(rl.id_nfc, rl.id)
     WHERE rl.run_id = r.run_id AND rl.error IS NULL AND a.annotation IS NOT NULL)
FROM runs r
WHERE r.run_id = $1`, runID).Scan(&c.Accepted, &c.Rejected, &c.Errors, &c.Tagged, &c.Annotated)
	if errors.Is(err, pgx.ErrNoRows) {
		err = ErrRunNotFound
	}
	if err != nil {
		return RunCounts{}, db.wrap("run counts of "+runID, err)
	}
	return c, nil
}
