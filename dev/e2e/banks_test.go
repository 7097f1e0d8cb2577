package e2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/txflow/txflow/internal/starterapp"
	"github.com/txflow/txflow/workflows"
)

// Banks' own exports through the whole pipeline: the starter runs them with --account, the
// worker ingests, tags, annotates and writes the outputs, on Temporal and PostgreSQL. The
// expected outputs are written out here from the files; derived ids are computed by bankID,
// independently of the reader.

// bankID computes a derived id: the first 16 hex digits of the SHA-256 of account, date, amount
// and trimmed wording joined by U+001F, and the occurrence.
func bankID(account, date, amount, wording string, n int) string {
	sum := sha256.Sum256([]byte(account + "\x1f" + date + "\x1f" + amount + "\x1f" + strings.TrimSpace(wording)))
	return fmt.Sprintf("%s-%d", hex.EncodeToString(sum[:8]), n)
}

// bankFile reads a bank export of txn/testdata/banks.
func bankFile(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "txn", "testdata", "banks", name))
	require.NoError(t, err)
	return b
}

// afterLine returns data with extra inserted after its physical line n.
func afterLine(t *testing.T, data []byte, n int, extra string) []byte {
	t.Helper()
	at := 0
	for i := 0; i < n; i++ {
		j := bytes.IndexByte(data[at:], '\n')
		require.GreaterOrEqual(t, j, 0, "the file has fewer than %d lines", n)
		at += j + 1
	}
	out := append([]byte(nil), data[:at]...)
	out = append(out, extra...)
	return append(out, data[at:]...)
}

// bankRun runs name of the input root for account with the starter and returns its summary,
// output_transactions.csv and error_report.csv.
func (h *harness) bankRun(name, account string, content []byte) (workflows.Summary, string, string) {
	t := h.t
	t.Helper()
	require.NoError(t, os.WriteFile(filepath.Join(h.input, name), content, 0o644))
	code, out, errOut := h.starter("run", "--account", account, name)
	require.Equal(t, starterapp.ExitOK, code, "stdout:\n%s\nstderr:\n%s", out, errOut)
	id := workflows.RunID(account, sha(t, content))
	require.Contains(t, out, fmt.Sprintf("run %s: %s (account %s)\n", id, name, account))
	s := h.summary(id)
	require.Equal(t, workflows.StatusCompleted, s.Status, id)
	require.Equal(t, account, s.Account)
	require.False(t, s.AccountColumn)
	output, err := os.ReadFile(filepath.Join(h.output, id, "output_transactions.csv"))
	require.NoError(t, err)
	report, err := os.ReadFile(filepath.Join(h.output, id, "error_report.csv"))
	require.NoError(t, err)
	return s, string(output), string(report)
}

const (
	bankOutputHeader = "id,date,amount,wording,tag,annotation,error\n"
	bankReportHeader = "line,id,amount,wording,reason\n"
)

