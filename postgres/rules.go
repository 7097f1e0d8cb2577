package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"

	"github.com/txflow/txflow/txn"
)

// RulesVersion is one numbered, immutable version of the business rules (table
// rules_versions). Versions are numbered 1, 2, ... without gaps; the current one is the highest.
type RulesVersion struct {
	Version   int
	Rules     txn.Rules
	Note      string // why the version was made
	CreatedAt time.Time
}

// ErrRulesVersionNotFound is returned (wrapped) by RulesByVersion for a version that does not
// exist.
var ErrRulesVersionNotFound = errors.New("rules version not found")

// SeedNote is the note of version 1 when CurrentRules creates it from a worker's or starter's
// settings.
const SeedNote = "initial rules, from the TXFLOW_* settings"

// sqlRulesColumns are the columns scanRules reads, in its order.
const sqlRulesColumns = `version, tag_words, large_sale_above, expense_below, amount_limit, note, created_at`

// rulesRow is how a RulesVersion is stored: the one place that converts between txn.Rules and
// the columns of rules_versions.
func rulesRow(r txn.Rules) (tagWords []string, largeSaleAbove, expenseBelow, amountLimit decimal.Decimal) {
	return r.TagWords, r.LargeSaleAbove, r.ExpenseBelow, r.AmountLimit
}

func scanRules(row pgx.Row) (RulesVersion, error) {
	var v RulesVersion
	err := row.Scan(&v.Version, &v.Rules.TagWords, &v.Rules.LargeSaleAbove, &v.Rules.ExpenseBelow,
		&v.Rules.AmountLimit, &v.Note, &v.CreatedAt)
	return v, err
}

// CurrentRules returns the current (highest) version of the rules. When there is none yet it
// creates version 1 from seed (the TXFLOW_* settings of the caller), noted SeedNote; concurrent
// callers create it once, and all return the same version. It returns an error when seed is
// not valid (txn.Rules.Validate) and none exists, and the wrapped connection or SQL error.
func (db *DB) CurrentRules(ctx context.Context, seed txn.Rules) (RulesVersion, error) {
	v, err := scanRules(db.pool.QueryRow(ctx, `SELECT `+sqlRulesColumns+` FROM rules_versions ORDER BY version DESC LIMIT 1`))
	if err == nil {
		return v, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return RulesVersion{}, db.wrap("read current rules", err)
	}
	if err := seed.Validate(); err != nil {
		return RulesVersion{}, fmt.Errorf("create rules version 1: %w", err)
	}
	words, large, expense, limit := rulesRow(seed)
	// Two callers inserting version 1 at once: the second waits for the first on the primary
	// key and then inserts nothing. Once any version exists, nothing is inserted.
	if _, err := db.pool.Exec(ctx, `
		INSERT INTO rules_versions (version, tag_words, large_sale_above, expense_below, amount_limit, note)
		SELECT 1, $1, $2, $3, $4, $5 WHERE NOT EXISTS (SELECT 1 FROM rules_versions)
		ON CONFLICT (version) DO NOTHING`, words, large, expense, limit, SeedNote); err != nil {
		return RulesVersion{}, db.wrap("create rules version 1", err)
	}
	v, err = scanRules(db.pool.QueryRow(ctx, `SELECT `+sqlRulesColumns+` FROM rules_versions ORDER BY version DESC LIMIT 1`))
	if err != nil {
		return RulesVersion{}, db.wrap("read current rules", err)
	}
	return v, nil
}

// RulesByVersion returns version n of the rules, or ErrRulesVersionNotFound (wrapped).
func (db *DB) RulesByVersion(ctx context.Context, n int) (RulesVersion, error) {
	v, err := scanRules(db.pool.QueryRow(ctx, `SELECT `+sqlRulesColumns+` FROM rules_versions WHERE version = $1`, n))
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return RulesVersion{}, fmt.Errorf("rules version %d: %w", n, ErrRulesVersionNotFound)
	case err != nil:
		return RulesVersion{}, db.wrap(fmt.Sprintf("read rules version %d", n), err)
	}
	return v, nil
}

// RulesHistory returns every version of the rules, the oldest first; none when no version was
// made yet.
func (db *DB) RulesHistory(ctx context.Context) ([]RulesVersion, error) {
	rows, err := db.pool.Query(ctx, `SELECT `+sqlRulesColumns+` FROM rules_versions ORDER BY version`)
	if err != nil {
		return nil, db.wrap("read rules history", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (RulesVersion, error) { return scanRules(row) })
	if err != nil {
		return nil, db.wrap("read rules history", err)
	}
	return out, nil
}

// SetRules makes rules the current version, numbered one more than the highest (1 when there is
// none), with note saying why. Writers are serialised, so versions are consecutive. Runs already
// started keep the version they read. It returns an error, storing nothing, when the rules are
// not valid (txn.Rules.Validate) or the note is blank, and the wrapped connection or SQL error.
func (db *DB) SetRules(ctx context.Context, rules txn.Rules, note string) (RulesVersion, error) {
	if err := rules.Validate(); err != nil {
		return RulesVersion{}, fmt.Errorf("set rules: %w", err)
	}
	note = strings.TrimSpace(note)
	if note == "" {
		return RulesVersion{}, errors.New("set rules: the note is empty: say why the rules change")
	}
	words, large, expense, limit := rulesRow(rules)
	var v RulesVersion
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		// Self-exclusive, and exclusive of CurrentRules' insert, but not of readers.
		if _, err := tx.Exec(ctx, "LOCK TABLE rules_versions IN SHARE ROW EXCLUSIVE MODE"); err != nil {
			return fmt.Errorf("lock: %w", err)
		}
		var err error
		v, err = scanRules(tx.QueryRow(ctx, `
			INSERT INTO rules_versions (version, tag_words, large_sale_above, expense_below, amount_limit, note)
			SELECT coalesce(max(version), 0) + 1, $1, $2, $3, $4, $5 FROM rules_versions
			RETURNING `+sqlRulesColumns, words, large, expense, limit, note))
		return err
	})
	if err != nil {
		return RulesVersion{}, db.wrap("set rules", err)
	}
	return v, nil
}
