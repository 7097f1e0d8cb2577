package postgres

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
)

// What a run's report page shows, computed here from the run's rows with set-based SQL: one
// scan of the run's lines for every count and the amount histogram (GROUPING SETS), one per
// direction for the largest amounts (ORDER BY … LIMIT), one over the rejected rows and the lines
// in error for the reasons and their first examples, and one over the runs table for the
// comparison with the account's past runs. On a 1,000,000-line run it all takes a fraction of a
// second (report_bench_test.go).

// Report settings.
const (
	// ReportExamples is how many rows of each reason, and how many of the largest debits and
	// credits, the report lists.
	ReportExamples = 3
	// HistoryRuns is how many of the account's latest past runs a run is compared with.
	HistoryRuns = 30
	// HistoryMinRuns is the fewest past runs a comparison needs: with fewer, nothing is flagged.
	HistoryMinRuns = 5
	// FarOff is the factor beyond which a count is flagged: more than FarOff times the median
	// of the past runs (the median taken as at least 1, so that a handful of rejections after
	// runs with none is not flagged) or less than the median divided by FarOff.
	FarOff = 3
)

// AmountBuckets are the bounds of the amount histogram: |amount| by powers of ten. Bucket 0 holds
// |amount| < 1, bucket i (1 ≤ i < len) holds AmountBuckets[i-1] ≤ |amount| < AmountBuckets[i],
// and the last, len(AmountBuckets), every |amount| ≥ 1,000,000,000 (amounts in error have any
// size).
var AmountBuckets = []string{"1", "10", "100", "1000", "10000", "100000", "1000000", "10000000", "100000000", "1000000000"}

// Kinds of ReasonCount.
const (
	KindRejected = "rejected" // a rejected row (rejected_rows.reason)
	KindInError  = "in_error" // an accepted line in error (run_lines.error)
)

// RunReport is what a run's report page shows that only the database knows.
type RunReport struct {
	RunID        string
	File         string
	Account      string
	RulesVersion int // 0 for a run recorded before versions existed

	RowsRead int64 // data records of the file (runs.rows_read)
	Accepted int64 // the run's lines, in error or not
	New      int64 // transactions the run stored (runs.new_count)
	Rejected int64 // rejected rows
	InError  int64 // lines in error

	// Tags and Annotations count the run's lines per tag and per annotation, as the output
	// shows them (no annotation on a line in error), most frequent first; Label "" is none. Each
	// is empty when the options omit that column.
	Tags        []LabelCount
	Annotations []LabelCount
	// Reasons count the rejected rows per reason, then the lines in error per error, most
	// frequent first, each with its first ReportExamples rows in line order.
	Reasons []ReasonCount
	// Amounts is the histogram of the lines' amounts: one entry per sign and bucket that has
	// lines (see AmountBuckets); Zero counts the lines of amount 0.
	Amounts []AmountBucket
	Zero    int64
	// LargestDebits and LargestCredits are the ReportExamples lines of largest |amount| of each
	// sign, largest first (lines in error included, with their error).
	LargestDebits  []ReportLine
	LargestCredits []ReportLine

	History RunHistory
}

// LabelCount is the number of lines with one tag or annotation.
type LabelCount struct {
	Label string
	Count int64
}

// ReasonCount is the number of rows rejected for one reason (or lines in one error), with the
// first of them.
type ReasonCount struct {
	Kind     string // KindRejected or KindInError
	Reason   string
	Count    int64
	Examples []ReportLine
}

// ReportLine is one row of the file as the report lists it: values as read (the amount as
// written in the file for a rejected row or a line in error).
type ReportLine struct {
	Line    int64
	ID      string
	Amount  string
	Wording string
	Detail  string // why a row was rejected, or a line's error
}

// AmountBucket counts the lines of one sign whose |amount| falls in one bucket of AmountBuckets.
type AmountBucket struct {
	Sign   int // -1 debit, +1 credit
	Bucket int // 0 .. len(AmountBuckets)
	Count  int64
}

// RunHistory compares a run with the same account's past runs: up to HistoryRuns runs settled
// before it, latest first. RowsFlag and RejectedFlag are "above" or "below" when the run's count
// is far off the median (see FarOff), "" otherwise or with fewer than HistoryMinRuns past runs.
type RunHistory struct {
	Runs           int
	MedianRows     float64
	MedianRejected float64
	RowsFlag       string
	RejectedFlag   string
}

// ReportOptions leave out what the run's output leaves out: a stage that failed.
type ReportOptions struct {
	OmitTags        bool
	OmitAnnotations bool
}

