// Package devpg runs a project-local PostgreSQL cluster from the server
// binaries installed on the machine, for development and tests.
//
// The cluster is meant for a developer box or a CI runner, not for
// production: it listens on 127.0.0.1 only, keeps its Unix socket inside the
// data directory, and authenticates loopback connections with "trust" (any
// local process may connect as the superuser "postgres" without a password).
//
// When the calling process runs as root, initdb, pg_ctl and postgres (which
// all refuse to run as root) are run as the "postgres" system user when it
// exists and as "nobody" otherwise; the data directory is chowned to that
// user and its parent directories must be traversable by it.
package devpg

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// ErrNotSearchable is returned (wrapped) by Start when, running as root, a directory above the
// data directory cannot be traversed by the unprivileged user the server runs as.
var ErrNotSearchable = errors.New("not searchable by the server user")

// Superuser is the name of the superuser role created by initdb.
const Superuser = "postgres"

// confFile is the settings file written on every Start and included from
// postgresql.conf.
const confFile = "txflow.conf"

// installHint ends FindBinDir errors.
const installHint = "install them (Debian/Ubuntu: apt-get install postgresql), set PG_BINDIR to their directory, " +
	"or set DATABASE_URL (TXFLOW_TEST_DATABASE_URL for tests) to an existing server"

// maxSocketPath is the longest Unix socket path the kernel accepts
// (sizeof(sun_path) - 1 on Linux).
const maxSocketPath = 107

// Options configures Start.
type Options struct {
	// DataDir is the cluster directory. It is created and initialised with
	// initdb when missing or empty, and reused when it already holds a
	// cluster.
	DataDir string
	// Port is the TCP port on 127.0.0.1; 0 picks a free port (or the port of
	// the cluster already running in DataDir).
	Port int
	// BinDir holds initdb, pg_ctl and postgres; "" finds it with FindBinDir.
	BinDir string
	// Fast turns off fsync, synchronous_commit and full_page_writes: much
	// faster, but a machine crash can corrupt the cluster. Meant for tests.
	Fast bool
	// Logf, when set, receives progress messages.
	Logf func(format string, args ...any)
}

// Cluster is a running PostgreSQL cluster started (or adopted) by Start.
type Cluster struct {
	dataDir string
	binDir  string
	port    int
	cred    *syscall.Credential
	logf    func(format string, args ...any)

	stopOnce sync.Once
	stopErr  error
}

// FindBinDir returns the directory holding the PostgreSQL server binaries
// (initdb, pg_ctl, postgres). It looks, in order, at $PG_BINDIR,
// `pg_config --bindir`, the newest /usr/lib/postgresql/*/bin and the PATH.
// Its error tells how to install the server or how to use an existing one.
func FindBinDir() (string, error) {
	var tried []string
	check := func(dir string) bool {
		if dir == "" {
			return false
		}
		tried = append(tried, dir)
		return hasServerBinaries(dir)
	}
	if dir := os.Getenv("PG_BINDIR"); dir != "" {
		if check(dir) {
			return dir, nil
		}
		return "", fmt.Errorf("PG_BINDIR=%s does not contain initdb, pg_ctl and postgres: %s", dir, installHint)
	}
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		if check(strings.TrimSpace(string(out))) {
			return strings.TrimSpace(string(out)), nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return versionOf(dirs[i]) > versionOf(dirs[j]) })
	for _, dir := range dirs {
		if check(dir) {
			return dir, nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			p = real
		}
		if dir := filepath.Dir(p); check(dir) {
			return dir, nil
		}
	}
	return "", fmt.Errorf("no PostgreSQL server binaries (initdb, pg_ctl, postgres) found (looked in %s): %s",
		strings.Join(append(tried, "PATH"), ", "), installHint)
}

func hasServerBinaries(dir string) bool {
	for _, name := range []string{"initdb", "pg_ctl", "postgres"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
			return false
		}
	}
	return true
}

