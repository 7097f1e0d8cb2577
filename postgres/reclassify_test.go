package postgres_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/require"

	"github.com/txflow/txflow/postgres"
	"github.com/txflow/txflow/txn"
)

// classifier applies rules as the reclassification activity does.
func classifier(r txn.Rules) postgres.Classifier {
	return func(wording string, amount decimal.Decimal) postgres.Classification {
		c := postgres.Classification{Tag: r.Tag(wording), Error: string(r.Check(amount))}
		if c.Error == "" {
			c.Annotation = string(r.Annotate(amount))
		}
		return c
	}
}

func day(s string) *time.Time {
	d, err := time.Parse(time.DateOnly, s)
	if err != nil {
		panic(err)
	}
	return &d
}

// reclassifyFixture stores, under version 1 of the rules (the defaults), a dated run and an
// undated run of account acme and a run of account other, all tagged and annotated; then it
// makes version 2: UBER is a tag word and amounts above 500 are in error.
func reclassifyFixture(t *testing.T) (*postgres.DB, string, txn.Rules) {
	t.Helper()
	db, dbURL := openDB(t)
	ctx := context.Background()
	v1, err := db.CurrentRules(ctx, txn.DefaultRules())
	require.NoError(t, err)
	for _, r := range []accountRun{
		{id: "acme-dated", account: "acme", dated: true, recs: []txn.Record{
			dated("2026-01-10", rec(2, "A1", "-12.50", "UBER ride")), // tag changes
			dated("2026-01-11", rec(3, "A2", "20.00", "TAXI")),       // unchanged
			dated("2026-02-01", rec(4, "A3", "600.00", "shop")),      // in error: annotation and error change
		}},
		{id: "acme-undated", account: "acme", recs: []txn.Record{rec(2, "A9", "5.00", "UBER eats")}},
		{id: "other", account: "other", recs: []txn.Record{rec(2, "O1", "5.00", "UBER eats")}},
	} {
		c := ingestAccount(t, db, r)
		_, err := db.TagChunkVersion(ctx, r.id, 1, c.MaxSeq+1, v1.Version, v1.Rules.Tag)
		require.NoError(t, err)
		_, err = db.AnnotateChunkVersion(ctx, r.id, 1, c.MaxSeq+1, v1.Version, annotate)
		require.NoError(t, err)
	}
	v2 := txn.DefaultRules()
	v2.TagWords = append(v2.TagWords, "UBER")
	v2.AmountLimit = decimal.NewFromInt(500)
	v, err := db.SetRules(ctx, v2, "UBER, smaller limit")
	require.NoError(t, err)
	require.Equal(t, 2, v.Version)
	return db, dbURL, v2
}

const acmeDiff = "account,id,old_tag,new_tag,old_annotation,new_annotation,old_error,new_error\n" +
	"acme,A1,,UBER,SMALL EXPENSE,SMALL EXPENSE,,\n" +
	"acme,A3,,,LARGE SALE,,,amount_too_high\n" +
	"acme,A9,,UBER,SALE,SALE,,\n"

// dryRun runs every chunk of reclassification p under classify, one after the other, and adds
// up their counts.
func dryRun(t *testing.T, db *postgres.DB, p postgres.ReclassifyPlan, classify postgres.Classifier) postgres.ReclassifyCounts {
	t.Helper()
	total := postgres.ReclassifyCounts{Sources: map[int]int64{}}
	for _, r := range p.Chunks() {
		c, err := db.DryRunReclassifyChunk(context.Background(), p.ID, r, classify)
		require.NoError(t, err, "chunk %d", r.Chunk)
		addCounts(&total, c)
	}
	return total
}

func addCounts(total *postgres.ReclassifyCounts, c postgres.ReclassifyCounts) {
	total.Items += c.Items
	total.Changed += c.Changed
	total.TagChanged += c.TagChanged
	total.AnnotationChanged += c.AnnotationChanged
	total.ErrorChanged += c.ErrorChanged
	for v, n := range c.Sources {
		total.Sources[v] += n
	}
}

