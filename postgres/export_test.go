package postgres

import (
	"context"
	"strings"

	"github.com/jackc/pgx/v5"
)

// ExplainOutboxMessages returns the plan OutboxMessages executes for a run's lines in [from, to),
// with its plan settings.
func (db *DB) ExplainOutboxMessages(ctx context.Context, runID string, from, to int64) (string, error) {
	var plan []string
	err := pgx.BeginTxFunc(ctx, db.pool, pgx.TxOptions{AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, sqlOutboxPlan); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, "EXPLAIN "+sqlOutboxMessages, runID, from, to)
		if err != nil {
			return err
		}
		plan, err = pgx.CollectRows(rows, pgx.RowTo[string])
		return err
	})
	return strings.Join(plan, "\n"), err
}

// ExplainMarkDelivered returns the plan MarkDelivered executes for keys, with its plan settings.
func (db *DB) ExplainMarkDelivered(ctx context.Context, keys []OutboxKey) (string, error) {
	ks := make([]int64, len(keys))
	vs := make([]int32, len(keys))
	for i, k := range keys {
		ks[i], vs[i] = k.Key, k.Version
	}
	var plan []string
	err := pgx.BeginTxFunc(ctx, db.pool, pgx.TxOptions{}, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, sqlOutboxPlan); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, "EXPLAIN "+sqlMarkDelivered, ks, vs)
		if err != nil {
			return err
		}
		plan, err = pgx.CollectRows(rows, pgx.RowTo[string])
		return err
	})
	return strings.Join(plan, "\n"), err
}

// ExplainRunMessages returns the plan RunMessages executes for a run's lines in [from, to), with
// its plan settings.
func (db *DB) ExplainRunMessages(ctx context.Context, runID string, from, to int64) (string, error) {
	var plan []string
	err := pgx.BeginTxFunc(ctx, db.pool, pgx.TxOptions{AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		settings, query, args, err := runMessagesQuery(ctx, tx, runID, from, to)
		if err != nil || args == nil {
			return err
		}
		if _, err := tx.Exec(ctx, settings); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, "EXPLAIN "+query, args...)
		if err != nil {
			return err
		}
		plan, err = pgx.CollectRows(rows, pgx.RowTo[string])
		return err
	})
	return strings.Join(plan, "\n"), err
}

// SettleInParts makes db insert the new transactions of a run of more than above lines in parts
// of at least minPart lines, on parts connections at once, calling after (when not nil) once each
// part has committed: its error fails the settlement.
func (db *DB) SettleInParts(parts int, above, minPart int64, after func(part int64) error) {
	db.settleParts, db.settleInPartsAbove, db.settleMinPart, db.afterSettlePart = parts, above, minPart, after
}
