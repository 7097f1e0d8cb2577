package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/jackc/pgx/v5"
)

// The columns of output_transactions.csv, in order. The query is built from them, and WriteOutput
// counts the rows with a tag and with an annotation at their positions as the rows stream out.
const (
	colID = iota
	colAmount
	colWording
	colTag
	colAnnotation
	colError
	outputColumns // the number of columns
)

// outputColumnNames are the header of output_transactions.csv.
var outputColumnNames = [outputColumns]string{
	colID: "id", colAmount: "amount", colWording: "wording",
	colTag: "tag", colAnnotation: "annotation", colError: "error",
}

// COPY takes no bind parameters: the run id reaches the queries through the
// transaction-local setting txflow.run_id (set_config), never through string
// concatenation.
const (
	sqlOutput = `COPY (
    SELECT %s
    FROM run_lines rl
    %s
    WHERE rl.run_id = current_setting('txflow.run_id')
    ORDER BY rl.seq
) TO STDOUT (FORMAT csv, HEADER true)`

	sqlErrorReport = `COPY (
    SELECT %sline,
           txflow_safe_cell(NULLIF(id, '')) AS id,
           txflow_safe_cell(NULLIF(amount, '')) AS amount,
           txflow_safe_cell(NULLIF(wording, '')) AS wording,
           txflow_safe_cell(NULLIF(reason, '')) AS reason
    FROM (
        SELECT line, account, id, amount, wording, reason
        FROM rejected_rows
        WHERE run_id = current_setting('txflow.run_id')
        UNION ALL
        SELECT line, account, coalesce(id_as_read, id), raw_amount, wording, error
        FROM run_lines
        WHERE run_id = current_setting('txflow.run_id') AND error IS NOT NULL
    ) r
    ORDER BY line
) TO STDOUT (FORMAT csv, HEADER true)`
)

// WriteOutput streams the run's output_transactions.csv to w with COPY ... TO
// STDOUT (FORMAT csv): header id,amount,wording,tag,annotation,error, after
// an account column (each line's account) when the run's file had one
// (FinishIngestFile's FileFacts.AccountColumn), and with a date column
// (yyyy-mm-dd) after the id when it had a date column (FileFacts.DateColumn),
// so the output mirrors the input; one row per run line in seq order; amount with two decimals and a dot (12.50,
// -3.00, 0.00); an empty field where there is no tag, annotation or error;
// the annotation is empty on a line in error; text cells go through the
// txn.SafeCell rule (SQL function txflow_safe_cell). Rows end with "\n";
// fields are quoted only when they hold a comma, a quote or a line break.
// opts.OmitTags (OmitAnnotations) leaves the tag (annotation) column empty:
// the workflow asks for it when that stage failed, so that no partial column
// is exported. It returns the number of data rows and of rows with a tag and
// with an annotation, counted as the rows stream out (a second pass over the
// joined tables would cost as much as the export itself), ErrRunNotFound
// (wrapped) for an unknown run, and the wrapped connection, SQL or w.Write
// error.
func (db *DB) WriteOutput(ctx context.Context, runID string, opts OutputOptions, w io.Writer) (OutputCounts, error) {
	var exprs [outputColumns]string
	exprs[colID] = "txflow_safe_cell(NULLIF(coalesce(rl.id_as_read, rl.id), ''))"
	exprs[colAmount] = "rl.amount::text"
	exprs[colWording] = "txflow_safe_cell(NULLIF(rl.wording, ''))"
	exprs[colTag] = "txflow_safe_cell(NULLIF(tg.tag, ''))"
	exprs[colAnnotation] = "CASE WHEN rl.error IS NULL THEN txflow_safe_cell(NULLIF(an.annotation, '')) END"
	exprs[colError] = "txflow_safe_cell(NULLIF(rl.error, ''))"
	joins := []string{"LEFT JOIN tags tg ON tg.txn_key = rl.txn_key",
		"LEFT JOIN annotations an ON an.txn_key = rl.txn_key"}
	if opts.OmitTags {
		exprs[colTag], joins[0] = "NULL::text", ""
	}
	if opts.OmitAnnotations {
		exprs[colAnnotation], joins[1] = "NULL::text", ""
	}
	cols := make([]string, outputColumns)
	for i, e := range exprs {
		cols[i] = e + " AS " + outputColumnNames[i]
	}
	cw := &outputCounter{w: w}
	query := func(f runFacts) string {
		var all []string
		if f.accountColumn {
			all = append(all, accountColumn("rl.account"))
			cw.first = 1
		}
		all = append(all, cols[colID])
		if f.dateColumn {
			all = append(all, dateColumn("rl.date"))
			cw.afterID = 1
		}
		all = append(all, cols[colID+1:]...)
		return fmt.Sprintf(sqlOutput, strings.Join(all, ",\n           "), strings.Join(joins, "\n    "))
	}
	n, err := db.copyOut(ctx, runID, query, cw)
	if err == nil {
		err = cw.err
	}
	if err == nil && (cw.counts.Rows != n || cw.col != 0 || cw.state != fieldStart) {
		err = fmt.Errorf("count output rows: %d counted, %d written", cw.counts.Rows, n)
	}
	if err != nil {
		return OutputCounts{Rows: n}, db.wrap("write output of run "+runID, err)
	}
	return cw.counts, nil
}

