package activities

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/txflow/txflow/txn"
)

// Ingest stores the run under its account and records, when it settles, whether the file had an
// account column: its rows then carry their own accounts.
func TestIngestPassesTheAccount(t *testing.T) {
	store := newFakeStore()
	a := newFakeActivities(t, store)
	require.NoError(t, os.WriteFile(filepath.Join(a.InputRoot, "plain.csv"), []byte("id,amount,wording\nT1,1.00,CB TAXI\n"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(a.InputRoot, "multi.csv"),
		[]byte("account,id,amount,wording\nacme,T1,1.00,CB TAXI\nglobex,T1,2.00,CB TAXI\n"), 0o644))

	res := runIngest(t, a, IngestInput{RunID: "plain", File: "plain.csv", Account: "acme"})
	require.False(t, res.AccountColumn)
	require.Equal(t, "acme", store.runs["plain"].run.Account)
	require.False(t, store.runs["plain"].accountColumn)

	res = runIngest(t, a, IngestInput{RunID: "default", File: "plain.csv"})
	require.Equal(t, txn.DefaultAccount, store.runs["default"].run.Account, "no account is the default one")

	res = runIngest(t, a, IngestInput{RunID: "multi", File: "multi.csv", Account: "acme"})
	require.True(t, res.AccountColumn)
	require.True(t, store.runs["multi"].accountColumn, "FinishIngestFile records the account column")
	var accounts []string
	for _, seq := range store.runs["multi"].seqs() {
		accounts = append(accounts, store.runs["multi"].lines[seq].Account)
	}
	require.Equal(t, []string{"acme", "globex"}, accounts)
}

// An invalid account is refused before the file is even opened, with an error of its own type.
func TestIngestRefusesAnInvalidAccount(t *testing.T) {
	store := newFakeStore()
	a := newFakeActivities(t, store)
	for _, acc := range []string{"acme corp", "../x", " acme"} {
		_, err := a.ingest(context.Background(), IngestInput{RunID: "r", File: "missing.csv", Account: acc}, "", false)
		requireErrorType(t, err, ErrTypeBadAccount)
		require.ErrorContains(t, err, "invalid account for the run")
	}
	require.Empty(t, store.begins)
	require.Contains(t, NonRetryableErrorTypes, ErrTypeBadAccount)
}

// The inbox's sub-folders named after an account hold that account's files; files directly in
// it are of the default account; a sub-folder whose name is not an account is reported, its
// files not listed; hidden folders and deeper folders are left alone.
func TestListInboxAccounts(t *testing.T) {
	m := newMoveEnv(t)
	m.put("inbox/z.csv", "z")
	sumX := m.put("inbox/acme/x.csv", "x")
	m.put("inbox/globex/x.csv", "x")
	m.put("inbox/FR76:3000_6/y.csv", "y")
	m.put("inbox/acme/deeper/w.csv", "w")
	m.put("inbox/.partial/v.csv", "v")
	m.put("inbox/acme corp/u.csv", "u")
	require.NoError(t, os.MkdirAll(filepath.Join(m.root, "inbox", "empty"), 0o755))

	files, err := m.a.ListInbox(context.Background(), ListInboxInput{})
	require.NoError(t, err)
	var got [][3]string
	for _, f := range files {
		got = append(got, [3]string{f.File, f.Account, f.SHA256})
		if f.File == "inbox/acme corp" {
			require.Contains(t, f.Error, "sub-folder inbox/acme corp/ of the inbox is not named after a valid account")
			require.Contains(t, f.Error, "has ' ' at byte 4")
		} else {
			require.Empty(t, f.Error)
		}
	}
	require.Equal(t, [][3]string{
		{"inbox/FR76:3000_6/y.csv", "FR76:3000_6", files[0].SHA256},
		{"inbox/acme corp", "", ""},
		{"inbox/acme/x.csv", "acme", sumX},
		{"inbox/globex/x.csv", "globex", sumX},
		{"inbox/z.csv", "", files[4].SHA256},
	}, got)
}

// A file of an account's sub-folder is moved to the sub-folder of its account; an account that
// is not valid is refused.
func TestMoveInboxFileAccount(t *testing.T) {
	m := newMoveEnv(t)
	sum := m.put("inbox/acme/x.csv", "x")
	m.put("inbox/globex/x.csv", "x")
	got, err := m.move(MoveInput{File: "inbox/acme/x.csv", SHA256: sum, To: ArchiveDir, Account: "acme"})
	require.NoError(t, err)
	require.Equal(t, "archive/acme/x.csv", got)
	got, err = m.move(MoveInput{File: "inbox/globex/x.csv", SHA256: sum, To: FailedDir, Account: "globex"})
	require.NoError(t, err)
	require.Equal(t, "failed/globex/x.csv", got)
	require.Equal(t, "x", m.content("archive/acme/x.csv"))
	// A retry finds where it went.
	got, err = m.move(MoveInput{File: "inbox/acme/x.csv", SHA256: sum, To: ArchiveDir, Account: "acme"})
	require.NoError(t, err)
	require.Equal(t, "archive/acme/x.csv", got)

	m.put("inbox/y.csv", "y")
	// ".." and "." are made of account characters but name no sub-folder.
	for _, acc := range []string{"..", ".", ".hidden", "a/b", "acme "} {
		_, err = m.a.MoveInboxFile(context.Background(), MoveInput{File: "inbox/y.csv", To: ArchiveDir, Account: acc})
		requireErrorType(t, err, ErrTypeBadInput)
	}
	require.Equal(t, "y", m.content("inbox/y.csv"), "not moved")
}

// A file without an id column gets ids derived with the run's account: the same export for two
// accounts gives two sets of transactions, and the same export again gives the same ids.
func TestIngestDerivesIDsWithTheRunsAccount(t *testing.T) {
	store := newFakeStore()
	a := newFakeActivities(t, store)
	require.NoError(t, os.WriteFile(filepath.Join(a.InputRoot, "noid.csv"),
		[]byte("date;libellé;montant\n31/01/2026;CB TAXI;-12,50\n31/01/2026;CB TAXI;-12,50\n"), 0o644))
	ids := func(runID string) []string {
		var out []string
		for _, seq := range store.runs[runID].seqs() {
			out = append(out, store.runs[runID].lines[seq].ID)
		}
		return out
	}
	runIngest(t, a, IngestInput{RunID: "acme", File: "noid.csv", Account: "acme"})
	runIngest(t, a, IngestInput{RunID: "globex", File: "noid.csv", Account: "globex"})
	runIngest(t, a, IngestInput{RunID: "acme-again", File: "noid.csv", Account: "acme"})
	acme, globex := ids("acme"), ids("globex")
	require.Len(t, acme, 2)
	require.NotEqual(t, acme[0], acme[1], "two identical rows are two transactions")
	require.NotEqual(t, acme[0], globex[0], "the account is part of a derived id")
	require.Equal(t, acme, ids("acme-again"), "derived ids are stable across imports")
}
