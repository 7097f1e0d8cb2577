package postgres_test

import (
	"context"
	"sync"
	"testing"

	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/require"

	"github.com/txflow/txflow/postgres"
	"github.com/txflow/txflow/txn"
)

func dec(s string) decimal.Decimal { return decimal.RequireFromString(s) }

// TestCurrentRulesCreatesVersionOneOnce has many callers with different seeds ask for the
// current rules of an empty table at once: one version 1 is made, from one of the seeds, and
// every caller gets it.
func TestCurrentRulesCreatesVersionOneOnce(t *testing.T) {
	db, dbURL := openDB(t)
	ctx := context.Background()

	const callers = 12
	got := make([]postgres.RulesVersion, callers)
	errs := make([]error, callers)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			seed := txn.DefaultRules()
			seed.LargeSaleAbove = decimal.NewFromInt(int64(100 + i))
			<-start
			got[i], errs[i] = db.CurrentRules(ctx, seed)
		}()
	}
	close(start)
	wg.Wait()
	for i := range callers {
		require.NoError(t, errs[i])
		require.Equal(t, 1, got[i].Version)
		require.True(t, got[0].Rules.Equal(got[i].Rules), "caller %d got other rules: %+v", i, got[i].Rules)
		require.Equal(t, postgres.SeedNote, got[i].Note)
	}
	require.Equal(t, int64(1), queryValue[int64](t, dbURL, "SELECT count(*) FROM rules_versions"))

	// Once a version exists the seed is ignored.
	other := txn.DefaultRules()
	other.TagWords = []string{"UBER"}
	v, err := db.CurrentRules(ctx, other)
	require.NoError(t, err)
	require.Equal(t, 1, v.Version)
	require.Equal(t, txn.DefaultRules().TagWords, v.Rules.TagWords)
}

func TestCurrentRulesRefusesAnInvalidSeed(t *testing.T) {
	db, dbURL := openDB(t)
	bad := txn.DefaultRules()
	bad.TagWords = nil
	_, err := db.CurrentRules(context.Background(), bad)
	require.ErrorContains(t, err, "no tag word")
	require.Equal(t, int64(0), queryValue[int64](t, dbURL, "SELECT count(*) FROM rules_versions"))
}

func TestSetRulesHistoryAndByVersion(t *testing.T) {
	db, _ := openDB(t)
	ctx := context.Background()

	hist, err := db.RulesHistory(ctx)
	require.NoError(t, err)
	require.Empty(t, hist)
	_, err = db.RulesByVersion(ctx, 1)
	require.ErrorIs(t, err, postgres.ErrRulesVersionNotFound)

	v1, err := db.CurrentRules(ctx, txn.DefaultRules())
	require.NoError(t, err)
	require.Equal(t, 1, v1.Version)
	require.True(t, v1.Rules.Equal(txn.DefaultRules()))
	require.Equal(t, "1000000.00", v1.Rules.AmountLimit.StringFixed(2))

	r2 := txn.DefaultRules()
	r2.TagWords = []string{"UBER", "Café"}
	r2.LargeSaleAbove, r2.ExpenseBelow, r2.AmountLimit = dec("500.50"), dec("-50"), dec("20000")
	v2, err := db.SetRules(ctx, r2, "  add UBER  ")
	require.NoError(t, err)
	require.Equal(t, 2, v2.Version)
	require.Equal(t, "add UBER", v2.Note)
	require.True(t, v2.Rules.Equal(r2), "%+v", v2.Rules)
	require.False(t, v2.CreatedAt.IsZero())

	cur, err := db.CurrentRules(ctx, txn.DefaultRules())
	require.NoError(t, err)
	require.Equal(t, 2, cur.Version)
	require.Equal(t, []string{"UBER", "Café"}, cur.Rules.TagWords)

	got1, err := db.RulesByVersion(ctx, 1)
	require.NoError(t, err)
	require.True(t, got1.Rules.Equal(txn.DefaultRules()), "version 1 is immutable")

	// Invalid rules or no note: refused, nothing stored.
	bad := r2
	bad.TagWords = []string{"UBER", "UBER"}
	_, err = db.SetRules(ctx, bad, "twice")
	require.ErrorContains(t, err, `tag word "UBER" is repeated`)
	_, err = db.SetRules(ctx, r2, " ")
	require.ErrorContains(t, err, "note is empty")

	hist, err = db.RulesHistory(ctx)
	require.NoError(t, err)
	require.Len(t, hist, 2)
	require.Equal(t, []int{1, 2}, []int{hist[0].Version, hist[1].Version})
	require.Equal(t, postgres.SeedNote, hist[0].Note)
}

// TestSetRulesConcurrentlyNumbersConsecutively has writers set rules at once: every version
// from 1 to n exists once, whatever the interleaving.
func TestSetRulesConcurrentlyNumbersConsecutively(t *testing.T) {
	db, dbURL := openDB(t)
	ctx := context.Background()
	const writers = 10
	versions := make([]int, writers)
	errs := make([]error, writers)
	var wg sync.WaitGroup
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := txn.DefaultRules()
			r.ExpenseBelow = decimal.NewFromInt(int64(-i))
			var v postgres.RulesVersion
			if i%3 == 0 {
				// Some ask for the current rules at the same time, which may create version 1.
				_, errs[i] = db.CurrentRules(ctx, txn.DefaultRules())
				if errs[i] != nil {
					return
				}
			}
			v, errs[i] = db.SetRules(ctx, r, "writer")
			versions[i] = v.Version
		}()
	}
	wg.Wait()
	for _, err := range errs {
		require.NoError(t, err)
	}
	n := queryValue[int64](t, dbURL, "SELECT count(*) FROM rules_versions")
	require.GreaterOrEqual(t, n, int64(writers))
	require.Equal(t, n, queryValue[int64](t, dbURL, "SELECT max(version)::bigint FROM rules_versions"), "no gaps")
	seen := map[int]bool{}
	for _, v := range versions {
		require.False(t, seen[v], "version %d given twice", v)
		seen[v] = true
	}
}

