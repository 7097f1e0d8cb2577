package activities

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"

	"github.com/txflow/txflow/internal/testdb"
	"github.com/txflow/txflow/postgres"
	"github.com/txflow/txflow/txn"
)

// A reclassification against a real database and a real broker: the diff file lists what the new
// version changes, applying writes it once, and the messages published carry the new result
// version and the new results, with the reclassification as their run.
func TestReclassifyAndPublish(t *testing.T) {
	ctx := context.Background()
	db, err := postgres.Open(ctx, testdb.URL(t))
	require.NoError(t, err)
	t.Cleanup(db.Close)
	require.NoError(t, db.Migrate(ctx))
	_, broker := openBroker(t)
	ingestForDelivery(t, db, "txflow-acme-1", deliveryFile)

	// Version 2: TOTO is no longer a tag word, the limit is higher.
	v2 := txn.DefaultRules()
	v2.TagWords = []string{"TATA", "TUTU", "TAXI"}
	v2.AmountLimit = decimal.NewFromInt(3000000)
	_, err = db.SetRules(ctx, v2, "no TOTO, a higher limit")
	require.NoError(t, err)

	output := t.TempDir()
	r := &Reclassifier{DB: db, Rules: txn.DefaultRules(), OutputRoot: output, Outbox: true}
	const id = "reclassify-acme-t1"
	plan, err := r.PlanReclassify(ctx, ReclassifyPlanInput{ID: id, Account: "acme"})
	require.NoError(t, err)
	require.Equal(t, ReclassifyPlanResult{Pages: 1, ChunkPages: plan.ChunkPages, RulesVersion: 2, Delivery: true}, plan)
	require.Greater(t, plan.ChunkPages, int64(1), "pages of about 100,000 transactions")
	chunks := plan.Chunks(id)
	require.Equal(t, []ReclassifyChunkInput{{ID: id, Chunk: 1, RulesVersion: 2}}, chunks)
	counts, err := r.DryRunReclassify(ctx, chunks[0])
	require.NoError(t, err)
	require.Equal(t, ReclassifyCounts{Items: 5, Changed: 3, TagChanged: 2, AnnotationChanged: 1, ErrorChanged: 1,
		Sources: []VersionCount{{Version: 0, Items: 5}}}, counts, "tagged without a version by the helper")
	report, err := r.ReportReclassify(ctx, ReclassifyRef{ID: id})
	require.NoError(t, err)
	require.Equal(t, filepath.Join(output, id, ReclassifyDiffFile), report.Path)
	require.EqualValues(t, 3, report.Changed)
	b, err := os.ReadFile(report.Path)
	require.NoError(t, err)
	require.Equal(t, "account,id,old_tag,new_tag,old_annotation,new_annotation,old_error,new_error\n"+
		"acme,T2,TOTO,,LARGE SALE,LARGE SALE,,\n"+
		"acme,T3,TUTU,TUTU,,LARGE SALE,amount_too_high,\n"+
		"acme,T5,,TATA,EXPENSE,EXPENSE,,\n", string(b))

	for range 2 {
		_, err = r.ApplyReclassify(ctx, ReclassifyChunkInput{ID: id, Chunk: 1, RulesVersion: 2, Outbox: true})
		require.NoError(t, err)
	}
	d := &Delivery{DB: db, Broker: broker, Slice: 2}
	out, err := d.PublishReclassified(ctx, ReclassifyChunkInput{ID: id, Chunk: 1})
	require.NoError(t, err)
	require.EqualValues(t, 3, out.Published)
	require.Equal(t, []string{
		TransactionMsgID("acme", "T2", 2) + ` txflow.transactions.acme {"account":"acme","id":"T2","date":"2026-02-01","amount":"350.00","wording":"<TOTO> & co","tag":null,"annotation":"LARGE SALE","error":null,"run_id":"reclassify-acme-t1","version":2}`,
		TransactionMsgID("acme", "T3", 2) + ` txflow.transactions.acme {"account":"acme","id":"T3","date":"2026-02-01","amount":"2000000.00","wording":"TUTU big","tag":"TUTU","annotation":"LARGE SALE","error":null,"run_id":"reclassify-acme-t1","version":2}`,
		TransactionMsgID("acme", "T5", 2) + ` txflow.transactions.acme {"account":"acme","id":"T5","date":"2026-02-02","amount":"-250.00","wording":"TATA TOTO","tag":"TATA","annotation":"EXPENSE","error":null,"run_id":"reclassify-acme-t1","version":2}`,
	}, streamMessages(t, broker.JetStream()), "the reclassified results only, version 2, applied once")
	out, err = d.PublishReclassified(ctx, ReclassifyChunkInput{ID: id, Chunk: 1})
	require.NoError(t, err)
	require.Zero(t, out.Published, "nothing left to deliver")

	path, err := r.FinishReclassify(ctx, ReclassifyFinishInput{ID: id, Status: "applied", Summary: json.RawMessage(`{"id":"x","status":"applied"}`)})
	require.NoError(t, err)
	b, err = os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, "{\n  \"id\": \"x\",\n  \"status\": \"applied\"\n}\n", string(b))
}

