package devpg_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/txflow/txflow/internal/devpg"
)

// tempDir returns a temporary directory the unprivileged server user can
// traverse (t.TempDir is 0700 and owned by the test user).
func tempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "devpg-test-")
	require.NoError(t, err)
	require.NoError(t, os.Chmod(dir, 0o755))
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func TestStartStopRestartKeepsData(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dataDir := filepath.Join(tempDir(t), "pg")

	c, err := devpg.Start(ctx, devpg.Options{DataDir: dataDir, Fast: true, Logf: t.Logf})
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Stop() })
	require.FileExists(t, filepath.Join(dataDir, "PG_VERSION"))
	require.Contains(t, c.URL("x"), "@127.0.0.1:")

	require.NoError(t, c.CreateDatabase(ctx, "app"))
	require.NoError(t, c.CreateDatabase(ctx, "app"), "CreateDatabase must be idempotent")

	conn, err := pgx.Connect(ctx, c.URL("app"))
	require.NoError(t, err)
	_, err = conn.Exec(ctx, "CREATE TABLE kept (v text); INSERT INTO kept VALUES ('survives restart')")
	require.NoError(t, err)
	var listen, socketDir string
	require.NoError(t, conn.QueryRow(ctx, "SELECT current_setting('listen_addresses'), current_setting('unix_socket_directories')").Scan(&listen, &socketDir))
	require.Equal(t, "127.0.0.1", listen)
	require.Equal(t, c.DataDir(), socketDir)
	conn.Close(ctx)

	// A second Start on the running cluster adopts it...
	again, err := devpg.Start(ctx, devpg.Options{DataDir: dataDir})
	require.NoError(t, err)
	require.Equal(t, c.Port(), again.Port())
	// ...unless it is asked for another port.
	_, err = devpg.Start(ctx, devpg.Options{DataDir: dataDir, Port: c.Port() + 1})
	require.ErrorContains(t, err, "already running")

	require.NoError(t, c.Stop())
	require.NoError(t, c.Stop(), "Stop must be idempotent")
	require.NoFileExists(t, filepath.Join(dataDir, "postmaster.pid"))
	_, err = pgx.Connect(ctx, c.URL("app"))
	require.Error(t, err, "server must be down after Stop")

	c2, err := devpg.Start(ctx, devpg.Options{DataDir: dataDir, Fast: true})
	require.NoError(t, err)
	t.Cleanup(func() { _ = c2.Stop() })
	conn, err = pgx.Connect(ctx, c2.URL("app"))
	require.NoError(t, err)
	defer conn.Close(ctx)
	var v string
	require.NoError(t, conn.QueryRow(ctx, "SELECT v FROM kept").Scan(&v))
	require.Equal(t, "survives restart", v)
	var fsync string
	require.NoError(t, conn.QueryRow(ctx, "SHOW fsync").Scan(&fsync))
	require.Equal(t, "off", fsync)
	require.NoError(t, c2.Stop())
}

func TestStartRejectsForeignDirectory(t *testing.T) {
	dir := tempDir(t)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("x"), 0o644))
	_, err := devpg.Start(context.Background(), devpg.Options{DataDir: dir})
	require.ErrorContains(t, err, "holds no PostgreSQL cluster")
}

func TestFindBinDir(t *testing.T) {
	dir, err := devpg.FindBinDir()
	require.NoError(t, err)
	for _, name := range []string{"initdb", "pg_ctl", "postgres"} {
		require.FileExists(t, filepath.Join(dir, name))
	}

	t.Setenv("PG_BINDIR", t.TempDir())
	_, err = devpg.FindBinDir()
	require.Error(t, err)
	require.True(t, strings.Contains(err.Error(), "PG_BINDIR"), err.Error())
	require.True(t, strings.Contains(err.Error(), "apt-get install postgresql"), err.Error())
	require.True(t, strings.Contains(err.Error(), "DATABASE_URL"), err.Error())
}
