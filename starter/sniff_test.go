package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/txflow/txflow/internal/config"
	"github.com/txflow/txflow/internal/starterapp"
)

// env is an environment without any server: sniff needs none, and run refuses before dialling.
func env(t *testing.T, extra ...string) config.Map {
	e := config.Map{"TEMPORAL_ADDRESS": "127.0.0.1:1", "TEMPORAL_CONFIG_FILE": os.DevNull, "TXFLOW_INPUT_DIR": t.TempDir()}
	for i := 0; i+1 < len(extra); i += 2 {
		e[extra[i]] = extra[i+1]
	}
	return e
}

func starter(t *testing.T, e config.Map, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := starterapp.MainIO(context.Background(), args, e, nil, &out, &errOut)
	return code, out.String(), errOut.String()
}

func bank(name string) string { return filepath.Join("..", "txn", "testdata", "banks", name) }

func TestSniffWithAProfile(t *testing.T) {
	code, out, errOut := starter(t, env(t), "sniff", "--profile", "bnp-loan", bank("bnp_loan_rejects.csv"))
	require.Equal(t, 0, code, errOut)
	for _, want := range []string{
		"profile      bnp-loan (built-in)",
		"  date       column 1: profile: column 1",
		"  amount     column 5: profile: column 5",
		"  wording    column 4: profile: column 4",
		"(derived), date 2019-06-05, amount 67.97",
		"  line 5: malformed_row: expected at least 5 fields, found 4",
		"lines        8 = no header + 2 skipped + 3 in accepted rows + 3 in rejected rows",
	} {
		assert.Contains(t, out, want)
	}
}

func TestSniffRecognisedFile(t *testing.T) {
	code, out, errOut := starter(t, env(t), "sniff", "-n", "1", bank("caisse_epargne_2024.csv"))
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, `  id         column 4 "Reference": header name "Reference", choice 3 of 3 for the id`)
	assert.Contains(t, out, `not used: "Libelle simplifie" (column 2, choice 3)`)
	assert.Contains(t, out, "rows (first 1 of 2 accepted):")
}

// A profile of TXFLOW_PROFILES_DIR chosen by its filename pattern; a rejected row is shown.
func TestSniffProfilesDir(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "us.yaml"), []byte(
		"match: \"us_bank_*.csv\"\ndate_format: mm/dd/yyyy\nsign: both-positive\ncolumns:\n  date: Posting Date\n  wording: Payee\n  debit: Debit Amount\n  credit: Credit Amount\n"), 0o644))
	code, out, errOut := starter(t, env(t, "TXFLOW_PROFILES_DIR", dir), "sniff", bank("us_bank_mdy.csv"))
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, "profile      us ("+filepath.Join(dir, "us.yaml")+")")
	assert.Contains(t, out, `  wording    column 2 "Payee": profile: "Payee"`)
	assert.Contains(t, out, "  line 6: invalid_date: ")
}

// A file that cannot be read: the verdict a failed run gives, exit 1.
func TestSniffUnreadable(t *testing.T) {
	code, out, _ := starter(t, env(t), "sniff", bank("bnp_loan.csv"))
	assert.Equal(t, 1, code)
	assert.Contains(t, out, "cannot be read: "+bank("bnp_loan.csv")+": no usable header: expected columns id, amount")
	assert.Contains(t, out, "a positional export needs a column mapping")
}

func TestUnknownProfileRefused(t *testing.T) {
	e := env(t)
	require.NoError(t, os.WriteFile(filepath.Join(e["TXFLOW_INPUT_DIR"], "f.csv"), []byte("id,amount,wording\n1,1.00,A\n"), 0o644))
	for _, cmd := range [][]string{{"sniff", "--profile", "nope", bank("fortuneo.csv")}, {"run", "--profile", "nope", "f.csv"}} {
		code, _, errOut := starter(t, e, cmd...)
		assert.Equal(t, 2, code, "%v: refused before anything starts", cmd)
		assert.Contains(t, errOut, `--profile: unknown profile "nope"; known profiles: bnp-loan`)
	}
	code, _, errOut := starter(t, env(t, "TXFLOW_PROFILES_DIR", t.TempDir()+"/missing"), "sniff", bank("fortuneo.csv"))
	assert.Equal(t, 2, code)
	assert.Contains(t, errOut, "TXFLOW_PROFILES_DIR")
}
