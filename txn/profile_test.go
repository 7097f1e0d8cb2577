package txn

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseProfile(t *testing.T) {
	tests := []struct {
		name    string
		yaml    string
		wantErr string // substring; "" for a good profile
		check   func(t *testing.T, p *Profile)
	}{
		{name: "positional", yaml: "name: loan\nno_header: true\nskip_lines: 1\ndelimiter: \";\"\ndecimal_separator: \",\"\ndate_format: dd/mm/yyyy\ncolumns:\n  date: 1\n  wording: 4\n  amount: 5\n",
			check: func(t *testing.T, p *Profile) {
				assert.Equal(t, "loan", p.Name)
				assert.True(t, p.NoHeader)
				assert.Equal(t, 1, p.SkipLines)
				assert.Equal(t, byte(';'), p.Delimiter)
				assert.Equal(t, ProfileColumn{Position: 4}, p.Columns["wording"])
				assert.Equal(t, SignAuto, p.Sign)
				assert.Equal(t, layoutDaySlash, p.layout)
			}},
		{name: "by names, name from the file", yaml: "match: \"Export_*.CSV\"\nsign: both-positive\nencoding: latin-1\ndelimiter: tab\ncolumns:\n  date: Posting Date\n  wording: \"Payee\"\n  debit: Debit Amount\n  credit: Credit Amount\n",
			check: func(t *testing.T, p *Profile) {
				assert.Equal(t, "us-bank", p.Name)
				assert.Equal(t, ProfileColumn{Name: "Payee"}, p.Columns["wording"])
				assert.Equal(t, EncodingWindows1252, p.Encoding)
				assert.Equal(t, byte('\t'), p.Delimiter)
				assert.Equal(t, SignBothPositive, p.Sign)
			}},
		{name: "settings only", yaml: "name: decimal-comma\ndecimal_separator: \",\"\n",
			check: func(t *testing.T, p *Profile) { assert.Empty(t, p.Columns) }},
		{name: "unknown key", yaml: "name: x\ndelimeter: \";\"\n", wantErr: `profile us-bank.yaml: unknown key "delimeter" at line 2`},
		{name: "unknown role", yaml: "columns:\n  date: 1\n  label: 2\n  amount: 3\n", wantErr: `unknown role "label" at line 3`},
		{name: "bad delimiter", yaml: "delimiter: \";;\"\n", wantErr: `delimiter: ";;" is not one character`},
		{name: "quote delimiter", yaml: "delimiter: '\"'\n", wantErr: "cannot separate fields"},
		{name: "bad date layout", yaml: "date_format: yyyy-dd-mm\n", wantErr: `date_format: unknown format "yyyy-dd-mm"; known: dd/mm/yyyy`},
		{name: "bad decimal separator", yaml: "decimal_separator: \"'\"\n", wantErr: "decimal_separator"},
		{name: "bad sign", yaml: "sign: credit-negative\n", wantErr: `sign: "credit-negative"`},
		{name: "bad encoding", yaml: "encoding: utf-16\n", wantErr: `encoding: "utf-16"`},
		{name: "bad match", yaml: "match: \"[x\"\n", wantErr: "match: bad filename pattern"},
		{name: "bad name", yaml: "name: my profile\n", wantErr: "name:"},
		{name: "missing wording", yaml: "columns:\n  date: 1\n  amount: 2\n", wantErr: "columns: no wording column"},
		{name: "missing amount", yaml: "columns:\n  date: 1\n  wording: 2\n  debit: 3\n", wantErr: "columns: no amount column"},
		{name: "missing id and date", yaml: "columns:\n  wording: 1\n  amount: 2\n", wantErr: "neither an id nor a date column"},
		{name: "amount and debit", yaml: "columns:\n  date: 1\n  wording: 2\n  amount: 3\n  debit: 4\n  credit: 5\n", wantErr: "give one or the other"},
		{name: "one column twice", yaml: "columns:\n  date: 1\n  wording: 1\n  amount: 2\n", wantErr: "date and wording are both column 1"},
		{name: "no header by name", yaml: "no_header: true\ndelimiter: \";\"\ncolumns:\n  date: Date\n  wording: 2\n  amount: 3\n", wantErr: "columns by position only"},
		{name: "no header without columns", yaml: "no_header: true\n", wantErr: "needs columns by position"},
		{name: "position zero", yaml: "columns:\n  date: 0\n  wording: 1\n  amount: 2\n", wantErr: "position 0"},
		{name: "not a mapping", yaml: "- a\n- b\n", wantErr: "expected a mapping"},
		{name: "bad yaml", yaml: "columns: [\n", wantErr: "profile us-bank.yaml"},
		{name: "skip too many", yaml: "skip_lines: -1\n", wantErr: "skip_lines"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := ParseProfile([]byte(tt.yaml), "us-bank.yaml")
			if tt.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.wantErr)
				return
			}
			require.NoError(t, err)
			tt.check(t, p)
		})
	}
}

