package e2e

import (
	"context"
	"encoding/csv"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/txflow/txflow/dev/internal/devtemporal"
	"github.com/txflow/txflow/internal/starterapp"
	"github.com/txflow/txflow/internal/testdb"
	"github.com/txflow/txflow/workflows"
)

// reclassifyIDIn finds the reclassification id the starter printed.
func reclassifyIDIn(t *testing.T, out string) string {
	t.Helper()
	m := regexp.MustCompile(`reclassification (reclassify-\S+) started`).FindStringSubmatch(out)
	require.NotNil(t, m, "no reclassification id in:\n%s", out)
	return m[1]
}

// resultVersions returns "id:tag:version ..." of an account's transactions, in id order.
func resultVersions(t *testing.T, dbURL, account string) string {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dbURL)
	require.NoError(t, err)
	defer conn.Close(ctx)
	var s string
	require.NoError(t, conn.QueryRow(ctx, `
		SELECT coalesce(string_agg(t.id || ':' || coalesce(g.tag, '-') || ':' || coalesce(a.annotation, '-') || ':' ||
		       coalesce(t.error, '-') || ':v' || t.result_version, ' ' ORDER BY t.id), '')
		FROM transactions t LEFT JOIN tags g ON g.txn_key = t.key LEFT JOIN annotations a ON a.txn_key = t.key
		WHERE t.account = $1`, account).Scan(&s))
	return s
}

