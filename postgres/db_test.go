package postgres_test

import (
	"context"
	"errors"
	"net/url"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/require"

	"github.com/txflow/txflow/internal/testdb"
	"github.com/txflow/txflow/postgres"
	"github.com/txflow/txflow/txn"
)

func TestMain(m *testing.M) { testdb.Main(m) }

// openDB returns a migrated store on a fresh database, and its URL.
func openDB(t *testing.T) (*postgres.DB, string) {
	t.Helper()
	dbURL := testdb.URL(t)
	ctx := context.Background()
	db, err := postgres.Open(ctx, dbURL)
	require.NoError(t, err)
	t.Cleanup(db.Close)
	require.NoError(t, db.Migrate(ctx))
	return db, dbURL
}

// queryValue runs a single-value query on dbURL, outside the store.
func queryValue[T any](t *testing.T, dbURL, sql string, args ...any) T {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dbURL)
	require.NoError(t, err)
	defer conn.Close(ctx)
	var v T
	require.NoError(t, conn.QueryRow(ctx, sql, args...).Scan(&v))
	return v
}

func TestMigrateConcurrentlyAndTwice(t *testing.T) {
	dbURL := testdb.URL(t)
	ctx := context.Background()

	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			db, err := postgres.Open(ctx, dbURL)
			if err != nil {
				errs[i] = err
				return
			}
			defer db.Close()
			errs[i] = db.Migrate(ctx)
		}()
	}
	wg.Wait()
	require.NoError(t, errs[0])
	require.NoError(t, errs[1])

	db, err := postgres.Open(ctx, dbURL)
	require.NoError(t, err)
	defer db.Close()
	require.NoError(t, db.Migrate(ctx), "second Migrate must be a no-op")

	files, err := filepath.Glob("migrations/*.sql")
	require.NoError(t, err)
	require.Equal(t, int64(len(files)), queryValue[int64](t, dbURL, "SELECT count(*) FROM schema_migrations"))
	require.Equal(t, int64(1), queryValue[int64](t, dbURL, "SELECT count(*) FROM schema_migrations WHERE version = 1 AND name = '001_init'"))
	for _, table := range []string{"runs", "transactions", "run_lines", "rejected_rows", "tags", "annotations"} {
		require.True(t, queryValue[bool](t, dbURL, "SELECT to_regclass($1) IS NOT NULL", table), table)
	}
}

func TestOpenErrorsHidePassword(t *testing.T) {
	const password = "s3cr3t-Pa55"
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// Nothing listens on port 1: a connection error, returned wrapped.
	_, err := postgres.Open(ctx, "postgres://txflow:"+password+"@127.0.0.1:1/txflow?sslmode=disable&connect_timeout=5")
	require.Error(t, err)
	require.NotContains(t, err.Error(), password)
	var connectErr *pgconn.ConnectError
	require.True(t, errors.As(err, &connectErr), "want a wrapped *pgconn.ConnectError, got %T: %v", err, err)

	// Malformed URL.
	_, err = postgres.Open(ctx, "postgres://txflow:"+password+"@127.0.0.1:notaport/txflow")
	require.Error(t, err)
	require.NotContains(t, err.Error(), password)

	// Wrong password on a real server (trust auth ignores it, so use an
	// unknown database to get a server-side failure).
	u, err := url.Parse(testdb.URL(t))
	require.NoError(t, err)
	u.User = url.UserPassword(u.User.Username(), password)
	u.Path += "_missing"
	db, err := postgres.Open(ctx, u.String())
	if err == nil {
		db.Close()
	}
	require.Error(t, err)
	require.NotContains(t, err.Error(), password)
}

func TestSafeCellFunctionMatchesTxn(t *testing.T) {
	_, dbURL := openDB(t)
	inputs := []string{"", "plain", "=1+1", "+33 6", "-3.00", "@SUM(A1)", "\tTAB", "\rCR", "\nLF", " =space",
		"'quoted", "a=b", "é=", "==", "-", "\x7f"}
	for _, s := range inputs {
		got := queryValue[string](t, dbURL, "SELECT txflow_safe_cell($1)", s)
		require.Equal(t, txn.SafeCell(s), got, "input %q", s)
	}
	require.True(t, queryValue[bool](t, dbURL, "SELECT txflow_safe_cell(NULL) IS NULL"))
}