func TestBuiltinProfiles(t *testing.T) {
	ps := BuiltinProfiles()
	assert.Contains(t, ps.Names(), "bnp-loan")
	for _, p := range ps.All() {
		assert.Equal(t, BuiltinSource, p.Source)
		assert.Empty(t, p.Match, "%s: a built-in profile is chosen by name: a pattern would catch other banks' files", p.Name)
	}
	var zero Profiles
	p, err := zero.Lookup("bnp-loan")
	require.NoError(t, err, "the zero Profiles holds the built-in profiles")
	assert.True(t, p.NoHeader)
}

func writeProfiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644))
	}
	return dir
}

func TestLoadProfiles(t *testing.T) {
	dir := writeProfiles(t, map[string]string{
		"us-bank.yaml":  "match: \"us_bank_*.csv\"\ndate_format: mm/dd/yyyy\n",
		"bnp.yml":       "name: bnp-loan\ndescription: ours\nno_header: true\ndelimiter: \";\"\ncolumns:\n  date: 1\n  wording: 2\n  amount: 3\n",
		"any.yaml":      "match: \"*.txt\"\n",
		"README.md":     "not a profile",
		".hidden.yaml":  "garbage: [",
		"zz-other.yaml": "match: \"US_BANK_2026.csv\"\n",
	})
	ps, err := LoadProfiles(dir)
	require.NoError(t, err)
	assert.Equal(t, []string{"any", "bnp-loan", "us-bank", "zz-other"}, ps.Names())
	p, err := ps.Lookup("bnp-loan")
	require.NoError(t, err)
	assert.Equal(t, "ours", p.Description, "the folder overrides a built-in profile of the same name")
	assert.Equal(t, filepath.Join(dir, "bnp.yml"), p.Source)

	assert.Equal(t, "us-bank", ps.Match("in/us_bank_2026.csv").Name, "first by name among those whose pattern matches")
	assert.Equal(t, "us-bank", ps.Match("US_BANK_jan.CSV").Name, "case-insensitive")
	assert.Nil(t, ps.Match("fortuneo.csv"))

	_, err = ps.Lookup("nope")
	var unknown *UnknownProfileError
	require.ErrorAs(t, err, &unknown)
	assert.Equal(t, `unknown profile "nope"; known profiles: any, bnp-loan, us-bank, zz-other`, err.Error())

	got, err := ps.Resolve("", "a.txt")
	require.NoError(t, err)
	assert.Equal(t, "any", got.Name)
	got, err = ps.Resolve("bnp-loan", "a.txt")
	require.NoError(t, err)
	assert.Equal(t, "bnp-loan", got.Name, "a name wins over a pattern")

	builtin, err := LoadProfiles("")
	require.NoError(t, err)
	assert.Equal(t, BuiltinProfiles().Names(), builtin.Names())
}

