package txn

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The files in testdata/banks are written in the shapes of real bank
// exports (see the notes on bank export formats); the data is made up.

// readBank reads testdata/banks/name and checks that the lines Read counts
// are the lines of the file, counted here.
func readBank(t *testing.T, name string, opts ReaderOptions) result {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "banks", name))
	require.NoError(t, err)
	res := readFrom(t, bytes.NewReader(data), opts)
	if res.err == nil {
		lines := int64(bytes.Count(data, []byte("\n")))
		if len(data) > 0 && data[len(data)-1] != '\n' {
			lines++
		}
		assert.Equal(t, lines, res.stats.Lines, "physical lines")
	}
	return res
}

// bankRow renders a record as "line|account|id|date|amount|wording".
func bankRow(r Record) string {
	date := "-"
	if !r.Date.IsZero() {
		date = r.Date.Format("2006-01-02")
	}
	return fmt.Sprintf("%d|%s|%s|%s|%s|%s", r.Line, r.Account, r.ID, date, r.Amount.StringFixed(2), r.Wording)
}

func bankRows(recs []Record) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = bankRow(r)
	}
	return out
}

// wantID computes a derived id independently of the reader: 16 hex digits
// of the SHA-256 of account, date, amount and wording, and the occurrence.
func wantID(account, date, amount, wording string, n int) string {
	sum := sha256.Sum256([]byte(account + "\x1f" + date + "\x1f" + amount + "\x1f" + strings.TrimSpace(wording)))
	return fmt.Sprintf("%s-%d", hex.EncodeToString(sum[:8]), n)
}

// row builds the expected bankRow of a record with a derived id.
func derivedRow(line int, rowAccount, idAccount, date, amount, wording string, n int) string {
	return fmt.Sprintf("%d|%s|%s|%s|%s|%s", line, rowAccount, wantID(idAccount, date, amount, wording, n), date, amount, wording)
}

func TestBankBoursorama(t *testing.T) {
	res := readBank(t, "boursorama.csv", ReaderOptions{Account: "ignored-when-the-file-has-accounts"})
	require.NoError(t, res.err)
	coffee := "CARTE 29/01/26 CAFE DU COIN CB*1234"
	assert.Equal(t, []string{
		derivedRow(2, "00040111111", "00040111111", "2026-01-30", "-3.50", coffee, 1),
		derivedRow(3, "00040111111", "00040111111", "2026-01-30", "-3.50", coffee, 2),
		derivedRow(4, "00040111111", "00040111111", "2026-01-28", "2500.00", "VIR SEPA EMPLOYEUR SAS", 1),
		derivedRow(5, "00040222222", "00040222222", "2026-01-30", "-3.50", coffee, 1),
	}, bankRows(res.records))
	assert.Empty(t, res.rejected)
	assert.True(t, res.stats.AccountColumn)
	assert.Equal(t, "dateOp", res.stats.DateColumn, "the operation date, not dateVal")
	assert.Equal(t, "yyyy-mm-dd", res.stats.DateFormat)
	assert.Equal(t, int64(4), res.stats.DerivedIDs)
	for _, r := range res.records {
		assert.True(t, r.DerivedID)
	}
}

func TestBankFortuneo(t *testing.T) {
	res := readBank(t, "fortuneo.csv", ReaderOptions{Account: "fortuneo"})
	require.NoError(t, res.err)
	assert.Equal(t, []string{
		derivedRow(2, "", "fortuneo", "2026-01-31", "-6.40", "CARTE 30/01 BOULANGERIE DU PORT", 1),
		derivedRow(3, "", "fortuneo", "2026-01-30", "45.00", "VIR RECU LOYER GARAGE", 1),
		derivedRow(4, "", "fortuneo", "2026-01-29", "-72.15", "PRLV SEPA ENERGIE", 1),
	}, bankRows(res.records))
	assert.Equal(t, " 45", res.records[1].RawAmount, "the credit as read")
	assert.Empty(t, res.rejected)
	assert.Equal(t, EncodingWindows1252, res.stats.Encoding)
	assert.True(t, res.stats.DebitCredit)
	assert.Equal(t, "Date opération", res.stats.DateColumn)
}

