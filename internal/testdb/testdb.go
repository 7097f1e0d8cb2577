// Package testdb gives each test a fresh, empty PostgreSQL database.
//
// When TXFLOW_TEST_DATABASE_URL is set it must point at a server where the
// URL's role may CREATE DATABASE; the databases are created there. Otherwise
// one devpg cluster (Fast settings, free loopback port, temporary directory)
// is started for the whole test binary and stopped by Main. With -short, URL
// skips the test.
package testdb

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/txflow/txflow/internal/devpg"
)

// EnvURL names the environment variable holding the URL of an existing
// server to create test databases on.
const EnvURL = "TXFLOW_TEST_DATABASE_URL"

var (
	mu      sync.Mutex
	cluster *devpg.Cluster
	tmpDir  string
	admin   string // URL of a maintenance database on the server
	initErr error
	inited  bool
	counter atomic.Int64
)

// URL returns the URL of a new, empty database for this test, dropped at
// cleanup. It uses TXFLOW_TEST_DATABASE_URL (a URL to a server where it may
// CREATE DATABASE) when set; otherwise it starts one devpg cluster (Fast)
// for the whole test binary in a temp dir, on a free port. It fails the test
// when no server is available. With -short it skips the test instead, before
// touching any server: the fast lane (make test-short) runs without
// PostgreSQL.
func URL(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skip("testdb: needs PostgreSQL, skipped with -short")
	}
	adminURL, err := server()
	if err != nil {
		t.Fatalf("testdb: %v", err)
	}
	name := fmt.Sprintf("txflow_test_%d_%d_%s", os.Getpid(), counter.Add(1), sanitize(t.Name()))
	if len(name) > 63 {
		name = name[:63]
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := execSQL(ctx, adminURL, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatalf("testdb: create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := execSQL(ctx, adminURL, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			t.Errorf("testdb: drop database %s: %v", name, err)
		}
	})
	u, err := url.Parse(adminURL)
	if err != nil {
		t.Fatalf("testdb: parse %s: %v", EnvURL, redact(err))
	}
	u.Path = "/" + name
	u.RawPath = ""
	return u.String()
}

// Main wraps testing.M: it runs the tests, then stops the shared cluster
// and removes its directory. Use as:
//
//	func TestMain(m *testing.M) { testdb.Main(m) }
func Main(m *testing.M) {
	code := m.Run()
	if err := shutdown(); err != nil {
		fmt.Fprintln(os.Stderr, "testdb:", err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

// server returns the admin URL, starting the shared cluster on first use.
func server() (string, error) {
	mu.Lock()
	defer mu.Unlock()
	if inited {
		return admin, initErr
	}
	inited = true
	if env := os.Getenv(EnvURL); env != "" {
		admin = env
		return admin, nil
	}
	if _, err := devpg.FindBinDir(); err != nil {
		initErr = err
		return "", initErr
	}
	dir, err := os.MkdirTemp("", "txflow-testdb-")
	if err == nil {
		// The server runs as an unprivileged user when tests run as root.
		err = os.Chmod(dir, 0o755)
	}
	if err != nil {
		initErr = fmt.Errorf("temp dir: %w", err)
		return "", initErr
	}
	tmpDir = dir
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c, err := devpg.Start(ctx, devpg.Options{DataDir: filepath.Join(dir, "pg"), Fast: true})
	if err != nil {
		initErr = err
		return "", initErr
	}
	cluster = c
	admin = c.URL("postgres")
	return admin, nil
}

func shutdown() error {
	mu.Lock()
	defer mu.Unlock()
	var err error
	if cluster != nil {
		err = cluster.Stop()
		cluster = nil
	}
	if tmpDir != "" && err == nil {
		err = os.RemoveAll(tmpDir)
		tmpDir = ""
	}
	return err
}

func execSQL(ctx context.Context, connURL, sql string) error {
	conn, err := pgx.Connect(ctx, connURL)
	if err != nil {
		return redact(err)
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, sql)
	return err
}

// redact removes the password of TXFLOW_TEST_DATABASE_URL from err's text.
func redact(err error) error {
	u, perr := url.Parse(os.Getenv(EnvURL))
	if perr != nil || u.User == nil {
		return err
	}
	if pw, ok := u.User.Password(); ok && pw != "" && strings.Contains(err.Error(), pw) {
		return fmt.Errorf("%s", strings.ReplaceAll(err.Error(), pw, "xxxxx"))
	}
	return err
}

var nonWord = regexp.MustCompile(`[^a-z0-9]+`)

func sanitize(name string) string {
	return strings.Trim(nonWord.ReplaceAllString(strings.ToLower(name), "_"), "_")
}

// LockTable takes an ACCESS EXCLUSIVE lock on table in an open transaction of its own session, so
// that any statement of txflow that touches the table waits (a stalled database, a lock held
// elsewhere), and returns the function that releases it; the test's cleanup releases it too.
func LockTable(t testing.TB, dbURL, table string) (release func()) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatalf("lock %s: connect: %v", table, err)
	}
	tx, err := conn.Begin(ctx)
	if err == nil {
		_, err = tx.Exec(ctx, "SET LOCAL lock_timeout = '30s'")
	}
	if err == nil {
		_, err = tx.Exec(ctx, "LOCK TABLE "+pgx.Identifier{table}.Sanitize()+" IN ACCESS EXCLUSIVE MODE")
	}
	if err != nil {
		_ = conn.Close(ctx)
		t.Fatalf("lock %s: %v", table, err)
	}
	var once sync.Once
	release = func() {
		once.Do(func() {
			_ = tx.Rollback(ctx)
			_ = conn.Close(ctx)
		})
	}
	t.Cleanup(release)
	return release
}
