package postgres

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"
)

// What a run's report page shows, computed here from the run's rows with set-based SQL: one
// scan of the run's lines for the counts, the errors and the amount histogram (width_bucket),
// then one more for the largest amounts, keeping only the lines of the histogram's outermost
// buckets (ORDER BY … LIMIT over those); beside them, one range scan of each result table for
// the tags and annotations, in the same snapshot; then the rejected
// rows and the first lines of each error through the primary keys, and the runs table for the
// comparison with the account's past runs. See report_bench_test.go for what it costs on a
// 1,000,000-line run.

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

// signedBuckets are the thresholds of one width_bucket over the signed amount that gives both
// its sign and its bucket of AmountBuckets, with no abs() nor sign() per line (a third of the
// scan's cost): amounts have two decimals, so a debit d has |d| ≥ 10^k exactly when
// d < -10^k + 0.01. Signed bucket s ≤ 10 is a debit of bucket 10 - s, 11 holds 0 and s ≥ 12
// a credit of bucket s - 12 (see signedBucket).
var signedBuckets = [signedBucketCount - 1]string{
	"-999999999.99", "-99999999.99", "-9999999.99", "-999999.99", "-99999.99", "-9999.99", "-999.99", "-99.99", "-9.99", "-0.99",
	"0", "0.01",
	"1", "10", "100", "1000", "10000", "100000", "1000000", "10000000", "100000000", "1000000000",
}

// signedBucketCount is the number of signed buckets: one more than their thresholds.
const signedBucketCount = 23

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
	sqlReportRun = `SELECT file, account, coalesce(rules_version, 0), coalesce(rows_read, 0), coalesce(new_count, 0),
       num, all_new
FROM runs WHERE run_id = $1`

	// One scan of the run's lines, without a join: the lines per signed bucket (the amount
	// histogram) and error; a plain hash aggregate, which PostgreSQL may run in parallel.
	sqlReportLines = `SELECT width_bucket(amount, $2::numeric[]) AS bucket, error, count(*)
FROM run_lines
WHERE run_id = $1
GROUP BY 1, 2`

	// The lines per tag (annotation) of a run whose every line stored its transaction
	// (runs.all_new): their results were all computed by the run's own chunks, under the keys
	// its lines give, num * 2^32 + seq; a range scan of the result table's primary key finds
	// them, with no join. Lines in error have no annotation (AnnotateChunk skips them).
	sqlReportOwnResults = `SELECT %[1]s, count(*) FROM %[2]s
WHERE txn_key >= $1 * 4294967296 AND txn_key < ($1 + 1) * 4294967296 AND %[1]s IS NOT NULL
GROUP BY %[1]s`

	// The same for a run with lines of stored transactions: their results may come from any
	// run, so the run's lines are joined with the result table.
	sqlReportJoinedResults = `SELECT x.%[1]s, count(*) FROM run_lines rl JOIN %[2]s x ON x.txn_key = rl.txn_key
WHERE rl.run_id = $1 AND x.%[1]s IS NOT NULL %[3]s
GROUP BY x.%[1]s`

	// The largest debits and credits: one scan of the run's lines keeping only those beyond $2
	// (debits) and from $3 (credits), bounds that the histogram says hold at least $4 lines of
	// each sign but few more, then the first $4 of each sign. A NULL bound keeps none. c.amount,
	// qualified: a bare "amount" would name the text output column.
	sqlReportLargest = `WITH c AS MATERIALIZED (
    SELECT rl.line, coalesce(rl.id_as_read, rl.id) AS id, rl.amount, rl.wording, coalesce(rl.error, '') AS error
    FROM run_lines rl
    WHERE rl.run_id = $1 AND (rl.amount < $2::numeric OR rl.amount >= $3::numeric)
)
(SELECT -1, c.line, c.id, c.amount::text, c.wording, c.error FROM c WHERE c.amount < 0 ORDER BY c.amount, c.line LIMIT $4)
UNION ALL
(SELECT 1, c.line, c.id, c.amount::text, c.wording, c.error FROM c WHERE c.amount > 0 ORDER BY c.amount DESC, c.line LIMIT $4)`

	// The rejected rows per reason, with the first of each (the primary key's order).
	sqlReportRejected = `SELECT reason, n, line, id, amount, wording, detail
FROM (
    SELECT reason, line, id, amount, wording, detail,
           count(*) OVER w AS n,
           row_number() OVER (w ORDER BY line) AS k
    FROM rejected_rows WHERE run_id = $1
    WINDOW w AS (PARTITION BY reason)
) x
WHERE k <= $2
ORDER BY n DESC, reason, line`

	// The first lines of each error, found in the order of the primary key: the scan stops at
	// the last example.
	sqlReportErrors = `SELECT e.error, l.line, l.id, l.raw_amount, l.wording
FROM unnest($2::text[]) AS e(error)
CROSS JOIN LATERAL (
    SELECT line, coalesce(id_as_read, id) AS id, raw_amount, wording
    FROM run_lines
    WHERE run_id = $1 AND error = e.error
    ORDER BY seq
    LIMIT $3
) l
ORDER BY e.error, l.line`

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

