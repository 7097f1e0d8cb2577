package backendsync

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Table is the table the consumer keeps, one row per (account, id).
const Table = "backend_transactions"

// lockCreateTable serialises CREATE TABLE IF NOT EXISTS between consumers
// starting at once (two concurrent creations can both fail or collide).
const lockCreateTable int64 = 0x6273796e63000001

const createTable = `
CREATE TABLE IF NOT EXISTS backend_transactions (
	account    text        NOT NULL,
	id         text        NOT NULL,
	date       date,
	amount     numeric     NOT NULL,
	wording    text        NOT NULL,
	tag        text,
	annotation text,
	error      text,
	version    integer     NOT NULL,
	run_id     text        NOT NULL,
	updated_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (account, id)
)`

// EnsureTable creates the backend_transactions table if it is missing.
func EnsureTable(ctx context.Context, db *pgxpool.Pool) error {
	err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", lockCreateTable); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, createTable)
		return err
	})
	if err != nil {
		return fmt.Errorf("create table %s: %w", Table, err)
	}
	return nil
}

// upsert applies a set of messages with distinct (account, id) in one
// statement. A row is written only when the message's version is newer than
// the stored one, so applying a message twice, or an older one after a newer
// one, changes nothing. It returns how many rows were inserted or updated.
const upsert = `
INSERT INTO backend_transactions
	(account, id, date, amount, wording, tag, annotation, error, version, run_id, updated_at)
SELECT m.account, m.id, m.date::date, m.amount::numeric, m.wording, m.tag, m.annotation, m.error,
	m.version, m.run_id, now()
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
	$8::text[], $9::integer[], $10::text[])
	AS m(account, id, date, amount, wording, tag, annotation, error, version, run_id)
ON CONFLICT (account, id) DO UPDATE SET
	date = excluded.date,
	amount = excluded.amount,
	wording = excluded.wording,
	tag = excluded.tag,
	annotation = excluded.annotation,
	error = excluded.error,
	version = excluded.version,
	run_id = excluded.run_id,
	updated_at = excluded.updated_at
WHERE backend_transactions.version < excluded.version`

// apply writes msgs (distinct (account, id)) in one database transaction
// and returns how many rows changed.
func apply(ctx context.Context, db *pgxpool.Pool, msgs []Message) (int64, error) {
	if len(msgs) == 0 {
		return 0, nil
	}
	n := len(msgs)
	var (
		accounts, ids, amounts, wordings, runIDs = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		dates, tags, annotations, errs           = make([]*string, n), make([]*string, n), make([]*string, n), make([]*string, n)
		versions                                 = make([]int32, n)
	)
	for i, m := range msgs {
		accounts[i], ids[i], amounts[i], wordings[i], runIDs[i] = m.Account, m.ID, m.Amount, m.Wording, m.RunID
		dates[i], tags[i], annotations[i], errs[i] = m.Date, m.Tag, m.Annotation, m.Error
		versions[i] = m.Version
	}
	var changed int64
	err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, upsert, accounts, ids, dates, amounts, wordings, tags, annotations, errs, versions, runIDs)
		changed = tag.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("apply %d messages: %w", n, err)
	}
	return changed, nil
}

// isDataError says whether err is PostgreSQL refusing the data itself (SQL
// state classes 22, data exception, and 23, integrity constraint violation):
// retrying the same message would fail the same way.
func isDataError(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || len(pgErr.Code) < 2 {
		return false
	}
	class := pgErr.Code[:2]
	return class == "22" || class == "23"
}