// A dry run writes only the transactions whose result changes, for the account planned, and
// changes no result; a retried chunk writes its rows once.
func TestReclassifyDryRunListsOnlyChanges(t *testing.T) {
	db, dbURL, v2 := reclassifyFixture(t)
	ctx := context.Background()

	p, err := db.PlanReclassify(ctx, postgres.ReclassifyTarget{ID: "r1", Account: "acme", RulesVersion: 2})
	require.NoError(t, err)
	require.False(t, p.Existing)
	require.Equal(t, []postgres.PageRange{{Chunk: 1}}, p.Chunks(), "a table of one page: one chunk, open-ended")
	for range 2 { // the second time is a retry of the chunk
		c, err := db.DryRunReclassifyChunk(ctx, "r1", p.Chunks()[0], classifier(v2))
		require.NoError(t, err)
		require.EqualValues(t, 4, c.Items, "acme's four transactions, dated or not")
		require.EqualValues(t, 3, c.Changed)
		require.EqualValues(t, 2, c.TagChanged)
		require.EqualValues(t, 1, c.AnnotationChanged)
		require.EqualValues(t, 1, c.ErrorChanged)
		require.Equal(t, map[int]int64{1: 4}, c.Sources)
	}
	require.EqualValues(t, 3, queryValue[int64](t, dbURL, "SELECT count(*) FROM reclassify_diffs WHERE reclass_id = 'r1'"))
	var b bytes.Buffer
	n, err := db.WriteReclassifyDiff(ctx, "r1", &b)
	require.NoError(t, err)
	require.EqualValues(t, 3, n)
	require.Equal(t, acmeDiff, b.String())
	counts, applied, err := db.ReclassifyDiffCounts(ctx, "r1")
	require.NoError(t, err)
	require.EqualValues(t, 3, counts.Changed)
	require.EqualValues(t, 2, counts.TagChanged)
	require.EqualValues(t, 1, counts.AnnotationChanged)
	require.EqualValues(t, 1, counts.ErrorChanged)
	require.Zero(t, applied)

	// Nothing stored changed.
	require.EqualValues(t, 0, queryValue[int64](t, dbURL, "SELECT count(*) FROM tags WHERE tag = 'UBER'"))
	require.EqualValues(t, 0, queryValue[int64](t, dbURL, "SELECT count(*) FROM transactions WHERE error IS NOT NULL OR result_version <> 1"))

	// Page ranges split the table: the first page holds them all, the pages after none.
	require.NoError(t, db.FinishReclassify(ctx, "r1", "rejected"))
	_, err = db.PlanReclassify(ctx, postgres.ReclassifyTarget{ID: "r1-split", Account: "acme", RulesVersion: 2})
	require.NoError(t, err)
	for _, c := range []struct {
		r     postgres.PageRange
		items int64
	}{{postgres.PageRange{Chunk: 1, From: 0, To: 1}, 4}, {postgres.PageRange{Chunk: 2, From: 1}, 0}} {
		got, err := db.DryRunReclassifyChunk(ctx, "r1-split", c.r, classifier(v2))
		require.NoError(t, err)
		require.Equal(t, c.items, got.Items, "chunk %d", c.r.Chunk)
	}
	b.Reset()
	_, err = db.WriteReclassifyDiff(ctx, "r1-split", &b)
	require.NoError(t, err)
	require.Equal(t, acmeDiff, b.String())
}

func TestReclassifyChunks(t *testing.T) {
	require.Equal(t, []postgres.PageRange{{Chunk: 1}}, postgres.ReclassifyChunks(0, 10))
	require.Equal(t, []postgres.PageRange{{Chunk: 1}}, postgres.ReclassifyChunks(10, 10))
	require.Equal(t, []postgres.PageRange{{Chunk: 1, To: 10}, {Chunk: 2, From: 10}}, postgres.ReclassifyChunks(11, 10))
	require.Equal(t, []postgres.PageRange{{Chunk: 1, To: 10}, {Chunk: 2, From: 10, To: 20}, {Chunk: 3, From: 20}},
		postgres.ReclassifyChunks(25, 10))
	require.Equal(t, []postgres.PageRange{{Chunk: 1, To: 1}, {Chunk: 2, From: 1}}, postgres.ReclassifyChunks(2, 0))
}