// Reclassification with the real worker and starter: after the tag words change, one account is
// reclassified and approved; only that account's transactions change, exactly those of the diff,
// the export says so, and a second approve is refused.
func TestReclassifyEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Temporal, PostgreSQL and a worker, skipped with -short")
	}
	h := start(t)
	write := func(name, content string) {
		require.NoError(t, os.WriteFile(filepath.Join(h.input, name), []byte(content), 0o644))
	}
	content := "id,amount,wording\nR1,10.00,TAXI ride\nR2,-5.00,UBER night\nR3,400.00,UBER TAXI\nR4,-300.00,shop\n"
	write("a.csv", content)
	write("b.csv", content)
	for _, run := range [][]string{{"run", "--account", "acme", "a.csv"}, {"run", "--account", "other", "b.csv"}} {
		code, out, errOut := h.starter(run...)
		require.Equal(t, starterapp.ExitOK, code, "stdout:\n%s\nstderr:\n%s", out, errOut)
	}
	otherBefore := resultVersions(t, h.dbURL, "other")
	code, out, errOut := h.starter("rules", "set", "--tag-words", "TATA,TOTO,TUTU,TAXI,UBER", "--note", "UBER rides are tagged")
	require.Equal(t, starterapp.ExitOK, code, "stdout:\n%s\nstderr:\n%s", out, errOut)

	code, out, errOut = h.starter("reclassify", "--account", "acme")
	require.Equal(t, starterapp.ExitOK, code, "stdout:\n%s\nstderr:\n%s", out, errOut)
	id := reclassifyIDIn(t, out)
	require.True(t, strings.HasPrefix(id, "reclassify-acme-"), id)
	require.Contains(t, out, "reclassification "+id+": awaiting_approval")
	require.Contains(t, out, "starter reclassify approve "+id)
	diffPath := filepath.Join(h.output, id, "reclassify_diff.csv")
	require.Contains(t, out, "diff: "+diffPath)
	diff, err := os.ReadFile(diffPath)
	require.NoError(t, err)
	// R3 has two tag words now: no tag. R1 and R4 do not change.
	require.Equal(t, "account,id,old_tag,new_tag,old_annotation,new_annotation,old_error,new_error\n"+
		"acme,R2,,UBER,SMALL EXPENSE,SMALL EXPENSE,,\n"+
		"acme,R3,TAXI,,LARGE SALE,LARGE SALE,,\n", string(diff))
	require.Equal(t, "R1:TAXI:SALE:-:v1 R2:-:SMALL EXPENSE:-:v1 R3:TAXI:LARGE SALE:-:v1 R4:-:EXPENSE:-:v1",
		resultVersions(t, h.dbURL, "acme"), "nothing applied before the decision")

	code, out, errOut = h.starter("reclassify", "status", id)
	require.Equal(t, starterapp.ExitOK, code, errOut)
	require.Contains(t, out, "awaiting_approval")

	// One at a time: another reclassification is refused while this one waits, and says why.
	code, out, errOut = h.starter("reclassify", "--account", "other")
	require.Equal(t, starterapp.ExitRunFailed, code, "stdout:\n%s\nstderr:\n%s", out, errOut)
	refused := reclassifyIDIn(t, out)
	require.Contains(t, errOut, "reclassification "+refused+" failed: reclassification "+refused+" not started: reclassification "+
		id+" (account acme, started ")
	require.Contains(t, errOut, "one reclassification at a time: approve or reject it (starter reclassify approve|reject "+id+")")

	code, out, errOut = h.starter("reclassify", "approve", id, "--by", "e2e", "--note", "UBER")
	require.Equal(t, starterapp.ExitOK, code, "stdout:\n%s\nstderr:\n%s", out, errOut)
	require.Contains(t, out, "reclassification "+id+": applied")
	require.Regexp(t, `applied\s+2\n`, out)

	code, out, errOut = h.starter("reclassify", "approve", id)
	require.Equal(t, starterapp.ExitRunFailed, code, "stdout:\n%s\nstderr:\n%s", out, errOut)
	require.Contains(t, errOut, "was already approved by e2e")

	// Exactly the rows of the diff changed, with a new result version; the other account did not.
	require.Equal(t, "R1:TAXI:SALE:-:v1 R2:UBER:SMALL EXPENSE:-:v2 R3:-:LARGE SALE:-:v2 R4:-:EXPENSE:-:v1",
		resultVersions(t, h.dbURL, "acme"))
	require.Equal(t, otherBefore, resultVersions(t, h.dbURL, "other"))
	code, out, errOut = h.starter("export", "--account", "acme")
	require.Equal(t, starterapp.ExitOK, code, errOut)
	require.Equal(t, "id,amount,wording,tag,annotation,error\nR1,10.00,TAXI ride,TAXI,SALE,\nR2,-5.00,UBER night,UBER,SMALL EXPENSE,\n"+
		"R3,400.00,UBER TAXI,,LARGE SALE,\nR4,-300.00,shop,,EXPENSE,\n", out)
	summary, err := os.ReadFile(filepath.Join(h.output, id, "reclassify_summary.json"))
	require.NoError(t, err)
	require.Contains(t, string(summary), `"status": "applied"`)
	require.Contains(t, string(summary), `"rules_version": 2`)
	require.Contains(t, string(summary), `"by": "e2e"`)

	// The history replays against the current code; it is one of the histories workflows.TestReplay
	// replays (TXFLOW_RECORD_HISTORIES=1 rewrites it).
	c := dial(t, h.temporal)
	hist := fetchHistory(t, c, id, "")
	replayer := worker.NewWorkflowReplayer()
	replayer.RegisterWorkflow(workflows.Reclassify)
	exec := workflow.Execution{ID: id, RunID: hist.GetEvents()[0].GetWorkflowExecutionStartedEventAttributes().GetOriginalExecutionRunId()}
	require.NoError(t, replayer.ReplayWorkflowHistoryWithOptions(nil, hist, worker.ReplayWorkflowHistoryOptions{OriginalExecution: exec}))
	if recordHistories {
		saveHistory(t, hist, "reclassify_history.json")
	}
}

// lockTransactionsAfter holds row locks on the account's transactions whose generated id (B<n>)
// is above n, so that the apply chunks that change one of them wait, until release.
func lockTransactionsAfter(t *testing.T, dbURL, account string, n int) (release func()) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dbURL)
	require.NoError(t, err)
	tx, err := conn.Begin(ctx)
	require.NoError(t, err)
	var locked int64
	require.NoError(t, tx.QueryRow(ctx, `WITH l AS (SELECT 1 FROM transactions WHERE account = $1 AND substr(id, 2)::int > $2 FOR UPDATE)
		SELECT count(*) FROM l`, account, n).Scan(&locked))
	require.Positive(t, locked)
	done := false
	release = func() {
		if !done {
			done = true
			_ = tx.Rollback(ctx)
			_ = conn.Close(ctx)
		}
	}
	t.Cleanup(release)
	return release
}