// TestBankExportsEndToEnd runs a Crédit Agricole export (preamble, debit and credit both
// positive, wordings over several lines, a second block after the rows) and a Revolut export
// (signed amounts, ISO dates with a time, identical rows) for two accounts, then later exports
// that overlap them, and the seed sample file, whose outputs must stay those of its golden files.
func TestBankExportsEndToEnd(t *testing.T) {
	h := start(t)

	// Crédit Agricole.
	const ca = "FR7618206000011234567890123"
	edf := "PRELEVEMENT \nEDF CLIENTS PARTICULIERS \nREF 123456"
	salary := "VIREMENT EN VOTRE FAVEUR \nSALAIRE JANVIER"
	bakery := "PAIEMENT PAR CARTE \nX1234 BOULANGERIE 28/01"
	caRows := fmt.Sprintf("%s,2026-01-31,-45.10,\"%s\",,SMALL EXPENSE,\n", bankID(ca, "2026-01-31", "-45.10", edf, 1), edf) +
		fmt.Sprintf("%s,2026-01-30,1620.00,\"%s\",,LARGE SALE,\n", bankID(ca, "2026-01-30", "1620.00", salary, 1), salary) +
		fmt.Sprintf("%s,2026-01-29,-3.20,\"%s\",,SMALL EXPENSE,\n", bankID(ca, "2026-01-29", "-3.20", bakery, 1), bakery)
	caData := bankFile(t, "credit_agricole.csv")
	s, output, report := h.bankRun("credit_agricole.csv", ca, caData)
	require.Equal(t, bankOutputHeader+caRows, output, "the date after the id, the debit negative, the deferred card block left out")
	require.Equal(t, bankReportHeader, report)
	require.EqualValues(t, 21, s.Lines)
	require.EqualValues(t, 13, s.SkippedLines, "9 preamble lines, the ';' line after the rows, the 3 lines of the card block")
	require.EqualValues(t, 3, s.RowsRead)
	require.EqualValues(t, 3, s.Ingested)
	require.EqualValues(t, 3, s.New)
	require.Zero(t, s.Rejected)
	require.Zero(t, s.InError)
	require.Zero(t, s.Tagged)
	require.EqualValues(t, 3, s.Annotated)

	// The next month's export overlaps it: a taxi ride (two lines) after the last row.
	taxi := "PAIEMENT PAR CARTE \nX1234 TAXI G7 27/01"
	caLater := afterLine(t, caData, 17, "28/01/2026;\""+taxi+"\";18,40;;\n")
	s, output, report = h.bankRun("credit_agricole_later.csv", ca, caLater)
	require.Equal(t, bankOutputHeader+caRows+
		fmt.Sprintf("%s,2026-01-28,-18.40,\"%s\",TAXI,SMALL EXPENSE,\n", bankID(ca, "2026-01-28", "-18.40", taxi, 1), taxi), output)
	require.Equal(t, bankReportHeader, report)
	require.EqualValues(t, 23, s.Lines)
	require.EqualValues(t, 13, s.SkippedLines)
	require.EqualValues(t, 4, s.Ingested)
	require.EqualValues(t, 1, s.New, "only the taxi ride is new")
	require.Zero(t, s.Rejected, "the rows shared with the first export keep their ids: no conflict")
	require.EqualValues(t, 1, s.Tagged)
	require.EqualValues(t, 4, s.Annotated)

	// Revolut, for another account.
	const rev = "LT601010012345678901"
	coffee := func(n int) string {
		return fmt.Sprintf("%s,2026-01-30,-3.50,Coffee Shop,,SMALL EXPENSE,\n", bankID(rev, "2026-01-30", "-3.50", "Coffee Shop", n))
	}
	topUp := fmt.Sprintf("%s,2026-01-29,100.00,\"Top-up by *1234, thanks\",,SALE,\n", bankID(rev, "2026-01-29", "100.00", "Top-up by *1234, thanks", 1))
	bakeryRev := fmt.Sprintf("%s,2026-01-31,-2.10,Bakery,,SMALL EXPENSE,\n", bankID(rev, "2026-01-31", "-2.10", "Bakery", 1))
	revData := bankFile(t, "revolut.csv")
	s, output, report = h.bankRun("revolut.csv", rev, revData)
	require.Equal(t, bankOutputHeader+coffee(1)+coffee(2)+topUp+bakeryRev, output, "two identical coffees are two transactions")
	require.Equal(t, bankReportHeader, report)
	require.EqualValues(t, 5, s.Lines)
	require.Zero(t, s.SkippedLines)
	require.EqualValues(t, 4, s.New)
	require.Zero(t, s.Rejected)

	// The later export: the pending bakery row is now completed (same started date, same id),
	// a row with an impossible date sits among the rows, and two rows are new: a taxi ride and
	// a transfer too large to be annotated.
	pending := ",,Bakery,-2.10,0.00,EUR,PENDING,\n"
	require.Contains(t, string(revData), pending)
	revLater := bytes.Replace(revData, []byte(pending), []byte(",2026-02-01 09:00:00,Bakery,-2.10,0.00,EUR,COMPLETED,90.40\n"), 1)
	revLater = afterLine(t, revLater, 4, "CARD_PAYMENT,Current,2026-02-31 10:00:00,2026-02-31 10:00:05,Bad Date Shop,-1.00,0.00,EUR,COMPLETED,99.00\n")
	revLater = append(revLater, "CARD_PAYMENT,Current,2026-02-01 23:10:00,2026-02-02 08:00:00,TAXI G7,-18.40,0.00,EUR,COMPLETED,72.00\n"+
		"TRANSFER,Current,2026-02-02 09:00:00,2026-02-02 09:00:01,To TOTO SARL,-2500000.00,0.00,EUR,COMPLETED,-2499928.00\n"...)
	taxiID := bankID(rev, "2026-02-01", "-18.40", "TAXI G7", 1)
	bigID := bankID(rev, "2026-02-02", "-2500000.00", "To TOTO SARL", 1)
	s, output, report = h.bankRun("revolut_later.csv", rev, revLater)
	require.Equal(t, bankOutputHeader+coffee(1)+coffee(2)+topUp+bakeryRev+
		taxiID+",2026-02-01,-18.40,TAXI G7,TAXI,SMALL EXPENSE,\n"+
		bigID+",2026-02-02,-2500000.00,To TOTO SARL,TOTO,,amount_too_high\n", output)
	require.Equal(t, bankReportHeader+
		"5,,-1.00,Bad Date Shop,invalid_date\n"+
		"8,"+bigID+",-2500000.00,To TOTO SARL,amount_too_high\n", report)
	require.EqualValues(t, 8, s.Lines)
	require.Zero(t, s.SkippedLines)
	require.EqualValues(t, 7, s.RowsRead)
	require.EqualValues(t, 6, s.Ingested)
	require.EqualValues(t, 2, s.New, "the taxi ride and the transfer")
	require.EqualValues(t, 1, s.Rejected, "the impossible date")
	require.EqualValues(t, 1, s.InError)
	require.EqualValues(t, 2, s.Tagged)
	require.EqualValues(t, 5, s.Annotated)
	require.EqualValues(t, 4+6, h.count("transactions"), "four of Crédit Agricole, six of Revolut")

	// A file of the seed format still gives its golden outputs, byte for byte.
	code, out, errOut := h.starter("run", "transactions.csv")
	require.Equal(t, starterapp.ExitOK, code, "stdout:\n%s\nstderr:\n%s", out, errOut)
	id := h.runID("transactions.csv")
	for _, name := range []string{"output_transactions.csv", "error_report.csv"} {
		want, err := os.ReadFile(filepath.Join("testdata", "golden", "transactions", name))
		require.NoError(t, err)
		got, err := os.ReadFile(filepath.Join(h.output, id, name))
		require.NoError(t, err)
		require.Equal(t, string(want), string(got), name)
	}
	require.EqualValues(t, 20, h.summary(id).New)
}

