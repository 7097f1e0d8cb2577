package postgres

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/shopspring/decimal"
)

// A reclassification computes the stored transactions of an account (or of all) again under one
// version of the rules (migration 009). PlanReclassify records it and splits the table of
// transactions into ranges of pages; DryRunReclassifyChunk reads one range where the
// transactions are (a TID range scan, their results by ranges of keys), computes them and writes
// only those whose result changes into reclassify_diffs, with the chunk's number;
// WriteReclassifyDiff and ReclassifyDiffCounts report the diff; ApplyReclassifyChunk writes the
// new results of a chunk of the diff, bumping each transaction's result version and writing its
// outbox row; ReclassifiedMessages reads those messages for the publisher; FinishReclassify
// records the outcome. The rules themselves stay in package txn: the dry run is given a
// Classifier.
//
// Nothing is copied before the dry run: a snapshot of every transaction with its results took
// longer to write than the dry run took to read it. The price is that the dry run reads the
// live table: a transaction a run stores while it reads is computed or not depending on the page
// it lands on (it has its own run's results either way), and a transaction moved to another page
// by an update while it reads can be seen twice (its diff row, keyed by the transaction, is
// written once) or not at all. The updates that move transactions are a reclassification's
// apply, hence one reclassification at a time (ReclassificationInProgressError).

// ErrReclassificationNotFound is returned (wrapped) for a reclassification PlanReclassify never
// recorded.
var ErrReclassificationNotFound = errors.New("reclassification not found")

// ReclassificationInProgressError is returned (wrapped) by PlanReclassify when another
// reclassification of the database has not ended: its diff, computed before this one applies or
// after, would be wrong the moment the other applies.
type ReclassificationInProgressError struct {
	ID      string // the reclassification that has not ended
	Account string // "" for every account
	Started time.Time
}

func (e *ReclassificationInProgressError) Error() string {
	target := "every account"
	if e.Account != "" {
		target = "account " + e.Account
	}
	return fmt.Sprintf("reclassification %s (%s, started %s) has not ended", e.ID, target, e.Started.UTC().Format(time.RFC3339))
}

// lockPlanReclassify serialises plans, so that two started at once cannot both find no other
// (advisory lock keys: see db.go).
const lockPlanReclassify int64 = 0x7478666c6f770003

// ReclassifyTarget says which stored transactions a reclassification computes again.
type ReclassifyTarget struct {
	ID      string // the reclassification's id (its workflow id)
	Account string // "" for every account
	// From and To keep the transactions dated from From to To (both included); a transaction
	// without a date is then left out. nil: no bound.
	From, To *time.Time
	// RulesVersion is the version of the rules to apply.
	RulesVersion int
	// ChunkRows is about how many transactions (of any account) each dry-run chunk reads;
	// DefaultReclassifyChunkRows when 0.
	ChunkRows int64
}

// DefaultReclassifyChunkRows is ReclassifyTarget.ChunkRows when 0.
const DefaultReclassifyChunkRows = 100_000

// MaxReclassifyChunks bounds the chunks of a reclassification, whatever the size of the table, as
// workflows.MaxChunks does a run's: larger chunks instead, so that its history stays small.
const MaxReclassifyChunks = 1000

// defaultRowsPerPage is the density assumed for a table never analyzed (pg_class says nothing):
// about what a page of transactions with short wordings holds.
const defaultRowsPerPage = 60

// ReclassifyPlan is what PlanReclassify recorded: the target and how the dry run is split.
type ReclassifyPlan struct {
	ReclassifyTarget
	// Pages is the size of transactions in pages when planned, ChunkPages the pages each chunk
	// reads: see Chunks.
	Pages, ChunkPages int64
	// Existing says the plan had been recorded before (a retried plan): its target, version and
	// chunks are those recorded then.
	Existing bool
}

// PageRange is a chunk of a reclassification's dry run: the transactions on the pages
// From <= page < To of transactions; To 0 reads to the end of the table, however it grew.
// Chunk numbers the chunks from 1.
type PageRange struct {
	Chunk    int
	From, To int64
}