// A table of many pages is read in chunks of about the rows asked for, through TID range scans,
// the results read by ranges of keys; the chunks together compute each transaction once, and a
// transaction moved to another page by an update while the dry run reads is written once in the
// diff.
func TestReclassifyDryRunOverPages(t *testing.T) {
	db, dbURL := openDB(t)
	ctx := context.Background()
	v1, err := db.CurrentRules(ctx, txn.DefaultRules())
	require.NoError(t, err)
	const rows = 3000
	recs := make([]txn.Record, rows)
	for i := range recs {
		recs[i] = rec(int64(i+2), fmt.Sprintf("P%05d", i), fmt.Sprintf("%d.00", i%700-200), []string{"UBER ride", "TAXI", "shop"}[i%3])
	}
	c := ingestAccount(t, db, accountRun{id: "pages", account: "acme", recs: recs})
	_, err = db.TagChunkVersion(ctx, "pages", 1, c.MaxSeq+1, v1.Version, v1.Rules.Tag)
	require.NoError(t, err)
	_, err = db.AnnotateChunkVersion(ctx, "pages", 1, c.MaxSeq+1, v1.Version, annotate)
	require.NoError(t, err)
	execSQL(t, dbURL, "ANALYZE transactions")
	v2 := txn.DefaultRules()
	v2.TagWords = append(v2.TagWords, "UBER")
	_, err = db.SetRules(ctx, v2, "UBER")
	require.NoError(t, err)

	p, err := db.PlanReclassify(ctx, postgres.ReclassifyTarget{ID: "pages", RulesVersion: 2, ChunkRows: 500})
	require.NoError(t, err)
	chunks := p.Chunks()
	require.GreaterOrEqual(t, len(chunks), 5, "3,000 transactions in chunks of about 500 (%d pages)", p.Pages)
	require.LessOrEqual(t, len(chunks), 8)
	require.Zero(t, chunks[len(chunks)-1].To, "the last chunk reads to the end")

	// The plans of a chunk's reads: a TID range scan of its pages, the results by ranges of keys.
	plan := explain(t, dbURL, `SET enable_hashjoin = off; SET enable_mergejoin = off; SET enable_seqscan = off;
		EXPLAIN SELECT t.key, t.wording, t.amount::text FROM transactions t WHERE t.ctid >= '(5,0)'::tid AND t.ctid < '(10,0)'::tid`)
	require.Contains(t, plan, "Tid Range Scan on transactions")
	for _, table := range []string{"tags", "annotations"} {
		plan := explain(t, dbURL, `SET enable_hashjoin = off; SET enable_mergejoin = off; SET enable_seqscan = off;
			EXPLAIN SELECT g.* FROM unnest('{1,100}'::bigint[], '{50,150}'::bigint[]) AS r(lo, hi)
			JOIN `+table+` g ON g.txn_key >= r.lo AND g.txn_key <= r.hi`)
		require.Contains(t, plan, "Nested Loop", plan)
		require.Regexp(t, `(Index Scan using|Bitmap Index Scan on) `+table+`_pkey`, plan)
		require.Contains(t, plan, "Index Cond: ((txn_key >= r.lo) AND (txn_key <= r.hi))", plan)
	}

	var total postgres.ReclassifyCounts
	total.Sources = map[int]int64{}
	for i, r := range chunks {
		got, err := db.DryRunReclassifyChunk(ctx, "pages", r, classifier(v2))
		require.NoError(t, err)
		require.Positive(t, got.Items, "chunk %d", r.Chunk)
		addCounts(&total, got)
		if i == 0 {
			// An update while the dry run reads moves the first chunk's first transaction (an
			// UBER wording: in the diff) to the last page: the last chunk sees it again.
			execSQL(t, dbURL, "UPDATE transactions SET result_version = result_version WHERE id = 'P00000'")
			require.Positive(t, queryValue[int64](t, dbURL, "SELECT (ctid::text::point)[0]::bigint FROM transactions WHERE id = 'P00000'"))
		}
	}
	require.EqualValues(t, rows+1, total.Items, "each transaction once, the moved one twice")
	require.EqualValues(t, rows/3+1, total.Changed)
	counts, _, err := db.ReclassifyDiffCounts(ctx, "pages")
	require.NoError(t, err)
	require.EqualValues(t, rows/3, counts.Changed, "the moved transaction's diff row written once")
	// Found on the last page, out of key order, with its stored results all the same.
	require.Equal(t, "UBER SMALL EXPENSE SMALL EXPENSE 1", queryValue[string](t, dbURL, `SELECT concat_ws(' ', new_tag, old_annotation,
		new_annotation, old_rules_version) FROM reclassify_diffs WHERE id = 'P00000'`))
	require.EqualValues(t, len(chunks), queryValue[int64](t, dbURL, "SELECT chunk FROM reclassify_diffs WHERE id = 'P00000'"),
		"found last by the last chunk")

	// A chunk retried after that writes its rows once.
	got, err := db.DryRunReclassifyChunk(ctx, "pages", chunks[1], classifier(v2))
	require.NoError(t, err)
	require.Positive(t, got.Changed)
	counts, _, err = db.ReclassifyDiffCounts(ctx, "pages")
	require.NoError(t, err)
	require.EqualValues(t, rows/3, counts.Changed)
}

