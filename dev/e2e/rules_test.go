package e2e

import (
	"context"
	"maps"
	"os"
	"path/filepath"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/txflow/txflow/internal/starterapp"
)

// Rules as versions, with the real worker and starter: a run applies the version current when it
// started, in every chunk, whatever the settings of the worker that takes the chunk; a new
// version made with `starter rules set` applies to the next run, and the results stored before
// keep theirs.
func TestRulesVersionsEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Temporal, PostgreSQL and workers, skipped with -short")
	}
	h := start(t)
	write := func(name, content string) {
		require.NoError(t, os.WriteFile(filepath.Join(h.input, name), []byte(content), 0o644))
	}
	output := func(name string) string {
		b, err := os.ReadFile(filepath.Join(h.output, h.runID(name), "output_transactions.csv"))
		require.NoError(t, err)
		return string(b)
	}

	write("a.csv", "id,amount,wording\nA1,10.00,TAXI ride\nA2,-5.00,NOPE shop\n")
	code, out, errOut := h.starter("run", "a.csv")
	require.Equal(t, starterapp.ExitOK, code, "stdout:\n%s\nstderr:\n%s", out, errOut)
	require.Equal(t, 1, h.summary(h.runID("a.csv")).RulesVersion, "version 1, made from the worker's settings")
	require.Equal(t, "id,amount,wording,tag,annotation,error\nA1,10.00,TAXI ride,TAXI,SALE,\nA2,-5.00,NOPE shop,,SMALL EXPENSE,\n", output("a.csv"))

	code, out, errOut = h.starter("rules", "set", "--tag-words", "TAXI,NOPE", "--note", "NOPE is a tag word")
	require.Equal(t, starterapp.ExitOK, code, "stdout:\n%s\nstderr:\n%s", out, errOut)
	require.Contains(t, out+errOut, "2")

	// A second worker whose own settings know neither word joins, and may take chunks of the next
	// run (which worker takes which chunk is Temporal's choice; TestChunksApplyTheRunsRulesVersion
	// in activities checks two workers' settings chunk by chunk).
	other := maps.Clone(h.env)
	other["TXFLOW_TAG_WORDS"] = "OTHER"
	runWorker(t, other)
	write("b.csv", "id,amount,wording\nB1,1.00,NOPE again\nB2,2.00,TAXI\nB3,3.00,OTHER\nB4,4.00,NOPE NOPE\n")
	code, out, errOut = h.starter("run", "--chunk-size", "1", "b.csv")
	require.Equal(t, starterapp.ExitOK, code, "stdout:\n%s\nstderr:\n%s", out, errOut)
	require.Equal(t, 2, h.summary(h.runID("b.csv")).RulesVersion)
	require.Equal(t, "id,amount,wording,tag,annotation,error\n"+
		"B1,1.00,NOPE again,NOPE,SALE,\nB2,2.00,TAXI,TAXI,SALE,\nB3,3.00,OTHER,,SALE,\nB4,4.00,NOPE NOPE,NOPE,SALE,\n",
		output("b.csv"), "every chunk applies version 2, whichever worker took it")

	// Stored results keep the version that produced them.
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, h.dbURL)
	require.NoError(t, err)
	defer conn.Close(ctx)
	var byVersion string
	require.NoError(t, conn.QueryRow(ctx, `SELECT string_agg(t.id || ':' || coalesce(g.tag, '-') || ':' || g.rules_version, ',' ORDER BY t.id)
		FROM tags g JOIN transactions t ON t.key = g.txn_key`).Scan(&byVersion))
	require.Equal(t, "A1:TAXI:1,A2:-:1,B1:NOPE:2,B2:TAXI:2,B3:-:2,B4:NOPE:2", byVersion)
}