// ReclassifyChunks splits pages into ranges of chunkPages, numbered from 1, the last one
// open-ended (To 0) so that it reads the pages added since; an empty table is one open-ended
// chunk.
func ReclassifyChunks(pages, chunkPages int64) []PageRange {
	chunkPages = max(chunkPages, 1)
	var out []PageRange
	for from := int64(0); ; from += chunkPages {
		if from+chunkPages >= pages {
			return append(out, PageRange{Chunk: len(out) + 1, From: from})
		}
		out = append(out, PageRange{Chunk: len(out) + 1, From: from, To: from + chunkPages})
	}
}

// Chunks returns the plan's chunks (ReclassifyChunks).
func (p ReclassifyPlan) Chunks() []PageRange { return ReclassifyChunks(p.Pages, p.ChunkPages) }

// Classification is a transaction's result under some rules; "" is none.
type Classification struct {
	Tag, Annotation, Error string
}

// Classifier computes a transaction's result from its wording and amount (txn.Rules' Tag,
// Check and Annotate: no annotation for a transaction in error).
type Classifier func(wording string, amount decimal.Decimal) Classification

// ReclassifyCounts count the transactions a dry run computed and what their results change
// into.
type ReclassifyCounts struct {
	Items             int64 // transactions computed
	Changed           int64 // transactions whose result changes (rows of the diff)
	TagChanged        int64
	AnnotationChanged int64
	ErrorChanged      int64
	// Sources counts the transactions by the version of the rules that computed their stored
	// result (the tag's, else the annotation's; 0 for none recorded).
	Sources map[int]int64
}

// PlanReclassify records the reclassification t in one database transaction: its target, its
// version of the rules, and its chunks: the size of transactions in pages now, split in ranges
// of about t.ChunkRows transactions by the table's density as last analyzed (at most
// MaxReclassifyChunks ranges). It copies nothing.
// A reclassification already recorded (a retried plan) is returned as it was recorded, with
// Existing set: its version and chunks do not change. It returns ErrRulesVersionNotFound
// (wrapped) for a version that does not exist, a *ReclassificationInProgressError (wrapped)
// while another reclassification has not ended, and the wrapped connection or SQL error.
func (db *DB) PlanReclassify(ctx context.Context, t ReclassifyTarget) (ReclassifyPlan, error) {
	var p ReclassifyPlan
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", lockPlanReclassify); err != nil {
			return fmt.Errorf("lock: %w", err)
		}
		var err error
		p, err = readPlan(ctx, tx, t.ID)
		if err == nil {
			p.Existing = true
			return nil
		}
		if !errors.Is(err, ErrReclassificationNotFound) {
			return fmt.Errorf("read plan: %w", err)
		}
		var exists bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM rules_versions WHERE version = $1)`, t.RulesVersion).Scan(&exists); err != nil {
			return fmt.Errorf("read rules version: %w", err)
		}
		if !exists {
			return fmt.Errorf("version %d: %w", t.RulesVersion, ErrRulesVersionNotFound)
		}
		var other ReclassificationInProgressError
		var account pgtype.Text
		err = tx.QueryRow(ctx, `SELECT reclass_id, account, created_at FROM reclassifications
			WHERE status IS NULL ORDER BY created_at LIMIT 1`).Scan(&other.ID, &account, &other.Started)
		if err == nil {
			other.Account = account.String
			return &other
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("read reclassifications going on: %w", err)
		}
		// reltuples is -1 for a table never vacuumed nor analyzed; its pages are then counted
		// here all the same.
		var pages int64
		var tuples float64
		var relpages int64
		if err := tx.QueryRow(ctx, `SELECT pg_relation_size(c.oid) / current_setting('block_size')::bigint, c.reltuples, c.relpages
			FROM pg_class c WHERE c.oid = 'transactions'::regclass`).Scan(&pages, &tuples, &relpages); err != nil {
			return fmt.Errorf("size of transactions: %w", err)
		}
		density := float64(defaultRowsPerPage)
		if relpages > 0 && tuples > 0 {
			density = tuples / float64(relpages)
		}
		rows := t.ChunkRows
		if rows <= 0 {
			rows = DefaultReclassifyChunkRows
		}
		chunkPages := max(int64(math.Ceil(float64(rows)/density)), 1, (pages+MaxReclassifyChunks-1)/MaxReclassifyChunks)
		if _, err := tx.Exec(ctx, `
			INSERT INTO reclassifications (reclass_id, account, date_from, date_to, rules_version, pages, chunk_pages)
			VALUES ($1, NULLIF($2, ''), $3, $4, $5, $6, $7)`,
			t.ID, t.Account, dateParam(t.From), dateParam(t.To), t.RulesVersion, pages, chunkPages); err != nil {
			return fmt.Errorf("record reclassification: %w", err)
		}
		p = ReclassifyPlan{ReclassifyTarget: t, Pages: pages, ChunkPages: chunkPages}
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
	err := q.QueryRow(ctx, `SELECT reclass_id, account, date_from, date_to, rules_version, pages, chunk_pages
		FROM reclassifications WHERE reclass_id = $1`, id).Scan(&p.ID, &account, &from, &to, &p.RulesVersion, &p.Pages, &p.ChunkPages)
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

// reclassifyReadSQL reads the transactions of plan p on the pages of r (a TID range scan) with
// what their result depends on and their error. The amount is read as text, which costs the
// server less than computing cents in the query, and parsed by parseAmount (Annotate reads the
// binary numeric instead: readAmount). The page numbers are written into the statement, so that the planner sees
// how few pages it reads: an account's few transactions are read through the primary key
// instead.
func reclassifyReadSQL(p ReclassifyPlan, r PageRange) (string, []any) {
	conds := []string{fmt.Sprintf("t.ctid >= '(%d,0)'::tid", r.From)}
	if r.To > 0 {
		conds = append(conds, fmt.Sprintf("t.ctid < '(%d,0)'::tid", r.To))
	}
	var args []any
	if p.Account != "" {
		args = append(args, p.Account)
		conds = append(conds, "t.account = $"+strconv.Itoa(len(args)))
	}
	if p.From != nil {
		args = append(args, dateParam(p.From))
		conds = append(conds, "t.date >= $"+strconv.Itoa(len(args))+"::date")
	}
	if p.To != nil {
		args = append(args, dateParam(p.To))
		conds = append(conds, "t.date <= $"+strconv.Itoa(len(args))+"::date")
	}
	return `