func execSQL(t *testing.T, dbURL, sql string) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dbURL)
	require.NoError(t, err)
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, sql)
	require.NoError(t, err)
}

// explain runs statements ending in an EXPLAIN on one connection and returns the plan's text.
func explain(t *testing.T, dbURL, sql string) string {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dbURL)
	require.NoError(t, err)
	defer conn.Close(ctx)
	results, err := conn.PgConn().Exec(ctx, sql).ReadAll()
	require.NoError(t, err)
	var b strings.Builder
	for _, row := range results[len(results)-1].Rows {
		b.Write(row[0])
		b.WriteByte('\n')
	}
	return b.String()
}

// The account and the dates select the transactions; a transaction without a date is only
// selected when no date bound is given; a retried plan keeps its version and chunks.
func TestReclassifyPlanFilters(t *testing.T) {
	db, _, v2 := reclassifyFixture(t)
	ctx := context.Background()
	for _, c := range []struct {
		target postgres.ReclassifyTarget
		items  int64
	}{
		{postgres.ReclassifyTarget{ID: "all"}, 5},
		{postgres.ReclassifyTarget{ID: "other", Account: "other"}, 1},
		{postgres.ReclassifyTarget{ID: "none", Account: "nobody"}, 0},
		{postgres.ReclassifyTarget{ID: "january", Account: "acme", From: day("2026-01-01"), To: day("2026-01-31")}, 2},
		{postgres.ReclassifyTarget{ID: "from-feb", Account: "acme", From: day("2026-02-01")}, 1},
		{postgres.ReclassifyTarget{ID: "to-jan-10", To: day("2026-01-10")}, 1},
	} {
		c.target.RulesVersion = 2
		p, err := db.PlanReclassify(ctx, c.target)
		require.NoError(t, err, c.target.ID)
		require.Equal(t, c.items, dryRun(t, db, p, classifier(v2)).Items, c.target.ID)
		require.NoError(t, db.FinishReclassify(ctx, c.target.ID, "rejected"))
	}

	// A retry after a new version keeps what the first attempt recorded.
	again, err := db.PlanReclassify(ctx, postgres.ReclassifyTarget{ID: "january", Account: "acme", RulesVersion: 1})
	require.NoError(t, err)
	require.True(t, again.Existing)
	require.Equal(t, 2, again.RulesVersion)
	require.Equal(t, "2026-01-31", again.To.Format(time.DateOnly))

	_, err = db.PlanReclassify(ctx, postgres.ReclassifyTarget{ID: "bad", RulesVersion: 9})
	require.ErrorIs(t, err, postgres.ErrRulesVersionNotFound)
}