// RunReport computes the run's report, every figure from one snapshot of the database. The
// scans of the run's lines and results run side by side, each on a connection of its own that
// imports the snapshot of the transaction reading the run (pg_export_snapshot), so that the page
// costs about its longest scan rather than their sum. It returns ErrRunNotFound (wrapped) for an
// unknown run and the wrapped connection or SQL error otherwise.
func (db *DB) RunReport(ctx context.Context, runID string, opts ReportOptions) (RunReport, error) {
	return db.runReport(ctx, runID, opts, nil)
}

// RunReportLines computes the figures of the run's report that its lines and rejected rows
// give: the counts of lines, rejected rows and lines in error, the amount histogram, the largest
// amounts, and the reasons with their first rows. They are final once the run is settled (its
// results are not needed), so they can be computed while its lines are tagged and annotated and
// handed to RunReportWith. Errors as RunReport's.
func (db *DB) RunReportLines(ctx context.Context, runID string) (RunReport, error) {
	r := RunReport{RunID: runID}
	// One connection only: no need to wait for the report slot (a big run's report would hold
	// up a small run's error report).
	err := db.inReportTx(ctx, false, func(tx pgx.Tx) error {
		var exists bool
		if err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM runs WHERE run_id = $1)", runID).Scan(&exists); err != nil {
			return fmt.Errorf("read run: %w", err)
		}
		if !exists {
			return ErrRunNotFound
		}
		return reportLines(ctx, tx, runID, &r)
	})
	if err != nil {
		return RunReport{}, db.wrap("report figures of the lines of run "+runID, err)
	}
	return r, nil
}

// RunReportWith is RunReport computing only what lines, the run's RunReportLines, does not hold:
// the run itself, its tags and annotations, and the comparison with the account's past runs.
func (db *DB) RunReportWith(ctx context.Context, runID string, opts ReportOptions, lines RunReport) (RunReport, error) {
	return db.runReport(ctx, runID, opts, &lines)
}

// inReportTx runs fn in a report transaction (reportTx, sqlReportSettings); with slot, for a
// report whose parts take more connections, one such report at a time (see reportSlot).
func (db *DB) inReportTx(ctx context.Context, slot bool, fn func(tx pgx.Tx) error) error {
	if slot {
		select {
		case reportSlot <- struct{}{}:
			defer func() { <-reportSlot }()
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return pgx.BeginTxFunc(ctx, db.pool, reportTx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, sqlReportSettings); err != nil {
			return err
		}
		return fn(tx)
	})
}

// reportLines fills in r what RunReportLines computes, the lines' scans in tx.
func reportLines(ctx context.Context, tx pgx.Tx, runID string, r *RunReport) error {
	lines, debits, credits, err := scanLines(ctx, tx, runID)
	if err != nil {
		return err
	}
	return reportReasons(ctx, tx, runID, lines, debits, credits, r)
}

// scanLines scans the run's lines for the histogram, then for the largest amounts within the
// bounds it gives.
func scanLines(ctx context.Context, tx pgx.Tx, runID string) (lines linesPart, debits, credits []ReportLine, err error) {
	if err := lines.read(ctx, tx, runID); err != nil {
		return lines, nil, nil, fmt.Errorf("count lines: %w", err)
	}
	debit, credit := lines.largestBounds(ReportExamples)
	if debits, credits, err = reportLargest(ctx, tx, runID, debit, credit); err != nil {
		return lines, nil, nil, fmt.Errorf("largest amounts: %w", err)
	}
	return lines, debits, credits, nil
}

// reportReasons fills r with lines, the largest amounts, and the rejected rows and lines in
// error per reason with their first rows.
func reportReasons(ctx context.Context, tx pgx.Tx, runID string, lines linesPart, debits, credits []ReportLine, r *RunReport) error {
	rejected, err := reportRejected(ctx, tx, runID)
	if err != nil {
		return fmt.Errorf("rejected rows: %w", err)
	}
	if err := reportErrorExamples(ctx, tx, runID, lines.errors); err != nil {
		return fmt.Errorf("lines in error: %w", err)
	}
	r.Accepted, r.InError, r.Amounts, r.Zero = lines.accepted, lines.inError, lines.amounts, lines.zero
	r.LargestDebits, r.LargestCredits = debits, credits
	r.Rejected = 0
	for _, rc := range rejected {
		r.Rejected += rc.Count
	}
	r.Reasons = append(rejected, lines.errors...)
	return nil
}