// A plan for a version that does not exist, or with a bad date, fails without retry; so does a
// plan while another reclassification has not ended, saying which.
func TestReclassifyPlanRefusesBadInput(t *testing.T) {
	ctx := context.Background()
	dbURL := testdb.URL(t)
	db, err := postgres.Open(ctx, dbURL)
	require.NoError(t, err)
	t.Cleanup(db.Close)
	require.NoError(t, db.Migrate(ctx))
	r := &Reclassifier{DB: db, Rules: txn.DefaultRules(), OutputRoot: t.TempDir()}
	for in, want := range map[ReclassifyPlanInput]string{
		{ID: "a", Account: "acme", RulesVersion: 4}:     "rules version 4 does not exist",
		{ID: "b", Account: "acme", From: "31/01/2026"}:  `date "31/01/2026" is not YYYY-MM-DD`,
		{ID: "c", From: "2026-02-01", To: "2026-01-01"}: "the range ends (2026-01-01) before it starts (2026-02-01)",
		{ID: "d", Account: " acme"}:                     "surrounding spaces",
	} {
		_, err := r.PlanReclassify(ctx, in)
		require.ErrorContains(t, err, want)
		requireNonRetryable(t, err)
	}

	_, err = r.PlanReclassify(ctx, ReclassifyPlanInput{ID: "reclassify-acme-1", Account: "acme"})
	require.NoError(t, err)
	_, err = r.PlanReclassify(ctx, ReclassifyPlanInput{ID: "reclassify-all-2"})
	require.ErrorContains(t, err, "reclassification reclassify-all-2 not started: reclassification reclassify-acme-1 (account acme, started ")
	require.ErrorContains(t, err, "one reclassification at a time: approve or reject it (starter reclassify approve|reject reclassify-acme-1)")
	requireNonRetryable(t, err)
	var appErr *temporal.ApplicationError
	require.ErrorAs(t, err, &appErr)
	require.Equal(t, ErrTypeReclassificationInProgress, appErr.Type())
	require.Contains(t, NonRetryableErrorTypes, ErrTypeReclassificationInProgress)
	_, err = r.FinishReclassify(ctx, ReclassifyFinishInput{ID: "reclassify-acme-1", Status: "rejected", Summary: json.RawMessage(`{}`)})
	require.NoError(t, err)
	_, err = r.PlanReclassify(ctx, ReclassifyPlanInput{ID: "reclassify-all-2"})
	require.NoError(t, err, "once the other ended")

	// A reclassification whose workflow was terminated by hand never records its end: the next
	// plan finds its workflow closed, records it abandoned and goes on; an open one still blocks.
	open := map[string]bool{"reclassify-all-3": true}
	r.WorkflowOpen = func(_ context.Context, id string) (bool, error) { return open[id], nil }
	_, err = r.PlanReclassify(ctx, ReclassifyPlanInput{ID: "reclassify-all-3"})
	require.NoError(t, err, "reclassify-all-2's workflow is closed")
	conn, err := pgx.Connect(ctx, dbURL)
	require.NoError(t, err)
	defer conn.Close(ctx)
	var status string
	require.NoError(t, conn.QueryRow(ctx, "SELECT status FROM reclassifications WHERE reclass_id = 'reclassify-all-2'").Scan(&status))
	require.Equal(t, StatusAbandoned, status)
	_, err = r.PlanReclassify(ctx, ReclassifyPlanInput{ID: "reclassify-all-4"})
	require.ErrorContains(t, err, "reclassification reclassify-all-3 (every account")
	requireNonRetryable(t, err)
}

func requireNonRetryable(t *testing.T, err error) {
	t.Helper()
	var appErr *temporal.ApplicationError
	require.ErrorAs(t, err, &appErr)
	require.True(t, appErr.NonRetryable(), "%v", err)
}