// One reclassification at a time: a plan is refused while another has not ended, whatever its
// account; a retried plan of the one going on is not; once it ended, the next one plans.
func TestReclassifyPlanRefusedWhileAnotherGoesOn(t *testing.T) {
	db, _, _ := reclassifyFixture(t)
	ctx := context.Background()
	_, err := db.PlanReclassify(ctx, postgres.ReclassifyTarget{ID: "first", Account: "acme", RulesVersion: 2})
	require.NoError(t, err)
	_, err = db.PlanReclassify(ctx, postgres.ReclassifyTarget{ID: "second", Account: "other", RulesVersion: 2})
	var busy *postgres.ReclassificationInProgressError
	require.ErrorAs(t, err, &busy)
	require.Equal(t, "first", busy.ID)
	require.Equal(t, "acme", busy.Account)
	require.ErrorContains(t, err, "reclassification first (account acme, started ")
	again, err := db.PlanReclassify(ctx, postgres.ReclassifyTarget{ID: "first", Account: "acme", RulesVersion: 2})
	require.NoError(t, err, "a retried plan")
	require.True(t, again.Existing)

	// Plans started at once: one of them is recorded.
	require.NoError(t, db.FinishReclassify(ctx, "first", "expired"))
	errs := make(chan error, 4)
	for i := range 4 {
		go func() {
			_, err := db.PlanReclassify(ctx, postgres.ReclassifyTarget{ID: fmt.Sprintf("race-%d", i), RulesVersion: 2})
			errs <- err
		}()
	}
	refused := 0
	for range 4 {
		if err := <-errs; err != nil {
			require.ErrorAs(t, err, &busy)
			refused++
		}
	}
	require.Equal(t, 3, refused)
}