func TestBankCaisseEpargne2024(t *testing.T) {
	res := readBank(t, "caisse_epargne_2024.csv", ReaderOptions{Account: "ce"})
	require.NoError(t, res.err)
	// The date is "Date operation" (not the booking or the value date), the
	// wording "Libelle operation"; the reference is the id where it is
	// filled, a derived id where it is empty.
	assert.Equal(t, []string{
		derivedRow(2, "", "ce", "2026-01-31", "-45.50", "CB CARREFOUR FACT 310126", 1),
		"3||REF2026013100042|2026-02-01|3500.00|VIR SEPA SALAIRE JANVIER",
	}, bankRows(res.records))
	assert.True(t, res.records[0].DerivedID)
	assert.False(t, res.records[1].DerivedID)
	assert.Equal(t, "+3500,00", res.records[1].RawAmount)
	assert.Equal(t, int64(1), res.stats.DerivedIDs)
	assert.Equal(t, "Date operation", res.stats.DateColumn)
}

func TestBankCaisseEpargneOld(t *testing.T) {
	res := readBank(t, "caisse_epargne_old.csv", ReaderOptions{})
	require.NoError(t, res.err)
	// Damaged accents in the header (U+FFFD) are matched; "Numéro
	// d'opération" is the id; dd/mm/yy is 20yy.
	assert.Equal(t, []string{
		"6||8123456|2026-01-31|-0.39|PRLV FREE MOBILE",
		"7||8123455|2026-01-30|30.00|VIR M DUPONT",
	}, bankRows(res.records))
	assert.Empty(t, res.rejected)
	assert.Equal(t, int64(5), res.stats.HeaderLine)
	assert.Equal(t, int64(0), res.stats.DerivedIDs)
	// 4 preamble lines and the closing balance line.
	assert.Equal(t, int64(5), res.stats.SkippedLines)
	assert.Equal(t, int64(8), res.stats.TrailerLine)
	assert.Equal(t, int64(1), res.stats.TrailerLines)
}

func TestBankCreditMutuel(t *testing.T) {
	res := readBank(t, "credit_mutuel.csv", ReaderOptions{})
	require.NoError(t, res.err)
	assert.Equal(t, []string{
		derivedRow(2, "", DefaultAccount, "2026-02-03", "-12.90", "PAIEMENT CB 0102 LIBRAIRIE ŒUVRES 12€", 1),
		derivedRow(3, "", DefaultAccount, "2026-02-04", "1200.00", "VIR SALAIRE FEVRIER", 1),
	}, bankRows(res.records))
	assert.Empty(t, res.rejected)
	assert.Equal(t, EncodingWindows1252, res.stats.Encoding)
	assert.Equal(t, "Date", res.stats.DateColumn, "not the value date")
	assert.Equal(t, int64(3), res.stats.Lines, "the last line has no line end")
}

func TestBankSocieteGenerale(t *testing.T) {
	res := readBank(t, "societe_generale.csv", ReaderOptions{Account: "sg"})
	require.NoError(t, res.err)
	assert.Equal(t, []string{
		derivedRow(4, "", "sg", "2026-01-31", "-4.20", "CARTE X1234 BOULANGERIE", 1),
		derivedRow(5, "", "sg", "2026-01-28", "100.00", "VIR RECU MAMAN", 1),
	}, bankRows(res.records), "the wording is Libellé, not Détail de l'écriture")
	assert.Empty(t, res.rejected)
	assert.Equal(t, int64(3), res.stats.HeaderLine)
	assert.Equal(t, int64(2), res.stats.SkippedLines)
	assert.Equal(t, EncodingWindows1252, res.stats.Encoding)
}

func TestBankBanquePostale(t *testing.T) {
	res := readBank(t, "banque_postale.csv", ReaderOptions{Account: "lbp"})
	require.NoError(t, res.err)
	assert.Equal(t, []string{
		derivedRow(9, "", "lbp", "2026-01-30", "-12.30", "CARTE X1234 29/01/26 PHARMACIE", 1),
		derivedRow(10, "", "lbp", "2026-01-29", "150.00", "VIREMENT DE M DUPONT", 1),
	}, bankRows(res.records), "the amount in euros, not in francs")
	assert.Empty(t, res.rejected)
	assert.Equal(t, int64(8), res.stats.HeaderLine)
	assert.Equal(t, int64(7), res.stats.SkippedLines)
	assert.False(t, res.stats.AccountColumn, "the preamble's Numéro Compte is not a column")
}