// TestBankProfileEndToEnd runs BNP Paribas's positional loan export, which has no header row,
// with the built-in mapping profile named on the starter's command line: the worker resolves the
// name among its own profiles, reads the rows by position, and the outputs and summary say so. A
// profile the worker does not know fails the run at once, naming the known ones.
func TestBankProfileEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Temporal, PostgreSQL and the worker, skipped with -short")
	}
	h := start(t)
	const loan = "LOAN-12345678901"
	data := bankFile(t, "bnp_loan_rejects.csv")
	require.NoError(t, os.WriteFile(filepath.Join(h.input, "pret.csv"), data, 0o644))
	code, out, errOut := h.starter("run", "--account", loan, "--profile", "bnp-loan", "pret.csv")
	require.Equal(t, starterapp.ExitOK, code, "rows rejected: the run completes with rejections\nstdout:\n%s\nstderr:\n%s", out, errOut)
	id := workflows.RunID(loan, sha(t, data))
	s := h.summary(id)
	require.Equal(t, workflows.StatusCompleted, s.Status, "%s: %s", id, s.Error)
	require.Equal(t, "bnp-loan", s.Profile)
	require.EqualValues(t, 3, s.New)
	require.EqualValues(t, 3, s.DerivedIDs)
	require.EqualValues(t, 3, s.Rejected)
	output, err := os.ReadFile(filepath.Join(h.output, id, "output_transactions.csv"))
	require.NoError(t, err)
	require.Equal(t, bankOutputHeader+
		fmt.Sprintf("%s,2019-06-05,67.97, AMORTISSEMENT PRET,,SALE,\n", bankID(loan, "2019-06-05", "67.97", "AMORTISSEMENT PRET", 1))+
		fmt.Sprintf("%s,2019-07-05,68.12, AMORTISSEMENT PRET,,SALE,\n", bankID(loan, "2019-07-05", "68.12", "AMORTISSEMENT PRET", 1))+
		fmt.Sprintf("%s,2019-07-05,68.12, AMORTISSEMENT PRET,,SALE,\n", bankID(loan, "2019-07-05", "68.12", "AMORTISSEMENT PRET", 2)),
		string(output), "rows read by position, dates and decimal commas per the profile, the repeated row numbered 2")

	code, out, errOut = h.starter("run", "--account", loan, "--profile", "no-such-bank", "pret.csv")
	require.Equal(t, starterapp.ExitUsage, code, "stdout:\n%s\nstderr:\n%s", out, errOut)
	require.Contains(t, errOut, "no-such-bank")
	require.Contains(t, errOut, "bnp-loan")
}