// versionOf extracts the major version from /usr/lib/postgresql/NN/bin.
func versionOf(dir string) float64 {
	v, err := strconv.ParseFloat(filepath.Base(filepath.Dir(dir)), 64)
	if err != nil {
		return -1
	}
	return v
}

// Start initialises DataDir when needed and starts the cluster, waiting
// until it accepts connections. If a server is already running in DataDir
// (live postmaster.pid), Start adopts it; it fails when that server listens
// on another port than a non-zero opts.Port. Errors from initdb and pg_ctl
// include their output and the tail of the server log.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	if opts.DataDir == "" {
		return nil, errors.New("devpg: DataDir is required")
	}
	dataDir, err := filepath.Abs(opts.DataDir)
	if err != nil {
		return nil, fmt.Errorf("devpg: data dir: %w", err)
	}
	binDir := opts.BinDir
	if binDir == "" {
		if binDir, err = FindBinDir(); err != nil {
			return nil, fmt.Errorf("devpg: %w", err)
		}
	} else if !hasServerBinaries(binDir) {
		return nil, fmt.Errorf("devpg: %s does not contain initdb, pg_ctl and postgres", binDir)
	}
	c := &Cluster{dataDir: dataDir, binDir: binDir, logf: opts.Logf}
	if c.logf == nil {
		c.logf = func(string, ...any) {}
	}

	if pid, port, ok := runningServer(dataDir); ok {
		if opts.Port != 0 && opts.Port != port {
			return nil, fmt.Errorf("devpg: a server (pid %d) is already running in %s on port %d, not %d; stop it with: pg_ctl stop -D %s",
				pid, dataDir, port, opts.Port, dataDir)
		}
		c.port = port
		if c.cred, err = credentialFor(dataDir); err != nil {
			return nil, err
		}
		c.logf("devpg: reusing server pid %d in %s on port %d", pid, dataDir, port)
		if err := c.waitReady(ctx, 30*time.Second); err != nil {
			return nil, fmt.Errorf("devpg: running server in %s: %w", dataDir, err)
		}
		return c, nil
	}

	if err := c.ensureInitialised(ctx); err != nil {
		return nil, err
	}
	c.port = opts.Port
	if c.port == 0 {
		// The port of the previous start, when it is still free, so that the DATABASE_URL
		// given to a worker stays the same across restarts of the same cluster.
		if prev := previousPort(dataDir); prev > 0 && portFree(prev) {
			c.port = prev
		} else if c.port, err = freePort(); err != nil {
			return nil, fmt.Errorf("devpg: pick a port: %w", err)
		}
	}
	if err := c.writeConf(opts.Fast); err != nil {
		return nil, err
	}
	logFile := filepath.Join(dataDir, "postgres.log")
	c.logf("devpg: starting PostgreSQL in %s on 127.0.0.1:%d", dataDir, c.port)
	if out, err := c.run(ctx, "pg_ctl", "start", "-D", dataDir, "-l", logFile, "-w", "-t", "60", "-s"); err != nil {
		return nil, fmt.Errorf("devpg: pg_ctl start: %w: %s%s", err, out, c.logTail())
	}
	if err := c.waitReady(ctx, 30*time.Second); err != nil {
		_ = c.Stop()
		return nil, fmt.Errorf("devpg: wait for server: %w%s", err, c.logTail())
	}
	return c, nil
}

