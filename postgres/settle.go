package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/sync/errgroup"
)

// A big run's settlement inserts its new transactions in parts.
//
// PostgreSQL runs one statement on one core, and the insert of a run's new transactions is most
// of its settlement (about 7 µs a line, in the primary key of transactions): in one statement the
// database's other cores idle while it runs, and nothing else of the run can start. A run of more
// than DefaultSettleInPartsAbove lines inserts them in parts of its lines (ranges of seq), each in
// a transaction of its own, on DefaultSettleParts connections at once:
//
//  1. under the settlement's lock, held by the session of one connection (pg_advisory_lock) from
//     the first step to the last, so that no other settlement or account purge runs meanwhile:
//     one transaction refreshes the statistics, moves the in-file duplicates out and, when
//     delivery is on, writes the run's outbox_runs row with max_seq 0 (a placeholder: it covers
//     no line yet, and says which ingestion's transactions are to publish should the settlement
//     be resumed by another ingestion of the run);
//  2. the parts: each inserts the new transactions of its range of lines and adds how many to
//     runs.settling_new, in one transaction, on its own connection;
//  3. one transaction does the rest, as a settlement in one transaction does after its insert
//     (conflicts, counts, keys, the outbox_runs row's max_seq), with settling_new as the count of
//     new transactions, sets settling_new back to 0 and marks the run settled (ingested_at: when
//     the first step began, as a settlement in one transaction records when it began).
//
// The run is settled only once the last step commits. A settlement that fails or dies in between
// leaves the transactions of the parts that committed stored, and counted in settling_new: the
// next attempt of the same ingestion (the activity's retry) finds them stored by this ingestion
// (their keys carry its number), inserts the rest and counts them all as new. An ingestion started
// over (runs.num drawn again) finds them stored before it, as it finds the transactions of an
// earlier ingestion that settled, and its outbox_runs row keeps them to publish. Meanwhile other
// runs may see those transactions: they are stored, their results not yet.
const (
	// DefaultSettleParts is how many parts of a big run are inserted at once (connections).
	DefaultSettleParts = 2
	// DefaultSettleInPartsAbove is the number of a run's lines above which its new transactions
	// are inserted in parts.
	DefaultSettleInPartsAbove = 200_000
	// settlePartsPerConn is how many parts each connection inserts on average: parts are
	// taken in turn, so that a connection that got its own late, or a slower one, does less.
	settlePartsPerConn = 2
	// minSettlePart is the fewest lines of a part.
	minSettlePart = 50_000
)

// errSettleInOne says that the run is settled in one transaction after all: delivery is on and
// its messages are not all this ingestion's (outbox rows, or an outbox_runs row of an earlier
// ingestion), a case settleOutboxRun handles in the transaction that inserts.
var errSettleInOne = errors.New("settle in one transaction")

// errRunStartedOver is the error of a part whose run's ingestion was started over meanwhile.
var errRunStartedOver = errors.New("the run's ingestion was started over during its settlement")

// sqlInsertNewPart is sqlInsertNew for the run's lines of seq in [$2, $3].
const sqlInsertNewPart = sqlInsertNew + `
  AND rl.seq BETWEEN $2 AND $3`