// Applying writes the new results with the target version, bumps the result versions and writes
// the outbox rows, once however many times a chunk runs; other accounts are untouched.
func TestReclassifyApplyIsIdempotent(t *testing.T) {
	db, dbURL, v2 := reclassifyFixture(t)
	ctx := context.Background()
	p, err := db.PlanReclassify(ctx, postgres.ReclassifyTarget{ID: "r2", Account: "acme", RulesVersion: 2})
	require.NoError(t, err)
	dryRun(t, db, p, classifier(v2))

	n, err := db.ApplyReclassifyChunk(ctx, "r2", 2, true)
	require.NoError(t, err)
	require.Zero(t, n, "a chunk without changes")
	n, err = db.ApplyReclassifyChunk(ctx, "r2", 1, true)
	require.NoError(t, err)
	require.EqualValues(t, 3, n, "A1, A3 and A9")
	n, err = db.ApplyReclassifyChunk(ctx, "r2", 1, true)
	require.NoError(t, err)
	require.Zero(t, n, "applied twice")

	state := queryValue[string](t, dbURL, `
		SELECT string_agg(t.account || '/' || t.id || ':' || coalesce(g.tag, '-') || ':' || coalesce(a.annotation, '-') || ':' ||
		       coalesce(t.error, '-') || ':v' || t.result_version || ':r' || coalesce(g.rules_version::text, '-') || ':' || g.run_id,
		       ' ' ORDER BY t.account, t.id)
		FROM transactions t LEFT JOIN tags g ON g.txn_key = t.key LEFT JOIN annotations a ON a.txn_key = t.key`)
	require.Equal(t, "acme/A1:UBER:SMALL EXPENSE:-:v2:r2:r2 acme/A2:TAXI:SALE:-:v1:r1:acme-dated "+
		"acme/A3:-:-:amount_too_high:v2:r2:r2 acme/A9:UBER:SALE:-:v2:r2:r2 other/O1:-:SALE:-:v1:r1:other", state)
	require.Equal(t, "A1:2 A3:2 A9:2", queryValue[string](t, dbURL, `
		SELECT string_agg(t.id || ':' || o.version, ' ' ORDER BY t.id)
		FROM outbox o JOIN transactions t ON t.key = o.txn_key WHERE o.run_id = 'r2'`))
	counts, applied, err := db.ReclassifyDiffCounts(ctx, "r2")
	require.NoError(t, err)
	require.Equal(t, counts.Changed, applied)

	msgs, err := db.ReclassifiedMessages(ctx, "r2", 1, 0, 100)
	require.NoError(t, err)
	require.Len(t, msgs, 3)
	byID := map[string]postgres.OutboxMessage{}
	for i, m := range msgs {
		byID[m.ID] = m
		if i > 0 {
			require.Greater(t, m.Key, msgs[i-1].Key, "in key order")
		}
	}
	a3 := byID["A3"]
	require.EqualValues(t, 2, a3.Version)
	require.Equal(t, "r2", a3.RunID)
	require.Equal(t, "2026-02-01", a3.Date)
	require.Equal(t, "600.00", a3.Amount)
	require.Equal(t, "amount_too_high", *a3.Error)
	require.Nil(t, a3.Annotation)
	require.Nil(t, a3.Tag)
	require.Equal(t, "UBER", *byID["A9"].Tag)
	// A slice at a time, after the last key of the one before.
	first, err := db.ReclassifiedMessages(ctx, "r2", 1, 0, 2)
	require.NoError(t, err)
	require.Equal(t, msgs[:2], first)
	rest, err := db.ReclassifiedMessages(ctx, "r2", 1, first[1].Key, 2)
	require.NoError(t, err)
	require.Equal(t, msgs[2:], rest)
	_, err = db.MarkDelivered(ctx, messageKeys(msgs))
	require.NoError(t, err)
	msgs, err = db.ReclassifiedMessages(ctx, "r2", 1, 0, 100)
	require.NoError(t, err)
	require.Empty(t, msgs)

	// The account's export says what was applied.
	var b bytes.Buffer
	_, err = db.ExportAccount(ctx, "acme", nil, nil, &b)
	require.NoError(t, err)
	require.Equal(t, "id,date,amount,wording,tag,annotation,error\n"+
		"A1,2026-01-10,-12.50,UBER ride,UBER,SMALL EXPENSE,\n"+
		"A2,2026-01-11,20.00,TAXI,TAXI,SALE,\n"+
		"A3,2026-02-01,600.00,shop,,,amount_too_high\n"+
		"A9,,5.00,UBER eats,UBER,SALE,\n", b.String())

	// The outcome is recorded; without delivery no outbox row is written.
	require.NoError(t, db.FinishReclassify(ctx, "r2", "applied"))
	require.Equal(t, "applied", queryValue[string](t, dbURL, "SELECT status FROM reclassifications WHERE reclass_id = 'r2'"))
	back := txn.DefaultRules()
	p, err = db.PlanReclassify(ctx, postgres.ReclassifyTarget{ID: "r3", Account: "acme", RulesVersion: 1})
	require.NoError(t, err)
	c := dryRun(t, db, p, classifier(back))
	require.EqualValues(t, 3, c.Changed, "back to version 1")
	require.Equal(t, map[int]int64{1: 1, 2: 3}, c.Sources)
	n, err = db.ApplyReclassifyChunk(ctx, "r3", 1, false)
	require.NoError(t, err)
	require.EqualValues(t, 3, n)
	require.EqualValues(t, 0, queryValue[int64](t, dbURL, "SELECT count(*) FROM outbox WHERE run_id = 'r3'"))
	require.EqualValues(t, 3, queryValue[int64](t, dbURL, "SELECT count(*) FROM transactions WHERE result_version = 3"))
}
