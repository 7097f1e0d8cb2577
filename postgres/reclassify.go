package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/shopspring/decimal"
)

// A reclassification computes the stored transactions of an account (or of all) again under one
// version of the rules (migration 009). PlanReclassify snapshots the target set into
// reclassify_items; DryRunReclassifyChunk computes a range of the items and writes only those
// whose result changes into reclassify_diffs; WriteReclassifyDiff and ReclassifyDiffCounts report
// the diff; ApplyReclassifyChunk writes the new results of a range of the diff, bumping each
// transaction's result version and writing its outbox row; ReclassifiedMessages reads those
// messages for the publisher; FinishReclassify records the outcome and drops the snapshot. The
// rules themselves stay in package txn: the dry run is given a Classifier.

// ErrReclassificationNotFound is returned (wrapped) for a reclassification PlanReclassify never
// recorded.
var ErrReclassificationNotFound = errors.New("reclassification not found")

// ReclassifyTarget says which stored transactions a reclassification computes again.
type ReclassifyTarget struct {
	ID      string // the reclassification's id (its workflow id)
	Account string // "" for every account
	// From and To keep the transactions dated from From to To (both included); a transaction
	// without a date is then left out. nil: no bound.
	From, To *time.Time
	// RulesVersion is the version of the rules to apply.
	RulesVersion int
}

// ReclassifyPlan is what PlanReclassify recorded: the target and the number of items.
type ReclassifyPlan struct {
	ReclassifyTarget
	Items int64 // the items are numbered 1..Items
	// Existing says the plan had been recorded before (a retried plan): its target and version
	// are those recorded then.
	Existing bool
}

// Classification is a transaction's result under some rules; "" is none.
type Classification struct {
	Tag, Annotation, Error string
}

// Classifier computes a transaction's result from its wording and amount (txn.Rules' Tag,
// Check and Annotate: no annotation for a transaction in error).
type Classifier func(wording string, amount decimal.Decimal) Classification

// ReclassifyCounts count the items a dry run computed and what their results change into.
type ReclassifyCounts struct {
	Items             int64 // items computed
	Changed           int64 // items whose result changes (rows of the diff)
	TagChanged        int64
	AnnotationChanged int64
	ErrorChanged      int64
	// Sources counts the items by the version of the rules that computed their stored result
	// (the tag's, else the annotation's; 0 for none recorded).
	Sources map[int]int64
}