// settleInParts settles a big run in parts (see DefaultSettleParts), or in one transaction when
// errSettleInOne says so.
func (db *DB) settleInParts(ctx context.Context, conn *pgxpool.Conn, runID string, f FileFacts, lines int64) (IngestCounts, error) {
	if err := lockSettlementSession(ctx, conn); err != nil {
		return IngestCounts{}, err
	}
	defer unlockSettlementSession(ctx, conn)
	var num int64
	var began time.Time // ingested_at, as a settlement in one transaction records it: when it began
	err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, "SELECT now()").Scan(&began); err != nil {
			return fmt.Errorf("read the time: %w", err)
		}
		err := tx.QueryRow(ctx, "SELECT num FROM runs WHERE run_id = $1", runID).Scan(&num)
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrRunNotFound
		}
		if err != nil {
			return fmt.Errorf("read run: %w", err)
		}
		if f.Outbox {
			var splits bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM outbox WHERE run_id = $1)
				OR EXISTS (SELECT 1 FROM outbox_runs o JOIN runs r USING (run_id) WHERE o.run_id = $1 AND o.num <> r.num)`,
				runID).Scan(&splits); err != nil {
				return fmt.Errorf("find earlier messages: %w", err)
			}
			if splits {
				return errSettleInOne
			}
		}
		if err := settleBefore(ctx, tx, runID, f, lines); err != nil || !f.Outbox {
			return err
		}
		if _, err := tx.Exec(ctx, "DELETE FROM outbox_acked WHERE run_id = $1 AND NOT EXISTS (SELECT 1 FROM outbox_runs WHERE run_id = $1)", runID); err != nil {
			return fmt.Errorf("delete stale outbox_acked: %w", err)
		}
		if _, err := tx.Exec(ctx, "INSERT INTO outbox_runs (run_id, num, max_seq) VALUES ($1, $2, 0) ON CONFLICT (run_id) DO NOTHING", runID, num); err != nil {
			return fmt.Errorf("write outbox_runs: %w", err)
		}
		return nil
	})
	if errors.Is(err, errSettleInOne) {
		// Its transaction takes the lock again, which this session holds already.
		return settleInOne(ctx, conn, runID, f, lines)
	}
	if err != nil {
		return IngestCounts{}, err
	}
	if err := db.insertNewInParts(ctx, conn, runID, num, lines); err != nil {
		return IngestCounts{}, err
	}
	var c IngestCounts
	err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SET LOCAL work_mem = '256MB'"); err != nil {
			return fmt.Errorf("set work_mem: %w", err)
		}
		var n int64
		err := tx.QueryRow(ctx, "SELECT settling_new FROM runs WHERE run_id = $1 AND num = $2 FOR UPDATE", runID, num).Scan(&n)
		if errors.Is(err, pgx.ErrNoRows) {
			return errRunStartedOver
		}
		if err != nil {
			return fmt.Errorf("read the parts' count: %w", err)
		}
		if _, err := tx.Exec(ctx, "UPDATE runs SET ingested_at = $2, settling_new = 0 WHERE run_id = $1", runID, began); err != nil {
			return fmt.Errorf("mark run: %w", err)
		}
		c, err = settleAfter(ctx, tx, runID, f, lines, n, false)
		return err
	})
	return c, err
}

// insertNewInParts inserts the new transactions of the run's lines 1..lines in parts, taken in
// turn by conn and by up to db.settleParts-1 connections of the pool, each part in a transaction
// that adds its count to runs.settling_new (for the ingestion num). A connection the pool cannot
// give before the parts are all taken is not waited for.
func (db *DB) insertNewInParts(ctx context.Context, conn *pgxpool.Conn, runID string, num, lines int64) error {
	size := max(db.settleMinPart, (lines+int64(db.settleParts*settlePartsPerConn)-1)/int64(db.settleParts*settlePartsPerConn))
	parts := (lines + size - 1) / size
	var next atomic.Int64
	insert := func(ctx context.Context, q interface {
		Begin(context.Context) (pgx.Tx, error)
	}) error {
		for {
			p := next.Add(1) - 1
			if p >= parts {
				return nil
			}
			from, to := p*size+1, min((p+1)*size, lines)
			err := pgx.BeginFunc(ctx, q, func(tx pgx.Tx) error {
				// As in one transaction: probes of the primary key, never a scan of transactions.
				if _, err := tx.Exec(ctx, "SET LOCAL enable_seqscan = off"); err != nil {
					return fmt.Errorf("set plan options: %w", err)
				}
				tag, err := tx.Exec(ctx, sqlInsertNewPart, runID, from, to)
				if err != nil {
					return fmt.Errorf("insert transactions of lines %d to %d: %w", from, to, err)
				}
				tag, err = tx.Exec(ctx, "UPDATE runs SET settling_new = settling_new + $3 WHERE run_id = $1 AND num = $2",
					runID, num, tag.RowsAffected())
				if err != nil {
					return fmt.Errorf("count transactions of lines %d to %d: %w", from, to, err)
				}
				if tag.RowsAffected() == 0 {
					return errRunStartedOver
				}
				return nil
			})
			if err != nil {
				return err
			}
			if db.afterSettlePart != nil {
				if err := db.afterSettlePart(p); err != nil {
					return err
				}
			}
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	// The helpers' wait for a connection ends when every part is taken.
	acquireCtx, taken := context.WithCancel(gctx)
	defer taken()
	for range db.settleParts - 1 {
		g.Go(func() error {
			c, err := db.pool.Acquire(acquireCtx)
			if err != nil {
				if acquireCtx.Err() != nil {
					return nil // every part taken, or another failed: its error is the group's
				}
				return err
			}
			defer c.Release()
			return insert(gctx, c)
		})
	}
	g.Go(func() error {
		defer taken()
		return insert(gctx, conn)
	})
	return g.Wait()
}

// lockSettlementSession takes the lock that serialises settlements (and account purges) in
// conn's session, waiting as lockSettlement does. On error the lock may be held: conn is then
// closed, which releases it.
func lockSettlementSession(ctx context.Context, conn *pgxpool.Conn) error {
	err := waitForSettlementLock(ctx, conn, "SELECT pg_advisory_lock($1)", false)
	if err != nil {
		closeConn(ctx, conn)
	}
	return err
}

// unlockSettlementSession releases the lock lockSettlementSession took, or closes conn when it
// cannot tell that it did.
func unlockSettlementSession(ctx context.Context, conn *pgxpool.Conn) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	var released bool
	if err := conn.QueryRow(ctx, "SELECT pg_advisory_unlock($1)", lockFinishIngest).Scan(&released); err != nil || !released {
		closeConn(ctx, conn)
	}
}

// closeConn closes conn's connection, which ends its session and releases its locks; the pool
// drops it when conn is released.
func closeConn(ctx context.Context, conn *pgxpool.Conn) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	_ = conn.Conn().Close(ctx)
}

// withConn runs fn with a connection of the pool.
func (db *DB) withConn(ctx context.Context, fn func(*pgxpool.Conn) error) error {
	conn, err := db.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	return fn(conn)
}