func TestLoadProfilesErrors(t *testing.T) {
	dup := writeProfiles(t, map[string]string{
		"a.yaml": "name: same\n",
		"b.yaml": "name: same\n",
	})
	_, err := LoadProfiles(dup)
	require.Error(t, err)
	assert.Contains(t, err.Error(), `duplicate name "same"`)
	assert.Contains(t, err.Error(), "a.yaml")
	assert.Contains(t, err.Error(), "b.yaml")

	bad := writeProfiles(t, map[string]string{"x.yaml": "colums:\n  date: 1\n"})
	_, err = LoadProfiles(bad)
	require.Error(t, err)
	assert.Contains(t, err.Error(), filepath.Join(bad, "x.yaml"))
	assert.Contains(t, err.Error(), `unknown key "colums"`)

	_, err = LoadProfiles(filepath.Join(t.TempDir(), "missing"))
	assert.ErrorContains(t, err, "read profiles folder")
}

func TestParseFolderSettings(t *testing.T) {
	name, err := ParseFolderSettings([]byte("profile: bnp-loan\n"), "inbox/acme/.txflow.yaml")
	require.NoError(t, err)
	assert.Equal(t, "bnp-loan", name)
	name, err = ParseFolderSettings(nil, "x")
	require.NoError(t, err)
	assert.Empty(t, name)
	_, err = ParseFolderSettings([]byte("profil: x\n"), "inbox/acme/.txflow.yaml")
	assert.ErrorContains(t, err, `folder settings inbox/acme/.txflow.yaml: unknown key "profil"`)
}

func mustProfile(t *testing.T, yaml string) *Profile {
	t.Helper()
	p, err := ParseProfile([]byte(yaml), "test.yaml")
	require.NoError(t, err)
	return p
}

func TestReadProfilePositional(t *testing.T) {
	bnp, err := BuiltinProfiles().Lookup("bnp-loan")
	require.NoError(t, err)

	res := readBank(t, "bnp_loan.csv", ReaderOptions{Profile: bnp})
	require.NoError(t, res.err)
	assert.Equal(t, []string{
		"2||" + wantID("default", "2019-06-05", "67.97", "AMORTISSEMENT PRET", 1) + "|2019-06-05|67.97| AMORTISSEMENT PRET",
		"3||" + wantID("default", "2019-07-05", "68.12", "AMORTISSEMENT PRET", 1) + "|2019-07-05|68.12| AMORTISSEMENT PRET",
	}, bankRows(res.records))
	assert.Equal(t, "bnp-loan", res.stats.Profile)
	assert.True(t, res.stats.NoHeaderRow)
	assert.Zero(t, res.stats.HeaderLine)
	assert.Equal(t, int64(1), res.stats.SkippedLines, "the account line")
	assert.Equal(t, "dd/mm/yyyy", res.stats.DateFormat)

	res = readBank(t, "bnp_loan_rejects.csv", ReaderOptions{Profile: bnp, Account: "loan-1"})
	require.NoError(t, res.err)
	assert.Equal(t, []string{
		"2|||2019-06-05|67.97| AMORTISSEMENT PRET",
		"3|||2019-07-05|68.12| AMORTISSEMENT PRET",
		"8|||2019-07-05|68.12| AMORTISSEMENT PRET",
	}, withoutIDs(bankRows(res.records)))
	assert.Equal(t, wantID("loan-1", "2019-07-05", "68.12", "AMORTISSEMENT PRET", 2), res.records[2].ID,
		"the same row twice: the second occurrence")
	require.Len(t, res.rejected, 3)
	// The ';' of an HTML entity splits the wording: the row has a sixth
	// field and its fifth is no amount. It is rejected, never stored wrong.
	assert.Equal(t, Rejected{Line: 4, Amount: "dit INTERETS", Wording: " Cr&eacute", Date: "05/08/2019", Reason: ReasonInvalidAmount,
		Detail: "invalid amount: unexpected character 'd'"}, res.rejected[0])
	assert.Equal(t, Rejected{Line: 5, Wording: " AMORTISSEMENT PRET", Date: "05/09/2019", Reason: ReasonMalformedRow,
		Detail: "expected at least 5 fields, found 4"}, res.rejected[1])
	assert.Equal(t, int64(6), res.rejected[2].Line)
	assert.Equal(t, ReasonInvalidAmount, res.rejected[2].Reason)
	// No header: Lines = skipped (the account line, the blank line) + accepted + rejected.
	assert.Equal(t, int64(8), res.stats.Lines)
	assert.Equal(t, int64(2), res.stats.SkippedLines)
	assert.Equal(t, int64(3), res.stats.AcceptedLines)
	assert.Equal(t, int64(3), res.stats.RejectedLines)

	// Without the profile the file is refused, saying a mapping is needed.
	res = readBank(t, "bnp_loan_rejects.csv", ReaderOptions{})
	var fe *FileError
	require.ErrorAs(t, res.err, &fe)
	assert.Contains(t, fe.Found, "a profile with no_header")
}

