package activities

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/txflow/txflow/txn"
)

func copyBankFile(t *testing.T, name, to string) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "txn", "testdata", "banks", name))
	require.NoError(t, err)
	require.NoError(t, os.MkdirAll(filepath.Dir(to), 0o755))
	require.NoError(t, os.WriteFile(to, data, 0o644))
}

// A positional BNP loan export, without a header row, is read through the built-in profile named
// for the run: its rows are stored with derived ids, its bad rows rejected, and the result names
// the profile.
func TestIngestWithAProfile(t *testing.T) {
	store := newFakeStore()
	a := newFakeActivities(t, store)
	copyBankFile(t, "bnp_loan_rejects.csv", filepath.Join(a.InputRoot, "pret.csv"))

	res := runIngest(t, a, IngestInput{RunID: "loan", File: "pret.csv", Account: "loan-1", Profile: "bnp-loan"})
	require.Equal(t, "bnp-loan", res.Profile)
	require.Equal(t, Counts{RowsRead: 6, Lines: 8, SkippedLines: 2, DerivedIDs: 3, Ingested: 3, New: 3, Rejected: 3}, res.Counts)
	var got []string
	for _, seq := range store.runs["loan"].seqs() {
		rec := store.runs["loan"].lines[seq]
		require.True(t, rec.DerivedID)
		got = append(got, rec.Date.Format("2006-01-02")+" "+rec.Amount.StringFixed(2))
	}
	require.Equal(t, []string{"2019-06-05 67.97", "2019-07-05 68.12", "2019-07-05 68.12"}, got)
	var reasons []string
	for _, r := range store.runs["loan"].rejected {
		reasons = append(reasons, string(r.Reason))
	}
	require.Equal(t, []string{"invalid_amount", "malformed_row", "invalid_amount"}, reasons)

	// Without the profile the same file fails the run: no usable header.
	_, err := a.ingest(context.Background(), IngestInput{RunID: "noprofile", File: "pret.csv"}, "", false)
	requireErrorType(t, err, ErrTypeBadFile)
	require.ErrorContains(t, err, "a positional export needs a column mapping")
}

// A profile of the profiles folder is chosen by its filename pattern when the run names none;
// the profile named wins over the pattern.
func TestIngestChoosesAProfileByFileName(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "loans.yaml"), []byte(
		"match: \"pret_*.csv\"\nno_header: true\nskip_lines: 1\ndelimiter: \";\"\ncolumns:\n  date: 1\n  wording: 4\n  amount: 5\n"), 0o644))
	profiles, err := txn.LoadProfiles(dir)
	require.NoError(t, err)
	store := newFakeStore()
	a := newFakeActivities(t, store)
	a.Profiles = profiles
	copyBankFile(t, "bnp_loan.csv", filepath.Join(a.InputRoot, "PRET_2026.csv"))
	res := runIngest(t, a, IngestInput{RunID: "matched", File: "PRET_2026.csv"})
	require.Equal(t, "loans", res.Profile)
	require.Equal(t, int64(2), res.Ingested)

	res = runIngest(t, a, IngestInput{RunID: "named", File: "PRET_2026.csv", Profile: "bnp-loan"})
	require.Equal(t, "bnp-loan", res.Profile)
}

// A profile the worker does not have fails the run at once, without retry, listing the known ones.
func TestIngestRefusesAnUnknownProfile(t *testing.T) {
	store := newFakeStore()
	a := newFakeActivities(t, store)
	copyBankFile(t, "bnp_loan.csv", filepath.Join(a.InputRoot, "pret.csv"))
	_, err := a.ingest(context.Background(), IngestInput{RunID: "r", File: "pret.csv", Profile: "bnp-pret"}, "", false)
	requireErrorType(t, err, ErrTypeUnknownProfile)
	require.ErrorContains(t, err, `pret.csv: unknown profile "bnp-pret"; known profiles: bnp-loan`)
	require.Empty(t, store.begins, "nothing stored")
	require.Contains(t, NonRetryableErrorTypes, ErrTypeUnknownProfile)
}

// An inbox folder's settings file names the profile of its files; one that cannot be read
// refuses its folder.
func TestListInboxFolderProfiles(t *testing.T) {
	m := newMoveEnv(t)
	m.put("inbox/z.csv", "z")
	m.put("inbox/acme/.txflow.yaml", "profile: bnp-loan\n")
	m.put("inbox/acme/x.csv", "x")
	m.put("inbox/globex/.txflow.yaml", "profil: bnp-loan\n")
	m.put("inbox/globex/y.csv", "y")
	files, err := m.a.ListInbox(context.Background(), ListInboxInput{})
	require.NoError(t, err)
	sort.Slice(files, func(i, j int) bool { return files[i].File < files[j].File })
	require.Len(t, files, 3)
	require.Equal(t, "inbox/acme/x.csv", files[0].File)
	require.Equal(t, "bnp-loan", files[0].Profile)
	require.Equal(t, "inbox/globex", files[1].File)
	require.Contains(t, files[1].Error, `has settings that cannot be read`)
	require.Contains(t, files[1].Error, `unknown key "profil"`)
	require.Equal(t, "inbox/z.csv", files[2].File)
	require.Empty(t, files[2].Profile)

	m.put("inbox/.txflow.yaml", "profile: bnp-loan\n")
	files, err = m.a.ListInbox(context.Background(), ListInboxInput{})
	require.NoError(t, err)
	require.Equal(t, "bnp-loan", files[len(files)-1].Profile, "the inbox's own settings apply to its files")
}