// runReport is RunReport, or RunReportWith when known is not nil.
func (db *DB) runReport(ctx context.Context, runID string, opts ReportOptions, known *RunReport) (RunReport, error) {
	r := RunReport{RunID: runID}
	if known != nil {
		r = *known
		r.RunID = runID
	}
	// Its parts take connections of their own when it scans the lines too (known is nil).
	err := db.inReportTx(ctx, known == nil, func(tx pgx.Tx) error {
		var run runKeys
		err := tx.QueryRow(ctx, sqlReportRun, runID).Scan(&r.File, &r.Account, &r.RulesVersion, &r.RowsRead, &r.New,
			&run.num, &run.allNew)
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrRunNotFound
		}
		if err != nil {
			return fmt.Errorf("read run: %w", err)
		}
		var (
			lines             linesPart
			tags, annotations []LabelCount
			debits, credits   []ReportLine
		)
		// Side by side: the run's lines (the histogram, then the largest amounts within the
		// bounds it gives) unless known, and its results.
		var parts []func(context.Context, pgx.Tx) error
		if known == nil {
			parts = append(parts, func(ctx context.Context, tx pgx.Tx) (err error) {
				lines, debits, credits, err = scanLines(ctx, tx, runID)
				return err
			})
		}
		// Beside the dump (known), the counts the run's chunks kept, when they cover its lines.
		parts = append(parts, func(ctx context.Context, tx pgx.Tx) (err error) {
			if !opts.OmitTags {
				if tags, err = labelCounts(ctx, tx, runID, run, tagsTable, known != nil); err != nil {
					return err
				}
			}
			if !opts.OmitAnnotations {
				annotations, err = labelCounts(ctx, tx, runID, run, annotationsTable, known != nil)
			}
			return err
		})
		if err := db.inSnapshot(ctx, tx, parts); err != nil {
			return err
		}
		if known == nil {
			if err := reportReasons(ctx, tx, runID, lines, debits, credits, &r); err != nil {
				return err
			}
		}
		h := &r.History
		if err := tx.QueryRow(ctx, sqlReportHistory, runID, HistoryRuns, HistoryMinRuns, FarOff).
			Scan(&h.Runs, &h.MedianRows, &h.MedianRejected, &h.RowsFlag, &h.RejectedFlag); err != nil {
			return fmt.Errorf("past runs: %w", err)
		}
		r.Tags, r.Annotations = nil, nil
		if !opts.OmitTags {
			r.Tags = withNone(tags, r.Accepted)
		}
		if !opts.OmitAnnotations {
			r.Annotations = withNone(annotations, r.Accepted)
		}
		return nil
	})
	if err != nil {
		return RunReport{}, db.wrap("report of run "+runID, err)
	}
	return r, nil
}

// sqlReportSettings are the settings of a report's transactions: no parallel workers, which
// would cost more CPU than they save time, the report being computed beside the output's dump
// on a busy database (each of its statements scans one run).
const sqlReportSettings = "SET LOCAL work_mem = '64MB'; SET LOCAL max_parallel_workers_per_gather = 0"

// reportTx is the transaction of a report's queries: read-only, one snapshot for all.
var reportTx = pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}

// snapshotID is what pg_export_snapshot returns (e.g. 00000003-0000001B-1).
var snapshotID = regexp.MustCompile(`^[0-9A-Fa-f-]+$`)

// reportSlot lets one report at a time take connections, from the first on: the transaction
// that exported the snapshot holds a connection while its parts wait for theirs, and reports
// each holding one while waiting for more could hold the whole pool and wait for ever.
var reportSlot = make(chan struct{}, 1)

