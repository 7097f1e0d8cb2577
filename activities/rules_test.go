package activities

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/txflow/txflow/internal/testdb"
	"github.com/txflow/txflow/postgres"
	"github.com/txflow/txflow/txn"
)

// rulesFile is a run's file: wordings with either TAXI or UBER, amounts around the thresholds.
const rulesFile = "id,amount,wording\n" +
	"1,350.00,TAXI ride\n" +
	"2,150.00,UBER ride\n" +
	"3,-250.00,TAXI back\n" +
	"4,-100.00,UBER back\n" +
	"5,6000.00,TAXI big\n" +
	"6,0.50,UBER small\n"

// TestChunksApplyTheRunsRulesVersion: a run applies the version current when its ingestion
// started, whatever each worker's own settings (a.Rules) and whatever version is made while it
// runs: two workers configured differently tag and annotate one run's chunks the same, and every
// result records the run's version. A chunk without a version applies the worker's rules.
func TestChunksApplyTheRunsRulesVersion(t *testing.T) {
	ctx := context.Background()
	dbURL := testdb.URL(t)
	db, err := postgres.Open(ctx, dbURL)
	require.NoError(t, err)
	t.Cleanup(db.Close)
	require.NoError(t, db.Migrate(ctx))
	input := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(input, "f.csv"), []byte(rulesFile), 0o644))

	// Version 1 comes from the first worker's settings; the run starts under version 2.
	taxi := txn.DefaultRules()
	_, err = db.CurrentRules(ctx, taxi)
	require.NoError(t, err)
	v2rules := txn.DefaultRules()
	v2rules.TagWords = []string{"UBER"}
	v2rules.LargeSaleAbove, v2rules.ExpenseBelow, v2rules.AmountLimit = decimal.NewFromInt(100), decimal.NewFromInt(-50), decimal.NewFromInt(5000)
	v2, err := db.SetRules(ctx, v2rules, "UBER")
	require.NoError(t, err)

	uber := &Activities{DB: db, Rules: taxi, InputRoot: input, OutputRoot: t.TempDir()}
	other := txn.DefaultRules()
	other.TagWords = []string{"TAXI", "TUTU"}
	other.LargeSaleAbove, other.AmountLimit = decimal.NewFromInt(1), decimal.NewFromInt(10)
	odd := &Activities{DB: db, Rules: other, InputRoot: input, OutputRoot: t.TempDir()}

	res, err := ingestOnce(t, uber, IngestInput{RunID: "r", File: "f.csv"}, false)
	require.NoError(t, err)
	require.Equal(t, v2.Version, res.RulesVersion)
	require.EqualValues(t, 1, res.InError, "6000.00 is above version 2's limit, 5000, not above the worker's, 1000000")

	// A version made now does not change the run.
	_, err = db.SetRules(ctx, other, "later")
	require.NoError(t, err)

	// Two workers with different settings each take some chunks.
	for seq := int64(1); seq <= res.MaxSeq; seq++ {
		w := uber
		if seq%2 == 0 {
			w = odd
		}
		in := ChunkInput{RunID: "r", From: seq, To: seq + 1, RulesVersion: res.RulesVersion}
		_, err := w.Tag(ctx, in)
		require.NoError(t, err)
		_, err = w.Annotate(ctx, in)
		require.NoError(t, err)
	}
	require.Equal(t, map[string]string{
		"1": "", "2": "UBER", "3": "", "4": "UBER", "5": "", "6": "UBER",
	}, results(t, dbURL, "SELECT x.id, coalesce(t.tag, '') FROM tags t JOIN transactions x ON x.key = t.txn_key"))
	require.Equal(t, map[string]string{
		"1": "LARGE SALE", "2": "LARGE SALE", "3": "EXPENSE", "4": "EXPENSE", "6": "SALE",
	}, results(t, dbURL, "SELECT x.id, coalesce(a.annotation, '') FROM annotations a JOIN transactions x ON x.key = a.txn_key"))
	require.Equal(t, map[string]string{"2": "6"}, results(t, dbURL, `
		SELECT rules_version::text, (SELECT count(*) FROM tags)::text FROM tags GROUP BY rules_version`), "every tag under version 2")
	require.Equal(t, map[string]string{"2": "5"}, results(t, dbURL, `
		SELECT rules_version::text, (SELECT count(*) FROM annotations)::text FROM annotations GROUP BY rules_version`))

	// A chunk input of a run started before versions: the worker's rules, no version recorded.
	require.NoError(t, os.WriteFile(filepath.Join(input, "g.csv"), []byte("id,amount,wording\n10,5.00,TUTU\n"), 0o644))
	res, err = ingestOnce(t, odd, IngestInput{RunID: "old", File: "g.csv"}, false)
	require.NoError(t, err)
	_, err = odd.Tag(ctx, ChunkInput{RunID: "old", From: 1, To: res.MaxSeq + 1})
	require.NoError(t, err)
	require.Equal(t, map[string]string{"10": "TUTU"}, results(t, dbURL, `
		SELECT x.id, t.tag FROM tags t JOIN transactions x ON x.key = t.txn_key WHERE t.rules_version IS NULL`))

	// A version the database does not have: non-retryable.
	_, err = uber.Tag(ctx, ChunkInput{RunID: "r", From: 1, To: 2, RulesVersion: 99})
	var appErr *temporal.ApplicationError
	require.ErrorAs(t, err, &appErr)
	require.Equal(t, ErrTypeConfig, appErr.Type())
	require.True(t, appErr.NonRetryable())
	require.Contains(t, err.Error(), "rules version 99 is not in the database")
}

