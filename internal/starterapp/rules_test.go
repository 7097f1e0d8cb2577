package starterapp

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/txflow/txflow/internal/testdb"
	"github.com/txflow/txflow/postgres"
	"github.com/txflow/txflow/txn"
	"github.com/txflow/txflow/workflows"
)

// rulesEnv returns an environment with a migrated database of its own, and the database.
func rulesEnv(t *testing.T, extra ...string) (map[string]string, *postgres.DB) {
	t.Helper()
	dbURL := testdb.URL(t)
	ctx := context.Background()
	db, err := postgres.Open(ctx, dbURL)
	require.NoError(t, err)
	t.Cleanup(db.Close)
	require.NoError(t, db.Migrate(ctx))
	return nowhere(t, append([]string{"DATABASE_URL", dbURL}, extra...)...), db
}

func TestRulesShowMakesVersionOneFromTheSettings(t *testing.T) {
	env, db := rulesEnv(t, "TXFLOW_TAG_WORDS", "UBER,TAXI", "TXFLOW_LARGE_SALE_ABOVE", "500")
	code, out, errOut := runMain(t, env, nil, "rules", "show")
	require.Equal(t, ExitOK, code, errOut)
	require.Contains(t, out, "rules version 1 (current)\n")
	require.Contains(t, out, "  tag words         UBER,TAXI\n")
	require.Contains(t, out, "  large sale above  500\n")
	require.Contains(t, out, "  expense below     -200\n")
	require.Contains(t, out, "  amount limit      1000000\n")
	require.Contains(t, out, "  note              "+postgres.SeedNote+"\n")

	// Other settings later do not change version 1.
	env["TXFLOW_TAG_WORDS"] = "TOTO"
	code, out, errOut = runMain(t, env, nil, "rules", "show")
	require.Equal(t, ExitOK, code, errOut)
	require.Contains(t, out, "  tag words         UBER,TAXI\n")
	hist, err := db.RulesHistory(context.Background())
	require.NoError(t, err)
	require.Len(t, hist, 1)
}

func TestRulesSetShowAndHistory(t *testing.T) {
	env, db := rulesEnv(t)
	ctx := context.Background()

	code, out, errOut := runMain(t, env, nil, "rules", "set", "--tag-words", "TATA, UBER", "--note", "UBER rides")
	require.Equal(t, ExitOK, code, errOut)
	require.Contains(t, errOut, "rules version 2 made (was 1)")
	require.Contains(t, out, "rules version 2 (current)\n")
	require.Contains(t, out, "  tag words         TATA,UBER\n")
	require.Contains(t, out, "  large sale above  300\n", "thresholds not given are the current ones")

	code, _, errOut = runMain(t, env, nil, "rules", "set", "--large-sale-above", "450.50", "--amount-limit", "5000", "--note", "smaller limit")
	require.Equal(t, ExitOK, code, errOut)
	cur, err := db.CurrentRules(ctx, txn.DefaultRules())
	require.NoError(t, err)
	require.Equal(t, 3, cur.Version)
	require.Equal(t, []string{"TATA", "UBER"}, cur.Rules.TagWords, "tag words not given are the current ones")
	require.Equal(t, "450.5", cur.Rules.LargeSaleAbove.String())
	require.Equal(t, "5000", cur.Rules.AmountLimit.String())
	require.Equal(t, "-200", cur.Rules.ExpenseBelow.String())

	code, out, errOut = runMain(t, env, nil, "rules", "show", "--version", "1")
	require.Equal(t, ExitOK, code, errOut)
	require.Contains(t, out, "rules version 1\n")
	require.Contains(t, out, "  tag words         TATA,TOTO,TUTU,TAXI\n")

	code, out, errOut = runMain(t, env, nil, "rules", "history")
	require.Equal(t, ExitOK, code, errOut)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 4, out)
	require.True(t, strings.HasPrefix(lines[0], "VERSION"), out)
	for i, want := range []string{"TATA,TOTO,TUTU,TAXI", "TATA,UBER", "TATA,UBER"} {
		f := strings.Fields(lines[i+1])
		require.Equal(t, []string{string(rune('1' + i)), want}, []string{f[0], f[2]}, lines[i+1])
	}
	require.Contains(t, lines[3], "450.5")
	require.True(t, strings.HasSuffix(lines[3], "smaller limit"), lines[3])
}

func TestRulesRefusals(t *testing.T) {
	env, db := rulesEnv(t)
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no note", []string{"set", "--tag-words", "UBER"}, "starter rules set: --note is required"},
		{"blank note", []string{"set", "--tag-words", "UBER", "--note", "  "}, "starter rules set: --note is required"},
		{"nothing to change", []string{"set", "--note", "x"}, "starter rules set: nothing to change"},
		{"empty tag word", []string{"set", "--tag-words", "UBER,,TAXI", "--note", "x"}, "--tag-words: parse tag words: tag word 2 is empty"},
		{"repeated tag word", []string{"set", "--tag-words", "UBER,UBER", "--note", "x"}, `tag word "UBER" is repeated`},
		{"no tag word", []string{"set", "--tag-words", "", "--note", "x"}, "--tag-words: parse tag words: empty list"},
		{"not a number", []string{"set", "--amount-limit", "lots", "--note", "x"}, `--amount-limit: "lots" is not a decimal number`},
		{"positive expense", []string{"set", "--expense-below", "10", "--note", "x"}, "expense threshold 10 is positive (nothing stored)"},
		{"zero limit", []string{"set", "--amount-limit", "0", "--note", "x"}, "amount limit 0 is not positive (nothing stored)"},
		{"same rules", []string{"set", "--large-sale-above", "300.00", "--note", "x"}, "the rules given are those of the current version 1: nothing stored"},
		{"no such version", []string{"show", "--version", "7"}, "starter rules show: no rules version 7: versions are 1 to 1"},
		{"version zero", []string{"show", "--version", "0"}, "starter rules show: --version: 0 is not a version"},
		{"unknown command", []string{"drop"}, `starter rules: unknown command "drop"`},
		{"no command", nil, "Usage:\n  starter rules show"},
		{"an argument", []string{"history", "x"}, "Usage: starter rules history"},
	} {
		code, out, errOut := runMain(t, env, nil, append([]string{"rules"}, tc.args...)...)
		require.Equal(t, ExitUsage, code, "%s: %s", tc.name, errOut)
		require.Contains(t, errOut, tc.want, tc.name)
		require.Empty(t, out, tc.name)
	}
	hist, err := db.RulesHistory(context.Background())
	require.NoError(t, err)
	require.Len(t, hist, 1, "only version 1, made by the first command that needed it")

	code, out, errOut := runMain(t, nowhere(t), nil, "rules", "show")
	require.Equal(t, ExitUsage, code)
	require.Empty(t, out)
	require.Contains(t, errOut, "starter rules show: DATABASE_URL is not set")

	code, out, _ = runMain(t, env, nil, "rules", "help")
	require.Equal(t, ExitOK, code)
	require.Contains(t, out, "starter rules set [--tag-words A,B]")
}

func TestPrintSummaryNamesTheRulesVersion(t *testing.T) {
	var b bytes.Buffer
	PrintSummary(&b, &workflows.Summary{RunID: "txflow-0123", Account: "default", Status: workflows.StatusCompleted, RulesVersion: 3}, 0)
	require.Contains(t, b.String(), "completed\n  rules      version 3\n")
	b.Reset()
	PrintSummary(&b, &workflows.Summary{RunID: "txflow-0123", Account: "default", Status: workflows.StatusCompleted}, 0)
	require.NotContains(t, b.String(), "rules")
}