// TestResultsCarryTheRulesVersion: a run records the version it applies, and every tag and
// annotation its chunks write carries the version they were given; results written without
// one (runs started before versions) carry none.
func TestResultsCarryTheRulesVersion(t *testing.T) {
	db, dbURL := openDB(t)
	ctx := context.Background()
	v, err := db.CurrentRules(ctx, txn.DefaultRules())
	require.NoError(t, err)
	v2, err := db.SetRules(ctx, txn.DefaultRules(), "same rules, new version")
	require.NoError(t, err)

	mustBegin(t, db, postgres.Run{ID: "ver", File: "ver.csv", SHA256: "00", RulesVersion: v2.Version})
	require.NoError(t, db.LoadBatch(ctx, "ver", 1, []txn.Record{rec(2, "A", "10.00", "TAXI"), rec(3, "B", "-300.00", "x")}, nil))
	c, err := db.FinishIngest(ctx, "ver", 2)
	require.NoError(t, err)
	require.Equal(t, int64(2), queryValue[int64](t, dbURL, "SELECT rules_version::bigint FROM runs WHERE run_id = 'ver'"))

	_, err = db.TagChunkVersion(ctx, "ver", 1, 2, v2.Version, tagWord)
	require.NoError(t, err)
	_, err = db.AnnotateChunkVersion(ctx, "ver", 1, c.MaxSeq+1, v2.Version, annotate)
	require.NoError(t, err)
	_, err = db.TagChunk(ctx, "ver", 2, c.MaxSeq+1, tagWord) // no version
	require.NoError(t, err)
	require.Equal(t, int64(1), queryValue[int64](t, dbURL, "SELECT count(*) FROM tags WHERE rules_version = 2"))
	require.Equal(t, int64(1), queryValue[int64](t, dbURL, "SELECT count(*) FROM tags WHERE rules_version IS NULL"))
	require.Equal(t, int64(2), queryValue[int64](t, dbURL, "SELECT count(*) FROM annotations WHERE rules_version = 2"))

	// A later run under version 1 computes only what has no result yet: A keeps the tag, and
	// the version, it was computed with; C, new, is tagged under version 1.
	mustBegin(t, db, postgres.Run{ID: "ver2", File: "ver2.csv", SHA256: "01", RulesVersion: v.Version})
	require.NoError(t, db.LoadBatch(ctx, "ver2", 1, []txn.Record{rec(2, "A", "10.00", "TAXI"), rec(3, "C", "1.00", "TOTO")}, nil))
	_, err = db.FinishIngest(ctx, "ver2", 2)
	require.NoError(t, err)
	_, err = db.TagChunkVersion(ctx, "ver2", 1, 3, v.Version, tagWord)
	require.NoError(t, err)
	require.Equal(t, int64(2), queryValue[int64](t, dbURL,
		"SELECT t.rules_version::bigint FROM tags t JOIN transactions x ON x.key = t.txn_key WHERE x.id = 'A'"))
	require.Equal(t, int64(1), queryValue[int64](t, dbURL,
		"SELECT t.rules_version::bigint FROM tags t JOIN transactions x ON x.key = t.txn_key WHERE x.id = 'C'"))
}

// TestBeginIngestKeepsTheRunsRulesVersion: a resumed ingestion keeps the version its first
// attempt recorded, even when the current version changed in between; a run started again
// from scratch takes the new one.
func TestBeginIngestKeepsTheRunsRulesVersion(t *testing.T) {
	db, _ := openDB(t)
	ctx := context.Background()
	cp, err := db.BeginIngest(ctx, postgres.Run{ID: "r", File: "r.csv", SHA256: "aa", RulesVersion: 0}, false)
	require.NoError(t, err)
	require.Zero(t, cp.RulesVersion)

	_, err = db.CurrentRules(ctx, txn.DefaultRules())
	require.NoError(t, err)
	_, err = db.SetRules(ctx, txn.DefaultRules(), "v2")
	require.NoError(t, err)

	// Begun without a version: a resumed attempt records the one it is given.
	cp, err = db.BeginIngest(ctx, postgres.Run{ID: "r", File: "r.csv", SHA256: "aa", RulesVersion: 1}, true)
	require.NoError(t, err)
	require.Equal(t, 1, cp.RulesVersion)
	cp, err = db.BeginIngest(ctx, postgres.Run{ID: "r", File: "r.csv", SHA256: "aa", RulesVersion: 2}, true)
	require.NoError(t, err)
	require.Equal(t, 1, cp.RulesVersion, "resumed: the version of the first attempt")
	require.NoError(t, db.LoadBatch(ctx, "r", 1, []txn.Record{rec(2, "A", "1.00", "x")}, nil))
	_, err = db.FinishIngest(ctx, "r", 1)
	require.NoError(t, err)
	cp, err = db.BeginIngest(ctx, postgres.Run{ID: "r", File: "r.csv", SHA256: "aa", RulesVersion: 2}, true)
	require.NoError(t, err)
	require.True(t, cp.Settled)
	require.Equal(t, 1, cp.RulesVersion, "settled: the version it was settled with")

	cp, err = db.BeginIngest(ctx, postgres.Run{ID: "r", File: "r.csv", SHA256: "aa", RulesVersion: 2}, false)
	require.NoError(t, err)
	require.Equal(t, 2, cp.RulesVersion, "started over: the version given")
}
