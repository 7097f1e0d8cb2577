package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/txflow/txflow/internal/testdb"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"

	"github.com/txflow/txflow/dev/internal/devstack"
	"github.com/txflow/txflow/internal/config"
	"github.com/txflow/txflow/internal/starterapp"
	"github.com/txflow/txflow/workflows"
)

// runStarterBinary runs the built starter with env (standard input /dev/null, not a terminal) and
// returns its exit code and output.
func runStarterBinary(t *testing.T, bin string, env config.Map, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = devstack.Environ(env)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exit.ExitCode(), stdout.String(), stderr.String()
	}
	require.NoError(t, err, "starter %v", args)
	return 0, stdout.String(), stderr.String()
}

// accountCounts counts what each table holds for account.
func accountCounts(t *testing.T, dbURL, account string) map[string]int64 {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dbURL)
	require.NoError(t, err)
	defer conn.Close(ctx)
	out := map[string]int64{}
	for _, table := range []string{"transactions", "tags", "annotations", "run_lines", "rejected_rows"} {
		where := "WHERE account = $1"
		if table == "tags" || table == "annotations" {
			// Results are keyed by their transaction's key.
			where = "WHERE txn_key IN (SELECT key FROM transactions WHERE account = $1)"
		}
		var n int64
		require.NoError(t, conn.QueryRow(ctx, "SELECT count(*) FROM "+pgx.Identifier{table}.Sanitize()+" "+where, account).Scan(&n))
		out[table] = n
	}
	return out
}