SELECT t.key, t.account, t.id, t.wording, t.amount::text, t.error
FROM transactions t
WHERE ` + strings.Join(conds, " AND "), args
}

// The stored results of a chunk's transactions, read by ranges of keys ($1 and $2, the bounds of
// each range, both included): one walk along the primary key per range instead of a descent per
// transaction.
const (
	sqlReclassifyTags = `SELECT g.txn_key, g.tag, g.rules_version
FROM unnest($1::bigint[], $2::bigint[]) AS r(lo, hi) JOIN tags g ON g.txn_key >= r.lo AND g.txn_key <= r.hi`
	sqlReclassifyAnnotations = `SELECT a.txn_key, a.annotation, a.rules_version
FROM unnest($1::bigint[], $2::bigint[]) AS r(lo, hi) JOIN annotations a ON a.txn_key >= r.lo AND a.txn_key <= r.hi`
)

// reclassifyReadPlan keeps the reads of a chunk on its pages and on the ranges of keys of the
// results: the planner would rather scan all of tags and annotations for each chunk.
const reclassifyReadPlan = "SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off; SET LOCAL enable_seqscan = off"

// keyGap is the widest gap between two keys of a chunk's transactions that one range of keys
// spans: the results of the keys in a gap are read for nothing, about what starting another
// range costs. A run's new transactions have consecutive keys and lie on consecutive pages, so
// a chunk's keys make few ranges.
const keyGap = 256

// keyRanges returns the ranges of sorted keys, split where two keys are more than keyGap apart.
func keyRanges(keys []int64) (lo, hi []int64) {
	for i, k := range keys {
		if i == 0 || k-keys[i-1] > keyGap {
			lo, hi = append(lo, k), append(hi, k)
			continue
		}
		hi[len(hi)-1] = k
	}
	return lo, hi
}

// parseAmount parses an amount as numeric's text output writes it. The usual one, at most 16
// digits before the point and two after, is read into cents directly: decimal.NewFromString
// would cost more than the rest of the dry run's work on the transaction.
func parseAmount(b []byte) (decimal.Decimal, error) {
	s, neg := b, false
	if len(s) > 0 && s[0] == '-' {
		s, neg = s[1:], true
	}
	if n := len(s); n >= 4 && n <= 19 && s[n-3] == '.' {
		var cents int64
		ok := true
		for i, c := range s {
			if i == n-3 {
				continue
			}
			if c < '0' || c > '9' {
				ok = false
				break
			}
			cents = cents*10 + int64(c-'0')
		}
		if ok {
			if neg {
				cents = -cents
			}
			return decimal.New(cents, -2), nil
		}
	}
	d, err := decimal.NewFromString(string(b))
	if err != nil {
		return d, fmt.Errorf("amount %q: %w", b, err)
	}
	return d, nil
}

// storedTxn is a transaction a dry-run chunk computes: what its result depends on and its stored
// result.
type storedTxn struct {
	key                 int64
	account, id         string
	wording             string
	amount              decimal.Decimal
	old                 Classification
	tagVersion, version int32 // the tag's version, and the annotation's; 0: none recorded
}

// txnBlock is how many transactions a block of storedTxns holds: a chunk's transactions are
// kept in blocks, which never move, rather than in one slice copied each time it grows.
const txnBlock = 4096

// chunkTxns are the transactions of a chunk, in the order read.
type chunkTxns struct {
	blocks [][]storedTxn
	n      int
}

func (c *chunkTxns) add(t storedTxn) {
	if c.n%txnBlock == 0 {
		c.blocks = append(c.blocks, make([]storedTxn, 0, txnBlock))
	}
	c.blocks[len(c.blocks)-1] = append(c.blocks[len(c.blocks)-1], t)
	c.n++
}

func (c *chunkTxns) at(i int) *storedTxn { return &c.blocks[i/txnBlock][i%txnBlock] }

// readChunk reads the transactions of plan p on the pages of r with their stored results.
func readChunk(ctx context.Context, tx pgx.Tx, p ReclassifyPlan, r PageRange) (*chunkTxns, error) {
	if _, err := tx.Exec(ctx, reclassifyReadPlan); err != nil {
		return nil, fmt.Errorf("set plan options: %w", err)
	}
	query, args := reclassifyReadSQL(p, r)
	rows, err := tx.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("read transactions: %w", err)
	}
	out := &chunkTxns{}
	var keys []int64
	var (
		d       storedTxn
		amount  []byte
		errCode pgtype.Text
	)
	_, err = pgx.ForEachRow(rows, []any{&d.key, &d.account, &d.id, &d.wording, &amount, &errCode}, func() error {
		if amount == nil {
			return fmt.Errorf("transaction of key %d has no amount", d.key)
		}
		var err error
		if d.amount, err = parseAmount(amount); err != nil {
			return err
		}
		d.old = Classification{Error: errCode.String}
		out.add(d)
		keys = append(keys, d.key)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read transactions: %w", err)
	}
	if out.n == 0 {
		return out, nil
	}
	// index(j) is the transaction of the j-th key in key order: the order read, unless updates
	// or reused space put pages out of key order.
	index := func(j int) int { return j }
	if !slices.IsSorted(keys) {
		order := make([]int32, len(keys))
		for i := range order {
			order[i] = int32(i)
		}
		slices.SortFunc(order, func(a, b int32) int { return cmp.Compare(keys[a], keys[b]) })
		sorted := make([]int64, len(keys))
		for j, i := range order {
			sorted[j] = keys[i]
		}
		keys = sorted
		index = func(j int) int { return int(order[j]) }
	}
	lo, hi := keyRanges(keys)
	for _, res := range []struct {
		name, sql string
		set       func(t *storedTxn, value string, version int32)
	}{
		{"tags", sqlReclassifyTags, func(t *storedTxn, v string, version int32) { t.old.Tag, t.tagVersion = v, version }},
		{"annotations", sqlReclassifyAnnotations, func(t *storedTxn, v string, version int32) { t.old.Annotation, t.version = v, version }},
	} {
		rows, err := tx.Query(ctx, res.sql, lo, hi)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", res.name, err)
		}
		var (
			key     int64
			value   pgtype.Text
			version pgtype.Int4
			next    int // the results come in key order: the next key is usually keys[next]
		)
		_, err = pgx.ForEachRow(rows, []any{&key, &value, &version}, func() error {
			j, ok := next, next < len(keys) && keys[next] == key
			if !ok {
				j, ok = slices.BinarySearch(keys, key)
			}
			if ok {
				res.set(out.at(index(j)), value.String, version.Int32)
				next = j + 1
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", res.name, err)
		}
	}
	for i := range out.n {
		if t := out.at(i); t.tagVersion != 0 {
			t.version = t.tagVersion
		}
	}
	return out, nil
}

// diffRow is one row of reclassify_diffs; "" is stored as NULL.
type diffRow struct {
	key         int64
	account, id string
	old, new    Classification
	oldVersion  int32 // 0: none
}

// sqlWriteDiff writes a chunk's diff rows, given as arrays, when COPY could not: one of them is
// in the diff already, found by another chunk (an update moved it while the dry run read). It is
// written once, with what this chunk read.
const sqlWriteDiff = `
INSERT INTO reclassify_diffs (reclass_id, chunk, txn_key, account, id, old_tag, new_tag, old_annotation, new_annotation,
                              old_error, new_error, old_rules_version)
