package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/txflow/txflow/txn"
)

// sqlAlone is what PostgreSQL alone takes to store what a run stores and export it, with no
// Temporal, no worker and none of txflow's checks: the least any pipeline keeping txflow's
// tables could take on the same database, and so a bound on how close to the floor txflow can
// come. Every step is as cheap as PostgreSQL allows:
//   - Lines: COPY of the file into an UNLOGGED table of the run's lines, keyed by seq alone;
//   - Transactions: the insert of every line into a logged table keyed by (account, id), as
//     txflow's transactions are, in two halves on two connections at once;
//   - Results: the tags and the annotations computed in SQL (the default rules) and inserted into
//     two logged tables keyed by an integer, on two connections at once;
//   - Export: the lines joined with both results, in file order, COPYed out through a 1 MiB
//     buffer into a file synced before the clock stops.
//
// Left out, and part of what txflow does: checkpoints as the file is read (a run resumes where
// it stopped), rejected rows, in-file duplicates and conflicts with stored transactions, NFC
// keys, dates, amounts in error, the error report, the report page's figures, progress, and the
// crash-safety of the run's lines.
type sqlAlone struct {
	Lines, Transactions, Results, Export time.Duration
}

func (s sqlAlone) total() time.Duration { return s.Lines + s.Transactions + s.Results + s.Export }

func (s sqlAlone) String() string {
	r := func(d time.Duration) time.Duration { return d.Round(time.Millisecond) }
	return fmt.Sprintf("%s (lines %s, transactions %s, tags ‖ annotations %s, export %s)",
		r(s.total()), r(s.Lines), r(s.Transactions), r(s.Results), r(s.Export))
}

// The tables sqlAlone fills, dropped after each measure.
var (
	sqlLines        = pgx.Identifier{"txflow_sql_lines"}.Sanitize()
	sqlTransactions = pgx.Identifier{"txflow_sql_transactions"}.Sanitize()
	sqlTags         = pgx.Identifier{"txflow_sql_tags"}.Sanitize()
	sqlAnnotations  = pgx.Identifier{"txflow_sql_annotations"}.Sanitize()
)

// measureSQLAlone measures sqlAlone for the CSV file at path (header id,amount,wording, rows
// data rows) on the database at dbURL, which should be quiet, exporting into outPath.
func measureSQLAlone(ctx context.Context, dbURL, path, outPath string, rows int) (sqlAlone, error) {
	var s sqlAlone
	var conns [2]*pgx.Conn
	for i := range conns {
		c, err := pgx.Connect(ctx, dbURL)
		if err != nil {
			return s, fmt.Errorf("sql alone: connect: %w", err)
		}
		defer c.Close(context.WithoutCancel(ctx))
		conns[i] = c
	}
	drop := "DROP TABLE IF EXISTS " + strings.Join([]string{sqlLines, sqlTransactions, sqlTags, sqlAnnotations}, ", ")
	if _, err := conns[0].Exec(ctx, drop+`;
CREATE UNLOGGED TABLE `+sqlLines+` (seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account text NOT NULL DEFAULT 'default', id text NOT NULL, amount numeric NOT NULL, wording text NOT NULL);
CREATE TABLE `+sqlTransactions+` (account text, id text, key bigint NOT NULL,
    amount numeric NOT NULL, wording text NOT NULL, PRIMARY KEY (account, id));
CREATE TABLE `+sqlTags+` (key bigint PRIMARY KEY, tag text);
CREATE TABLE `+sqlAnnotations+` (key bigint PRIMARY KEY, annotation text)`); err != nil {
		return s, fmt.Errorf("sql alone: create tables: %w", err)
	}
	defer conns[0].Exec(context.WithoutCancel(ctx), drop)

	in, err := os.Open(path)
	if err != nil {
		return s, fmt.Errorf("sql alone: %w", err)
	}
	defer in.Close()
	began := time.Now()
	if _, err := conns[0].PgConn().CopyFrom(ctx, in, "COPY "+sqlLines+" (id, amount, wording) FROM STDIN (FORMAT csv, HEADER true)"); err != nil {
		return s, fmt.Errorf("sql alone: copy in: %w", err)
	}
	s.Lines = time.Since(began)

	half := rows / 2
	began = time.Now()
	insert := "INSERT INTO " + sqlTransactions + " SELECT account, id, seq, amount, wording FROM " + sqlLines
	if err := both(ctx, conns, insert+" WHERE seq <= $1", insert+" WHERE seq > $1", half); err != nil {
		return s, fmt.Errorf("sql alone: insert transactions: %w", err)
	}
	s.Transactions = time.Since(began)

	rules := txn.DefaultRules()
	began = time.Now()
	if err := both(ctx, conns,
		"INSERT INTO "+sqlTags+" SELECT seq, "+tagSQL(rules)+" FROM "+sqlLines,
		"INSERT INTO "+sqlAnnotations+" SELECT seq, "+annotationSQL(rules)+" FROM "+sqlLines); err != nil {
		return s, fmt.Errorf("sql alone: results: %w", err)
	}
	s.Results = time.Since(began)

	s.Export, err = copyOut(ctx, conns[0], `COPY (SELECT l.id, l.amount, l.wording, t.tag, a.annotation
FROM `+sqlLines+` l JOIN `+sqlTags+` t ON t.key = l.seq JOIN `+sqlAnnotations+` a ON a.key = l.seq
ORDER BY l.seq) TO STDOUT (FORMAT csv, HEADER true)`, outPath)
	if err != nil {
		return s, fmt.Errorf("sql alone: export: %w", err)
	}
	return s, nil
}

// both runs a on the first connection and b on the second at once, each with args.
func both(ctx context.Context, conns [2]*pgx.Conn, a, b string, args ...any) error {
	var errs [2]error
	var wg sync.WaitGroup
	for i, q := range []string{a, b} {
		wg.Go(func() { _, errs[i] = conns[i].Exec(ctx, q, args...) })
	}
	wg.Wait()
	return errors.Join(errs[:]...)
}

// tagSQL is txn's tag rule in SQL: the one tag word the wording holds, NULL for none or several.
func tagSQL(r txn.Rules) string {
	var found, first []string
	for _, w := range r.TagWords {
		has := "strpos(wording, " + quote(w) + ") > 0"
		found = append(found, "("+has+")::int")
		first = append(first, "WHEN "+has+" THEN "+quote(w))
	}
	return "CASE " + strings.Join(found, " + ") + " WHEN 1 THEN CASE " + strings.Join(first, " ") + " END END"
}

// annotationSQL is txn's annotation rule in SQL; an amount in error has none.
func annotationSQL(r txn.Rules) string {
	return fmt.Sprintf(`CASE WHEN abs(amount) > %s THEN NULL WHEN amount > %s THEN %s WHEN amount > 0 THEN %s
WHEN amount < %s THEN %s WHEN amount < 0 THEN %s END`,
		r.AmountLimit, r.LargeSaleAbove, quote(string(txn.AnnotationLargeSale)), quote(string(txn.AnnotationSale)),
		r.ExpenseBelow, quote(string(txn.AnnotationExpense)), quote(string(txn.AnnotationSmallExpense)))
}

func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
