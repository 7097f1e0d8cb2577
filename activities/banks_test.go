package activities

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/testsuite"

	"github.com/txflow/txflow/txn"
)

// The bank exports of txn/testdata/banks, ingested into a real PostgreSQL by the Ingest activity
// and read back from the store with SQL. The expected values are written out here from the files
// themselves, not recomputed by the reader; only derived ids are computed, independently, by
// bankWantID.

const (
	bankAccount      = "FR7630001007941234567890185" // the run's account
	bankOtherAccount = "FR7630004000031234567890143" // another account, for the same files
)

// bankWantID computes a derived id independently of the reader: the first 16 hex digits of the
// SHA-256 of account, date, amount and trimmed wording joined by U+001F, and the occurrence.
func bankWantID(account, date, amount, wording string, n int) string {
	sum := sha256.Sum256([]byte(account + "\x1f" + date + "\x1f" + amount + "\x1f" + strings.TrimSpace(wording)))
	return fmt.Sprintf("%s-%d", hex.EncodeToString(sum[:8]), n)
}

// bankTxn is a transaction the store must hold. account "" is the run's account; id "" is a
// derived id, occurrence n.
type bankTxn struct {
	account, id, date, amount, wording string
	n                                  int
}

// resolve returns the account and id the transaction is stored under in a run of runAccount.
func (b bankTxn) resolve(runAccount string) (account, id string) {
	account = b.account
	if account == "" {
		account = runAccount
	}
	id = b.id
	if id == "" {
		id = bankWantID(account, b.date, b.amount, b.wording, b.n)
	}
	return account, id
}

type bankCase struct {
	file          string
	accountColumn bool  // the rows carry their own account (the run's is not used)
	lines         int64 // physical lines
	skipped       int64 // preamble, blank lines, lines after the rows
	rows          int64 // data rows, all accepted and new
	derived       int64 // rows stored with a derived id
	want          []bankTxn
	// The later, overlapping export: the file with extra inserted after physical line after (0:
	// at the end), adding extraLines physical lines and the transaction added.
	after      int
	extra      string
	extraLines int64
	added      bankTxn
}