// ensureInitialised creates and initdb's the data directory unless it
// already holds a cluster.
func (c *Cluster) ensureInitialised(ctx context.Context) error {
	if _, err := os.Stat(filepath.Join(c.dataDir, "PG_VERSION")); err == nil {
		cred, err := credentialFor(c.dataDir)
		if err != nil {
			return err
		}
		c.cred = cred
		return nil
	}
	entries, err := os.ReadDir(c.dataDir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if err := os.MkdirAll(c.dataDir, 0o700); err != nil {
			return fmt.Errorf("devpg: create data dir: %w", err)
		}
	case err != nil:
		return fmt.Errorf("devpg: read data dir: %w", err)
	case len(entries) > 0:
		return fmt.Errorf("devpg: %s is not empty and holds no PostgreSQL cluster (no PG_VERSION)", c.dataDir)
	}
	cred, err := serverCredential()
	if err != nil {
		return err
	}
	c.cred = cred
	if cred != nil {
		if err := os.Chown(c.dataDir, int(cred.Uid), int(cred.Gid)); err != nil {
			return fmt.Errorf("devpg: chown data dir: %w", err)
		}
		if err := checkTraversable(filepath.Dir(c.dataDir), cred); err != nil {
			return err
		}
	}
	if err := os.Chmod(c.dataDir, 0o700); err != nil {
		return fmt.Errorf("devpg: chmod data dir: %w", err)
	}
	c.logf("devpg: initdb %s", c.dataDir)
	out, err := c.run(ctx, "initdb", "-D", c.dataDir, "-U", Superuser, "--auth=trust",
		"--encoding=UTF8", "--locale=C", "--no-instructions")
	if err != nil {
		return fmt.Errorf("devpg: initdb: %w: %s", err, out)
	}
	f, err := os.OpenFile(filepath.Join(c.dataDir, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("devpg: open postgresql.conf: %w", err)
	}
	_, err = fmt.Fprintf(f, "\n# Settings managed by devpg, rewritten on every start.\ninclude_if_exists = '%s'\n", confFile)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("devpg: write postgresql.conf: %w", err)
	}
	return nil
}

// writeConf writes the per-start settings: port, loopback-only listening,
// socket directory and tuning.
func (c *Cluster) writeConf(fast bool) error {
	socketDir := c.dataDir
	if len(socketDir)+len("/.s.PGSQL.65535") > maxSocketPath {
		c.logf("devpg: data dir path too long for a Unix socket; TCP only")
		socketDir = ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "port = %d\n", c.port)
	b.WriteString("listen_addresses = '127.0.0.1'\n")
	fmt.Fprintf(&b, "unix_socket_directories = '%s'\n", strings.ReplaceAll(socketDir, "'", "''"))
	b.WriteString("max_connections = 100\n")
	b.WriteString("shared_buffers = '256MB'\n")
	b.WriteString("work_mem = '32MB'\n")
	b.WriteString("maintenance_work_mem = '256MB'\n")
	b.WriteString("max_wal_size = '4GB'\n")
	b.WriteString("checkpoint_timeout = '15min'\n")
	b.WriteString("logging_collector = off\n")
	if fast {
		b.WriteString("fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n")
	}
	path := filepath.Join(c.dataDir, confFile)
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		return fmt.Errorf("devpg: write %s: %w", confFile, err)
	}
	if c.cred != nil {
		if err := os.Chown(path, int(c.cred.Uid), int(c.cred.Gid)); err != nil {
			return fmt.Errorf("devpg: chown %s: %w", confFile, err)
		}
	}
	return nil
}

// Port returns the TCP port the server listens on (127.0.0.1).
func (c *Cluster) Port() int { return c.port }

// DataDir returns the absolute cluster directory.
func (c *Cluster) DataDir() string { return c.dataDir }

// URL returns a connection URL for database as the superuser, e.g.
// postgres://postgres@127.0.0.1:5433/txflow?sslmode=disable.
func (c *Cluster) URL(database string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.User(Superuser),
		Host:     net.JoinHostPort("127.0.0.1", strconv.Itoa(c.port)),
		Path:     "/" + database,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

// CreateDatabase creates the database name unless it exists already.
// It returns connection and SQL errors, wrapped.
func (c *Cluster) CreateDatabase(ctx context.Context, name string) error {
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		return fmt.Errorf("devpg: connect: %w", err)
	}
	defer conn.Close(context.Background())
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return fmt.Errorf("devpg: look up database %s: %w", name, err)
	}
	if exists {
		return nil
	}
	_, err = conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42P04" { // duplicate_database: created concurrently
		return nil
	}
	if err != nil {
		return fmt.Errorf("devpg: create database %s: %w", name, err)
	}
	return nil
}

