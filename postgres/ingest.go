package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/shopspring/decimal"
	"golang.org/x/text/unicode/norm"

	"github.com/txflow/txflow/txn"
)

// Run identifies an ingested file.
type Run struct {
	ID     string // run id, unique per ingestion of a file
	File   string // file name as received
	SHA256 string // hex SHA-256 of the file content
	// Account is the run's account (see txn.ParseAccount), the account of
	// every line that does not carry its own; "" means txn.DefaultAccount.
	Account string
	// RulesVersion is the version of the rules the run applies (runs.rules_version, see
	// rules.go); 0 records none.
	RulesVersion int
	// Execution names the workflow execution ingesting the run (its Temporal run id), ""
	// for none: BeginIngest resumes only an ingestion begun by the same execution.
	Execution string
}

// IngestCounts are the totals of a run after FinishIngest.
type IngestCounts struct {
	Accepted   int64 // lines kept in the run (including lines in error)
	New        int64 // transactions inserted by this call
	Rejected   int64 // rejected rows of the run (parser rejections, duplicates, conflicts)
	Duplicates int64 // rejected rows with reason duplicate_id
	Conflicts  int64 // rejected rows with reason id_conflict
	Errors     int64 // accepted lines flagged with an error (e.g. amount_too_high)
	MaxSeq     int64 // highest seq still in the run; 0 when it has no line
	// Pending counts the run's messages not delivered yet (its new transactions not acknowledged,
	// see outbox.go): 0 when delivery is off (FileFacts.Outbox).
	Pending int64
}

// Checkpoint is where an ingestion stands.
type Checkpoint struct {
	Records int64 // data records (accepted and rejected) already committed: skip them
	NextSeq int64 // seq of the next accepted record
	Settled bool  // FinishIngest already ran: Totals holds its result
	Totals  IngestCounts
	// RowsRead is the number of data records FinishIngest was told of, when Settled.
	RowsRead int64
	// RulesVersion is the version of the rules the run applies: the one an earlier attempt
	// recorded when resuming, Run.RulesVersion otherwise; 0 when none is recorded.
	RulesVersion int
}

// BeginIngest starts or resumes ingestion of a run. With resume set and the run already known
// with the same non-empty SHA-256, begun by the same execution (run.Execution; an ingestion
// that recorded none, begun before executions were recorded, counts as the same), it keeps what
// earlier attempts committed and returns where they stopped (or, when the run was already
// settled, its totals). Otherwise it upserts the runs
// row and deletes any run_lines and rejected_rows of the run, so that nothing is ever loaded
// twice. Transactions, tags and annotations already stored are kept. The run's rules version is
// run.RulesVersion, except when resuming a run that recorded one: the checkpoint says which. It
// returns an error for an empty run id and the wrapped connection or SQL error.
func (db *DB) BeginIngest(ctx context.Context, run Run, resume bool) (Checkpoint, error) {
	if run.ID == "" {
		return Checkpoint{}, errors.New("begin ingest: empty run id")
	}
	account, err := runAccount(run.Account)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("begin ingest %s: %w", run.ID, err)
	}
	var version *int32
	if run.RulesVersion > 0 {
		v := int32(run.RulesVersion)
		version = &v
	}
	cp := Checkpoint{NextSeq: 1}
	err = pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		if resume && run.SHA256 != "" {
			var sha string
			var settled bool
			var rowsRead, newCount *int64
			var stored *int32
			var execution *string
			err := tx.QueryRow(ctx, `
				SELECT sha256, ingested_at IS NOT NULL, records_loaded, next_seq, rows_read, new_count, rules_version, execution
				FROM runs WHERE run_id = $1 FOR UPDATE`, run.ID).
				Scan(&sha, &settled, &cp.Records, &cp.NextSeq, &rowsRead, &newCount, &stored, &execution)
			if err == nil && execution != nil && run.Execution != "" && *execution != run.Execution {
				sha = "" // begun by another execution: started over below
			}
			if stored != nil {
				cp.RulesVersion = int(*stored)
			}
			switch {
			case errors.Is(err, pgx.ErrNoRows):
			case err != nil:
				return err
			case sha == run.SHA256 && settled && rowsRead != nil && newCount != nil:
				cp.Settled, cp.RowsRead = true, *rowsRead
				cp.Totals, err = runTotals(ctx, tx, run.ID)
				cp.Totals.New = *newCount
				return err
			case sha == run.SHA256 && !settled:
				if stored == nil && version != nil {
					// Begun before versions existed: it applies the current one from now on.
					cp.RulesVersion = run.RulesVersion
					_, err := tx.Exec(ctx, "UPDATE runs SET rules_version = $2 WHERE run_id = $1", run.ID, version)
					return err
				}
				return nil
			}
		}
		cp = Checkpoint{NextSeq: 1, RulesVersion: run.RulesVersion}
		if _, err := tx.Exec(ctx, `
			INSERT INTO runs (run_id, file, sha256, account, num, rules_version, execution)
			VALUES ($1, $2, $3, $4, nextval('runs_num_seq'), $5, $6)
			ON CONFLICT (run_id) DO UPDATE
			SET file = excluded.file, sha256 = excluded.sha256, account = excluded.account, started_at = now(),
			    ingested_at = NULL, records_loaded = 0, next_seq = 1, rows_read = NULL, new_count = NULL,
			    has_account_column = false, has_date_column = false, num = excluded.num, settling_new = 0,
			    rules_version = excluded.rules_version, execution = excluded.execution`,
			run.ID, run.File, run.SHA256, account, version, nullIfEmpty(run.Execution)); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "DELETE FROM run_lines WHERE run_id = $1", run.ID); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, "DELETE FROM rejected_rows WHERE run_id = $1", run.ID)
		return err
	})
	if err != nil {
		return Checkpoint{}, db.wrap("begin ingest "+run.ID, err)
	}
	return cp, nil
}