const (
	sqlReportRun = `SELECT file, account, coalesce(rules_version, 0), coalesce(rows_read, 0), coalesce(new_count, 0)
FROM runs WHERE run_id = $1`

	// One scan of the run's lines: the total (grouping set ()), per tag, per annotation, and the
	// amount histogram, told apart by GROUPING() (see reportLines).
	sqlReportLines = `SELECT GROUPING(tag, annotation, sgn), tag, annotation, sgn, bucket, count(*),
       count(*) FILTER (WHERE error IS NOT NULL)
FROM (
    SELECT %s AS tag,
           %s AS annotation,
           sign(rl.amount)::int AS sgn,
           width_bucket(abs(rl.amount), $2::numeric[]) AS bucket,
           rl.error
    FROM run_lines rl
    %s
    WHERE rl.run_id = $1
) l
GROUP BY GROUPING SETS ((), (tag), (annotation), (sgn, bucket))`

	// rl.amount, qualified: a bare "amount" would name the text output column.
	sqlReportLargest = `(SELECT -1, rl.line, coalesce(rl.id_as_read, rl.id), rl.amount::text, rl.wording, coalesce(rl.error, '')
 FROM run_lines rl WHERE rl.run_id = $1 AND rl.amount < 0 ORDER BY rl.amount, rl.line LIMIT $2)
UNION ALL
(SELECT 1, rl.line, coalesce(rl.id_as_read, rl.id), rl.amount::text, rl.wording, coalesce(rl.error, '')
 FROM run_lines rl WHERE rl.run_id = $1 AND rl.amount > 0 ORDER BY rl.amount DESC, rl.line LIMIT $2)`

	sqlReportReasons = `SELECT kind, reason, n, line, id, amount, wording, detail
FROM (
    SELECT kind, reason, line, id, amount, wording, detail,
           count(*) OVER w AS n,
           row_number() OVER (w ORDER BY line) AS k
    FROM (
        SELECT 'rejected' AS kind, reason, line, id, amount, wording, detail
        FROM rejected_rows WHERE run_id = $1
        UNION ALL
        SELECT 'in_error', error, line, coalesce(id_as_read, id), raw_amount, wording, error
        FROM run_lines WHERE run_id = $1 AND error IS NOT NULL
    ) r
    WINDOW w AS (PARTITION BY kind, reason)
) x
WHERE k <= $2
ORDER BY kind DESC, n DESC, reason, line`

	// The account's past runs settled before this one (all of them when this one is not
	// settled), latest first; a run's rejections are its rows in rejected_rows.
	sqlReportHistory = `WITH me AS (
    SELECT account, coalesce(ingested_at, 'infinity') AS at, coalesce(rows_read, 0) AS rows_read,
           (SELECT count(*) FROM rejected_rows WHERE run_id = $1) AS rejected
    FROM runs WHERE run_id = $1
), past AS (
    SELECT r.rows_read, (SELECT count(*) FROM rejected_rows x WHERE x.run_id = r.run_id) AS rejected
    FROM runs r, me
    WHERE r.account = me.account AND r.run_id <> $1
      AND r.ingested_at IS NOT NULL AND r.rows_read IS NOT NULL AND r.ingested_at < me.at
    ORDER BY r.ingested_at DESC
    LIMIT $2
), agg AS (
    SELECT count(*)::int AS n,
           coalesce(percentile_cont(0.5) WITHIN GROUP (ORDER BY rows_read), 0) AS rows_median,
           coalesce(percentile_cont(0.5) WITHIN GROUP (ORDER BY rejected), 0) AS rejected_median
    FROM past
)
SELECT agg.n, agg.rows_median, agg.rejected_median,
       CASE WHEN agg.n < $3 THEN ''
            WHEN me.rows_read > $4 * greatest(agg.rows_median, 1) THEN 'above'
            WHEN me.rows_read < agg.rows_median / $4 THEN 'below' ELSE '' END,
       CASE WHEN agg.n < $3 THEN ''
            WHEN me.rejected > $4 * greatest(agg.rejected_median, 1) THEN 'above'
            WHEN me.rejected < agg.rejected_median / $4 THEN 'below' ELSE '' END
FROM agg, me`
)

// RunReport computes the run's report in one read-only snapshot. It returns ErrRunNotFound
// (wrapped) for an unknown run and the wrapped connection or SQL error otherwise.
func (db *DB) RunReport(ctx context.Context, runID string, opts ReportOptions) (RunReport, error) {
	r := RunReport{RunID: runID}
	err := pgx.BeginTxFunc(ctx, db.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, sqlReportRun, runID).Scan(&r.File, &r.Account, &r.RulesVersion, &r.RowsRead, &r.New)
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrRunNotFound
		}
		if err != nil {
			return fmt.Errorf("read run: %w", err)
		}
		if _, err := tx.Exec(ctx, "SET LOCAL work_mem = '64MB'"); err != nil {
			return err
		}
		if err := reportLines(ctx, tx, &r, opts); err != nil {
			return fmt.Errorf("count lines: %w", err)
		}
		if err := reportLargest(ctx, tx, &r); err != nil {
			return fmt.Errorf("largest amounts: %w", err)
		}
		if err := reportReasons(ctx, tx, &r); err != nil {
			return fmt.Errorf("reasons: %w", err)
		}
		h := &r.History
		if err := tx.QueryRow(ctx, sqlReportHistory, runID, HistoryRuns, HistoryMinRuns, FarOff).
			Scan(&h.Runs, &h.MedianRows, &h.MedianRejected, &h.RowsFlag, &h.RejectedFlag); err != nil {
			return fmt.Errorf("past runs: %w", err)
		}
		return nil
	})
	if err != nil {
		return RunReport{}, db.wrap("report of run "+runID, err)
	}
	return r, nil
}

