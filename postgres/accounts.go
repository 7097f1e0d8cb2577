package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/txflow/txflow/txn"
)

// sqlExportAccount lists an account's stored transactions, in id order, with
// the columns of output_transactions.csv. COPY takes no bind parameters: the
// account reaches it through the transaction-local setting txflow.account.
const sqlExportAccount = `COPY (
    SELECT txflow_safe_cell(NULLIF(coalesce(t.id_as_read, t.id), '')) AS id,
           round(t.amount, 2)::text AS amount,
           txflow_safe_cell(NULLIF(t.wording, '')) AS wording,
           txflow_safe_cell(NULLIF(tg.tag, '')) AS tag,
           CASE WHEN t.error IS NULL THEN txflow_safe_cell(NULLIF(an.annotation, '')) END AS annotation,
           txflow_safe_cell(NULLIF(t.error, '')) AS error
    FROM transactions t
    LEFT JOIN tags tg ON tg.account = t.account AND tg.transaction_id = t.id
    LEFT JOIN annotations an ON an.account = t.account AND an.transaction_id = t.id
    WHERE t.account = current_setting('txflow.account')
    ORDER BY t.id
) TO STDOUT (FORMAT csv, HEADER true)`

// ExportAccount streams the stored transactions of account to w as CSV with
// COPY ... TO STDOUT, any number of them: header
// id,amount,wording,tag,annotation,error, one row per transaction in id
// order, the id as first read, the values written as WriteOutput writes them
// (error is the error of the line that stored the transaction, such as
// amount_too_high). from and to must be nil: transactions carry no date yet.
// It returns the number of data rows (0 for an account with no transaction),
// an error for an invalid account or a date bound, and the wrapped
// connection, SQL or w.Write error.
func (db *DB) ExportAccount(ctx context.Context, account string, from, to *time.Time, w io.Writer) (int64, error) {
	a, err := txn.ParseAccount(account)
	if err != nil {
		return 0, fmt.Errorf("export account: %w", err)
	}
	if from != nil || to != nil {
		return 0, errors.New("export account " + a + ": transactions have no date yet, a date range cannot be exported")
	}
	var n int64
	err = pgx.BeginTxFunc(ctx, db.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SET LOCAL work_mem = '256MB'"); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "SELECT set_config('txflow.account', $1, true)", a); err != nil {
			return err
		}
		tag, err := tx.Conn().PgConn().CopyTo(ctx, w, sqlExportAccount)
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
// its transactions, their tags and annotations, the run lines and the
// rejected rows of every run filed under it. Other accounts' rows, and the
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
			table string
			n     *int64
		}{
			{"tags", &c.Tags},
			{"annotations", &c.Annotations},
			{"transactions", &c.Transactions},
			{"run_lines", &c.RunLines},
			{"rejected_rows", &c.RejectedRows},
		} {
			tag, err := tx.Exec(ctx, "DELETE FROM "+pgx.Identifier{d.table}.Sanitize()+" WHERE account = $1", a)
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
