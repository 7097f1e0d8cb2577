package starterapp

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/txflow/txflow/internal/config"
	"github.com/txflow/txflow/internal/testdb"
	"github.com/txflow/txflow/postgres"
	"github.com/txflow/txflow/workflows"
)

func TestMain(m *testing.M) { testdb.Main(m) }

// nowhere is an environment whose Temporal server cannot be reached: a command that dials it
// exits 1, so an exit 2 shows the command refused before dialling.
func nowhere(t *testing.T, extra ...string) config.Map {
	env := config.Map{"TEMPORAL_ADDRESS": "127.0.0.1:1", "TEMPORAL_CONFIG_FILE": os.DevNull,
		"TXFLOW_INPUT_DIR": t.TempDir()}
	for i := 0; i+1 < len(extra); i += 2 {
		env[extra[i]] = extra[i+1]
	}
	return env
}

func runMain(t *testing.T, env config.Map, stdin io.Reader, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := MainIO(context.Background(), args, env, stdin, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestRunRefusesInvalidAccount(t *testing.T) {
	env := nowhere(t)
	require.NoError(t, os.WriteFile(filepath.Join(env["TXFLOW_INPUT_DIR"], "f.csv"), []byte("id,amount,wording\n"), 0o644))
	for _, tc := range []struct{ account, want string }{
		{"acme corp", `account "acme corp" has ' ' at byte 4`},
		{"", "account is empty"},
		{strings.Repeat("a", 65), `account "` + strings.Repeat("a", 65) + `" is 65 characters long, at most 64`},
		{"café", `account "café" has 'é' at byte 3`},
	} {
		code, out, errOut := runMain(t, env, nil, "run", "--account", tc.account, "f.csv")
		require.Equal(t, ExitUsage, code, "%q: %s", tc.account, errOut)
		require.Contains(t, errOut, "starter run: --account: "+tc.want, tc.account)
		require.Empty(t, out)
	}
	// The account is checked before the file is looked for.
	code, _, errOut := runMain(t, env, nil, "run", "--account", "a b", "missing.csv")
	require.Equal(t, ExitUsage, code)
	require.Contains(t, errOut, "--account: account")
	require.NotContains(t, errOut, "missing.csv")

	// A valid account gets as far as Temporal, which is not there (exit 1).
	code, _, errOut = runMain(t, env, nil, "run", "--account", " FR76-3000:1.x_y ", "f.csv")
	require.Equal(t, ExitRunFailed, code, errOut)
	require.Contains(t, errOut, "connect to temporal at 127.0.0.1:1")
}

func TestExportAndPurgeRefusals(t *testing.T) {
	withDB := nowhere(t, "DATABASE_URL", "postgres://u@127.0.0.1:1/db")
	for _, tc := range []struct {
		name string
		env  config.Map
		args []string
		want string
	}{
		{"export without account", withDB, []string{"export"}, "starter export: --account is required"},
		{"export with a bad account", withDB, []string{"export", "--account", "a/b"}, `starter export: --account: account "a/b" has '/'`},
		{"export without DATABASE_URL", nowhere(t), []string{"export", "--account", "acme"},
			"starter export: DATABASE_URL is not set: set it to the worker's database"},
		{"export with an argument", withDB, []string{"export", "--account", "acme", "out.csv"}, "Usage: starter export"},
		{"purge without account", withDB, []string{"purge", "--yes"}, "starter purge: --account is required"},
		{"purge with a bad account", withDB, []string{"purge", "--yes", "--account", "a'b"}, `starter purge: --account: account "a'b" has '\''`},
		{"purge without DATABASE_URL", nowhere(t), []string{"purge", "--yes", "--account", "acme"},
			"starter purge: DATABASE_URL is not set"},
		{"purge without a terminal or --yes", withDB, []string{"purge", "--account", "acme"},
			"starter purge: standard input is not a terminal to confirm on: add --yes to purge account acme"},
	} {
		code, out, errOut := runMain(t, tc.env, strings.NewReader("acme\n"), tc.args...)
		require.Equal(t, ExitUsage, code, "%s: %s", tc.name, errOut)
		require.Contains(t, errOut, tc.want, tc.name)
		require.Empty(t, out, tc.name)
	}
	// With --yes and a valid account, purge goes on to ask Temporal for runs in flight.
	code, _, errOut := runMain(t, withDB, nil, "purge", "--yes", "--account", "acme")
	require.Equal(t, ExitRunFailed, code, errOut)
	require.Contains(t, errOut, "connect to temporal at 127.0.0.1:1")
}

func TestHelpListsAccountCommands(t *testing.T) {
	env := nowhere(t)
	code, out, _ := runMain(t, env, nil, "help")
	require.Equal(t, ExitOK, code)
	for _, want := range []string{"starter run [--account ACC] [flags] FILE", "starter export --account ACC [--from DATE] [--to DATE] [-o FILE]",
		"starter purge --account ACC [--yes]", "DATABASE_URL"} {
		require.Contains(t, out, want)
	}
	for cmd, wants := range map[string][]string{
		"run":    {"-account account", `"default"`},
		"export": {"-account account", "-o file", "-from date", "-to date", "DATABASE_URL", "id,amount,wording,tag,annotation,error"},
		"purge":  {"-account account", "-yes", "DATABASE_URL", "TxflowAccount"},
	} {
		code, _, errOut := runMain(t, env, nil, cmd, "--help")
		require.Equal(t, ExitOK, code, cmd)
		for _, want := range wants {
			require.Contains(t, errOut, want, cmd)
		}
	}
}

func TestConfirm(t *testing.T) {
	for answer, want := range map[string]bool{
		"acme\n": true, "  acme  \n": true, "acme": true,
		"yes\n": false, "ACME\n": false, "\n": false, "": false, "acme2\n": false,
	} {
		var prompt bytes.Buffer
		ok, err := Confirm(strings.NewReader(answer), &prompt, "acme")
		require.NoError(t, err)
		require.Equal(t, want, ok, "%q", answer)
		require.Contains(t, prompt.String(), "stored under account acme")
	}
}

func TestRunningQuery(t *testing.T) {
	require.Equal(t, "TxflowAccount = 'FR76:1' AND ExecutionStatus = 'Running'", RunningQuery("FR76:1"))
	require.Equal(t, workflows.SearchAttrAccount.GetName(), "TxflowAccount")
}

func TestPrintPurge(t *testing.T) {
	var b bytes.Buffer
	PrintPurge(&b, "acme", postgres.PurgeCounts{Transactions: 3, Tags: 2, Annotations: 3, RunLines: 4, RejectedRows: 1})
	require.Equal(t, "purged account acme:\n"+
		"  transactions            3 deleted\n"+
		"  tags                    2 deleted\n"+
		"  annotations             3 deleted\n"+
		"  run_lines               4 deleted\n"+
		"  rejected_rows           1 deleted\n", b.String())
}

func TestPrintSummaryNamesAccount(t *testing.T) {
	var b bytes.Buffer
	PrintSummary(&b, &workflows.Summary{RunID: "txflow-acme-0123", Account: "acme", Status: workflows.StatusCompleted}, 0)
	require.Contains(t, b.String(), "completed\n  account    acme\n")

	// The default account's summary is printed as before accounts existed.
	b.Reset()
	PrintSummary(&b, &workflows.Summary{RunID: "txflow-0123", Account: "default", Status: workflows.StatusCompleted}, 0)
	require.NotContains(t, b.String(), "account")
}

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "out.csv")
	require.NoError(t, os.WriteFile(p, []byte("old\n"), 0o644))
	boom := errors.New("boom")
	err := writeFileAtomic(p, func(w io.Writer) error {
		_, _ = io.WriteString(w, "partial")
		return boom
	})
	require.ErrorIs(t, err, boom)
	b, err := os.ReadFile(p)
	require.NoError(t, err)
	require.Equal(t, "old\n", string(b), "a failed export leaves the file as it was")
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, entries, 1, "no temporary file left")

	require.NoError(t, writeFileAtomic(p, func(w io.Writer) error { _, err := io.WriteString(w, "new\n"); return err }))
	b, err = os.ReadFile(p)
	require.NoError(t, err)
	require.Equal(t, "new\n", string(b))
}

