package txn

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestHeaderRoles(t *testing.T) {
	tests := []struct {
		name, header string
		want         map[int]string // role -> header name chosen
	}{
		{"accents damaged to ?", "Date;Libell?;D?bit;Cr?dit",
			map[int]string{colIndexDate: "Date", colIndexWording: "Libell?", colIndexDebit: "D?bit", colIndexCredit: "Cr?dit"}},
		{"accents damaged to U+FFFD", "Date;Libell\ufffd;D\ufffd\ufffdbit;Cr\ufffddit",
			map[int]string{colIndexDate: "Date", colIndexWording: "Libell\ufffd", colIndexDebit: "D\ufffd\ufffdbit", colIndexCredit: "Cr\ufffddit"}},
		{"HTML entities", "Date;Libell&eacute;;D&eacute;bit;Cr&eacute;dit",
			map[int]string{colIndexDate: "Date", colIndexWording: "Libelle", colIndexDebit: "Debit", colIndexCredit: "Credit"}},
		{"UTF-8 read as Latin-1", "Date;LibellÃ©;Montant",
			map[int]string{colIndexDate: "Date", colIndexWording: "LibellÃ©", colIndexAmount: "Montant"}},
		{"punctuation and case", "DATE DE L'OPÉRATION;Libellé opération;MONTANT (EUROS)",
			map[int]string{colIndexDate: "DATE DE L'OPÉRATION", colIndexWording: "Libellé opération", colIndexAmount: "MONTANT (EUROS)"}},
		{"operation date before booking and value dates", "Date de valeur;Date de comptabilisation;Date opération;Libellé;Montant de l'opération",
			map[int]string{colIndexDate: "Date opération", colIndexWording: "Libellé", colIndexAmount: "Montant de l'opération"}},
		{"booking date before value date", "booking date;value date;description;amount",
			map[int]string{colIndexDate: "booking date", colIndexWording: "description", colIndexAmount: "amount"}},
		{"plain date before value date", "Date de valeur;Date;Détail;Libellé;Débit euros;Crédit euros",
			map[int]string{colIndexDate: "Date", colIndexWording: "Libellé", colIndexDebit: "Débit euros", colIndexCredit: "Crédit euros"}},
		{"libellé opération before libellé simplifié", "Date;Libelle simplifie;Libelle operation;Montant",
			map[int]string{colIndexDate: "Date", colIndexWording: "Libelle operation", colIndexAmount: "Montant"}},
		{"a name twice: the first wins", "Date;Libellé;Montant;Libellé;Montant",
			map[int]string{colIndexDate: "Date", colIndexWording: "Libellé", colIndexAmount: "Montant"}},
		{"completed date, counterparty name", "completed date;counterparty name;total amount (incl. VAT);transaction id",
			map[int]string{colIndexDate: "completed date", colIndexWording: "counterparty name", colIndexAmount: "total amount (incl. VAT)", colIndexID: "transaction id"}},
		{"signed amount wins over debit and credit", "date;label;debit;credit;amount",
			map[int]string{colIndexDate: "date", colIndexWording: "label", colIndexAmount: "amount"}},
		{"unsigned amount and direction", "date;label;amount;sens",
			map[int]string{colIndexDate: "date", colIndexWording: "label", colIndexAmount: "amount", colIndexDirection: "sens"}},
		{"id alone", "Numéro d'opération;label;amount",
			map[int]string{colIndexID: "Numéro d'opération", colIndexWording: "label", colIndexAmount: "amount"}},
		{"the names read before keep the first rank", "id,amount,label,description,transaction id,montant(euros),compte,accountNum,reference",
			map[int]string{colIndexID: "id", colIndexAmount: "amount", colIndexWording: "label", colIndexAccount: "compte"}},
		{"accountNum", "dateOp;label;amount;accountNum;accountLabel",
			map[int]string{colIndexDate: "dateOp", colIndexWording: "label", colIndexAmount: "amount", colIndexAccount: "accountNum"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, status := detectHeader(tt.header)
			require.Equal(t, headerOK, status)
			got := map[int]string{}
			for r, c := range h.cols {
				if c >= 0 {
					got[r] = h.names[r]
				}
			}
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestHeaderNotUsable(t *testing.T) {
	tests := []struct {
		name, header string
		status       headerStatus
	}{
		{"two amounts of one rank", "date;label;amount;montant", headerUnusable},
		{"debit without credit", "date;label;debit", headerUnusable},
		{"no wording", "date;amount", headerUnusable},
		{"damaged name matching nothing", "Date;Libell?;M?ntant?", headerUnusable},
		{"neither id nor date", "label;amount;currency", headerNoIDDate},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, status := detectHeader(tt.header)
			assert.Equal(t, tt.status, status)
		})
	}
}

func TestReadRefusesNeitherIDNorDate(t *testing.T) {
	res := readString(t, "Libellé;Montant;Devise\nCAFE;-3,50;EUR\n", ReaderOptions{})
	var fe *FileError
	require.ErrorAs(t, res.err, &fe)
	assert.Equal(t, FileNoIDOrDate, fe.Reason)
	assert.Equal(t, `no id or date column: expected an id column (id, transaction id, numéro d'opération, reference) or a date column to tell the rows apart; found "Libellé;Montant;Devise", which has neither`, fe.Error())
}

func TestParseDate(t *testing.T) {
	tests := []struct {
		in, want string
		layout   dateLayout
	}{
		{"31/01/2026", "2026-01-31", layoutDaySlash},
		{" 1/2/2026 ", "2026-02-01", layoutDaySlash},
		{"31/01/26", "2026-01-31", layoutDaySlash},
		{"2026-01-31", "2026-01-31", layoutISO},
		{"2026-01-31 12:16:54", "2026-01-31", layoutISO},
		{"2026-01-31T23:59:59Z", "2026-01-31", layoutISO},
		{"20260131", "2026-01-31", layoutCompact},
		{"31.01.2026", "2026-01-31", layoutDayDot},
		{"29/02/2024", "2024-02-29", layoutDaySlash},
		{"2026/01/31", "2026-01-31", layoutISOSlash},
	}
	for _, tt := range tests {
		d, layout, err := parseDate(tt.in)
		require.NoError(t, err, tt.in)
		assert.Equal(t, tt.want, d.Format(time.DateOnly), tt.in)
		assert.Equal(t, tt.layout, layout, tt.in)
		assert.Equal(t, time.UTC, d.Location())
	}
	for _, in := range []string{"", "31/13/2026", "29/02/2026", "32/01/2026", "2026-1-31x", "31/01", "01/31/2026", "2026.01.31", "31/01/2026/1", "Solde", "2026013", "12,50"} {
		_, _, err := parseDate(in)
		assert.Error(t, err, in)
	}
}

func TestReadDates(t *testing.T) {
	in := "date;label;amount\n" +
		"31/01/2026;A;1,00\n" +
		"31/02/2026;B;2,00\n" + // no such day
		"2026-01-30;C;3,00\n" + // another format than the file's
		";D;4,00\n" + // empty
		"30/01/26;E;5,00\n" // two-digit year: same format
	res := readString(t, in, ReaderOptions{})
	require.NoError(t, res.err)
	got := make([]string, 0)
	for _, r := range res.records {
		got = append(got, fmt.Sprintf("%d %s", r.Line, r.Date.Format(time.DateOnly)))
	}
	assert.Equal(t, []string{"2 2026-01-31", "6 2026-01-30"}, got)
	require.Len(t, res.rejected, 3)
	for i, want := range []struct {
		line   int64
		date   string
		detail string
	}{
		{3, "31/02/2026", `invalid date: no such day "31/02/2026"`},
		{4, "2026-01-30", `invalid date: "2026-01-30" is not in the file's format dd/mm/yyyy`},
		{5, "", "invalid date: empty"},
	} {
		r := res.rejected[i]
		assert.Equal(t, want.line, r.Line)
		assert.Equal(t, ReasonInvalidDate, r.Reason)
		assert.Equal(t, want.date, r.Date)
		assert.Equal(t, want.detail, r.Detail)
	}
	assert.Equal(t, "dd/mm/yyyy", res.stats.DateFormat)
	assert.Equal(t, int64(0), res.stats.TrailerLines, "rows with an amount in the data are rejected, not skipped")
}

func TestReadDebitCredit(t *testing.T) {
	in := "Date;Libellé;Débit;Crédit\n" +
		"01/01/2026;POSITIVE DEBIT;12,50;\n" +
		"01/01/2026;NEGATIVE DEBIT;-12,50;\n" +
		"01/01/2026;PLUS CREDIT;;+30,00\n" +
		"01/01/2026;BARE CREDIT;;30,00\n" +
		"01/01/2026;ZERO CREDIT;4,00;0,00\n" +
		"01/01/2026;BOTH;4,00;5,00\n" +
		"01/01/2026;NEITHER;;\n" +
		"01/01/2026;DEBIT WITH PLUS;+4,00;\n" +
		"01/01/2026;NEGATIVE CREDIT;;-4,00\n" +
		"01/01/2026;BAD DEBIT;abc;\n" +
		"01/01/2026;NBSP THOUSANDS;;1\u00a0620,00\n"
	res := readString(t, in, ReaderOptions{})
	require.NoError(t, res.err)
	var got []string
	for _, r := range res.records {
		got = append(got, fmt.Sprintf("%s %s %q", r.Wording, r.Amount.StringFixed(2), r.RawAmount))
	}
	assert.Equal(t, []string{
		`POSITIVE DEBIT -12.50 "12,50"`,
		`NEGATIVE DEBIT -12.50 "-12,50"`,
		`PLUS CREDIT 30.00 "+30,00"`,
		`BARE CREDIT 30.00 "30,00"`,
		`ZERO CREDIT -4.00 "4,00"`,
		`NBSP THOUSANDS 1620.00 "1\u00a0620,00"`,
	}, got)
	var rej []string
	for _, r := range res.rejected {
		rej = append(rej, fmt.Sprintf("%s|%s|%s|%s", r.Wording, r.Amount, r.Reason, r.Detail))
	}
	assert.Equal(t, []string{
		"BOTH|4,00/5,00|invalid_amount|invalid amount: both debit and credit are filled",
		"NEITHER||invalid_amount|invalid amount: neither debit nor credit is filled",
		`DEBIT WITH PLUS|+4,00|invalid_amount|invalid amount: debit "+4,00" written with '+'`,
		`NEGATIVE CREDIT|-4,00|invalid_amount|invalid amount: negative credit "-4,00"`,
		"BAD DEBIT|abc|invalid_amount|debit: invalid amount: unexpected character 'a'",
	}, rej)
	assert.True(t, res.stats.DebitCredit)
}

func TestReadHeaderWithEntities(t *testing.T) {
	res := readString(t, "Date;Libell&eacute;;D&eacute;bit;Cr&eacute;dit\n05/06/2019;PRET;67,97;\n", ReaderOptions{})
	require.NoError(t, res.err)
	require.Len(t, res.records, 1)
	assert.Equal(t, "-67.97", res.records[0].Amount.StringFixed(2))
	assert.Equal(t, "R&D x", decodeAccentEntities("R&D x"))
	assert.Equal(t, "a & b;", decodeAccentEntities("a &amp; b;"))
}

func TestReadDirectionColumn(t *testing.T) {
	in := "booking date,description,amount,direction\n" +
		"2026-01-31,A,12.50,debit\n" +
		"2026-01-31,B,12.50,C\n" +
		"2026-01-31,C,12.50,DBIT\n" +
		"2026-01-31,D,-12.50,credit\n" +
		"2026-01-31,E,12.50,sideways\n"
	res := readString(t, in, ReaderOptions{})
	require.NoError(t, res.err)
	var got []string
	for _, r := range res.records {
		got = append(got, r.Wording+" "+r.Amount.StringFixed(2))
	}
	assert.Equal(t, []string{"A -12.50", "B 12.50", "C -12.50"}, got)
	require.Len(t, res.rejected, 2)
	assert.Equal(t, `invalid amount: negative amount "-12.50" with direction credit`, res.rejected[0].Detail)
	assert.Equal(t, `invalid amount: direction "sideways" is neither debit nor credit`, res.rejected[1].Detail)
}

func TestReadReferenceIsIDOnlyWhereFilled(t *testing.T) {
	in := "Date;Reference;Libellé;Montant\n01/01/2026;R1;A;1,00\n01/01/2026;;B;2,00\n01/01/2026;  ;C;3,00\n"
	res := readString(t, in, ReaderOptions{Account: "x"})
	require.NoError(t, res.err)
	assert.Empty(t, res.rejected)
	require.Len(t, res.records, 3)
	assert.Equal(t, "R1", res.records[0].ID)
	assert.Equal(t, wantID("x", "2026-01-01", "2.00", "B", 1), res.records[1].ID)
	assert.Equal(t, wantID("x", "2026-01-01", "3.00", "C", 1), res.records[2].ID)
	assert.Equal(t, int64(2), res.stats.DerivedIDs)

	// A real id column still rejects an empty id.
	res = readString(t, "Date;id;Libellé;Montant\n01/01/2026;;B;2,00\n", ReaderOptions{})
	require.NoError(t, res.err)
	require.Len(t, res.rejected, 1)
	assert.Equal(t, ReasonMissingID, res.rejected[0].Reason)
}

func TestReadLinesAfterTheData(t *testing.T) {
	head := "Date;Libellé;Débit;Crédit;\n"
	t.Run("closing lines are skipped", func(t *testing.T) {
		in := head + "01/01/2026;A;1,00;;\n02/01/2026;B;;2,00;\n" +
			"Solde en début de période;;;;32097,62\n" + // other shape, an amount
			"Total des opérations;;;;\n" + // same shape, no amount
			"\n"
		res := readString(t, in, ReaderOptions{})
		require.NoError(t, res.err)
		assert.Len(t, res.records, 2)
		assert.Empty(t, res.rejected)
		assert.Equal(t, int64(4), res.stats.TrailerLine)
		assert.Equal(t, int64(2), res.stats.TrailerLines)
		assert.Equal(t, int64(3), res.stats.SkippedLines)
	})
	t.Run("the same lines in the middle are rejected", func(t *testing.T) {
		in := head + "01/01/2026;A;1,00;;\n" +
			"Solde intermédiaire;;;;32097,62\n" + // no debit, no credit
			"Total;;;;\n" +
			"02/01/2026;B;;2,00;\n"
		res := readString(t, in, ReaderOptions{})
		require.NoError(t, res.err)
		assert.Equal(t, []int64{2, 5}, []int64{res.records[0].Line, res.records[1].Line})
		require.Len(t, res.rejected, 2)
		assert.Equal(t, int64(3), res.rejected[0].Line)
		assert.Equal(t, ReasonInvalidAmount, res.rejected[0].Reason)
		assert.Equal(t, int64(4), res.rejected[1].Line)
		assert.Equal(t, ReasonInvalidAmount, res.rejected[1].Reason)
		assert.Equal(t, int64(0), res.stats.TrailerLines)
	})
	t.Run("a malformed row with a date or an amount at the end is rejected", func(t *testing.T) {
		in := head + "01/01/2026;A;1,00;;\n" +
			"bad date;B;3,00;;\n" + // header shape and an amount
			"03/01/2026;C\n" // a date
		res := readString(t, in, ReaderOptions{})
		require.NoError(t, res.err)
		require.Len(t, res.rejected, 2)
		assert.Equal(t, ReasonInvalidDate, res.rejected[0].Reason)
		assert.Equal(t, ReasonMalformedRow, res.rejected[1].Reason)
		assert.Equal(t, int64(0), res.stats.TrailerLines)
	})
	t.Run("another block after the data is skipped", func(t *testing.T) {
		in := head + "01/01/2026;A;1,00;;\n" + head + "02/01/2026;B;;2,00;\n"
		res := readString(t, in, ReaderOptions{})
		require.NoError(t, res.err)
		assert.Len(t, res.records, 1)
		assert.Equal(t, int64(3), res.stats.TrailerLine)
		assert.Equal(t, int64(2), res.stats.TrailerLines)
	})
	t.Run("held lines are bounded", func(t *testing.T) {
		in := head + "01/01/2026;A;1,00;;\n" + strings.Repeat("Total;;;;\n", maxHeldLines+10)
		res := readString(t, in, ReaderOptions{})
		require.NoError(t, res.err)
		// The first maxHeldLines+1 are rejected once the bound is passed;
		// the last ones are held again and skipped at the end.
		assert.Equal(t, int64(maxHeldLines+1), res.stats.Rejected)
		assert.Equal(t, int64(9), res.stats.TrailerLines)
	})
	t.Run("files without a date column are read as before", func(t *testing.T) {
		res := readString(t, "id;montant;libellé\n1;1,00;A\nTotal;;\n", ReaderOptions{})
		require.NoError(t, res.err)
		require.Len(t, res.rejected, 1)
		assert.Equal(t, ReasonInvalidAmount, res.rejected[0].Reason)
	})
}

// TestIDDeriverMemory: the occurrence counters hold one entry per distinct
// row, however many times it repeats.
func TestIDDeriverMemory(t *testing.T) {
	var d idDeriver
	day := time.Date(2026, 1, 30, 0, 0, 0, 0, time.UTC)
	amount, err := ParseAmount("-3.50", false)
	require.NoError(t, err)
	var last string
	for range 10000 {
		last = d.derive("acct", day, amount, "CAFE")
	}
	d.derive("acct", day, amount, "THE")
	assert.Len(t, d.counts, 2)
	assert.Equal(t, wantID("acct", "2026-01-30", "-3.50", "CAFE", 10000), last)
	// No date column: the date is left out, the rest still counts.
	var nd idDeriver
	assert.Equal(t, wantID("acct", "", "-3.50", "CAFE", 1), nd.derive("acct", time.Time{}, amount, " CAFE "))
}