// A worker killed (SIGKILL) while it applies a reclassification: the next worker finishes it, and
// the account ends exactly as the same reclassification, undisturbed, leaves an identical account.
func TestReclassifyWorkerKilledDuringApply(t *testing.T) {
	bin := buildWorker(t)
	srv := devtemporal.StartForTest(t, devtemporal.Options{SearchAttributes: workflows.SearchAttributes()})
	c := dial(t, srv)
	input, output, db := t.TempDir(), t.TempDir(), testdb.URL(t)
	const rows = 4000
	name := generate(t, input, rows, 31)
	env := workerEnv(srv, db, input, output)
	w := startWorker(t, c, bin, env, nil)
	for _, account := range []string{"calm", "kill"} {
		code, out, errOut := runStarter(t, env, "run", "--account", account, name)
		require.Equal(t, starterapp.ExitOK, code, "stdout:\n%s\nstderr:\n%s", out, errOut)
	}
	code, out, errOut := runStarter(t, env, "rules", "set", "--tag-words", "TATA,TOTO,TUTU,TAXI,HOTEL", "--note", "HOTEL")
	require.Equal(t, starterapp.ExitOK, code, "stdout:\n%s\nstderr:\n%s", out, errOut)

	// Undisturbed.
	code, out, errOut = runStarter(t, env, "reclassify", "--account", "calm", "--yes", "--chunk-size", "250")
	require.Equal(t, starterapp.ExitOK, code, "stdout:\n%s\nstderr:\n%s", out, errOut)
	calmID := reclassifyIDIn(t, out)
	require.Contains(t, out, ": applied")

	// Killed while its apply chunks wait for the locked transactions.
	release := lockTransactionsAfter(t, db, "kill", rows/2)
	killID := workflows.ReclassifyID("kill", "e2e")
	run, err := c.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{ID: killID, TaskQueue: workflows.TaskQueue},
		workflows.Reclassify, workflows.ReclassifyInput{Account: "kill", Yes: true, ChunkSize: 250, MaxParallel: 2, HeartbeatTimeout: testHeartbeat})
	require.NoError(t, err)
	state := func() workflows.ReclassifyState {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		var s workflows.ReclassifyState
		if v, err := c.QueryWorkflow(ctx, killID, "", workflows.ProgressQuery); err == nil {
			_ = v.Get(&s)
		}
		return s
	}
	eventually(t, 2*time.Minute, "apply chunks applied and others waiting for the locks", func() bool {
		s := state()
		return s.Status == workflows.ReclassifyApplying && s.Applied > 0 && lockWaiters(t, db) > 0
	})
	t.Logf("killing the worker with %d of %d changes applied", state().Applied, state().Changed)
	w.Kill()
	terminateLockWaiters(t, db)
	release()
	w = startWorker(t, c, bin, env, nil)

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var killed workflows.ReclassifyState
	require.NoError(t, run.Get(ctx, &killed))
	require.Equal(t, workflows.ReclassifyApplied, killed.Status)
	att := maxAttempts(t, c, run)
	t.Logf("highest attempts: %v", att)
	require.GreaterOrEqual(t, att["ApplyReclassify"], int32(2), "no apply chunk was retried after the kill")

	// The same result as undisturbed: the same diff, the same results and result versions.
	readDiff := func(id, account string) [][]string {
		f, err := os.Open(filepath.Join(output, id, "reclassify_diff.csv"))
		require.NoError(t, err)
		defer f.Close()
		recs, err := csv.NewReader(f).ReadAll()
		require.NoError(t, err)
		for _, r := range recs[1:] {
			require.Equal(t, account, r[0])
			r[0] = "-"
		}
		return recs
	}
	calmDiff := readDiff(calmID, "calm")
	require.Greater(t, len(calmDiff), 100, "the new tag word changes many transactions")
	require.Equal(t, calmDiff, readDiff(killID, "kill"))
	calm := resultVersions(t, db, "calm")
	require.Equal(t, calm, resultVersions(t, db, "kill"))
	require.Equal(t, len(calmDiff)-1, strings.Count(calm, ":v2"), "each change applied once")
	require.NotContains(t, calm, ":v3")
	require.NoError(t, w.Stop(45*time.Second))
}
