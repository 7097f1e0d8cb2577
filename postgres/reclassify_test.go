package postgres_test

import (
	"bytes"
	"context"
	"testing"
	"time"

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

// A dry run writes only the transactions whose result changes, for the account planned, and
// changes no result; a retried chunk writes its rows once.
func TestReclassifyDryRunListsOnlyChanges(t *testing.T) {
	db, dbURL, v2 := reclassifyFixture(t)
	ctx := context.Background()

	p, err := db.PlanReclassify(ctx, postgres.ReclassifyTarget{ID: "r1", Account: "acme", RulesVersion: 2})
	require.NoError(t, err)
	require.EqualValues(t, 4, p.Items, "acme's four transactions, dated or not")
	require.False(t, p.Existing)
	for range 2 { // the second time is a retry of the chunk
		c, err := db.DryRunReclassifyChunk(ctx, "r1", 1, p.Items+1, classifier(v2))
		require.NoError(t, err)
		require.EqualValues(t, 4, c.Items)
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

	// Chunks of the range split the same way.
	_, err = db.PlanReclassify(ctx, postgres.ReclassifyTarget{ID: "r1-split", Account: "acme", RulesVersion: 2})
	require.NoError(t, err)
	total := int64(0)
	for from := int64(1); from <= 4; from++ {
		c, err := db.DryRunReclassifyChunk(ctx, "r1-split", from, from+1, classifier(v2))
		require.NoError(t, err)
		require.EqualValues(t, 1, c.Items)
		total += c.Changed
	}
	require.EqualValues(t, 3, total)
	b.Reset()
	_, err = db.WriteReclassifyDiff(ctx, "r1-split", &b)
	require.NoError(t, err)
	require.Equal(t, acmeDiff, b.String())
}

// The account and the dates select the items; a transaction without a date is only selected
// when no date bound is given; a retried plan keeps its snapshot and version.
func TestReclassifyPlanFilters(t *testing.T) {
	db, _, _ := reclassifyFixture(t)
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
		require.Equal(t, c.items, p.Items, c.target.ID)
	}

	// A retry after a new version keeps what the first attempt recorded.
	again, err := db.PlanReclassify(ctx, postgres.ReclassifyTarget{ID: "january", Account: "acme", RulesVersion: 1})
	require.NoError(t, err)
	require.True(t, again.Existing)
	require.Equal(t, 2, again.RulesVersion)
	require.EqualValues(t, 2, again.Items)
	require.Equal(t, "2026-01-31", again.To.Format(time.DateOnly))

	_, err = db.PlanReclassify(ctx, postgres.ReclassifyTarget{ID: "bad", RulesVersion: 9})
	require.ErrorIs(t, err, postgres.ErrRulesVersionNotFound)
}

// Applying writes the new results with the target version, bumps the result versions and writes
// the outbox rows, once however many times a chunk runs; other accounts are untouched.
func TestReclassifyApplyIsIdempotent(t *testing.T) {
	db, dbURL, v2 := reclassifyFixture(t)
	ctx := context.Background()
	p, err := db.PlanReclassify(ctx, postgres.ReclassifyTarget{ID: "r2", Account: "acme", RulesVersion: 2})
	require.NoError(t, err)
	_, err = db.DryRunReclassifyChunk(ctx, "r2", 1, p.Items+1, classifier(v2))
	require.NoError(t, err)

	first, err := db.ApplyReclassifyChunk(ctx, "r2", 1, 3, true)
	require.NoError(t, err)
	n, err := db.ApplyReclassifyChunk(ctx, "r2", 1, p.Items+1, true)
	require.NoError(t, err)
	require.EqualValues(t, 3, first+n, "A1, A3 and A9, each once")
	n, err = db.ApplyReclassifyChunk(ctx, "r2", 1, p.Items+1, true)
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

	msgs, err := db.ReclassifiedMessages(ctx, "r2", 1, p.Items+1)
	require.NoError(t, err)
	require.Len(t, msgs, 3)
	require.Equal(t, "A3", msgs[1].ID)
	require.EqualValues(t, 2, msgs[1].Version)
	require.Equal(t, "r2", msgs[1].RunID)
	require.Equal(t, "2026-02-01", msgs[1].Date)
	require.Equal(t, "600.00", msgs[1].Amount)
	require.Equal(t, "amount_too_high", *msgs[1].Error)
	require.Nil(t, msgs[1].Annotation)
	require.Nil(t, msgs[1].Tag)
	require.Equal(t, "UBER", *msgs[2].Tag)
	_, err = db.MarkDelivered(ctx, messageKeys(msgs))
	require.NoError(t, err)
	msgs, err = db.ReclassifiedMessages(ctx, "r2", 1, p.Items+1)
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

	// Without delivery no outbox row is written; the snapshot is dropped at the end.
	require.NoError(t, db.FinishReclassify(ctx, "r2", "applied"))
	require.EqualValues(t, 0, queryValue[int64](t, dbURL, "SELECT count(*) FROM reclassify_items WHERE reclass_id = 'r2'"))
	require.Equal(t, "applied", queryValue[string](t, dbURL, "SELECT status FROM reclassifications WHERE reclass_id = 'r2'"))
	back := txn.DefaultRules()
	p, err = db.PlanReclassify(ctx, postgres.ReclassifyTarget{ID: "r3", Account: "acme", RulesVersion: 1})
	require.NoError(t, err)
	c, err := db.DryRunReclassifyChunk(ctx, "r3", 1, p.Items+1, classifier(back))
	require.NoError(t, err)
	require.EqualValues(t, 3, c.Changed, "back to version 1")
	require.Equal(t, map[int]int64{1: 1, 2: 3}, c.Sources)
	n, err = db.ApplyReclassifyChunk(ctx, "r3", 1, p.Items+1, false)
	require.NoError(t, err)
	require.EqualValues(t, 3, n)
	require.EqualValues(t, 0, queryValue[int64](t, dbURL, "SELECT count(*) FROM outbox WHERE run_id = 'r3'"))
	require.EqualValues(t, 3, queryValue[int64](t, dbURL, "SELECT count(*) FROM transactions WHERE result_version = 3"))
}