// inSnapshot runs each part at the same time, each in a read-only transaction of its own on a
// connection of the pool, seeing the snapshot of tx (exported); it returns the parts' errors
// joined, cancelling the others at the first. A single part, or all of them with a pool of a
// single connection, run one after the other in tx itself.
func (db *DB) inSnapshot(ctx context.Context, tx pgx.Tx, parts []func(context.Context, pgx.Tx) error) error {
	if len(parts) < 2 || db.pool.Config().MaxConns < 2 {
		for _, part := range parts {
			if err := part(ctx, tx); err != nil {
				return err
			}
		}
		return nil
	}
	var snapshot string
	if err := tx.QueryRow(ctx, "SELECT pg_export_snapshot()").Scan(&snapshot); err != nil {
		return fmt.Errorf("export snapshot: %w", err)
	}
	if !snapshotID.MatchString(snapshot) {
		return fmt.Errorf("unexpected snapshot id %q", snapshot)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make([]error, len(parts))
	var wg sync.WaitGroup
	for i, part := range parts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = pgx.BeginTxFunc(ctx, db.pool, reportTx, func(tx pgx.Tx) error {
				if _, err := tx.Exec(ctx, "SET TRANSACTION SNAPSHOT '"+snapshot+"'"); err != nil {
					return fmt.Errorf("import snapshot: %w", err)
				}
				if _, err := tx.Exec(ctx, sqlReportSettings); err != nil {
					return err
				}
				return part(ctx, tx)
			})
			if errs[i] != nil {
				cancel()
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// signedBucket returns the sign and the bucket of AmountBuckets of signed bucket s (see
// signedBuckets).
func signedBucket(s int) (sign, bucket int) {
	n := len(AmountBuckets)
	switch {
	case s <= n:
		return -1, n - s
	case s == n+1:
		return 0, 0
	default:
		return 1, s - n - 2
	}
}

// runKeys says where a run's results are: under its own keys when all its lines are new.
type runKeys struct {
	num    int64 // runs.num
	allNew bool  // runs.all_new
}

// linesPart is what the scan of the run's lines finds.
type linesPart struct {
	accepted, inError, zero int64
	signed                  [signedBucketCount]int64 // lines per signed bucket
	amounts                 []AmountBucket
	errors                  []ReasonCount // lines per error, most first, no example yet
}

func (p *linesPart) read(ctx context.Context, tx pgx.Tx, runID string) error {
	rows, err := tx.Query(ctx, sqlReportLines, runID, signedBuckets[:])
	if err != nil {
		return err
	}
	defer rows.Close()
	perBucket := map[AmountBucket]int64{}
	errs := map[string]int64{}
	for rows.Next() {
		var (
			bucket  int
			lineErr *string
			count   int64
		)
		if err := rows.Scan(&bucket, &lineErr, &count); err != nil {
			return err
		}
		p.accepted += count
		if bucket >= 0 && bucket < len(p.signed) {
			p.signed[bucket] += count
		}
		if lineErr != nil {
			p.inError += count
			errs[*lineErr] += count
		}
		sign, b := signedBucket(bucket)
		if sign == 0 {
			p.zero += count
			continue
		}
		perBucket[AmountBucket{Sign: sign, Bucket: b}] += count
	}
	if err := rows.Err(); err != nil {
		return err
	}
	for b, n := range perBucket {
		b.Count = n
		p.amounts = append(p.amounts, b)
	}
	sortBuckets(p.amounts)
	for e, n := range errs {
		p.errors = append(p.errors, ReasonCount{Kind: KindInError, Reason: e, Count: n})
	}
	sortReasons(p.errors)
	return nil
}

// labelCounts counts the run's lines per non-null value of t's column, as the output shows them:
// from the counts its chunks kept when chunks and they cover the run's lines, from a scan
// otherwise.
func labelCounts(ctx context.Context, tx pgx.Tx, runID string, run runKeys, t resultTable, chunks bool) ([]LabelCount, error) {
	if chunks {
		var maxSeq int64
		if err := tx.QueryRow(ctx, "SELECT coalesce(max(seq), 0) FROM run_lines WHERE run_id = $1", runID).Scan(&maxSeq); err != nil {
			return nil, fmt.Errorf("last line: %w", err)
		}
		counts, ok, err := chunkLabelCounts(ctx, tx, runID, run.num, maxSeq, t.name)
		if err != nil {
			return nil, fmt.Errorf("chunk counts of %s: %w", t.name, err)
		}
		if ok {
			return counts, nil
		}
	}
	return reportResults(ctx, tx, runID, run, t.name, t.column, t.outputFilter())
}

// reportResults counts the run's lines per non-null value of column of table (tags.tag,
// annotations.annotation).
func reportResults(ctx context.Context, tx pgx.Tx, runID string, run runKeys, table, column, joinedFilter string) ([]LabelCount, error) {
	var rows pgx.Rows
	var err error
	if run.allNew {
		rows, err = tx.Query(ctx, fmt.Sprintf(sqlReportOwnResults, column, table), run.num)
	} else {
		rows, err = tx.Query(ctx, fmt.Sprintf(sqlReportJoinedResults, column, table, joinedFilter), runID)
	}
	if err != nil {
		return nil, fmt.Errorf("count %s: %w", table, err)
	}
	defer rows.Close()
	var out []LabelCount
	for rows.Next() {
		var l LabelCount
		if err := rows.Scan(&l.Label, &l.Count); err != nil {
			return nil, err
		}
		out = append(out, l)
	}
	return out, rows.Err()
}

// withNone adds the lines without a value, under "", to the counts of those with one, and
// orders them.
func withNone(counts []LabelCount, lines int64) []LabelCount {
	none := lines
	for _, c := range counts {
		none -= c.Count
	}
	if none > 0 {
		counts = append(counts, LabelCount{Count: none})
	}
	sortLabels(counts)
	return counts
}

// largestBounds returns the bounds of sqlReportLargest: debits below debit and credits from
// credit hold at least n lines of each sign (all of them when fewer), the fewest whole buckets
// of the histogram that do. A nil bound keeps no line (no line of that sign).
func (p *linesPart) largestBounds(n int64) (debit, credit *string) {
	// Signed bucket s < len(signedBuckets) holds signedBuckets[s-1] <= amount < signedBuckets[s].
	var seen int64
	for s := 0; s <= len(AmountBuckets); s++ { // debits: amount < signedBuckets[s]
		seen += p.signed[s]
		if seen >= n || s == len(AmountBuckets) {
			if seen > 0 {
				debit = &signedBuckets[s]
			}
			break
		}
	}
	seen = 0
	for s := len(signedBuckets); s >= len(AmountBuckets)+2; s-- { // credits: amount >= signedBuckets[s-1]
		seen += p.signed[s]
		if seen >= n || s == len(AmountBuckets)+2 {
			if seen > 0 {
				credit = &signedBuckets[s-1]
			}
			break
		}
	}
	return debit, credit
}

func reportLargest(ctx context.Context, tx pgx.Tx, runID string, debit, credit *string) (debits, credits []ReportLine, err error) {
	rows, err := tx.Query(ctx, sqlReportLargest, runID, debit, credit, ReportExamples)
	if err != nil {
		return nil, nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var sign int
		var l ReportLine
		if err := rows.Scan(&sign, &l.Line, &l.ID, &l.Amount, &l.Wording, &l.Detail); err != nil {
			return nil, nil, err
		}
		if sign < 0 {
			debits = append(debits, l)
		} else {
			credits = append(credits, l)
		}
	}
	return debits, credits, rows.Err()
}

// reportRejected counts the rejected rows per reason, most first, with the first rows of each.
func reportRejected(ctx context.Context, tx pgx.Tx, runID string) ([]ReasonCount, error) {
	rows, err := tx.Query(ctx, sqlReportRejected, runID, ReportExamples)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []ReasonCount
	for rows.Next() {
		var reason string
		var n int64
		var l ReportLine
		if err := rows.Scan(&reason, &n, &l.Line, &l.ID, &l.Amount, &l.Wording, &l.Detail); err != nil {
			return nil, err
		}
		if last := len(out) - 1; last < 0 || out[last].Reason != reason {
			out = append(out, ReasonCount{Kind: KindRejected, Reason: reason, Count: n})
		}
		last := &out[len(out)-1]
		last.Examples = append(last.Examples, l)
	}
	return out, rows.Err()
}

// reportErrorExamples adds to each error of the run its first lines.
func reportErrorExamples(ctx context.Context, tx pgx.Tx, runID string, errs []ReasonCount) error {
	if len(errs) == 0 {
		return nil
	}
	names := make([]string, len(errs))
	byName := map[string]*ReasonCount{}
	for i := range errs {
		names[i] = errs[i].Reason
		byName[errs[i].Reason] = &errs[i]
	}
	rows, err := tx.Query(ctx, sqlReportErrors, runID, names, ReportExamples)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var reason string
		var l ReportLine
		if err := rows.Scan(&reason, &l.Line, &l.ID, &l.Amount, &l.Wording); err != nil {
			return err
		}
		l.Detail = reason
		if rc := byName[reason]; rc != nil {
			rc.Examples = append(rc.Examples, l)
		}
	}
	return rows.Err()
}

// sortReasons orders reasons most rows first, then by name.
func sortReasons(rs []ReasonCount) {
	slices.SortFunc(rs, func(a, b ReasonCount) int {
		if c := cmp.Compare(b.Count, a.Count); c != 0 {
			return c
		}
		return strings.Compare(a.Reason, b.Reason)
	})
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