// DropDatabase drops the database name, closing its connections first; a missing database is
// not an error.
func (c *Cluster) DropDatabase(ctx context.Context, name string) error {
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		return fmt.Errorf("devpg: connect: %w", err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("devpg: drop database %s: %w", name, err)
	}
	return nil
}

// Stop shuts the server down (pg_ctl stop -m fast) and waits for it to exit.
// It also stops a server that Start adopted. Calling it again, or on a
// server that is no longer running, returns the first call's result.
func (c *Cluster) Stop() error {
	c.stopOnce.Do(func() {
		if _, _, ok := runningServer(c.dataDir); !ok {
			return
		}
		c.logf("devpg: stopping PostgreSQL in %s", c.dataDir)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if out, err := c.run(ctx, "pg_ctl", "stop", "-D", c.dataDir, "-m", "fast", "-w", "-t", "60", "-s"); err != nil {
			if _, _, ok := runningServer(c.dataDir); ok {
				c.stopErr = fmt.Errorf("devpg: pg_ctl stop: %w: %s", err, out)
			}
		}
	})
	return c.stopErr
}

// waitReady dials the server until it answers a query or timeout elapses.
func (c *Cluster) waitReady(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var lastErr error
	for {
		conn, err := pgx.Connect(ctx, c.URL("postgres"))
		if err == nil {
			err = conn.Ping(ctx)
			conn.Close(context.Background())
			if err == nil {
				return nil
			}
		}
		lastErr = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("server not ready: %w", lastErr)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// run runs a PostgreSQL binary as the server user and returns its output.
func (c *Cluster) run(ctx context.Context, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(c.binDir, name), args...)
	cmd.Dir = c.dataDir
	cmd.Env = append(os.Environ(), "LC_ALL=C", "PGTZ=UTC")
	if c.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
		cmd.Env = append(cmd.Env, "HOME="+c.dataDir)
	}
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	return bytes.TrimSpace(out.Bytes()), err
}

// logTail returns the last lines of the server log, for error messages.
func (c *Cluster) logTail() string {
	data, err := os.ReadFile(filepath.Join(c.dataDir, "postgres.log"))
	if err != nil || len(data) == 0 {
		return ""
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) > 10 {
		lines = lines[len(lines)-10:]
	}
	return "\nserver log:\n" + strings.Join(lines, "\n")
}

// runningServer reports the pid and port recorded in DataDir/postmaster.pid
// when that process is alive.
func runningServer(dataDir string) (pid, port int, ok bool) {
	f, err := os.Open(filepath.Join(dataDir, "postmaster.pid"))
	if err != nil {
		return 0, 0, false
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if len(lines) < 4 {
		return 0, 0, false
	}
	pid, err = strconv.Atoi(strings.TrimSpace(lines[0]))
	if err != nil || pid <= 0 {
		return 0, 0, false
	}
	port, err = strconv.Atoi(strings.TrimSpace(lines[3]))
	if err != nil {
		return 0, 0, false
	}
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return 0, 0, false
	}
	return pid, port, true
}

// serverCredential returns the user to run the server as: nil (the current
// user) unless running as root, then "postgres" or else "nobody".
func serverCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
		gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
		if err1 != nil || err2 != nil {
			continue
		}
		return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}, nil
	}
	return nil, errors.New("devpg: running as root and neither a postgres nor a nobody user exists")
}