// PlanReclassify records the reclassification t and snapshots its target set, in one database
// transaction: the stored transactions of t.Account (every account when "") in the date range,
// each with its wording, amount and stored result, numbered 1..n, by one INSERT ... SELECT. A reclassification already recorded (a
// retried plan) is returned as it was recorded, with Existing set: its snapshot and rules
// version do not change. It returns ErrRulesVersionNotFound (wrapped) for a version that does
// not exist, and the wrapped connection or SQL error.
func (db *DB) PlanReclassify(ctx context.Context, t ReclassifyTarget) (ReclassifyPlan, error) {
	var p ReclassifyPlan
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		var exists bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM rules_versions WHERE version = $1)`, t.RulesVersion).Scan(&exists); err != nil {
			return fmt.Errorf("read rules version: %w", err)
		}
		if !exists {
			return fmt.Errorf("version %d: %w", t.RulesVersion, ErrRulesVersionNotFound)
		}
		tag, err := tx.Exec(ctx, `
			INSERT INTO reclassifications (reclass_id, account, date_from, date_to, rules_version)
			VALUES ($1, NULLIF($2, ''), $3, $4, $5) ON CONFLICT (reclass_id) DO NOTHING`,
			t.ID, t.Account, dateParam(t.From), dateParam(t.To), t.RulesVersion)
		if err != nil {
			return fmt.Errorf("record reclassification: %w", err)
		}
		if tag.RowsAffected() == 0 {
			p, err = readPlan(ctx, tx, t.ID)
			p.Existing = true
			return err
		}
		var conds []string
		args := []any{t.ID}
		if t.Account != "" {
			args = append(args, t.Account)
			conds = append(conds, "t.account = $"+strconv.Itoa(len(args)))
		}
		if t.From != nil {
			args = append(args, dateParam(t.From))
			conds = append(conds, "t.date >= $"+strconv.Itoa(len(args)))
		}
		if t.To != nil {
			args = append(args, dateParam(t.To))
			conds = append(conds, "t.date <= $"+strconv.Itoa(len(args)))
		}
		where := ""
		if len(conds) > 0 {
			where = "WHERE " + strings.Join(conds, " AND ")
		}
		// Hash joins over whole tables are what a large target set wants (in memory: 1,000,000
		// results hash in about 100 MB); the planner probes the keys for a small one. The
		// numbering needs no order: it is made once and stored.
		if _, err := tx.Exec(ctx, "SET LOCAL work_mem = '256MB'"); err != nil {
			return fmt.Errorf("set work_mem: %w", err)
		}
		tag, err = tx.Exec(ctx, `
			INSERT INTO reclassify_items (reclass_id, seq, txn_key, account, id, wording, amount, error, tag, annotation, rules_version)
			SELECT $1, row_number() OVER (), t.key, t.account, t.id, t.wording, t.amount, t.error, g.tag, a.annotation,
			       coalesce(g.rules_version, a.rules_version)
			FROM transactions t
			LEFT JOIN tags g ON g.txn_key = t.key
			LEFT JOIN annotations a ON a.txn_key = t.key `+where, args...)
		if err != nil {
			return fmt.Errorf("snapshot transactions: %w", err)
		}
		if _, err := tx.Exec(ctx, `UPDATE reclassifications SET items = $2 WHERE reclass_id = $1`, t.ID, tag.RowsAffected()); err != nil {
			return fmt.Errorf("count items: %w", err)
		}
		p = ReclassifyPlan{ReclassifyTarget: t, Items: tag.RowsAffected()}
		return nil
	})
	if err != nil {
		return ReclassifyPlan{}, db.wrap("plan reclassification "+t.ID, err)
	}
	return p, nil
}

func dateParam(t *time.Time) any {
	if t == nil {
		return nil
	}
	return t.Format(time.DateOnly)
}

func readPlan(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, id string) (ReclassifyPlan, error) {
	var p ReclassifyPlan
	var account pgtype.Text
	var from, to pgtype.Date
	err := q.QueryRow(ctx, `SELECT reclass_id, account, date_from, date_to, rules_version, items
		FROM reclassifications WHERE reclass_id = $1`, id).Scan(&p.ID, &account, &from, &to, &p.RulesVersion, &p.Items)
	if errors.Is(err, pgx.ErrNoRows) {
		return p, ErrReclassificationNotFound
	}
	if err != nil {
		return p, err
	}
	p.Account = account.String
	if from.Valid {
		p.From = &from.Time
	}
	if to.Valid {
		p.To = &to.Time
	}
	return p, nil
}

// sqlReclassifyRead reads a range of items: what their result depends on and their stored
// result, as the plan copied them. The amount is read in cents as a bigint when it fits (see
// sqlCents).
const sqlReclassifyRead = `
SELECT seq, txn_key, account, id, wording,
       CASE WHEN abs(amount) < 10000000000000000 THEN (amount * 100)::bigint END,
       CASE WHEN abs(amount) >= 10000000000000000 THEN amount::text END,
       error, tag, annotation, rules_version
