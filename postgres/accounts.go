package postgres

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/txflow/txflow/txn"
)

// sqlExportAccount lists an account's stored transactions, in id order, with
// the columns of output_transactions.csv (%s: the date column, when the
// account has dates). COPY takes no bind parameters: the account and the
// date bounds reach it through the transaction-local settings txflow.account,
// txflow.from and txflow.to (” for no bound).
const sqlExportAccount = `COPY (
    SELECT txflow_safe_cell(NULLIF(coalesce(t.id_as_read, t.id), '')) AS id,%s
           round(t.amount, 2)::text AS amount,
           txflow_safe_cell(NULLIF(t.wording, '')) AS wording,
           txflow_safe_cell(NULLIF(tg.tag, '')) AS tag,
           CASE WHEN t.error IS NULL THEN txflow_safe_cell(NULLIF(an.annotation, '')) END AS annotation,
           txflow_safe_cell(NULLIF(t.error, '')) AS error
    FROM transactions t
    LEFT JOIN tags tg ON tg.txn_key = t.key
    LEFT JOIN annotations an ON an.txn_key = t.key
    WHERE t.account = current_setting('txflow.account')
      AND (NULLIF(current_setting('txflow.from'), '') IS NULL OR t.date >= NULLIF(current_setting('txflow.from'), '')::date)
      AND (NULLIF(current_setting('txflow.to'), '') IS NULL OR t.date <= NULLIF(current_setting('txflow.to'), '')::date)
    ORDER BY t.id
) TO STDOUT (FORMAT csv, HEADER true)`

// ExportAccount streams the stored transactions of account to w as CSV with
// COPY ... TO STDOUT, any number of them: header
// id,amount,wording,tag,annotation,error (with a date column, yyyy-mm-dd,
// after the id when any transaction of the account has a date), one row per
// transaction in id order, the id as first read, the values written as
// WriteOutput writes them (error is the error of the line that stored the
// transaction, such as amount_too_high). from and to, when not nil, keep the
// transactions dated from from to to (both included, as dates); a
// transaction without a date is then left out. It returns the number of data
// rows (0 for an account with no transaction), an error for an invalid
// account or a range that ends before it starts, and the wrapped connection,
// SQL or w.Write error.
func (db *DB) ExportAccount(ctx context.Context, account string, from, to *time.Time, w io.Writer) (int64, error) {
	a, err := txn.ParseAccount(account)
	if err != nil {
		return 0, fmt.Errorf("export account: %w", err)
	}
	bound := func(t *time.Time) string {
		if t == nil {
			return ""
		}
		return t.Format(time.DateOnly)
	}
	if from != nil && to != nil && bound(to) < bound(from) {
		return 0, fmt.Errorf("export account %s: the range ends (%s) before it starts (%s)", a, bound(to), bound(from))
	}
	var n int64
	err = pgx.BeginTxFunc(ctx, db.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SET LOCAL work_mem = '256MB'"); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `SELECT set_config('txflow.account', $1, true), set_config('txflow.from', $2, true),
			set_config('txflow.to', $3, true)`, a, bound(from), bound(to)); err != nil {
			return err
		}
		var dated bool
		if err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM transactions WHERE account = $1 AND date IS NOT NULL)", a).
			Scan(&dated); err != nil {
			return err
		}
		date := ""
		if dated {
			date = "\n           " + dateColumn("t.date") + ","
		}
		tag, err := tx.Conn().PgConn().CopyTo(ctx, w, fmt.Sprintf(sqlExportAccount, date))
		if err != nil {
			return fmt.Errorf("copy: %w", err)
		}
		n = tag.RowsAffected()
		return nil
	})
	if err != nil {
		return n, db.wrap("export account "+a, err)
	}
	return n, nil
}

// PurgeCounts are the rows PurgeAccount deleted, per table.
type PurgeCounts struct {
	Transactions int64
	Tags         int64
	Annotations  int64
	RunLines     int64
	RejectedRows int64
}

// PurgeAccount deletes everything stored under account, in one transaction:
// its transactions, their tags and annotations (and their messages not
// delivered yet), the run lines and the rejected rows of every run filed under it. Other accounts' rows, and the
// runs themselves (a run may hold lines of several accounts), are kept. It
// waits for a settlement in progress (FinishIngest) and holds it off, so that
// no transaction of the account is inserted half-way. Purge an account while
// none of its runs is in progress: a run still loading lines of the account
// adds them again when it settles, and a chunk being tagged or annotated may
// write results for transactions just deleted. It returns what it deleted, an error for an invalid account, and the wrapped
// connection or SQL error; on error nothing is deleted.
func (db *DB) PurgeAccount(ctx context.Context, account string) (PurgeCounts, error) {
	a, err := txn.ParseAccount(account)
	if err != nil {
		return PurgeCounts{}, fmt.Errorf("purge account: %w", err)
	}
	var c PurgeCounts
	err = pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		if err := lockSettlement(ctx, tx); err != nil {
			return err
		}
		for _, d := range []struct {
			table, where string
			n            *int64
		}{
			{"tags", "txn_key IN (SELECT key FROM transactions WHERE account = $1)", &c.Tags},
			{"annotations", "txn_key IN (SELECT key FROM transactions WHERE account = $1)", &c.Annotations},
			// Messages of its transactions not delivered yet: their results are gone.
			{"outbox", "txn_key IN (SELECT key FROM transactions WHERE account = $1)", new(int64)},
			{"transactions", "account = $1", &c.Transactions},
			{"run_lines", "account = $1", &c.RunLines},
			{"rejected_rows", "account = $1", &c.RejectedRows},
			// Runs whose messages are to publish by range of lines and have no line left.
			{"outbox_runs", "$1 <> '' AND NOT EXISTS (SELECT 1 FROM run_lines rl WHERE rl.run_id = outbox_runs.run_id)", new(int64)},
			{"outbox_acked", "$1 <> '' AND NOT EXISTS (SELECT 1 FROM outbox_runs o WHERE o.run_id = outbox_acked.run_id)", new(int64)},
		} {
			tag, err := tx.Exec(ctx, "DELETE FROM "+pgx.Identifier{d.table}.Sanitize()+" WHERE "+d.where, a)
			if err != nil {
				return fmt.Errorf("delete %s: %w", d.table, err)
			}
			*d.n = tag.RowsAffected()
		}
		return nil
	})
	if err != nil {
		return PurgeCounts{}, db.wrap("purge account "+a, err)
	}
	return c, nil
}