// credentialFor returns the credential for an existing data dir: its owner
// when running as root (nil otherwise).
func credentialFor(dataDir string) (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	fi, err := os.Stat(dataDir)
	if err != nil {
		return nil, fmt.Errorf("devpg: stat data dir: %w", err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || st.Uid == 0 {
		return nil, fmt.Errorf("devpg: %s is owned by root; PostgreSQL cannot run as root", dataDir)
	}
	return &syscall.Credential{Uid: st.Uid, Gid: st.Gid, Groups: []uint32{}}, nil
}

// checkTraversable fails when the server user cannot reach dir, which would
// make initdb fail with an obscure message.
func checkTraversable(dir string, cred *syscall.Credential) error {
	for d := dir; ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return fmt.Errorf("devpg: stat %s: %w", d, err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		mode := fi.Mode().Perm()
		var ok bool
		switch {
		case st.Uid == cred.Uid:
			ok = mode&0o100 != 0
		case st.Gid == cred.Gid:
			ok = mode&0o010 != 0
		default:
			ok = mode&0o001 != 0
		}
		if !ok {
			return fmt.Errorf("devpg: directory %s is not searchable by uid %d (the server user): %w; chmod o+x it or choose another data dir", d, cred.Uid, ErrNotSearchable)
		}
		if d == filepath.Dir(d) {
			return nil
		}
	}
}

// previousPort returns the port recorded in DataDir's settings file by the previous start, or 0.
func previousPort(dataDir string) int {
	data, err := os.ReadFile(filepath.Join(dataDir, confFile))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		k, v, ok := strings.Cut(line, "=")
		if !ok || strings.TrimSpace(k) != "port" {
			continue
		}
		if port, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && port > 0 && port < 65536 {
			return port
		}
	}
	return 0
}

// portFree reports whether port can be listened on at 127.0.0.1.
func portFree(port int) bool {
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return false
	}
	l.Close()
	return true
}

// TempDataDir returns where StartOrFallback puts the cluster of dataDir when the server's user
// cannot reach dataDir: a directory of the temporary directory named after dataDir's absolute
// path, so that every start for the same dataDir finds the same cluster.
func TempDataDir(dataDir string) string {
	abs, err := filepath.Abs(dataDir)
	if err != nil {
		abs = dataDir
	}
	sum := sha256.Sum256([]byte(abs))
	return filepath.Join(os.TempDir(), "txflow-pg-"+hex.EncodeToString(sum[:4]))
}

// StartOrFallback is Start, except that when the server's user cannot reach opts.DataDir
// (ErrNotSearchable: a checkout under a private home directory, started as root) the cluster
// lives in TempDataDir(opts.DataDir) instead, and opts.DataDir becomes a symbolic link to it, so
// that later starts, and whoever cleans the state up, find it there. It reports the move through
// opts.Logf.
func StartOrFallback(ctx context.Context, opts Options) (*Cluster, error) {
	logf := opts.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	if target, err := os.Readlink(opts.DataDir); err == nil {
		// A link left by an earlier fallback; its target may have been removed since (a reboot
		// empties the temporary directory): Start then makes a new cluster there.
		opts.DataDir = target
		return Start(ctx, opts)
	}
	c, err := Start(ctx, opts)
	if !errors.Is(err, ErrNotSearchable) {
		return c, err
	}
	abs, aerr := filepath.Abs(opts.DataDir)
	if aerr != nil {
		return nil, fmt.Errorf("devpg: data dir: %w", aerr)
	}
	tmp := TempDataDir(abs)
	logf("%s is not reachable by the PostgreSQL server's user; the cluster lives in %s (linked from %s)", abs, tmp, abs)
	_ = os.Remove(abs) // the empty directory the first attempt made; a non-empty one stays and Symlink fails
	if err := os.Symlink(tmp, abs); err != nil {
		return nil, fmt.Errorf("devpg: link %s to %s: %w", abs, tmp, err)
	}
	opts.DataDir = tmp
	return Start(ctx, opts)
}

// freePort asks the kernel for a free loopback TCP port.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