FROM reclassify_items
WHERE reclass_id = $1 AND seq >= $2 AND seq < $3`

// diffRow is one row of reclassify_diffs; "" is stored as NULL.
type diffRow struct {
	seq, key    int64
	account, id string
	old, new    Classification
	oldVersion  int32 // 0: none
}

// diffRows feeds diff rows to COPY, one reused row at a time.
type diffRows struct {
	id   string
	rows []diffRow
	next int
	row  [12]any
}

func (r *diffRows) Next() bool {
	r.next++
	return r.next <= len(r.rows)
}

func (r *diffRows) Values() ([]any, error) {
	d := &r.rows[r.next-1]
	var version any
	if d.oldVersion > 0 {
		version = d.oldVersion
	}
	r.row = [12]any{r.id, d.seq, d.key, d.account, d.id, nullIfEmpty(d.old.Tag), nullIfEmpty(d.new.Tag),
		nullIfEmpty(d.old.Annotation), nullIfEmpty(d.new.Annotation), nullIfEmpty(d.old.Error), nullIfEmpty(d.new.Error), version}
	return r.row[:], nil
}

func (r *diffRows) Err() error { return nil }

var diffColumns = []string{"reclass_id", "seq", "txn_key", "account", "id", "old_tag", "new_tag",
	"old_annotation", "new_annotation", "old_error", "new_error", "old_rules_version"}

// DryRunReclassifyChunk computes the items of reclassification id with from <= seq < to with
// classify and writes those whose result changes (tag, annotation or error) into
// reclassify_diffs with COPY, in one database transaction that first deletes the range's rows:
// a retried chunk writes each row once. It changes no result. It returns the counts of the
// range, and the wrapped connection or SQL error.
func (db *DB) DryRunReclassifyChunk(ctx context.Context, id string, from, to int64, classify Classifier) (ReclassifyCounts, error) {
	var c ReclassifyCounts
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, sqlReclassifyRead, id, from, to)
		if err != nil {
			return fmt.Errorf("read items: %w", err)
		}
		var diffs []diffRow
		var (
			d                        diffRow
			wording                  string
			cents                    pgtype.Int8
			big, errCode, tag, annot pgtype.Text
			version                  pgtype.Int4
		)
		c.Sources = map[int]int64{}
		_, err = pgx.ForEachRow(rows, []any{&d.seq, &d.key, &d.account, &d.id, &wording, &cents, &big, &errCode, &tag, &annot, &version}, func() error {
			var amount decimal.Decimal
			switch {
			case cents.Valid:
				amount = decimal.New(cents.Int64, -2)
			case big.Valid:
				var err error
				if amount, err = decimal.NewFromString(big.String); err != nil {
					return fmt.Errorf("amount %q: %w", big.String, err)
				}
			default:
				return fmt.Errorf("transaction of key %d has no amount", d.key)
			}
			c.Items++
			c.Sources[int(version.Int32)]++
			d.old = Classification{Tag: tag.String, Annotation: annot.String, Error: errCode.String}
			d.new = classify(wording, amount)
			if d.old == d.new {
				return nil
			}
			c.Changed++
			if d.old.Tag != d.new.Tag {
				c.TagChanged++
			}
			if d.old.Annotation != d.new.Annotation {
				c.AnnotationChanged++
			}
			if d.old.Error != d.new.Error {
				c.ErrorChanged++
			}
			d.oldVersion = version.Int32
			diffs = append(diffs, d)
			return nil
		})
		if err != nil {
			return fmt.Errorf("read items: %w", err)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM reclassify_diffs WHERE reclass_id = $1 AND seq >= $2 AND seq < $3`, id, from, to); err != nil {
			return fmt.Errorf("delete earlier diff rows: %w", err)
		}
		if len(diffs) == 0 {
			return nil
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"reclassify_diffs"}, diffColumns, &diffRows{id: id, rows: diffs}); err != nil {
			return fmt.Errorf("write diff rows: %w", err)
		}
		return nil
	})
	if err != nil {
		return ReclassifyCounts{}, db.wrap(fmt.Sprintf("dry run [%d,%d) of reclassification %s", from, to, id), err)
	}
	return c, nil
}

// ReclassifyDiffCounts counts the rows of the diff by kind of change, and the applied ones.
func (db *DB) ReclassifyDiffCounts(ctx context.Context, id string) (counts ReclassifyCounts, applied int64, err error) {
	err = db.pool.QueryRow(ctx, `
		SELECT count(*),
		       count(*) FILTER (WHERE old_tag IS DISTINCT FROM new_tag),
		       count(*) FILTER (WHERE old_annotation IS DISTINCT FROM new_annotation),
		       count(*) FILTER (WHERE old_error IS DISTINCT FROM new_error),
		       count(*) FILTER (WHERE applied)
		FROM reclassify_diffs WHERE reclass_id = $1`, id).
		Scan(&counts.Changed, &counts.TagChanged, &counts.AnnotationChanged, &counts.ErrorChanged, &applied)
	if err != nil {
		return ReclassifyCounts{}, 0, db.wrap("count diff of reclassification "+id, err)
	}
	return counts, applied, nil
}