SELECT $1, $2, d.* FROM unnest($3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[],
                               $10::text[], $11::text[], $12::integer[]) AS d
ON CONFLICT (reclass_id, txn_key) DO UPDATE SET chunk = excluded.chunk, account = excluded.account, id = excluded.id,
    old_tag = excluded.old_tag, new_tag = excluded.new_tag, old_annotation = excluded.old_annotation,
    new_annotation = excluded.new_annotation, old_error = excluded.old_error, new_error = excluded.new_error,
    old_rules_version = excluded.old_rules_version
WHERE NOT reclassify_diffs.applied`

// diffRows feeds a chunk's diff rows to COPY, one reused row at a time.
type diffRows struct {
	id    string
	chunk int32
	rows  []diffRow
	next  int
	row   [12]any
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
	r.row = [12]any{r.id, r.chunk, d.key, d.account, d.id, nullIfEmpty(d.old.Tag), nullIfEmpty(d.new.Tag),
		nullIfEmpty(d.old.Annotation), nullIfEmpty(d.new.Annotation), nullIfEmpty(d.old.Error), nullIfEmpty(d.new.Error), version}
	return r.row[:], nil
}

func (r *diffRows) Err() error { return nil }

var diffColumns = []string{"reclass_id", "chunk", "txn_key", "account", "id", "old_tag", "new_tag",
	"old_annotation", "new_annotation", "old_error", "new_error", "old_rules_version"}

// writeDiff writes rows as chunk's rows of reclassification id: with COPY, or when one of them
// is in the diff already (found by another chunk) with sqlWriteDiff.
func writeDiff(ctx context.Context, tx pgx.Tx, id string, chunk int, rows []diffRow) error {
	err := pgx.BeginFunc(ctx, tx, func(sp pgx.Tx) error {
		_, err := sp.CopyFrom(ctx, pgx.Identifier{"reclassify_diffs"}, diffColumns, &diffRows{id: id, chunk: int32(chunk), rows: rows})
		return err
	})
	if pgErr := (*pgconn.PgError)(nil); !errors.As(err, &pgErr) || pgErr.Code != "23505" {
		return err
	}
	n := len(rows)
	keys := make([]int64, n)
	accounts, ids := make([]string, n), make([]string, n)
	cols := [6][]pgtype.Text{}
	for i := range cols {
		cols[i] = make([]pgtype.Text, n)
	}
	versions := make([]pgtype.Int4, n)
	text := func(s string) pgtype.Text { return pgtype.Text{String: s, Valid: s != ""} }
	for i, d := range rows {
		keys[i], accounts[i], ids[i] = d.key, d.account, d.id
		cols[0][i], cols[1][i] = text(d.old.Tag), text(d.new.Tag)
		cols[2][i], cols[3][i] = text(d.old.Annotation), text(d.new.Annotation)
		cols[4][i], cols[5][i] = text(d.old.Error), text(d.new.Error)
		versions[i] = pgtype.Int4{Int32: d.oldVersion, Valid: d.oldVersion > 0}
	}
	_, err = tx.Exec(ctx, sqlWriteDiff, id, chunk, keys, accounts, ids, cols[0], cols[1], cols[2], cols[3], cols[4], cols[5], versions)
	return err
}

// DryRunReclassifyChunk computes the transactions of reclassification id on the pages of r with
// classify (those of its target: account and dates as planned) and writes those whose result
// changes (tag, annotation or error) into reclassify_diffs as chunk r.Chunk, in one database
// transaction that first deletes the chunk's rows: a retried chunk writes each row once. It
// changes no result. It returns the counts of the chunk, ErrReclassificationNotFound (wrapped)
// for an unknown reclassification, and the wrapped connection or SQL error.
func (db *DB) DryRunReclassifyChunk(ctx context.Context, id string, r PageRange, classify Classifier) (ReclassifyCounts, error) {
	var c ReclassifyCounts
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		p, err := readPlan(ctx, tx, id)
		if err != nil {
			return err
		}
		txns, err := readChunk(ctx, tx, p, r)
		if err != nil {
			return err
		}
		var diffs []diffRow
		c.Sources = map[int]int64{}
		for i := range txns.n {
			t := txns.at(i)
			c.Items++
			c.Sources[int(t.version)]++
			d := diffRow{key: t.key, account: t.account, id: t.id, old: t.old, new: classify(t.wording, t.amount), oldVersion: t.version}
			if d.old == d.new {
				continue
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
			diffs = append(diffs, d)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM reclassify_diffs WHERE reclass_id = $1 AND chunk = $2 AND NOT applied`, id, r.Chunk); err != nil {
			return fmt.Errorf("delete earlier diff rows: %w", err)
		}
		if len(diffs) == 0 {
			return nil
		}
		if err := writeDiff(ctx, tx, id, r.Chunk, diffs); err != nil {
			return fmt.Errorf("write diff rows: %w", err)
		}
		return nil
	})
	if err != nil {
		return ReclassifyCounts{}, db.wrap(fmt.Sprintf("dry run of chunk %d (pages %d to %s) of reclassification %s", r.Chunk, r.From, pageBound(r.To), id), err)
	}
	return c, nil
}