// LoadBatch appends one batch in a single transaction with COPY (pgx
// CopyFrom): recs become run_lines with seq = firstSeq, firstSeq+1, ...;
// rejected become rejected_rows. Text that PostgreSQL cannot store (invalid
// UTF-8, NUL bytes) is stored with U+FFFD in its place. Ids and wordings are
// stored as read; a line whose id is not in NFC also gets its NFC form, the
// key FinishIngest settles it by. Loading the same seq or rejected line twice
// for a run fails with a unique violation (*pgconn.PgError code 23505).
// Amounts may have any number of digits. The run's checkpoint advances in the same transaction, so
// a batch is either loaded and counted or not at all; firstSeq must be the
// checkpoint's NextSeq. It returns ErrRunNotFound (wrapped) for a run
// BeginIngest did not record, and an error for a run FinishIngest already
// settled or a batch that does not follow the last one. Nothing of the batch
// is stored on error.
func (db *DB) LoadBatch(ctx context.Context, runID string, firstSeq int64, recs []txn.Record, rejected []txn.Rejected) error {
	if len(recs) == 0 && len(rejected) == 0 {
		return nil
	}
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		// Lines may only be added while the run is being ingested: results
		// are computed for settled runs on the assumption that all their ids
		// are in transactions. FOR SHARE orders this against FinishIngest.
		var loading bool
		var nextSeq, num int64
		var account string
		err := tx.QueryRow(ctx, "SELECT ingested_at IS NULL, next_seq, account, num FROM runs WHERE run_id = $1 FOR UPDATE", runID).
			Scan(&loading, &nextSeq, &account, &num)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			return ErrRunNotFound
		case err != nil:
			return fmt.Errorf("lock run: %w", err)
		case !loading:
			return errors.New("run already finished; BeginIngest restarts it")
		case nextSeq != firstSeq:
			return fmt.Errorf("batch starts at seq %d but the run's next seq is %d", firstSeq, nextSeq)
		case firstSeq+int64(len(recs)) > maxSeq+1:
			return fmt.Errorf("a run holds at most %d lines", int64(maxSeq))
		}
		if _, err := tx.Exec(ctx, "UPDATE runs SET records_loaded = records_loaded + $2, next_seq = $3 WHERE run_id = $1",
			runID, len(recs)+len(rejected), firstSeq+int64(len(recs))); err != nil {
			return fmt.Errorf("advance checkpoint: %w", err)
		}
		if len(recs) > 0 {
			_, err := tx.CopyFrom(ctx, pgx.Identifier{"run_lines"},
				[]string{"run_id", "seq", "txn_key", "line", "account", "id", "id_as_read", "date", "amount", "raw_amount", "wording", "error"},
				pgx.CopyFromSlice(len(recs), func(i int) ([]any, error) {
					r := &recs[i]
					var reason, date any
					if r.Error != "" {
						reason = string(r.Error)
					}
					if !r.Date.IsZero() {
						date = r.Date
					}
					id := cleanText(r.ID)
					key, asRead := nfcKey(id)
					seq := firstSeq + int64(i)
					return []any{runID, seq, lineKey(num, seq), r.Line, lineAccount(r.Account, account), key, asRead, date, copyAmount(r.Amount),
						cleanText(r.RawAmount), cleanText(r.Wording), reason}, nil
				}))
			if err != nil {
				return fmt.Errorf("copy run_lines: %w", err)
			}
		}
		if len(rejected) > 0 {
			_, err := tx.CopyFrom(ctx, pgx.Identifier{"rejected_rows"},
				[]string{"run_id", "line", "account", "id", "amount", "wording", "reason", "detail"},
				pgx.CopyFromSlice(len(rejected), func(i int) ([]any, error) {
					r := &rejected[i]
					return []any{runID, r.Line, lineAccount(r.Account, account), cleanText(r.ID), cleanText(r.Amount), cleanText(r.Wording),
						string(r.Reason), cleanText(r.Detail)}, nil
				}))
			if err != nil {
				return fmt.Errorf("copy rejected_rows: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return db.wrap(fmt.Sprintf("load batch of run %s at seq %d", runID, firstSeq), err)
	}
	return nil
}

// maxSeq is the highest seq of a run's lines: a line's key packs it into the low 32 bits.
const maxSeq = 1<<32 - 1

// lineKey is the key a line gives the transaction it stores, when it is new:
// the run's number (runs.num, drawn afresh each time its ingestion starts
// over) in the high bits and the line's seq in the low 32 bits, so that no two
// lines ever give the same key. Transactions stored before keys existed have
// negative keys (migration 006).
func lineKey(num, seq int64) int64 { return num<<32 | seq }

// runAccount validates a run's account; "" is txn.DefaultAccount.
func runAccount(account string) (string, error) {
	if account == "" {
		return txn.DefaultAccount, nil
	}
	return txn.ParseAccount(account)
}

// cleanText makes s storable in a PostgreSQL text column: invalid UTF-8
// sequences and NUL bytes become U+FFFD.
func cleanText(s string) string {
	if utf8.ValidString(s) && strings.IndexByte(s, 0) < 0 {
		return s
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}

// lineAccount is the account a line is stored under: its own when the file
// has an account column (as read, for a rejected row), the run's otherwise.
func lineAccount(own, run string) string {
	if own == "" {
		return run
	}
	return cleanText(own)
}

// nfcKey returns the key a line is stored under, the NFC form of id, and
// the id as read when it differs from that key (nil, stored as NULL,
// otherwise). An ASCII string is always in NFC: the check costs a byte loop
// for nearly every id.
func nfcKey(id string) (key string, asRead any) {
	for i := 0; i < len(id); i++ {
		if id[i] >= utf8.RuneSelf {
			if norm.NFC.IsNormalString(id) {
				return id, nil
			}
			return norm.NFC.String(id), id
		}
	}
	return id, nil
}

// scale2 returns d with two decimals (exponent -2), the same value: COPY
// then stores it with numeric scale 2, which amount::text prints as the
// outputs want (12.50, -3.00). Amounts are read with at most two decimals.
func scale2(d decimal.Decimal) decimal.Decimal {
	if d.Exponent() > -2 {
		return d.Round(2)
	}
	return d
}

// Set-based statements of FinishIngest; $1 is the run id, $2 the reason.
//
// Ids and wordings are compared in NFC, so that the same text typed with
// composed or decomposed accents is the same. The key of a line is
// (account, id): its account and the NFC form of its id (id_as_read holds the
// id as read when it differs), and (transactions.account, transactions.id) is
// that key. The same id in two accounts is two
// transactions; duplicates and conflicts are found within one account. Wordings are compared
// raw first: normalize() runs only for the rare pairs that differ as bytes.
const (
	// In-file duplicates: every line whose key appeared at a smaller seq of
	// the run moves to rejected_rows; the first occurrence stays.
	sqlMoveDuplicates = `
WITH ranked AS (
    SELECT seq, first_value(line) OVER w AS first_line, row_number() OVER w AS n
    FROM run_lines
    WHERE run_id = $1
    WINDOW w AS (PARTITION BY account, id ORDER BY seq)
), moved AS (
    DELETE FROM run_lines rl
    USING ranked r
    WHERE rl.run_id = $1 AND rl.seq = r.seq AND r.n > 1
    RETURNING rl.line, rl.account, coalesce(rl.id_as_read, rl.id) AS id, rl.raw_amount, rl.wording, r.first_line
)
INSERT INTO rejected_rows (run_id, line, account, id, amount, wording, reason, detail)
SELECT $1, line, account, id, raw_amount, wording, $2, 'id already on line ' || first_line
FROM moved`

	// Conflicts: lines whose key is stored with another amount or wording.
	sqlMoveConflicts = `
WITH moved AS (
    DELETE FROM run_lines rl
    USING transactions t
    WHERE rl.run_id = $1 AND t.account = rl.account AND t.id = rl.id
      AND (t.amount <> rl.amount
           OR (t.wording <> rl.wording AND normalize(t.wording, NFC) <> normalize(rl.wording, NFC)))
    RETURNING rl.line, rl.account, coalesce(rl.id_as_read, rl.id) AS id, rl.raw_amount, rl.wording, t.amount AS stored_amount, t.wording AS stored_wording
)
INSERT INTO rejected_rows (run_id, line, account, id, amount, wording, reason, detail)
SELECT $1, line, account, id, raw_amount, wording, $2,
       format('id already stored with amount %s and wording %L', round(stored_amount, 2), stored_wording)
FROM moved`

	// New transactions: anti-join, no ON CONFLICT (FinishIngest holds a lock
	// serialising it across runs, so no concurrent insert can race).
	sqlInsertNew = `
INSERT INTO transactions (account, id, key, id_as_read, date, amount, wording, error, first_run_id)
SELECT rl.account, rl.id, rl.txn_key, rl.id_as_read, rl.date, rl.amount, rl.wording,
       rl.error, rl.run_id
FROM run_lines rl
WHERE rl.run_id = $1
  AND NOT EXISTS (SELECT 1 FROM transactions t WHERE t.account = rl.account AND t.id = rl.id)`

	// Lines whose transaction was stored before (by another run, or by an
	// earlier ingestion of this one) take its key, under which its results are.
	sqlKeyExisting = `
UPDATE run_lines rl SET txn_key = t.key
FROM transactions t
WHERE rl.run_id = $1 AND t.account = rl.account AND t.id = rl.id AND rl.txn_key <> t.key`
)

// settleOutboxRun writes, when outbox is set and the settlement inserted transactions, the
// run's outbox_runs row (migration 011): its new transactions, c.New of them, are to publish.
// The row names the ingestion (runs.num) whose transactions they are. It then adds them to
// c.Pending, which runTotals counted without them.
//
// The row of an earlier settlement of the same ingestion is kept as it is. An ingestion started
// over (the file run again under the same run id, its messages not all delivered) reloaded the
// lines: the row of the earlier ingestion is kept for the transactions that ingestion inserted,
// which the new lines name again, with the new lines' max_seq and no chunk acknowledged (the
// lines were reloaded: their earlier acknowledgements are not trusted, and a message may be sent
// again), and dropped when no line names them any more. When the new ingestion inserted
// transactions too (some were deleted since, with their account), the messages of both become
// outbox rows. c.Pending is then counted again.
func settleOutboxRun(ctx context.Context, tx pgx.Tx, runID string, outbox bool, c *IngestCounts) error {
	var num, prev, maxSeq int64
	if err := tx.QueryRow(ctx, "SELECT num FROM runs WHERE run_id = $1", runID).Scan(&num); err != nil {
		return fmt.Errorf("read run number: %w", err)
	}
	err := tx.QueryRow(ctx, "SELECT num, max_seq FROM outbox_runs WHERE run_id = $1 FOR UPDATE", runID).Scan(&prev, &maxSeq)
	switch {
	case err == nil && prev == num && maxSeq == 0:
		// The placeholder a settlement in parts wrote before inserting (settle.go): it becomes
		// the row written below when none is there.
		if !outbox || c.New == 0 {
			if _, err := tx.Exec(ctx, "DELETE FROM outbox_runs WHERE run_id = $1", runID); err != nil {
				return fmt.Errorf("delete outbox_runs: %w", err)
			}
			return nil
		}
		if _, err := tx.Exec(ctx, "UPDATE outbox_runs SET max_seq = $2, created_at = now() WHERE run_id = $1", runID, c.MaxSeq); err != nil {
			return fmt.Errorf("write outbox_runs: %w", err)
		}
		c.Pending += c.New
		return nil
	case errors.Is(err, pgx.ErrNoRows):
		if !outbox || c.New == 0 {
			return nil
		}
		// Acknowledgements left by a Publish of a run delivered already are not this row's.
		if _, err := tx.Exec(ctx, "DELETE FROM outbox_acked WHERE run_id = $1", runID); err != nil {
			return fmt.Errorf("delete stale outbox_acked: %w", err)
		}
		if _, err := tx.Exec(ctx, "INSERT INTO outbox_runs (run_id, num, max_seq) VALUES ($1, $2, $3)",
			runID, num, c.MaxSeq); err != nil {
			return fmt.Errorf("write outbox_runs: %w", err)
		}
		c.Pending += c.New
		return nil
	case err != nil:
		return fmt.Errorf("read outbox_runs: %w", err)
	case prev == num:
		return nil
	}
	if _, err := tx.Exec(ctx, "DELETE FROM outbox_acked WHERE run_id = $1", runID); err != nil {
		return fmt.Errorf("delete outbox_acked: %w", err)
	}
	switch {
	case outbox && c.New > 0:
		if _, err := tx.Exec(ctx, `
			INSERT INTO outbox (txn_key, version, run_id)
			SELECT txn_key, 1, run_id FROM run_lines
			WHERE run_id = $1 AND (txn_key >> 32) IN ($2, $3)
			ON CONFLICT DO NOTHING`, runID, prev, num); err != nil {
			return fmt.Errorf("write outbox rows: %w", err)
		}
		if _, err := tx.Exec(ctx, "DELETE FROM outbox_runs WHERE run_id = $1", runID); err != nil {
			return fmt.Errorf("delete outbox_runs: %w", err)
		}
	default:
		if _, err := tx.Exec(ctx, "UPDATE outbox_runs SET max_seq = $2 WHERE run_id = $1", runID, c.MaxSeq); err != nil {
			return fmt.Errorf("update outbox_runs: %w", err)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM outbox_runs r WHERE run_id = $1
			AND NOT EXISTS (SELECT 1 FROM run_lines rl WHERE rl.run_id = r.run_id AND (rl.txn_key >> 32) = r.num)`, runID); err != nil {
			return fmt.Errorf("delete outbox_runs: %w", err)
		}
	}
	if err := tx.QueryRow(ctx, sqlCountPending, runID).Scan(&c.Pending); err != nil {
		return fmt.Errorf("count pending messages: %w", err)
	}
	return nil
}

// runTotals counts the run's lines and rejected rows (New is left 0).
func runTotals(ctx context.Context, tx pgx.Tx, runID string) (IngestCounts, error) {
	var c IngestCounts
	if err := tx.QueryRow(ctx, `
		SELECT count(*), count(error), coalesce(max(seq), 0) FROM run_lines WHERE run_id = $1`,
		runID).Scan(&c.Accepted, &c.Errors, &c.MaxSeq); err != nil {
		return c, fmt.Errorf("count lines: %w", err)
	}
	return c, rejectedTotals(ctx, tx, runID, &c)
}

// rejectedTotals counts the run's rejected rows and its messages not delivered yet into c.
func rejectedTotals(ctx context.Context, tx pgx.Tx, runID string, c *IngestCounts) error {
	if err := tx.QueryRow(ctx, `
		SELECT count(*),
		       count(*) FILTER (WHERE reason = $2),
		       count(*) FILTER (WHERE reason = $3)
		FROM rejected_rows WHERE run_id = $1`,
		runID, string(txn.ReasonDuplicateID), string(txn.ReasonIDConflict)).Scan(&c.Rejected, &c.Duplicates, &c.Conflicts); err != nil {
		return fmt.Errorf("count rejected: %w", err)
	}
	if err := tx.QueryRow(ctx, sqlCountPending, runID).Scan(&c.Pending); err != nil {
		return fmt.Errorf("count pending messages: %w", err)
	}
	return nil
}

// lockSettlement takes the lock that serialises settlements (and account
// purges) until the end of tx. Waiting for another run's settling is not a
// stall: it may take longer than the lock timeout on a large file. The
// statement timeout still bounds the wait, and the lock timeout applies again
// to the statements that follow.
func lockSettlement(ctx context.Context, tx pgx.Tx) error {
	return waitForSettlementLock(ctx, tx, "SELECT pg_advisory_xact_lock($1)", true)
}

// waitForSettlementLock runs lock (a statement taking the lock lockFinishIngest, $1) on q with no
// lock timeout, then restores the lock timeout: for the transaction q when local is set, for the
// session otherwise.
func waitForSettlementLock(ctx context.Context, q interface {
	Exec(context.Context, string, ...any) (pgconn.CommandTag, error)
	QueryRow(context.Context, string, ...any) pgx.Row
}, lock string, local bool) error {
	var lockTimeout string
	if err := q.QueryRow(ctx, "SELECT current_setting('lock_timeout')").Scan(&lockTimeout); err != nil {
		return fmt.Errorf("read lock_timeout: %w", err)
	}
	if _, err := q.Exec(ctx, "SELECT set_config('lock_timeout', '0', $1)", local); err != nil {
		return fmt.Errorf("set lock_timeout: %w", err)
	}
	if _, err := q.Exec(ctx, lock, lockFinishIngest); err != nil {
		return fmt.Errorf("lock: %w", err)
	}
	if _, err := q.Exec(ctx, "SELECT set_config('lock_timeout', $1, $2)", lockTimeout, local); err != nil {
		return fmt.Errorf("restore lock_timeout: %w", err)
	}
	return nil
}

// FinishIngest settles the run, set-based (ids and wordings compared in NFC), in one
// transaction, or for a run of more than DefaultSettleInPartsAbove lines with its new
// transactions inserted in parts on several connections (settle.go):
//  1. in-file duplicates: every run_line whose id appeared at a smaller seq
//     of the same run in the same account moves to rejected_rows as duplicate_id (the first is
//     kept);
//  2. new transactions: run_lines whose (account, id) is not in
//     transactions are inserted; identical existing ones are untouched and keep their tags
//     and annotations;
//  3. id conflicts: a run_line whose id exists in transactions of its
//     account with a different amount or wording moves to rejected_rows as id_conflict
//     (detail names the stored values). The insert leaves such lines out, and when it
//     stored every line of the run, none is looked for.
//
// FinishIngest calls are serialised across runs (advisory lock). Calling it
// twice for the same run is harmless: the second call moves and inserts
// nothing and returns the same totals, except New, which counts only the
// transactions inserted by that call and is then 0 (after a call that failed once some of its
// parts had committed, the next call counts their transactions too). It records rowsRead
// (the data records of the file) and New on the run, for a resumed BeginIngest. It returns
// ErrRunNotFound (wrapped) for an unknown run and the wrapped connection or SQL error otherwise;
// on error nothing is changed, but for the transactions of the parts that committed and the
// duplicates moved out before them, which the next call finds where they are.
func (db *DB) FinishIngest(ctx context.Context, runID string, rowsRead int64) (IngestCounts, error) {
	return db.FinishIngestFile(ctx, runID, FileFacts{RowsRead: rowsRead})
}

// analyzeAbove is the number of a run's lines above which its settlement refreshes the planner's
// statistics of run_lines and transactions first.
const analyzeAbove = 10_000

// FileFacts are what FinishIngestFile records about the file read.
type FileFacts struct {
	RowsRead      int64 // data records of the file (txn.Stats.Records)
	AccountColumn bool  // the file had an account column (txn.Stats.AccountColumn)
	DateColumn    bool  // the file had a date column (txn.Stats.DateColumn != "")
	// Outbox has the run's new transactions published (version 1): the settlement writes the
	// run's outbox_runs row in the same transaction as the transactions: delivery is on (see
	// outbox.go).
	Outbox bool
	// Distinct says that no two of the run's lines are under the same key, as a KeyHashes that saw
	// every line loaded found: the settlement does not look for in-file duplicates. It must be
	// right: set wrongly, a line that repeats a key is not rejected as a duplicate (and a new key
	// twice fails the settlement on the primary key of transactions).
	Distinct bool
	// Loaded says that this ingestion loaded every line of the run itself (BeginIngest found no
	// batch committed), and ErrorLines how many of them it loaded with an error
	// (txn.Record.Error). A settlement that stores every line as a new transaction takes the
	// run's counts from them instead of counting its lines. They must be right: set wrongly, the
	// counts are wrong.
	Loaded     bool
	ErrorLines int64
}

// FinishIngestFile is FinishIngest, also recording whether the file had an
// account column (runs.has_account_column) and a date column
// (runs.has_date_column): the run's outputs then carry an account column
// first and a date column after the id, mirroring the input. Every line ends
// up with the key of its transaction (run_lines.txn_key), under which its
// tag and annotation are stored. With f.Outbox, the transactions it inserts
// are to publish (version 1, the run's id): one outbox_runs row for the run,
// in the same transaction (see settleOutboxRun); the counts' Pending is the
// run's messages not delivered yet, whatever f.Outbox.
func (db *DB) FinishIngestFile(ctx context.Context, runID string, f FileFacts) (IngestCounts, error) {
	var c IngestCounts
	err := db.withConn(ctx, func(conn *pgxpool.Conn) error {
		var lines int64
		if err := conn.QueryRow(ctx, sqlRunLastSeq, runID).Scan(&lines); err != nil {
			return fmt.Errorf("count lines: %w", err)
		}
		var err error
		if db.settleParts > 1 && lines > db.settleInPartsAbove {
			c, err = db.settleInParts(ctx, conn, runID, f, lines)
		} else {
			c, err = settleInOne(ctx, conn, runID, f, lines)
		}
		return err
	})
	if err != nil {
		return IngestCounts{}, db.wrap("finish ingest "+runID, err)
	}
	return c, nil
}

// sqlRunLastSeq is the last seq of a run's lines (0 for none): the number of lines it loaded. It
// is read before the settlement's lock: a settlement of the same run running meanwhile (a
// retried attempt's) can only move lines out, which makes the count larger than the lines left
// and the settlement that follows take its careful path (it counts and looks for conflicts).
const sqlRunLastSeq = "SELECT coalesce(max(seq), 0) FROM run_lines WHERE run_id = $1"

// settleInOne is the settlement in one transaction on conn, of a run of lines lines.
func settleInOne(ctx context.Context, conn *pgxpool.Conn, runID string, f FileFacts, lines int64) (IngestCounts, error) {
	var c IngestCounts
	err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if err := lockSettlement(ctx, tx); err != nil {
			return err
		}
		if err := settleBefore(ctx, tx, runID, f, lines); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, "UPDATE runs SET ingested_at = now() WHERE run_id = $1", runID)
		if err != nil {
			return fmt.Errorf("mark run: %w", err)
		}
		if tag.RowsAffected() == 0 {
			return ErrRunNotFound
		}
		// A run settled before outbox_runs existed, with outbox rows still there, keeps writing
		// them: a run's messages are of one kind.
		var perRow bool
		if f.Outbox {
			if err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM outbox WHERE run_id = $1)", runID).Scan(&perRow); err != nil {
				return fmt.Errorf("find outbox rows: %w", err)
			}
		}
		insert := sqlInsertNew
		if perRow {
			insert = sqlInsertNewWithOutbox
		}
		// The anti-join must not scan transactions sequentially from a nested
		// loop: the statement grows the table it scans, which is quadratic
		// (and the planner picks it when transactions looked empty at the
		// last ANALYZE). Index probes or a hash join are both fine.
		if _, err := tx.Exec(ctx, "SET LOCAL enable_seqscan = off"); err != nil {
			return fmt.Errorf("set plan options: %w", err)
		}
		// A line in conflict is under a stored key: the insert leaves it out, and it is moved
		// below, when some line of the run stored no new transaction.
		tag, err = tx.Exec(ctx, insert, runID)
		if err != nil {
			return fmt.Errorf("insert transactions: %w", err)
		}
		if _, err := tx.Exec(ctx, "RESET enable_seqscan"); err != nil {
			return fmt.Errorf("reset plan options: %w", err)
		}
		c, err = settleAfter(ctx, tx, runID, f, lines, tag.RowsAffected(), perRow)
		return err
	})
	return c, err
}

// settleBefore is what a settlement does before it inserts the run's new transactions, in tx,
// under the settlement's lock: it refreshes the planner's statistics for a run of more than
// analyzeAbove lines, and moves the in-file duplicates out unless f says there is none.
func settleBefore(ctx context.Context, tx pgx.Tx, runID string, f FileFacts, lines int64) error {
	if _, err := tx.Exec(ctx, "SET LOCAL work_mem = '256MB'"); err != nil {
		return fmt.Errorf("set work_mem: %w", err)
	}
	// Fresh statistics: the run's lines were just loaded and the previous
	// run may have grown transactions a lot; stale estimates give plans
	// that are orders of magnitude off. Not for a small run: its
	// statements cost little whatever their plans, while sampling the big
	// tables costs it seconds when other runs keep the database busy.
	if lines > analyzeAbove {
		if _, err := tx.Exec(ctx, "ANALYZE run_lines, transactions"); err != nil {
			return fmt.Errorf("analyze: %w", err)
		}
	}
	// Most files hold no duplicate: a hash aggregate finds that out for
	// half the cost of the sort the move needs, and the loader may know it already.
	var dups bool
	if !f.Distinct {
		if err := tx.QueryRow(ctx, `SELECT EXISTS (
			SELECT 1 FROM run_lines WHERE run_id = $1 GROUP BY account, id HAVING count(*) > 1)`, runID).Scan(&dups); err != nil {
			return fmt.Errorf("find duplicates: %w", err)
		}
	}
	if dups {
		if _, err := tx.Exec(ctx, sqlMoveDuplicates, runID, string(txn.ReasonDuplicateID)); err != nil {
			return fmt.Errorf("move duplicates: %w", err)
		}
	}
	return nil
}

// settleAfter is what a settlement does once the run's new transactions are inserted, n of them
// (by this call), in tx: it moves the lines in conflict out, counts, keys the lines of stored
// transactions, writes the run's outbox_runs row (unless perRow: outbox rows were written with
// the transactions) and records the totals on the run.
func settleAfter(ctx context.Context, tx pgx.Tx, runID string, f FileFacts, lines, n int64, perRow bool) (IngestCounts, error) {
	var c IngestCounts
	var err error
	// Every line 1..lines stored a new transaction (a new account's file, its history
	// often, the biggest of all): none is under a key stored before, so none conflicts, and
	// when this ingestion loaded them all its loader counted them already.
	allNew := n == lines
	if !allNew {
		if _, err := tx.Exec(ctx, sqlMoveConflicts, runID, string(txn.ReasonIDConflict)); err != nil {
			return c, fmt.Errorf("move conflicts: %w", err)
		}
	}
	if allNew && f.Loaded {
		c = IngestCounts{Accepted: n, Errors: f.ErrorLines, MaxSeq: lines}
		err = rejectedTotals(ctx, tx, runID, &c)
	} else {
		c, err = runTotals(ctx, tx, runID)
	}
	if err != nil {
		return c, err
	}
	c.New = n
	// When every line stored its transaction, every line has its key already. Otherwise
	// the lines of stored transactions take their keys, probing the primary key of
	// transactions line by line: hashing the whole store would cost its size, not the run's.
	if c.New < c.Accepted {
		if _, err := tx.Exec(ctx, "SET LOCAL enable_seqscan = off; SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off"); err != nil {
			return c, fmt.Errorf("set plan options: %w", err)
		}
		if _, err := tx.Exec(ctx, sqlKeyExisting, runID); err != nil {
			return c, fmt.Errorf("key lines of stored transactions: %w", err)
		}
		if _, err := tx.Exec(ctx, "RESET enable_seqscan; RESET enable_hashjoin; RESET enable_mergejoin"); err != nil {
			return c, fmt.Errorf("reset plan options: %w", err)
		}
	}
	if !perRow {
		if err := settleOutboxRun(ctx, tx, runID, f.Outbox, &c); err != nil {
			return c, err
		}
	}
	if _, err := tx.Exec(ctx, `UPDATE runs SET rows_read = $2, new_count = $3::bigint, all_new = ($3::bigint = $4::bigint),
		has_account_column = $5, has_date_column = $6 WHERE run_id = $1`,
		runID, f.RowsRead, c.New, c.Accepted, f.AccountColumn, f.DateColumn); err != nil {
		return c, fmt.Errorf("record totals: %w", err)
	}
	return c, nil
}