// sqlReclassifyDiff is reclassify_diff.csv; the reclassification's id reaches COPY through the
// transaction-local setting txflow.reclass_id.
const sqlReclassifyDiff = `COPY (
    SELECT txflow_safe_cell(d.account) AS account,
           txflow_safe_cell(NULLIF(coalesce(t.id_as_read, d.id), '')) AS id,
           txflow_safe_cell(d.old_tag) AS old_tag, txflow_safe_cell(d.new_tag) AS new_tag,
           txflow_safe_cell(d.old_annotation) AS old_annotation, txflow_safe_cell(d.new_annotation) AS new_annotation,
           txflow_safe_cell(d.old_error) AS old_error, txflow_safe_cell(d.new_error) AS new_error
    FROM reclassify_diffs d
    LEFT JOIN transactions t ON t.account = d.account AND t.id = d.id
    WHERE d.reclass_id = current_setting('txflow.reclass_id')
    ORDER BY d.account, d.id
) TO STDOUT (FORMAT csv, HEADER true)`

// WriteReclassifyDiff streams the diff of reclassification id to w as CSV: header
// account,id,old_tag,new_tag,old_annotation,new_annotation,old_error,new_error, one row per
// transaction whose result changes, in account and id order, the id as first read, an empty
// field for none, text cells through txflow_safe_cell. It returns the number of data rows and
// the wrapped connection, SQL or w.Write error.
func (db *DB) WriteReclassifyDiff(ctx context.Context, id string, w io.Writer) (int64, error) {
	var n int64
	err := pgx.BeginTxFunc(ctx, db.pool, pgx.TxOptions{AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT set_config('txflow.reclass_id', $1, true)", id); err != nil {
			return err
		}
		tag, err := tx.Conn().PgConn().CopyTo(ctx, w, sqlReclassifyDiff)
		if err != nil {
			return fmt.Errorf("copy: %w", err)
		}
		n = tag.RowsAffected()
		return nil
	})
	if err != nil {
		return n, db.wrap("write diff of reclassification "+id, err)
	}
	return n, nil
}

// sqlApplyReclassify applies the diff rows of a range not applied yet, in one statement (so one
// snapshot and one database transaction): it marks them applied, upserts their tags and
// annotations with the target version, sets the transactions' error and bumps their result
// version, and, when $5, writes one outbox row per transaction with its new version. $1 is the
// reclassification's id (the run_id of the results and outbox rows), $2 and $3 the range, $4 the
// rules version.
const sqlApplyReclassify = `
WITH d AS (
    UPDATE reclassify_diffs SET applied = true
    WHERE reclass_id = $1 AND seq >= $2 AND seq < $3 AND NOT applied
    RETURNING txn_key, account, id, new_tag, new_annotation, new_error
), tg AS (
    INSERT INTO tags (txn_key, tag, run_id, rules_version)
    SELECT txn_key, new_tag, $1, $4 FROM d
    ON CONFLICT (txn_key) DO UPDATE SET tag = excluded.tag, run_id = excluded.run_id,
        rules_version = excluded.rules_version, tagged_at = now()
), an AS (
    INSERT INTO annotations (txn_key, annotation, run_id, rules_version)
    SELECT txn_key, new_annotation, $1, $4 FROM d
    ON CONFLICT (txn_key) DO UPDATE SET annotation = excluded.annotation, run_id = excluded.run_id,
        rules_version = excluded.rules_version, annotated_at = now()
), tx AS (
    UPDATE transactions t SET error = d.new_error, result_version = t.result_version + 1
    FROM d WHERE t.account = d.account AND t.id = d.id
    RETURNING t.key, t.result_version
), ob AS (
    INSERT INTO outbox (txn_key, version, run_id)
    SELECT key, result_version, $1 FROM tx WHERE $5
    ON CONFLICT DO NOTHING
)
SELECT count(*) FROM tx`