// withoutIDs drops the id field of bankRow lines.
func withoutIDs(rows []string) []string {
	out := make([]string, len(rows))
	for i, r := range rows {
		parts := strings.SplitN(r, "|", 4)
		out[i] = parts[0] + "|" + parts[1] + "||" + parts[3]
	}
	return out
}

const usBankProfile = `name: us-bank
match: "us_bank_*.csv"
date_format: mm/dd/yyyy
sign: both-positive
columns:
  date: Posting Date
  wording: Payee
  debit: Debit Amount
  credit: Credit Amount
`

func TestReadProfileByNames(t *testing.T) {
	// Auto-detection finds no header at all: none of these names is known.
	res := readBank(t, "us_bank_mdy.csv", ReaderOptions{})
	var fe *FileError
	require.ErrorAs(t, res.err, &fe)
	assert.Equal(t, FileNoHeader, fe.Reason)

	p := mustProfile(t, usBankProfile)
	res = readBank(t, "us_bank_mdy.csv", ReaderOptions{Profile: p})
	require.NoError(t, res.err)
	assert.Equal(t, int64(2), res.stats.HeaderLine)
	assert.Equal(t, int64(1), res.stats.SkippedLines)
	assert.Equal(t, "mm/dd/yyyy", res.stats.DateFormat)
	assert.True(t, res.stats.DebitCredit)
	assert.Equal(t, []string{
		"3|||2026-01-31|-3.50|COFFEE SHOP",
		"4|||2026-01-30|2500.00|EMPLOYER INC",
		"5|||2026-02-01|-1234.50|BOOKS, INC.",
	}, withoutIDs(bankRows(res.records)), "month first: 02/01/2026 is the first of February")
	require.Len(t, res.rejected, 2)
	assert.Equal(t, ReasonInvalidDate, res.rejected[0].Reason)
	assert.Equal(t, int64(6), res.rejected[0].Line)
	assert.Equal(t, ReasonInvalidAmount, res.rejected[1].Reason)
	assert.Contains(t, res.rejected[1].Detail, "the profile says debits are written positive")

	// The same columns with the delimiter given, and a sign convention the
	// other way round.
	p = mustProfile(t, "delimiter: \",\"\nsign: debit-negative\ndate_format: mm/dd/yyyy\ncolumns:\n  date: 1\n  wording: Payee\n  debit: 4\n  credit: 5\n")
	res = readBank(t, "us_bank_mdy.csv", ReaderOptions{Profile: p})
	require.NoError(t, res.err)
	assert.Equal(t, int64(2), res.stats.HeaderLine, "the first line with five fields and a Payee column")
	assert.Equal(t, []string{"4|||2026-01-30|2500.00|EMPLOYER INC", "7|||2026-01-29|-2.00|REFUND"}, withoutIDs(bankRows(res.records)))

	// A profile whose columns are not in the file: the error names them.
	p = mustProfile(t, "columns:\n  date: Date\n  wording: Payee\n  amount: Amount\n")
	res = readBank(t, "us_bank_mdy.csv", ReaderOptions{Profile: p})
	require.ErrorAs(t, res.err, &fe)
	assert.Equal(t, FileNoHeader, fe.Reason)
	assert.Contains(t, fe.Expected, `the columns of profile test: amount "Amount", wording "Payee", date "Date"`)
	assert.Contains(t, fe.Found, `closest candidate line 2 "Posting Date,Payee,Memo,Debit Amount,Credit Amount" has 1 of the profile's 3 columns`)
}