func pageBound(to int64) string {
	if to == 0 {
		return "the end"
	}
	return strconv.FormatInt(to, 10)
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

// sqlApplyReclassify applies the diff rows of a chunk not applied yet, in one statement (so one
// snapshot and one database transaction): it marks them applied, upserts their tags and
// annotations with the target version, sets the transactions' error and bumps their result
// version, and, when $4, writes one outbox row per transaction with its new version. $1 is the
// reclassification's id (the run_id of the results and outbox rows), $2 the chunk, $3 the rules
// version.
const sqlApplyReclassify = `
WITH d AS (
    UPDATE reclassify_diffs SET applied = true
    WHERE reclass_id = $1 AND chunk = $2 AND NOT applied
    RETURNING txn_key, account, id, new_tag, new_annotation, new_error
), tg AS (
    INSERT INTO tags (txn_key, tag, run_id, rules_version)
    SELECT txn_key, new_tag, $1, $3 FROM d
    ON CONFLICT (txn_key) DO UPDATE SET tag = excluded.tag, run_id = excluded.run_id,
        rules_version = excluded.rules_version, tagged_at = now()
), an AS (
    INSERT INTO annotations (txn_key, annotation, run_id, rules_version)
    SELECT txn_key, new_annotation, $1, $3 FROM d
    ON CONFLICT (txn_key) DO UPDATE SET annotation = excluded.annotation, run_id = excluded.run_id,
        rules_version = excluded.rules_version, annotated_at = now()
), tx AS (
    UPDATE transactions t SET error = d.new_error, result_version = t.result_version + 1
    FROM d WHERE t.account = d.account AND t.id = d.id
    RETURNING t.key, t.result_version
), ob AS (
    INSERT INTO outbox (txn_key, version, run_id)
    SELECT key, result_version, $1 FROM tx WHERE $4
    ON CONFLICT DO NOTHING
)
SELECT count(*) FROM tx`

// ApplyReclassifyChunk applies the diff rows of reclassification id found by its dry-run chunk
// chunk that are not applied yet, with the rules version recorded by its plan: new tags and annotations
// (run_id the reclassification's id), the transactions' error, their result version bumped, and
// with outbox one outbox row per transaction carrying the new version. The rows are marked
// applied in the same database transaction, so a retried or interrupted chunk applies nothing
// twice. It returns the number of transactions it changed, ErrReclassificationNotFound
// (wrapped) for an unknown reclassification, and the wrapped connection or SQL error.
func (db *DB) ApplyReclassifyChunk(ctx context.Context, id string, chunk int, outbox bool) (int64, error) {
	var n int64
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		p, err := readPlan(ctx, tx, id)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off"); err != nil {
			return fmt.Errorf("set plan options: %w", err)
		}
		return tx.QueryRow(ctx, sqlApplyReclassify, id, chunk, p.RulesVersion, outbox).Scan(&n)
	})
	if err != nil {
		return 0, db.wrap(fmt.Sprintf("apply chunk %d of reclassification %s", chunk, id), err)
	}
	return n, nil
}