// ApplyReclassifyChunk applies the diff rows of reclassification id with from <= seq < to that
// are not applied yet, with the rules version recorded by its plan: new tags and annotations
// (run_id the reclassification's id), the transactions' error, their result version bumped, and
// with outbox one outbox row per transaction carrying the new version. The rows are marked
// applied in the same database transaction, so a retried or interrupted chunk applies nothing
// twice. It returns the number of transactions it changed, ErrReclassificationNotFound
// (wrapped) for an unknown reclassification, and the wrapped connection or SQL error.
func (db *DB) ApplyReclassifyChunk(ctx context.Context, id string, from, to int64, outbox bool) (int64, error) {
	var n int64
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		p, err := readPlan(ctx, tx, id)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off"); err != nil {
			return fmt.Errorf("set plan options: %w", err)
		}
		return tx.QueryRow(ctx, sqlApplyReclassify, id, from, to, p.RulesVersion, outbox).Scan(&n)
	})
	if err != nil {
		return 0, db.wrap(fmt.Sprintf("apply [%d,%d) of reclassification %s", from, to, id), err)
	}
	return n, nil
}

// sqlReclassifiedMessages reads the messages of a range of the diff that are still in the
// outbox: the transaction by its primary key, the result the reclassification applied.
const sqlReclassifiedMessages = `
SELECT o.txn_key, o.version, o.run_id, o.created_at,
       t.account, coalesce(t.id_as_read, t.id), to_char(t.date, 'YYYY-MM-DD'),
       t.amount::text, t.wording, d.new_error, d.new_tag,
       CASE WHEN d.new_error IS NULL THEN d.new_annotation END
FROM reclassify_diffs d
JOIN outbox o ON o.txn_key = d.txn_key AND o.run_id = d.reclass_id
JOIN transactions t ON t.account = d.account AND t.id = d.id
WHERE d.reclass_id = $1 AND d.seq >= $2 AND d.seq < $3 AND d.applied
ORDER BY d.seq, o.version`

// ReclassifiedMessages returns the messages of the diff rows of reclassification id with
// from <= seq < to that have an outbox row of the reclassification, in seq order: the
// transaction as stored, with the result the reclassification applied and the result version
// it gave. It returns the wrapped connection or SQL error.
func (db *DB) ReclassifiedMessages(ctx context.Context, id string, from, to int64) ([]OutboxMessage, error) {
	var out []OutboxMessage
	err := pgx.BeginTxFunc(ctx, db.pool, pgx.TxOptions{AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off"); err != nil {
			return fmt.Errorf("set plan options: %w", err)
		}
		rows, err := tx.Query(ctx, sqlReclassifiedMessages, id, from, to)
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
	if err != nil {
		return nil, db.wrap(fmt.Sprintf("read messages [%d,%d) of reclassification %s", from, to, id), err)
	}
	return out, nil
}

// FinishReclassify records the outcome of reclassification id (applied, rejected, expired,
// unchanged, failed) and deletes its snapshot; the diff stays, as its record. Calling it again
// changes nothing more.
func (db *DB) FinishReclassify(ctx context.Context, id, status string) error {
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `UPDATE reclassifications SET status = $2, finished_at = coalesce(finished_at, now())
			WHERE reclass_id = $1`, id, status); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `DELETE FROM reclassify_items WHERE reclass_id = $1`, id)
		return err
	})
	if err != nil {
		return db.wrap("finish reclassification "+id, err)
	}
	return nil
}

// SortedSources returns the versions of c.Sources in increasing order.
func (c ReclassifyCounts) SortedSources() []int {
	vs := make([]int, 0, len(c.Sources))
	for v := range c.Sources {
		vs = append(vs, v)
	}
	slices.Sort(vs)
	return vs
}