// accountColumn is the account column of a run's outputs, first when its
// file had an account column (runs.has_account_column).
func accountColumn(expr string) string {
	return "txflow_safe_cell(NULLIF(" + expr + ", '')) AS account"
}

// dateColumn is the date column of output_transactions.csv, after the id when
// the run's file had a date column (runs.has_date_column): yyyy-mm-dd, empty
// when the line has none.
func dateColumn(expr string) string {
	return "to_char(" + expr + ", 'YYYY-MM-DD') AS date"
}

// OutputCounts count the data rows of output_transactions.csv.
type OutputCounts struct {
	Rows      int64 // data rows
	Tagged    int64 // rows with a tag
	Annotated int64 // rows with an annotation
}

// outputCounter passes output_transactions.csv through to w and counts, as it goes, the data rows
// and those whose tag and annotation fields are not empty. It follows the CSV COPY writes, in
// whatever pieces it is given: a field is quoted or not, "" inside quotes is a quote.
type outputCounter struct {
	w      io.Writer
	counts OutputCounts
	err    error

	first      int  // the position of the id column: 1 after an account column, 0 otherwise
	afterID    int  // the columns between the id and the amount: 1 with a date column, 0 otherwise
	pastHeader bool // the header row is behind
	col        int  // the current field
	state      csvState
	nonEmpty   bool // the current field holds a character
	tagged     bool // the current row has a tag
	noted      bool // the current row has an annotation
}

type csvState uint8

const (
	fieldStart   csvState = iota // at the start of a field
	unquoted                     // in an unquoted field
	quoted                       // in a quoted field
	quoteInQuote                 // after a quote in a quoted field: its end, or the first of ""
)

func (c *outputCounter) Write(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	n, err := c.w.Write(p)
	for i := 0; i < n; i++ {
		switch c.state {
		case quoted:
			// Jump to the next quote: everything before it is the field's text.
			j := bytes.IndexByte(p[i:n], '"')
			if j < 0 {
				c.nonEmpty = true
				i = n
				continue
			}
			if j > 0 {
				c.nonEmpty = true
			}
			c.state = quoteInQuote
			i += j
			continue
		case unquoted:
			// Skip the field's plain bytes: only , \n \r and " change anything.
			for i < n && !csvSpecial[p[i]] {
				i++
			}
			if i == n {
				continue
			}
		}
		b := p[i]
		switch b {
		case ',':
			c.endField()
		case '\n':
			c.endField()
			c.endRow()
		case '\r': // part of a \r\n line end
		case '"':
			switch c.state {
			case fieldStart:
				c.state = quoted
			case quoteInQuote: // "" in a quoted field: one quote
				c.state, c.nonEmpty = quoted, true
			default:
				c.nonEmpty = true
			}
		default:
			c.state, c.nonEmpty = unquoted, true
		}
	}
	if err == nil && c.err != nil {
		err = c.err
	}
	return n, err
}

