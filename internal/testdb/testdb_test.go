package testdb_test

import (
	"context"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/txflow/txflow/internal/testdb"
)

func TestMain(m *testing.M) { testdb.Main(m) }

func TestURLGivesFreshDatabasesDroppedAtCleanup(t *testing.T) {
	if testing.Short() {
		t.Skip("needs PostgreSQL, skipped with -short")
	}
	ctx := context.Background()
	var first string
	t.Run("inner", func(t *testing.T) {
		first = testdb.URL(t)
		second := testdb.URL(t)
		require.NotEqual(t, first, second)

		conn, err := pgx.Connect(ctx, first)
		require.NoError(t, err)
		defer conn.Close(ctx)
		var tables int
		require.NoError(t, conn.QueryRow(ctx, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").Scan(&tables))
		require.Zero(t, tables, "database must start empty")
		_, err = conn.Exec(ctx, "CREATE TABLE t (x int)")
		require.NoError(t, err)
	})

	// After the subtest's cleanup its databases are gone.
	u, err := url.Parse(first)
	require.NoError(t, err)
	name := strings.TrimPrefix(u.Path, "/")
	u.Path = "/postgres"
	conn, err := pgx.Connect(ctx, u.String())
	require.NoError(t, err)
	defer conn.Close(ctx)
	var exists bool
	require.NoError(t, conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists))
	require.False(t, exists, "database %s should have been dropped", name)
}

// TestURLFailsWithoutServer runs this test binary again with no PostgreSQL
// binaries reachable and no TXFLOW_TEST_DATABASE_URL: URL must fail the test
// (not skip it) with instructions.
func TestURLFailsWithoutServer(t *testing.T) {
	if os.Getenv("TESTDB_CHILD") == "1" {
		testdb.URL(t)
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run", "^TestURLFailsWithoutServer$", "-test.v")
	cmd.Env = append(os.Environ(), "TESTDB_CHILD=1", "PG_BINDIR="+t.TempDir(), testdb.EnvURL+"=")
	out, err := cmd.CombinedOutput()
	require.Error(t, err, "child must fail:\n%s", out)
	require.Contains(t, string(out), "--- FAIL: TestURLFailsWithoutServer")
	require.NotContains(t, string(out), "SKIP")
	require.Contains(t, string(out), "apt-get install postgresql")
	require.Contains(t, string(out), testdb.EnvURL)
}

// TestURLSkipsInShortMode runs this test binary again with -test.short and a server URL that
// cannot be reached: URL must skip the test, with its reason, before trying the server.
func TestURLSkipsInShortMode(t *testing.T) {
	if os.Getenv("TESTDB_CHILD") == "short" {
		testdb.URL(t)
		t.Fatal("URL returned in short mode")
	}
	cmd := exec.Command(os.Args[0], "-test.run", "^TestURLSkipsInShortMode$", "-test.v", "-test.short")
	cmd.Env = append(os.Environ(), "TESTDB_CHILD=short", "PG_BINDIR="+t.TempDir(),
		testdb.EnvURL+"=postgres://nobody@127.0.0.1:1/none?connect_timeout=1")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "child must pass:\n%s", out)
	require.Contains(t, string(out), "--- SKIP: TestURLSkipsInShortMode")
	require.Contains(t, string(out), "needs PostgreSQL, skipped with -short")
}
