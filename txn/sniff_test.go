package txn

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func sniffBank(t *testing.T, name string, opts ReaderOptions, n int) (Sniffed, string, error) {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "banks", name))
	require.NoError(t, err)
	defer f.Close()
	s, err := Sniff(f, opts, n)
	var out bytes.Buffer
	s.Print(&out, name)
	return s, out.String(), err
}

func TestSniffPositional(t *testing.T) {
	bnp, err := BuiltinProfiles().Lookup("bnp-loan")
	require.NoError(t, err)
	s, out, err := sniffBank(t, "bnp_loan_rejects.csv", ReaderOptions{Profile: bnp}, 2)
	require.NoError(t, err)
	assert.Equal(t, "bnp-loan", s.Profile)
	assert.True(t, s.NoHeader)
	assert.Equal(t, []SniffedLine{{Line: 1, Text: "M DUPONT JEAN;PRET IMMOBILIER;12345678901;31/01/2026;;-123 456,78"}}, s.Skipped)
	assert.Equal(t, []SniffedColumn{
		{Role: "date", Column: 1, Name: "column 1", Why: "profile: column 1"},
		{Role: "amount", Column: 5, Name: "column 5", Why: "profile: column 5"},
		{Role: "wording", Column: 4, Name: "column 4", Why: "profile: column 4"},
	}, s.Columns)
	assert.Equal(t, "dd/mm/yyyy", s.DateFormat)
	assert.Equal(t, "profile", s.DateWhy)
	assert.Equal(t, "profile", s.DelimiterWhy)
	require.Len(t, s.Rows, 2)
	assert.True(t, s.Rows[0].DerivedID)
	assert.Equal(t, SniffedRow{Line: 2, ID: s.Rows[0].ID, DerivedID: true, Date: "2019-06-05", Amount: "67.97", Wording: " AMORTISSEMENT PRET"}, s.Rows[0])
	require.Len(t, s.Rejected, 2)
	assert.Equal(t, int64(1), s.RejectedMore)
	assert.Equal(t, ReasonInvalidAmount, s.Rejected[0].Reason)
	assert.Equal(t, ReasonMalformedRow, s.Rejected[1].Reason)

	for _, want := range []string{
		"profile      bnp-loan (built-in)",
		"header       none: the rows are read by position (profile)",
		"  wording    column 4: profile: column 4",
		"dates        dd/mm/yyyy (profile)",
		"  line 2: id " + s.Rows[0].ID + " (derived), date 2019-06-05, amount 67.97, wording \" AMORTISSEMENT PRET\"",
		"rejected (3):",
		"  line 5: malformed_row: expected at least 5 fields, found 4",
		"  and 1 more",
		"lines        8 = no header + 2 skipped + 3 in accepted rows + 3 in rejected rows",
	} {
		assert.Contains(t, out, want)
	}
}

func TestSniffByNames(t *testing.T) {
	p := mustProfile(t, usBankProfile)
	s, out, err := sniffBank(t, "us_bank_mdy.csv", ReaderOptions{Profile: p}, 10)
	require.NoError(t, err)
	assert.Equal(t, int64(2), s.HeaderLine)
	assert.Equal(t, "Posting Date,Payee,Memo,Debit Amount,Credit Amount", s.Header)
	assert.Equal(t, SniffedColumn{Role: "debit", Column: 4, Name: "Debit Amount", Why: `profile: "Debit Amount"`}, s.Columns[1])
	for _, want := range []string{
		`delimiter    "," (detected from the header line)`,
		`  line 1: "Account: 1234-5678,,,,"`,
		`  date       column 1 "Posting Date": profile: "Posting Date"`,
		"sign         both-positive (profile)",
		"dates        mm/dd/yyyy (profile)",
		"  line 6: invalid_date: ",
		"  line 7: invalid_amount: invalid amount: debit \"-2.00\" written negative; the profile says debits are written positive",
		"lines        7 = 1 header + 1 skipped + 3 in accepted rows + 2 in rejected rows",
	} {
		assert.Contains(t, out, want)
	}
}

// Every bank export of testdata/banks that needs no profile: the verdict
// names its columns and adds up its lines.
func TestSniffBanks(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "banks", "*.csv"))
	require.NoError(t, err)
	needProfile := map[string]bool{"bnp_loan.csv": true, "bnp_loan_rejects.csv": true, "us_bank_mdy.csv": true}
	for _, f := range files {
		name := filepath.Base(f)
		if needProfile[name] {
			continue
		}
		t.Run(name, func(t *testing.T) {
			s, out, err := sniffBank(t, name, ReaderOptions{}, 3)
			require.NoError(t, err)
			res := readBank(t, name, ReaderOptions{})
			require.NoError(t, res.err)
			assert.Equal(t, res.stats, s.Stats, "Sniff reads as Read does")
			roles := map[string]bool{}
			for _, c := range s.Columns {
				roles[c.Role] = true
				assert.Contains(t, c.Why, "header name")
			}
			assert.True(t, roles["wording"])
			assert.True(t, roles["amount"] || roles["debit"] && roles["credit"])
			assert.Len(t, s.Rows, min(3, len(res.records)))
			assert.Contains(t, out, "header       line ")
			assert.Contains(t, out, "profile      none: recognised by its header")
		})
	}
}

func TestSniffUnreadable(t *testing.T) {
	s, out, err := sniffBank(t, "bnp_loan.csv", ReaderOptions{}, 10)
	var fe *FileError
	require.ErrorAs(t, err, &fe)
	assert.Equal(t, FileNoHeader, fe.Reason)
	assert.Equal(t, err, s.Err)
	assert.Len(t, s.Skipped, 3, "every line was looked at as a header")
	assert.Contains(t, out, "cannot be read: bnp_loan.csv: "+fe.Error())
	assert.NotContains(t, out, "rows (first")
}

func TestReadNoHeaderClosestCandidate(t *testing.T) {
	res := readString(t, "Relevé du compte\nDate;Libellé;Somme\n01/01/2026;A;1\n", ReaderOptions{})
	var fe *FileError
	require.ErrorAs(t, res.err, &fe)
	assert.Equal(t, FileNoHeader, fe.Reason)
	assert.Equal(t, int64(2), fe.Line)
	assert.True(t, strings.HasSuffix(fe.Found,
		`; closest candidate line 2 "Date;Libellé;Somme" has wording "Libellé", date "Date"; lacks an amount (or debit and credit)`), fe.Found)
}