// Export reads the worker's database through DATABASE_URL: an account's rows only, to stdout or
// to a file, and says how many; an account with nothing stored gets the header.
func TestExportFromDatabase(t *testing.T) {
	dbURL := testdb.URL(t)
	ctx := context.Background()
	db, err := postgres.Open(ctx, dbURL)
	require.NoError(t, err)
	require.NoError(t, db.Migrate(ctx))
	db.Close()
	conn, err := pgx.Connect(ctx, dbURL)
	require.NoError(t, err)
	_, err = conn.Exec(ctx, `INSERT INTO transactions (account, id, key, amount, wording, first_run_id, date) VALUES
		('acme', 'T2', 1, -3, 'lunch', 'r1', NULL), ('acme', 'T1', 2, 10, 'coffee', 'r1', NULL), ('globex', 'T1', 3, 99, 'other', 'r2', NULL),
		('dated', 'D1', 4, 1, 'jan', 'r3', '2026-01-31'), ('dated', 'D2', 5, 2, 'feb', 'r3', '2026-02-01'),
		('dated', 'D3', 6, 3, 'undated', 'r3', NULL)`)
	require.NoError(t, err)
	require.NoError(t, conn.Close(ctx))

	env := nowhere(t, "DATABASE_URL", dbURL)
	code, out, errOut := runMain(t, env, nil, "export", "--account", "acme")
	require.Equal(t, ExitOK, code, errOut)
	require.Equal(t, "id,amount,wording,tag,annotation,error\nT1,10.00,coffee,,,\nT2,-3.00,lunch,,,\n", out)
	require.Equal(t, "exported 2 transaction(s) of account acme to standard output\n", errOut)

	p := filepath.Join(t.TempDir(), "globex.csv")
	code, out, errOut = runMain(t, env, nil, "export", "--account", "globex", "-o", p)
	require.Equal(t, ExitOK, code, errOut)
	require.Empty(t, out)
	require.Equal(t, "exported 1 transaction(s) of account globex to "+p+"\n", errOut)
	b, err := os.ReadFile(p)
	require.NoError(t, err)
	require.Equal(t, "id,amount,wording,tag,annotation,error\nT1,99.00,other,,,\n", string(b))

	code, out, errOut = runMain(t, env, nil, "export", "--account", "nobody", "-o", "-")
	require.Equal(t, ExitOK, code, errOut)
	require.Equal(t, "id,amount,wording,tag,annotation,error\n", out)
	require.Equal(t, "account nobody has no stored transactions: wrote the header only to standard output\n", errOut)

	// Dates: a date column when the account has dates, and a range.
	code, out, errOut = runMain(t, env, nil, "export", "--account", "dated")
	require.Equal(t, ExitOK, code, errOut)
	require.Equal(t, "id,date,amount,wording,tag,annotation,error\nD1,2026-01-31,1.00,jan,,,\nD2,2026-02-01,2.00,feb,,,\nD3,,3.00,undated,,,\n", out)
	code, out, errOut = runMain(t, env, nil, "export", "--account", "dated", "--from", "2026-02-01", "--to", "2026-12-31")
	require.Equal(t, ExitOK, code, errOut)
	require.Equal(t, "id,date,amount,wording,tag,annotation,error\nD2,2026-02-01,2.00,feb,,,\n", out)
	code, out, errOut = runMain(t, env, nil, "export", "--account", "dated", "--to", "2026-01-31")
	require.Equal(t, ExitOK, code, errOut)
	require.Equal(t, "id,date,amount,wording,tag,annotation,error\nD1,2026-01-31,1.00,jan,,,\n", out)
	for _, bad := range [][]string{{"--from", "31/01/2026"}, {"--to", "2026-13-01"}, {"--from", "2026-02-01", "--to", "2026-01-01"}} {
		code, out, errOut = runMain(t, env, nil, append([]string{"export", "--account", "dated"}, bad...)...)
		require.Equal(t, ExitUsage, code, "%v: %s", bad, errOut)
		require.Empty(t, out)
		require.Contains(t, errOut, "starter export: --")
	}

	// A directory that does not exist: the error says so, exit 1.
	code, _, errOut = runMain(t, env, nil, "export", "--account", "acme", "-o", filepath.Join(t.TempDir(), "no", "x.csv"))
	require.Equal(t, ExitRunFailed, code)
	require.Contains(t, errOut, "starter export: account acme to ")
	require.Contains(t, errOut, "create output")
}

// /dev/null, the standard input of a process started without one, is a character device but no
// terminal to confirm a purge on.
func TestIsTerminal(t *testing.T) {
	null, err := os.Open(os.DevNull)
	require.NoError(t, err)
	defer null.Close()
	require.False(t, isTerminal(null))
	r, w, err := os.Pipe()
	require.NoError(t, err)
	defer r.Close()
	defer w.Close()
	require.False(t, isTerminal(r))
	require.False(t, isTerminal(strings.NewReader("")))
	require.False(t, isTerminal(nil))
	if pty, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0); err == nil {
		defer pty.Close()
		require.True(t, isTerminal(pty), "a pseudo-terminal is a terminal")
	}
}