// TestIngestResumeKeepsTheRulesVersion: a retried Ingest resumes under the version its first
// attempt recorded, even when a newer one was made in between; a settled run's retry returns it.
func TestIngestResumeKeepsTheRulesVersion(t *testing.T) {
	store := newFakeStore()
	store.fail.loadCall = 2
	input := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(input, "f.csv"), []byte(rulesFile), 0o644))
	a := &Activities{DB: store, Rules: txn.DefaultRules(), InputRoot: input, OutputRoot: t.TempDir(), BatchSize: 2,
		Progress: &recordingSink{}}

	_, err := ingestOnce(t, a, IngestInput{RunID: "r", File: "f.csv", SHA256: sha256Hex(rulesFile)}, false)
	require.ErrorContains(t, err, errConnectionLost.Error())
	low := txn.DefaultRules()
	low.AmountLimit = decimal.NewFromInt(100)
	store.setRules(low, "a lower limit")

	res, err := ingestOnce(t, a, IngestInput{RunID: "r", File: "f.csv", SHA256: sha256Hex(rulesFile)}, true)
	require.NoError(t, err)
	require.Equal(t, 1, res.RulesVersion)
	require.EqualValues(t, 0, res.InError, "every row checked against version 1's limit")

	res, err = ingestOnce(t, a, IngestInput{RunID: "r", File: "f.csv", SHA256: sha256Hex(rulesFile)}, true)
	require.NoError(t, err)
	require.Equal(t, 1, res.RulesVersion, "settled run: its version")

	// A new run of the file (not resumed) takes the current version.
	res, err = ingestOnce(t, a, IngestInput{RunID: "r", File: "f.csv", SHA256: sha256Hex(rulesFile)}, false)
	require.NoError(t, err)
	require.Equal(t, 2, res.RulesVersion)
	require.EqualValues(t, 4, res.InError)
}

func TestIngestResultWireRulesVersion(t *testing.T) {
	b, err := json.Marshal(IngestResult{MaxSeq: 3, RulesVersion: 4})
	require.NoError(t, err)
	require.Contains(t, string(b), `"RulesVersion":4`)
	var back IngestResult
	require.NoError(t, json.Unmarshal(b, &back))
	require.Equal(t, 4, back.RulesVersion)

	b, err = json.Marshal(IngestResult{MaxSeq: 3})
	require.NoError(t, err)
	require.NotContains(t, string(b), "RulesVersion", "absent without a version: the wire form of earlier releases")
	b, err = json.Marshal(ChunkInput{RunID: "r", From: 1, To: 2})
	require.NoError(t, err)
	require.JSONEq(t, `{"RunID":"r","From":1,"To":2}`, string(b))
}

// results runs a query of (key, value) text pairs.
func results(t *testing.T, dbURL, query string) map[string]string {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dbURL)
	require.NoError(t, err)
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, query)
	require.NoError(t, err)
	out := map[string]string{}
	for rows.Next() {
		var k, v string
		require.NoError(t, rows.Scan(&k, &v))
		out[k] = v
	}
	require.NoError(t, rows.Err())
	return out
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// ingestOnce runs one attempt of Ingest in Temporal's activity test environment, resuming or not.
func ingestOnce(t *testing.T, a *Activities, in IngestInput, resume bool) (IngestResult, error) {
	t.Helper()
	var suite testsuite.WorkflowTestSuite
	env := suite.NewTestActivityEnvironment()
	env.RegisterActivityWithOptions(func(ctx context.Context, in IngestInput) (IngestResult, error) {
		return a.ingest(ctx, in, "", resume)
	}, activity.RegisterOptions{Name: "ingestOnce"})
	v, err := env.ExecuteActivity("ingestOnce", in)
	if err != nil {
		return IngestResult{}, err
	}
	var res IngestResult
	require.NoError(t, v.Get(&res))
	return res, nil
}