func TestUnknownRun(t *testing.T) {
	db, _ := openDB(t)
	ctx := context.Background()
	_, err := db.FinishIngest(ctx, "nope", 0)
	require.ErrorIs(t, err, postgres.ErrRunNotFound)
	_, err = db.RunCounts(ctx, "nope")
	require.ErrorIs(t, err, postgres.ErrRunNotFound)
	_, err = db.WriteOutput(ctx, "nope", postgres.OutputOptions{}, new(discard))
	require.ErrorIs(t, err, postgres.ErrRunNotFound)
	_, err = db.WriteErrorReport(ctx, "nope", new(discard))
	require.ErrorIs(t, err, postgres.ErrRunNotFound)
	_, err = db.TagChunk(ctx, "nope", 1, 10, tagWord)
	require.ErrorIs(t, err, postgres.ErrRunNotFound)
	err = db.LoadBatch(ctx, "nope", 1, []txn.Record{rec(2, "A", "1.00", "TAXI")}, nil)
	require.ErrorIs(t, err, postgres.ErrRunNotFound)

	// Results are computed only for settled runs.
	mustBegin(t, db, postgres.Run{ID: "loading", File: "f", SHA256: "s"})
	require.NoError(t, db.LoadBatch(ctx, "loading", 1, []txn.Record{rec(2, "A", "1.00", "TAXI")}, nil))
	_, err = db.TagChunk(ctx, "loading", 1, 10, tagWord)
	require.ErrorIs(t, err, postgres.ErrRunNotIngested)
	_, err = db.AnnotateChunk(ctx, "loading", 1, 10, annotate)
	require.ErrorIs(t, err, postgres.ErrRunNotIngested)

	// A settled run takes no more lines until BeginIngest restarts it.
	_, err = db.FinishIngest(ctx, "loading", 0)
	require.NoError(t, err)
	err = db.LoadBatch(ctx, "loading", 2, []txn.Record{rec(3, "B", "1.00", "TAXI")}, nil)
	require.ErrorContains(t, err, "already finished")
}

type discard struct{}

func (*discard) Write(p []byte) (int, error) { return len(p), nil }

// rec builds an accepted record.
func rec(line int64, id, amount, wording string) txn.Record {
	return txn.Record{Line: line, ID: id, Amount: decimal.RequireFromString(amount), RawAmount: amount, Wording: wording}
}

// mustBegin starts the ingestion of run from scratch.
func mustBegin(t testing.TB, db *postgres.DB, run postgres.Run) {
	t.Helper()
	_, err := db.BeginIngest(context.Background(), run, false)
	require.NoError(t, err)
}

// blockedBeginIngest runs BeginIngest, which writes the runs table, and returns its error and how
// long it took; it fails the test if the call has not returned within a minute.
func blockedBeginIngest(t *testing.T, db *postgres.DB) (error, time.Duration) {
	t.Helper()
	began := time.Now()
	done := make(chan error, 1)
	go func() {
		// No deadline on the context: only the server's timeouts may end the wait.
		_, err := db.BeginIngest(context.Background(), postgres.Run{ID: "blocked", File: "f.csv"}, false)
		done <- err
	}()
	select {
	case err := <-done:
		return err, time.Since(began)
	case <-time.After(time.Minute):
		t.Fatal("BeginIngest still blocked after a minute")
		return nil, 0
	}
}