func TestBankCreditAgricole(t *testing.T) {
	res := readBank(t, "credit_agricole.csv", ReaderOptions{Account: "ca"})
	require.NoError(t, res.err)
	assert.Equal(t, []string{
		derivedRow(11, "", "ca", "2026-01-31", "-45.10", "PRELEVEMENT \nEDF CLIENTS PARTICULIERS \nREF 123456", 1),
		derivedRow(14, "", "ca", "2026-01-30", "1620.00", "VIREMENT EN VOTRE FAVEUR \nSALAIRE JANVIER", 1),
		derivedRow(16, "", "ca", "2026-01-29", "-3.20", "PAIEMENT PAR CARTE \nX1234 BOULANGERIE 28/01", 1),
	}, bankRows(res.records), "both positive: the debit is made negative")
	assert.Empty(t, res.rejected)
	assert.Equal(t, int64(10), res.stats.HeaderLine)
	assert.Equal(t, int64(7), res.stats.AcceptedLines)
	// The deferred card block (title, header, row) is skipped.
	assert.Equal(t, int64(19), res.stats.TrailerLine)
	assert.Equal(t, int64(3), res.stats.TrailerLines)
	// 9 preamble lines, the blank ';' line after the rows, the block.
	assert.Equal(t, int64(9+1+3), res.stats.SkippedLines)
}

func TestBankRevolut(t *testing.T) {
	res := readBank(t, "revolut.csv", ReaderOptions{Account: "rev"})
	require.NoError(t, res.err)
	// Two identical coffees on one day are two transactions; the PENDING
	// row, without a completed date, is dated by its started date.
	assert.Equal(t, []string{
		derivedRow(2, "", "rev", "2026-01-30", "-3.50", "Coffee Shop", 1),
		derivedRow(3, "", "rev", "2026-01-30", "-3.50", "Coffee Shop", 2),
		derivedRow(4, "", "rev", "2026-01-29", "100.00", "Top-up by *1234, thanks", 1),
		derivedRow(5, "", "rev", "2026-01-31", "-2.10", "Bakery", 1),
	}, bankRows(res.records))
	assert.Empty(t, res.rejected)
	assert.Equal(t, ',', res.stats.Delimiter)
	assert.Equal(t, "Started Date", res.stats.DateColumn)
}

func TestBankQonto(t *testing.T) {
	res := readBank(t, "qonto.csv", ReaderOptions{})
	require.NoError(t, res.err)
	assert.Equal(t, []string{
		"2||tx-0001-aaaa|2026-01-30|-120.00|Office Supplies SA",
		"3||tx-0002-bbbb|2026-01-31|2500.00|Client SARL",
	}, bankRows(res.records), "the operation date, the transaction id")
	assert.Empty(t, res.rejected)
	assert.Equal(t, "Operation date (UTC)", res.stats.DateColumn)
	assert.Equal(t, int64(0), res.stats.DerivedIDs)
}

func TestBankBNPLoanRefused(t *testing.T) {
	res := readBank(t, "bnp_loan.csv", ReaderOptions{})
	var fe *FileError
	require.ErrorAs(t, res.err, &fe)
	assert.Equal(t, FileNoHeader, fe.Reason)
	assert.Contains(t, fe.Error(), `rows such as "05/06/2019;;; AMORTISSEMENT PRET;67,97" come without a header line: a positional export needs a column mapping`)
	assert.Empty(t, res.records)
	assert.Empty(t, res.rejected)
}

// TestBankReimportOverlap: an export that overlaps one already read gives
// the rows they share the same ids, identical rows included.
func TestBankReimportOverlap(t *testing.T) {
	head := "Date;Libellé;Débit;Crédit\n"
	jan := head + "30/01/2026;CAFE;3,50;\n30/01/2026;CAFE;3,50;\n29/01/2026;LOYER;800,00;\n"
	janFeb := head + "02/02/2026;CAFE;3,50;\n30/01/2026;CAFE;3,50;\n30/01/2026;CAFE;3,50;\n29/01/2026;LOYER;800,00;\n"
	ids := func(in string) []string {
		res := readString(t, in, ReaderOptions{Account: "acct"})
		require.NoError(t, res.err)
		var out []string
		for _, r := range res.records {
			out = append(out, r.ID)
		}
		return out
	}
	a, b := ids(jan), ids(janFeb)
	assert.Len(t, a, 3)
	assert.Equal(t, a, b[1:], "the shared rows keep their ids")
	assert.NotEqual(t, a[0], a[1], "two identical coffees are two transactions")
	assert.NotContains(t, a, b[0])
	// Another account gives other ids.
	res := readString(t, jan, ReaderOptions{Account: "other"})
	require.NoError(t, res.err)
	assert.NotEqual(t, a[0], res.records[0].ID)
	// No account: DefaultAccount.
	res = readString(t, jan, ReaderOptions{})
	require.NoError(t, res.err)
	assert.Equal(t, wantID(DefaultAccount, "2026-01-30", "-3.50", "CAFE", 1), res.records[0].ID)
}