// The starter's account commands, as the built binary: two accounts whose files share
// transaction ids are run with --account, exported (to stdout and to a file), one is purged
// while the other is untouched, and a purge is refused while a run of its account is in flight.
func TestStarterAccountCommands(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the starter, skipped with -short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	bins, err := devstack.Build(ctx, t.TempDir(), "starter")
	require.NoError(t, err)
	bin := bins["starter"]
	h := start(t)
	c, err := client.Dial(client.Options{HostPort: h.temporal.FrontendHostPort(), Namespace: h.temporal.Namespace()})
	require.NoError(t, err)
	t.Cleanup(c.Close)
	starter := func(args ...string) (int, string, string) {
		t.Helper()
		return runStarterBinary(t, bin, h.env, args...)
	}

	const header = "id,amount,wording,tag,annotation,error\n"
	files := map[string]struct{ content, export string }{
		"acme": {
			content: "id,amount,wording\nT1,10.00,coffee TAXI\nT2,-3.00,lunch\nT3,400.00,TOTO sale\n",
			export:  header + "T1,10.00,coffee TAXI,TAXI,SALE,\nT2,-3.00,lunch,,SMALL EXPENSE,\nT3,400.00,TOTO sale,TOTO,LARGE SALE,\n",
		},
		"globex": {
			content: "id,amount,wording\nT1,10.00,coffee TAXI\nT2,-250.00,rent TATA\nT3,5.00,refund\nT4,2000000,too big\n",
			export: header + "T1,10.00,coffee TAXI,TAXI,SALE,\nT2,-250.00,rent TATA,TATA,EXPENSE,\nT3,5.00,refund,,SALE,\n" +
				"T4,2000000.00,too big,,,amount_too_high\n",
		},
	}
	for _, account := range []string{"acme", "globex"} {
		name := account + ".csv"
		require.NoError(t, os.WriteFile(filepath.Join(h.input, name), []byte(files[account].content), 0o644))
		code, out, errOut := starter("run", "--account", account, name)
		require.Equal(t, starterapp.ExitOK, code, "stdout:\n%s\nstderr:\n%s", out, errOut)
		id := workflows.RunID(account, sha(t, []byte(files[account].content)))
		require.Regexp(t, `^txflow-`+account+`-[0-9a-f]{16}$`, id)
		require.Contains(t, out, fmt.Sprintf("run %s: %s (account %s)\n", id, name, account))
		require.Contains(t, out, "completed in ")
		require.Contains(t, out, "  account    "+account+"\n")
		require.Contains(t, out, filepath.Join(h.output, id, "output_transactions.csv"))
		require.Equal(t, account, h.summary(id).Account)
	}

	// An invalid account is refused before anything starts.
	code, out, errOut := starter("run", "--account", "acme corp", "acme.csv")
	require.Equal(t, starterapp.ExitUsage, code, out)
	require.Contains(t, errOut, `starter run: --account: account "acme corp" has ' ' at byte 4`)

	// Each account's export: to standard output, and to a file.
	for account, f := range files {
		code, out, errOut := starter("export", "--account", account)
		require.Equal(t, starterapp.ExitOK, code, errOut)
		require.Equal(t, f.export, out, account)
		require.Contains(t, errOut, fmt.Sprintf("exported %d transaction(s) of account %s to standard output", bytes.Count([]byte(f.export), []byte("\n"))-1, account))

		p := filepath.Join(t.TempDir(), account+".csv")
		code, out, errOut = starter("export", "--account", account, "-o", p)
		require.Equal(t, starterapp.ExitOK, code, errOut)
		require.Empty(t, out)
		b, err := os.ReadFile(p)
		require.NoError(t, err)
		require.Equal(t, f.export, string(b), account)
	}

	// Without a terminal, purge wants --yes.
	code, out, errOut = starter("purge", "--account", "acme")
	require.Equal(t, starterapp.ExitUsage, code, out)
	require.Contains(t, errOut, "add --yes")
	require.Equal(t, int64(3), accountCounts(t, h.dbURL, "acme")["transactions"], "nothing deleted")

	// Purge acme: its counts are printed, globex is untouched, acme's export is the header.
	acme, globex := accountCounts(t, h.dbURL, "acme"), accountCounts(t, h.dbURL, "globex")
	require.Equal(t, int64(3), acme["transactions"])
	require.Equal(t, int64(3), acme["run_lines"])
	code, out, errOut = starter("purge", "--account", "acme", "--yes")
	require.Equal(t, starterapp.ExitOK, code, errOut)
	want := "purged account acme:\n"
	for _, table := range []string{"transactions", "tags", "annotations", "run_lines", "rejected_rows"} {
		want += fmt.Sprintf("  %-14s %10d deleted\n", table, acme[table])
	}
	require.Equal(t, want, out)
	for table, n := range accountCounts(t, h.dbURL, "acme") {
		require.Zero(t, n, table)
	}
	require.Equal(t, globex, accountCounts(t, h.dbURL, "globex"))
	code, out, errOut = starter("export", "--account", "acme")
	require.Equal(t, starterapp.ExitOK, code, errOut)
	require.Equal(t, header, out)
	require.Contains(t, errOut, "account acme has no stored transactions: wrote the header only")
	code, out, _ = starter("export", "--account", "globex")
	require.Equal(t, starterapp.ExitOK, code)
	require.Equal(t, files["globex"].export, out)

	// A run of globex held in Ingest (the runs table locked): purge is refused and names it.
	more := "id,amount,wording\nT5,1.00,later\n"
	require.NoError(t, os.WriteFile(filepath.Join(h.input, "more.csv"), []byte(more), 0o644))
	moreID := workflows.RunID("globex", sha(t, []byte(more)))
	release := testdb.LockTable(t, h.dbURL, "runs")
	code, out, errOut = starter("run", "--no-wait", "--account", "globex", "more.csv")
	require.Equal(t, starterapp.ExitOK, code, errOut)
	require.Contains(t, out, "started "+moreID+" (file more.csv, account globex)")
	eventually(t, time.Minute, "the globex run blocked in ingest", func() bool { return waitersOn(t, h.dbURL, "runs") == 1 })
	code, out, errOut = starter("purge", "--account", "globex", "--yes")
	require.Equal(t, starterapp.ExitRunFailed, code, out)
	require.Contains(t, errOut, "account globex has 1 run(s) in flight: "+moreID)
	require.Contains(t, errOut, "nothing deleted")
	require.Empty(t, out)
	require.Equal(t, globex, accountCounts(t, h.dbURL, "globex"))

	// Another account is not held up by it.
	code, out, errOut = starter("purge", "--account", "acme", "--yes")
	require.Equal(t, starterapp.ExitOK, code, errOut)
	require.Contains(t, out, "purged account acme:")

	// Once the run ended, the purge goes through.
	release()
	code, out, errOut = starter("run", "--account", "globex", "more.csv")
	require.Equal(t, starterapp.ExitOK, code, "stdout:\n%s\nstderr:\n%s", out, errOut)
	require.Contains(t, out, "run "+moreID+": more.csv (account globex)")
	eventually(t, time.Minute, "the globex run no longer listed as running", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		ids, err := starterapp.RunningRuns(ctx, c, h.temporal.Namespace(), "globex")
		require.NoError(t, err)
		return len(ids) == 0
	})
	code, out, errOut = starter("purge", "--account", "globex", "--yes")
	require.Equal(t, starterapp.ExitOK, code, errOut)
	require.Contains(t, out, fmt.Sprintf("  %-14s %10d deleted\n", "transactions", globex["transactions"]+1))
	for table, n := range accountCounts(t, h.dbURL, "globex") {
		require.Zero(t, n, table)
	}
}