func TestBlockedStatementTimesOut(t *testing.T) {
	dbURL := testdb.URL(t)
	ctx := context.Background()
	migrated, err := postgres.Open(ctx, dbURL)
	require.NoError(t, err)
	require.NoError(t, migrated.Migrate(ctx))
	migrated.Close()

	cases := []struct {
		name string
		opts postgres.Options
		code string
	}{
		{"lock timeout", postgres.Options{LockTimeout: 500 * time.Millisecond, StatementTimeout: -1}, "55P03"},
		{"statement timeout", postgres.Options{StatementTimeout: 700 * time.Millisecond, LockTimeout: -1}, "57014"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			db, err := postgres.OpenWith(ctx, dbURL, tc.opts)
			require.NoError(t, err)
			defer db.Close()

			release := testdb.LockTable(t, dbURL, "runs")
			err, took := blockedBeginIngest(t, db)
			require.Error(t, err)
			t.Logf("after %s: %v", took.Round(time.Millisecond), err)
			var pgErr *pgconn.PgError
			require.True(t, errors.As(err, &pgErr), "want a wrapped *pgconn.PgError, got %T: %v", err, err)
			require.Equal(t, tc.code, pgErr.Code)
			require.True(t, postgres.IsTimeout(err))
			require.Less(t, took, 10*time.Second)

			// Once the lock is released the same store works again.
			release()
			_, err = db.BeginIngest(ctx, postgres.Run{ID: "blocked", File: "f.csv"}, false)
			require.NoError(t, err)
		})
	}

	// A statement under the timeouts is left alone, and a timeout set in the URL wins.
	u, err := url.Parse(dbURL)
	require.NoError(t, err)
	q := u.Query()
	q.Set("lock_timeout", "3s")
	u.RawQuery = q.Encode()
	db, err := postgres.OpenWith(ctx, u.String(), postgres.Options{LockTimeout: 100 * time.Millisecond})
	require.NoError(t, err)
	defer db.Close()
	release := testdb.LockTable(t, dbURL, "runs")
	time.AfterFunc(time.Second, release)
	err, took := blockedBeginIngest(t, db)
	require.NoError(t, err, "the lock was released after 1 s, within the URL's 3 s")
	require.GreaterOrEqual(t, took, 900*time.Millisecond)

	require.False(t, postgres.IsTimeout(errors.New("connection refused")))
	require.False(t, postgres.IsTimeout(&pgconn.PgError{Code: "23505"}))
}

// TestFinishIngestWaitsForAnotherSettleBeyondTheLockTimeout: a run waiting for another run's
// settling (serialised by an advisory lock) is not stalled, however long that takes, while the
// lock timeout still applies to the settling statements themselves.
func TestFinishIngestWaitsForAnotherSettleBeyondTheLockTimeout(t *testing.T) {
	dbURL := testdb.URL(t)
	ctx := context.Background()
	migrated, err := postgres.Open(ctx, dbURL)
	require.NoError(t, err)
	require.NoError(t, migrated.Migrate(ctx))
	migrated.Close()

	db, err := postgres.OpenWith(ctx, dbURL, postgres.Options{LockTimeout: 200 * time.Millisecond, StatementTimeout: -1})
	require.NoError(t, err)
	defer db.Close()
	_, err = db.BeginIngest(ctx, postgres.Run{ID: "waiting", File: "w.csv", SHA256: "00"}, false)
	require.NoError(t, err)
	require.NoError(t, db.LoadBatch(ctx, "waiting", 1, []txn.Record{{Line: 2, ID: "1", Amount: decimal.RequireFromString("1.00"), RawAmount: "1.00", Wording: "A"}}, nil))

	// Another session settles: it holds the settling lock for 1 s, five times the lock timeout.
	other, err := pgx.Connect(ctx, dbURL)
	require.NoError(t, err)
	defer other.Close(ctx)
	_, err = other.Exec(ctx, "SELECT pg_advisory_lock(x'7478666c6f770002'::bigint)")
	require.NoError(t, err)
	time.AfterFunc(time.Second, func() { _, _ = other.Exec(ctx, "SELECT pg_advisory_unlock(x'7478666c6f770002'::bigint)") })

	began := time.Now()
	c, err := db.FinishIngest(ctx, "waiting", 1)
	require.NoError(t, err, "waiting for another run's settling is not a lock timeout")
	require.GreaterOrEqual(t, time.Since(began), 900*time.Millisecond)
	require.EqualValues(t, 1, c.New)

	// The lock timeout is back for the settling statements: a table held elsewhere still times out.
	_, err = db.BeginIngest(ctx, postgres.Run{ID: "waiting2", File: "w2.csv", SHA256: "01"}, false)
	require.NoError(t, err)
	release := testdb.LockTable(t, dbURL, "transactions")
	defer release()
	_, err = db.FinishIngest(ctx, "waiting2", 0)
	require.Error(t, err)
	require.True(t, postgres.IsTimeout(err), "got %v", err)
}