func TestReadProfileDecimalSeparator(t *testing.T) {
	// A ',' delimited file whose quoted amounts have a decimal comma.
	res := readBank(t, "comma_delimited_decimal_comma.csv", ReaderOptions{})
	require.NoError(t, res.err)
	assert.Len(t, res.rejected, 2, "without a profile: ambiguous comma")
	assert.Equal(t, ReasonInvalidAmount, res.rejected[0].Reason)

	p := mustProfile(t, "name: comma\ndecimal_separator: \",\"\n")
	res = readBank(t, "comma_delimited_decimal_comma.csv", ReaderOptions{Profile: p})
	require.NoError(t, res.err)
	assert.Empty(t, res.rejected)
	assert.Equal(t, []string{"2|||2026-01-31|-3.50|CAFE", "3|||2026-01-30|2500.00|SALAIRE", "4|||2026-01-29|-12.50|LIBRAIRIE"},
		withoutIDs(bankRows(res.records)))

	// A dot in a ';' file: "1,50" is no longer a decimal.
	p = mustProfile(t, "name: dot\ndecimal_separator: \".\"\n")
	res = readString(t, "id;amount;wording\n1;1.50;A\n2;1,50;B\n", ReaderOptions{Profile: p})
	require.NoError(t, res.err)
	assert.Equal(t, []string{`2 1 1.50 "A"`}, summaries(res.records))
	require.Len(t, res.rejected, 1)
	assert.Equal(t, ReasonInvalidAmount, res.rejected[0].Reason)
}

func TestReadProfileEncoding(t *testing.T) {
	// The first non-ASCII byte is a stray Latin-1 'é': judged on the file,
	// it is Windows-1252, and the UTF-8 rows after it are refused.
	res := readBank(t, "utf8_stray_latin1.csv", ReaderOptions{})
	require.NoError(t, res.err)
	assert.Equal(t, EncodingWindows1252, res.stats.Encoding)
	assert.Equal(t, []string{`2 1 -3.50 "CAFé DU COIN"`}, summaries(res.records))
	assert.Len(t, res.rejected, 2)

	p := mustProfile(t, "name: utf8\nencoding: utf-8\n")
	res = readBank(t, "utf8_stray_latin1.csv", ReaderOptions{Profile: p})
	require.NoError(t, res.err)
	assert.Equal(t, EncodingUTF8, res.stats.Encoding)
	assert.Equal(t, []string{`3 2 -4.00 "CAFÉ DE LA GARE"`, `4 3 12.00 "RÉGULARISATION"`}, summaries(res.records))
	require.Len(t, res.rejected, 1)
	assert.Equal(t, ReasonInvalidEncoding, res.rejected[0].Reason)
	assert.Equal(t, int64(2), res.rejected[0].Line)

	// Windows-1252 forced on a file that starts with UTF-8.
	p = mustProfile(t, "name: cp\nencoding: windows-1252\n")
	res = readString(t, "id;montant;libellé\n1;1,00;\xe9t\xe9\n", ReaderOptions{Profile: p})
	require.NoError(t, res.err)
	assert.Equal(t, []string{`2 1 1.00 "été"`}, summaries(res.records))
}

func TestReadProfileSkipLines(t *testing.T) {
	// The preamble line looks like a header: skip_lines passes it.
	in := "id;montant;libellé\n#;#;#\nid;montant;libellé\n1;1,00;A\n"
	res := readString(t, in, ReaderOptions{})
	require.NoError(t, res.err)
	assert.Equal(t, int64(1), res.stats.HeaderLine)
	p := mustProfile(t, "name: skip\nskip_lines: 2\n")
	res = readString(t, in, ReaderOptions{Profile: p})
	require.NoError(t, res.err)
	assert.Equal(t, int64(3), res.stats.HeaderLine)
	assert.Equal(t, int64(2), res.stats.SkippedLines)
	assert.Empty(t, res.rejected)
	assert.Equal(t, []string{`4 1 1.00 "A"`}, summaries(res.records))
}