var bankCases = []bankCase{
	{
		file: "boursorama.csv", accountColumn: true, lines: 5, skipped: 0, rows: 4, derived: 4,
		want: []bankTxn{
			{account: "00040111111", date: "2026-01-30", amount: "-3.50", wording: "CARTE 29/01/26 CAFE DU COIN CB*1234", n: 2},
			{account: "00040111111", date: "2026-01-28", amount: "2500.00", wording: "VIR SEPA EMPLOYEUR SAS", n: 1},
			{account: "00040222222", date: "2026-01-30", amount: "-3.50", wording: "CARTE 29/01/26 CAFE DU COIN CB*1234", n: 1},
		},
		extra:      `"2026-02-02";"2026-02-03";"CARTE 01/02/26 BOULANGERIE CB*1234";"Alimentation";"Vie quotidienne";-4,20;"00040111111";"BOURSORAMA BANQUE";1516.15` + "\n",
		extraLines: 1,
		added:      bankTxn{account: "00040111111", date: "2026-02-02", amount: "-4.20", wording: "CARTE 01/02/26 BOULANGERIE CB*1234", n: 1},
	},
	{
		file: "fortuneo.csv", lines: 4, skipped: 0, rows: 3, derived: 3,
		want: []bankTxn{
			{date: "2026-01-31", amount: "-6.40", wording: "CARTE 30/01 BOULANGERIE DU PORT", n: 1},
			{date: "2026-01-30", amount: "45.00", wording: "VIR RECU LOYER GARAGE", n: 1},
		},
		extra:      "01/02/2026;02/02/2026;CARTE 31/01 PHARMACIE;-12,5;;\r\n",
		extraLines: 1,
		added:      bankTxn{date: "2026-02-01", amount: "-12.50", wording: "CARTE 31/01 PHARMACIE", n: 1},
	},
	{
		file: "caisse_epargne_2024.csv", lines: 3, skipped: 0, rows: 2, derived: 1,
		want: []bankTxn{
			{date: "2026-01-31", amount: "-45.50", wording: "CB CARREFOUR FACT 310126", n: 1},
			{id: "REF2026013100042", date: "2026-02-01", amount: "3500.00", wording: "VIR SEPA SALAIRE JANVIER"},
		},
		extra:      "03/02/2026;PHARMACIE;CB PHARMACIE FACT 020226;;;Carte bancaire;Sante;Pharmacie;-12,30;;02/02/2026;03/02/2026;0\n",
		extraLines: 1,
		added:      bankTxn{date: "2026-02-02", amount: "-12.30", wording: "CB PHARMACIE FACT 020226", n: 1},
	},
	{
		// The opening balance line after the rows stays after them: the row goes before it.
		file: "caisse_epargne_old.csv", lines: 8, skipped: 5, rows: 2, derived: 0,
		want: []bankTxn{
			{id: "8123456", date: "2026-01-31", amount: "-0.39", wording: "PRLV FREE MOBILE"},
			{id: "8123455", date: "2026-01-30", amount: "30.00", wording: "VIR M DUPONT"},
		},
		after:      7,
		extra:      "01/02/26;8123457;CB BOULANGERIE;-2,10;;CB BOULANGERIE 010226;\n",
		extraLines: 1,
		added:      bankTxn{id: "8123457", date: "2026-02-01", amount: "-2.10", wording: "CB BOULANGERIE"},
	},
	{
		// No final newline: the added row is the new last line, without one either.
		file: "credit_mutuel.csv", lines: 3, skipped: 0, rows: 2, derived: 2,
		want: []bankTxn{
			{date: "2026-02-03", amount: "-12.90", wording: "PAIEMENT CB 0102 LIBRAIRIE ŒUVRES 12€", n: 1},
			{date: "2026-02-04", amount: "1200.00", wording: "VIR SALAIRE FEVRIER", n: 1},
		},
		extra:      "\n05/02/2026;05/02/2026;-30,00;;RETRAIT DAB;2 404,56",
		extraLines: 1,
		added:      bankTxn{date: "2026-02-05", amount: "-30.00", wording: "RETRAIT DAB", n: 1},
	},
	{
		file: "societe_generale.csv", lines: 5, skipped: 2, rows: 2, derived: 2,
		want: []bankTxn{
			{date: "2026-01-31", amount: "-4.20", wording: "CARTE X1234 BOULANGERIE", n: 1},
			{date: "2026-01-28", amount: "100.00", wording: "VIR RECU MAMAN", n: 1},
		},
		extra:      "01/02/2026;PRLV SEPA TELECOM;PRLV SEPA TELECOM ECH/010226;-19,99;EUR\r\n",
		extraLines: 1,
		added:      bankTxn{date: "2026-02-01", amount: "-19.99", wording: "PRLV SEPA TELECOM", n: 1},
	},
	{
		file: "banque_postale.csv", lines: 10, skipped: 7, rows: 2, derived: 2,
		want: []bankTxn{
			{date: "2026-01-30", amount: "-12.30", wording: "CARTE X1234 29/01/26 PHARMACIE", n: 1},
			{date: "2026-01-29", amount: "150.00", wording: "VIREMENT DE M DUPONT", n: 1},
		},
		extra:      "31/01/2026;\"PRELEVEMENT ASSURANCE\";-25,00;-163,99\r\n",
		extraLines: 1,
		added:      bankTxn{date: "2026-01-31", amount: "-25.00", wording: "PRELEVEMENT ASSURANCE", n: 1},
	},
	{
		// 9 preamble lines, the ';' line after the rows and the deferred card block (3 lines)
		// are skipped; the row goes after the last row, before them, and spans two lines.
		file: "credit_agricole.csv", lines: 21, skipped: 13, rows: 3, derived: 3,
		want: []bankTxn{
			{date: "2026-01-31", amount: "-45.10", wording: "PRELEVEMENT \nEDF CLIENTS PARTICULIERS \nREF 123456", n: 1},
			{date: "2026-01-30", amount: "1620.00", wording: "VIREMENT EN VOTRE FAVEUR \nSALAIRE JANVIER", n: 1},
		},
		after:      17,
		extra:      "28/01/2026;\"PAIEMENT PAR CARTE \nX1234 PHARMACIE 27/01\";12,40;;\n",
		extraLines: 2,
		added:      bankTxn{date: "2026-01-28", amount: "-12.40", wording: "PAIEMENT PAR CARTE \nX1234 PHARMACIE 27/01", n: 1},
	},
	{
		file: "revolut.csv", lines: 5, skipped: 0, rows: 4, derived: 4,
		want: []bankTxn{
			{date: "2026-01-30", amount: "-3.50", wording: "Coffee Shop", n: 2},
			{date: "2026-01-29", amount: "100.00", wording: "Top-up by *1234, thanks", n: 1},
			{date: "2026-01-31", amount: "-2.10", wording: "Bakery", n: 1},
		},
		extra:      "CARD_PAYMENT,Current,2026-02-01 12:00:00,2026-02-02 08:00:00,Coffee Shop,-3.50,0.00,EUR,COMPLETED,90.50\n",
		extraLines: 1,
		added:      bankTxn{date: "2026-02-01", amount: "-3.50", wording: "Coffee Shop", n: 1},
	},
	{
		file: "qonto.csv", lines: 3, skipped: 0, rows: 2, derived: 0,
		want: []bankTxn{
			{id: "tx-0001-aaaa", date: "2026-01-30", amount: "-120.00", wording: "Office Supplies SA"},
			{id: "tx-0002-bbbb", date: "2026-01-31", amount: "2500.00", wording: "Client SARL"},
		},
		extra:      "settled,2026-02-02 09:00:00,2026-02-01 16:20:00,-45.00,EUR,Taxi Paris,card,tx-0003-cccc,\n",
		extraLines: 1,
		added:      bankTxn{id: "tx-0003-cccc", date: "2026-02-01", amount: "-45.00", wording: "Taxi Paris"},
	},
}