func reportLines(ctx context.Context, tx pgx.Tx, r *RunReport, opts ReportOptions) error {
	tag, annotation := "tg.tag", "CASE WHEN rl.error IS NULL THEN an.annotation END"
	joins := "LEFT JOIN tags tg ON tg.txn_key = rl.txn_key\n    LEFT JOIN annotations an ON an.txn_key = rl.txn_key"
	switch {
	case opts.OmitTags && opts.OmitAnnotations:
		tag, annotation, joins = "NULL::text", "NULL::text", ""
	case opts.OmitTags:
		tag, joins = "NULL::text", "LEFT JOIN annotations an ON an.txn_key = rl.txn_key"
	case opts.OmitAnnotations:
		annotation, joins = "NULL::text", "LEFT JOIN tags tg ON tg.txn_key = rl.txn_key"
	}
	rows, err := tx.Query(ctx, fmt.Sprintf(sqlReportLines, tag, annotation, joins), r.RunID, AmountBuckets)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var (
			g              int
			label, note    *string
			sign, bucket   *int
			count, inError int64
		)
		if err := rows.Scan(&g, &label, &note, &sign, &bucket, &count, &inError); err != nil {
			return err
		}
		// GROUPING(tag, annotation, sgn): a bit set for each column the row is not grouped by.
		switch g {
		case 0b111:
			r.Accepted, r.InError = count, inError
		case 0b011:
			if !opts.OmitTags {
				r.Tags = append(r.Tags, LabelCount{Label: deref(label), Count: count})
			}
		case 0b101:
			if !opts.OmitAnnotations {
				r.Annotations = append(r.Annotations, LabelCount{Label: deref(note), Count: count})
			}
		case 0b110:
			switch {
			case sign == nil || bucket == nil:
			case *sign == 0:
				r.Zero += count
			default:
				r.Amounts = append(r.Amounts, AmountBucket{Sign: *sign, Bucket: *bucket, Count: count})
			}
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	sortLabels(r.Tags)
	sortLabels(r.Annotations)
	sortBuckets(r.Amounts)
	return nil
}

func reportLargest(ctx context.Context, tx pgx.Tx, r *RunReport) error {
	rows, err := tx.Query(ctx, sqlReportLargest, r.RunID, ReportExamples)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var sign int
		var l ReportLine
		if err := rows.Scan(&sign, &l.Line, &l.ID, &l.Amount, &l.Wording, &l.Detail); err != nil {
			return err
		}
		if sign < 0 {
			r.LargestDebits = append(r.LargestDebits, l)
		} else {
			r.LargestCredits = append(r.LargestCredits, l)
		}
	}
	return rows.Err()
}

func reportReasons(ctx context.Context, tx pgx.Tx, r *RunReport) error {
	rows, err := tx.Query(ctx, sqlReportReasons, r.RunID, ReportExamples)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var kind, reason string
		var n int64
		var l ReportLine
		if err := rows.Scan(&kind, &reason, &n, &l.Line, &l.ID, &l.Amount, &l.Wording, &l.Detail); err != nil {
			return err
		}
		if last := len(r.Reasons) - 1; last < 0 || r.Reasons[last].Kind != kind || r.Reasons[last].Reason != reason {
			r.Reasons = append(r.Reasons, ReasonCount{Kind: kind, Reason: reason, Count: n})
			if kind == KindRejected {
				r.Rejected += n
			}
		}
		last := &r.Reasons[len(r.Reasons)-1]
		last.Examples = append(last.Examples, l)
	}
	return rows.Err()
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// sortLabels orders the few groups of a run: most lines first, then by label, "" (none) last
// among equals.
func sortLabels(l []LabelCount) {
	slices.SortFunc(l, func(a, b LabelCount) int {
		if c := cmp.Compare(b.Count, a.Count); c != 0 {
			return c
		}
		if (a.Label == "") != (b.Label == "") {
			if a.Label == "" {
				return 1
			}
			return -1
		}
		return strings.Compare(a.Label, b.Label)
	})
}

// sortBuckets orders the histogram's few buckets: debits then credits, by bucket.
func sortBuckets(b []AmountBucket) {
	slices.SortFunc(b, func(x, y AmountBucket) int {
		if c := cmp.Compare(x.Sign, y.Sign); c != 0 {
			return c
		}
		return cmp.Compare(x.Bucket, y.Bucket)
	})
}
