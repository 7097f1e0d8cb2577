package devpg_test

import (
	"context"
	"os"
	"os/exec"
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

// skipShort skips a test that runs PostgreSQL's programs: -short runs without them.
func skipShort(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("runs PostgreSQL, skipped with -short")
	}
}

func TestStartStopRestartKeepsData(t *testing.T) {
	skipShort(t)
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
	require.Equal(t, c.Port(), c2.Port(), "a restarted cluster keeps its port, so its DATABASE_URL stays the same")
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
	skipShort(t)
	dir := tempDir(t)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("x"), 0o644))
	_, err := devpg.Start(context.Background(), devpg.Options{DataDir: dir})
	require.ErrorContains(t, err, "holds no PostgreSQL cluster")
}

func TestFindBinDir(t *testing.T) {
	if !testing.Short() { // -short runs without PostgreSQL installed
		dir, err := devpg.FindBinDir()
		require.NoError(t, err)
		for _, name := range []string{"initdb", "pg_ctl", "postgres"} {
			require.FileExists(t, filepath.Join(dir, name))
		}
	}

	t.Setenv("PG_BINDIR", t.TempDir())
	_, err := devpg.FindBinDir()
	require.Error(t, err)
	require.True(t, strings.Contains(err.Error(), "PG_BINDIR"), err.Error())
	require.True(t, strings.Contains(err.Error(), "apt-get install postgresql"), err.Error())
	require.True(t, strings.Contains(err.Error(), "DATABASE_URL"), err.Error())
}

// A state directory the server's user cannot reach (t.TempDir is 0700, owned by root) makes
// StartOrFallback put the cluster in the temporary directory, linked from the state directory;
// the next start finds it through the link on the same port, and `make clean-state` stops it and
// removes it.
func TestStartOrFallbackAndCleanState(t *testing.T) {
	skipShort(t)
	if os.Geteuid() != 0 {
		t.Skip("the fallback only happens when running as root (the server then runs as another user)")
	}
	makeBin, err := exec.LookPath("make")
	if err != nil {
		t.Skip("make is not installed")
	}
	makefile, err := filepath.Abs(filepath.Join("..", "..", "Makefile"))
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	checkout := t.TempDir()
	require.NoError(t, os.Chmod(checkout, 0o700))
	dataDir := filepath.Join(checkout, ".txflow", "pg")
	require.NoError(t, os.MkdirAll(filepath.Dir(dataDir), 0o755))
	tmp := devpg.TempDataDir(dataDir)
	t.Cleanup(func() { os.RemoveAll(tmp) })

	_, err = devpg.Start(ctx, devpg.Options{DataDir: dataDir, Fast: true})
	require.ErrorIs(t, err, devpg.ErrNotSearchable, "the plain Start cannot use this directory")

	c, err := devpg.StartOrFallback(ctx, devpg.Options{DataDir: dataDir, Fast: true, Logf: t.Logf})
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Stop() })
	require.Equal(t, tmp, c.DataDir())
	target, err := os.Readlink(dataDir)
	require.NoError(t, err, "the state directory links to the cluster")
	require.Equal(t, tmp, target)
	require.NoError(t, c.CreateDatabase(ctx, "txflow"))
	require.NoError(t, c.Stop())

	again, err := devpg.StartOrFallback(ctx, devpg.Options{DataDir: dataDir, Fast: true})
	require.NoError(t, err)
	t.Cleanup(func() { _ = again.Stop() })
	require.Equal(t, tmp, again.DataDir())
	require.Equal(t, c.Port(), again.Port(), "the same cluster, on the same port")
	conn, err := pgx.Connect(ctx, again.URL("txflow"))
	require.NoError(t, err, "the database made before the restart is there")
	conn.Close(ctx)

	// The server is still running: clean-state stops it and removes the cluster, link and all.
	cmd := exec.CommandContext(ctx, makeBin, "-f", makefile, "clean-state")
	cmd.Dir = checkout
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	t.Logf("make clean-state:\n%s", out)
	require.NoDirExists(t, tmp)
	require.NoDirExists(t, filepath.Join(checkout, ".txflow"))
	_, err = pgx.Connect(ctx, again.URL("txflow"))
	require.Error(t, err, "the server must be stopped")
}