// sqlReclassifiedMessages reads the messages of a chunk of the diff that are still in the
// outbox, in key order after $3, at most $4: the transaction by its primary key, the result the
// reclassification applied.
const sqlReclassifiedMessages = `
SELECT o.txn_key, o.version, o.run_id, o.created_at,
       t.account, coalesce(t.id_as_read, t.id), to_char(t.date, 'YYYY-MM-DD'),
       t.amount::text, t.wording, d.new_error, d.new_tag,
       CASE WHEN d.new_error IS NULL THEN d.new_annotation END
FROM reclassify_diffs d
JOIN outbox o ON o.txn_key = d.txn_key AND o.run_id = d.reclass_id
JOIN transactions t ON t.account = d.account AND t.id = d.id
WHERE d.reclass_id = $1 AND d.chunk = $2 AND d.txn_key > $3 AND d.applied
ORDER BY d.txn_key, o.version
LIMIT $4`

// ReclassifiedMessages returns at most limit messages of the diff rows of reclassification id
// found by its dry-run chunk chunk that have an outbox row of the reclassification, in the order
// of the transactions' keys, from the first key above after: the transaction as stored, with the
// result the reclassification applied and the result version it gave. A publisher reads a
// chunk's messages a slice at a time, after the last key of the slice before. It returns the
// wrapped connection or SQL error.
func (db *DB) ReclassifiedMessages(ctx context.Context, id string, chunk int, after int64, limit int) ([]OutboxMessage, error) {
	out, err := db.readMessages(ctx, "SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off",
		sqlReclassifiedMessages, id, chunk, after, limit)
	if err != nil {
		return nil, db.wrap(fmt.Sprintf("read messages of chunk %d of reclassification %s", chunk, id), err)
	}
	return out, nil
}

// FinishReclassify records the outcome of reclassification id (applied, rejected, expired,
// unchanged, failed): another can then be planned. The diff stays, as its record. Calling it
// again changes nothing more.
func (db *DB) FinishReclassify(ctx context.Context, id, status string) error {
	_, err := db.pool.Exec(ctx, `UPDATE reclassifications SET status = $2, finished_at = coalesce(finished_at, now())
		WHERE reclass_id = $1`, id, status)
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