// insertAfterLine returns data with extra inserted after its physical line n, at the end when n
// is 0.
func insertAfterLine(t *testing.T, data []byte, n int, extra string) []byte {
	t.Helper()
	if n == 0 {
		return append(append([]byte(nil), data...), extra...)
	}
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

// bankStore reads the store of one test database.
type bankStore struct {
	t    *testing.T
	conn *pgx.Conn
}

// txn returns the stored transaction (account, id) as "account|id|date|amount|wording", "" when
// there is none.
func (s bankStore) txn(account, id string) string {
	s.t.Helper()
	var date *string
	var amount, wording string
	err := s.conn.QueryRow(context.Background(),
		"SELECT to_char(date, 'YYYY-MM-DD'), amount::text, wording FROM transactions WHERE account = $1 AND id = $2",
		account, id).Scan(&date, &amount, &wording)
	if errors.Is(err, pgx.ErrNoRows) {
		return ""
	}
	require.NoError(s.t, err)
	d := "NULL"
	if date != nil {
		d = *date
	}
	return fmt.Sprintf("%s|%s|%s|%s|%s", account, id, d, amount, wording)
}

func (s bankStore) int(query string, args ...any) int64 {
	s.t.Helper()
	var n int64
	require.NoError(s.t, s.conn.QueryRow(context.Background(), query, args...).Scan(&n))
	return n
}

// runIDs returns the ids of a run's lines, in file order.
func (s bankStore) runIDs(runID string) []string {
	s.t.Helper()
	rows, err := s.conn.Query(context.Background(), "SELECT id FROM run_lines WHERE run_id = $1 ORDER BY seq", runID)
	require.NoError(s.t, err)
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(s.t, err)
	return ids
}

// stored returns the expected bankTxn as txn prints it, for a run of runAccount.
func (b bankTxn) stored(runAccount string) string {
	account, id := b.resolve(runAccount)
	return fmt.Sprintf("%s|%s|%s|%s|%s", account, id, b.date, b.amount, b.wording)
}

// TestBankExportsStored ingests each bank export with the Ingest activity into a fresh database,
// checks what the store holds against the file, then imports a later export that overlaps it
// (only the new row is added, the others keep their ids) and the same file for another account
// (other derived ids).
func TestBankExportsStored(t *testing.T) {
	for _, tc := range bankCases {
		t.Run(strings.TrimSuffix(tc.file, ".csv"), func(t *testing.T) {
			db, conn := openPostgres(t)
			store := bankStore{t: t, conn: conn}

			data, err := os.ReadFile(filepath.Join("..", "txn", "testdata", "banks", tc.file))
			require.NoError(t, err)
			later := insertAfterLine(t, data, tc.after, tc.extra)
			input := t.TempDir()
			require.NoError(t, os.WriteFile(filepath.Join(input, tc.file), data, 0o644))
			laterName := "later_" + tc.file
			require.NoError(t, os.WriteFile(filepath.Join(input, laterName), later, 0o644))

			a := &Activities{DB: db, Rules: txn.DefaultRules(), InputRoot: input, OutputRoot: t.TempDir()}
			ingest := func(runID, file, account string) IngestResult {
				t.Helper()
				sum, err := HashFile(filepath.Join(input, file))
				require.NoError(t, err)
				var suite testsuite.WorkflowTestSuite
				env := suite.NewTestActivityEnvironment()
				env.RegisterActivity(a)
				v, err := env.ExecuteActivity(a.Ingest, IngestInput{RunID: runID, File: file, SHA256: sum, Account: account})
				require.NoError(t, err, "%s for %s", file, account)
				var res IngestResult
				require.NoError(t, v.Get(&res))
				return res
			}
			countOf := func(account string) int64 {
				return store.int("SELECT count(*) FROM transactions WHERE account = $1", account)
			}
			const derivedRE = `^[0-9a-f]{16}-[1-9][0-9]*$`
			accountsOf := func(runAccount string) []string {
				if !tc.accountColumn {
					return []string{runAccount}
				}
				seen := map[string]bool{}
				var out []string
				for _, w := range tc.want {
					if !seen[w.account] {
						seen[w.account] = true
						out = append(out, w.account)
					}
				}
				return out
			}
			total := func(runAccount string) int64 {
				var n int64
				for _, acc := range accountsOf(runAccount) {
					n += countOf(acc)
				}
				return n
			}

			// The file as exported.
			res := ingest("bank-first", tc.file, bankAccount)
			assert.Equal(t, Counts{RowsRead: tc.rows, Lines: tc.lines, SkippedLines: tc.skipped, DerivedIDs: tc.derived, Ingested: tc.rows, New: tc.rows},
				res.Counts, "rows, lines, skipped lines; nothing rejected, nothing in error")
			assert.Equal(t, tc.accountColumn, res.AccountColumn)
			assert.Equal(t, tc.rows, total(bankAccount), "transactions stored")
			assert.Equal(t, tc.derived, store.int("SELECT count(*) FROM transactions WHERE id ~ $1", derivedRE), "derived ids")
			assert.Equal(t, tc.rows, store.int("SELECT count(*) FROM run_lines WHERE run_id = 'bank-first' AND date IS NOT NULL"),
				"every line keeps its date")
			for _, w := range tc.want {
				account, id := w.resolve(bankAccount)
				assert.Equal(t, w.stored(bankAccount), store.txn(account, id))
			}
			firstIDs := store.runIDs("bank-first")
			require.Len(t, firstIDs, int(tc.rows))

			// A later export overlapping it: only the added row is new, the others keep their
			// ids, none conflicts.
			res2 := ingest("bank-later", laterName, bankAccount)
			assert.Equal(t, Counts{RowsRead: tc.rows + 1, Lines: tc.lines + tc.extraLines, SkippedLines: tc.skipped,
				DerivedIDs: store.int("SELECT count(*) FROM run_lines WHERE run_id = 'bank-later' AND id ~ $1", derivedRE),
				Ingested:   tc.rows + 1, New: 1},
				res2.Counts, "the overlapping export adds its new row only")
			assert.Zero(t, res2.Rejected, "no id_conflict, no duplicate_id")
			assert.Zero(t, store.int("SELECT count(*) FROM rejected_rows"))
			assert.Equal(t, tc.rows+1, total(bankAccount))
			assert.Equal(t, tc.added.stored(bankAccount), store.txn(tc.added.resolve(bankAccount)), "the added row")
			laterIDs := store.runIDs("bank-later")
			_, addedID := tc.added.resolve(bankAccount)
			require.Contains(t, laterIDs, addedID)
			var shared []string
			for _, id := range laterIDs {
				if id != addedID {
					shared = append(shared, id)
				}
			}
			assert.Equal(t, firstIDs, shared, "the overlapping rows keep their ids")
			for _, w := range tc.want {
				account, id := w.resolve(bankAccount)
				assert.Equal(t, w.stored(bankAccount), store.txn(account, id), "unchanged by the later export")
			}

			// The same file for another account.
			res3 := ingest("bank-other", tc.file, bankOtherAccount)
			assert.Zero(t, res3.Rejected)
			if tc.accountColumn {
				// The rows are under their own accounts whatever the run's: nothing new.
				assert.Zero(t, res3.New)
				assert.Zero(t, countOf(bankOtherAccount))
				return
			}
			assert.Equal(t, tc.rows, res3.New, "another account's transactions are other transactions")
			assert.Equal(t, tc.rows, countOf(bankOtherAccount))
			assert.Equal(t, tc.rows+1, countOf(bankAccount))
			for _, w := range tc.want {
				_, mine := w.resolve(bankAccount)
				_, theirs := w.resolve(bankOtherAccount)
				assert.Equal(t, w.stored(bankOtherAccount), store.txn(bankOtherAccount, theirs))
				if w.id == "" {
					assert.NotEqual(t, mine, theirs, "a derived id includes the account")
				} else {
					assert.Equal(t, mine, theirs, "the bank's own id")
				}
				assert.Equal(t, w.stored(bankAccount), store.txn(bankAccount, mine), "the first account's is unchanged")
			}
			// One transaction per account for each row, derived or not.
			for _, w := range tc.want {
				var n int64
				for _, acc := range []string{bankAccount, bankOtherAccount} {
					_, id := w.resolve(acc)
					n += store.int("SELECT count(*) FROM transactions WHERE account = $1 AND id = $2", acc, id)
				}
				assert.EqualValues(t, 2, n, "%s: two transactions, one per account", w.wording)
			}
		})
	}
}
