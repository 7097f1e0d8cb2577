package postgres_test

import (
	"context"
	"errors"
	"net/url"
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

	require.Equal(t, int64(2), queryValue[int64](t, dbURL, "SELECT count(*) FROM schema_migrations"))
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