// csvSpecial marks the bytes that end or quote a field, or end a row.
var csvSpecial = [256]bool{',': true, '\n': true, '\r': true, '"': true}

func (c *outputCounter) endField() {
	switch c.col - c.first - c.afterID { // the tag and annotation come after the id
	case colTag:
		c.tagged = c.nonEmpty
	case colAnnotation:
		c.noted = c.nonEmpty
	}
	c.col++
	c.state, c.nonEmpty = fieldStart, false
}

func (c *outputCounter) endRow() {
	if want := c.first + outputColumns + c.afterID; c.col != want && c.err == nil {
		c.err = fmt.Errorf("count output rows: a row of %d fields, %d expected", c.col, want)
	}
	if c.pastHeader {
		c.counts.Rows++
		if c.tagged {
			c.counts.Tagged++
		}
		if c.noted {
			c.counts.Annotated++
		}
	}
	c.pastHeader = true
	c.col, c.tagged, c.noted = 0, false, false
}

// OutputOptions leave columns of output_transactions.csv empty.
type OutputOptions struct {
	OmitTags        bool
	OmitAnnotations bool
}

// WriteErrorReport streams the run's error_report.csv to w: header
// line,id,amount,wording,reason (after an account column, the row's account
// as read, when the run's file had one, like WriteOutput); every rejected row of the run and every run
// line with an error (amount as read from the file), ordered by line, with
// the txn.SafeCell rule applied to text cells, the raw amount included (a
// plain number such as -2500000.00 or -1 234,56 is written as read). It returns
// the number of data rows, ErrRunNotFound (wrapped) for an unknown run, and
// the wrapped connection, SQL or w.Write error.
func (db *DB) WriteErrorReport(ctx context.Context, runID string, w io.Writer) (int64, error) {
	query := func(f runFacts) string {
		if f.accountColumn {
			return fmt.Sprintf(sqlErrorReport, accountColumn("account")+",\n           ")
		}
		return fmt.Sprintf(sqlErrorReport, "")
	}
	n, err := db.copyOut(ctx, runID, query, w)
	if err != nil {
		return n, db.wrap("write error report of run "+runID, err)
	}
	return n, nil
}

// runFacts are what a run's outputs mirror of its file.
type runFacts struct {
	accountColumn bool // runs.has_account_column
	dateColumn    bool // runs.has_date_column
}

// copyOut runs a COPY TO STDOUT query for runID in a read-only snapshot;
// query builds it from what the run's file had.
func (db *DB) copyOut(ctx context.Context, runID string, query func(runFacts) string, w io.Writer) (int64, error) {
	var n int64
	err := pgx.BeginTxFunc(ctx, db.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		var f runFacts
		err := tx.QueryRow(ctx, "SELECT has_account_column, has_date_column FROM runs WHERE run_id = $1", runID).
			Scan(&f.accountColumn, &f.dateColumn)
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrRunNotFound
		}
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "SET LOCAL work_mem = '256MB'"); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "SELECT set_config('txflow.run_id', $1, true)", runID); err != nil {
			return err
		}
		tag, err := tx.Conn().PgConn().CopyTo(ctx, w, query(f))
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
    (SELECT count(*) FROM run_lines rl JOIN tags t ON t.txn_key = rl.txn_key
     WHERE rl.run_id = r.run_id AND t.tag IS NOT NULL),
    (SELECT count(*) FROM run_lines rl JOIN annotations a ON a.txn_key = rl.txn_key
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
