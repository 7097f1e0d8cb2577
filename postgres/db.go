// Package postgres is txflow's store: the only package that writes SQL.
//
// It keeps runs, their accepted lines and rejected rows, the transactions
// (one row per distinct id ever accepted) and the tag and annotation results
// computed for them, and streams the output files with COPY. Bulk writes use
// COPY (pgx CopyFrom) and set-based SQL; nothing loops row by row over the
// database.
//
// Errors are wrapped with %w, so callers can inspect them with errors.As
// (*pgconn.PgError, *pgconn.ConnectError) and pgconn.SafeToRetry. No error
// text contains the password of the database URL.
package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	pgxdecimal "github.com/jackc/pgx-shopspring-decimal"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// ErrRunNotFound is returned (wrapped) by methods given a run id that
// BeginIngest never recorded.
var ErrRunNotFound = errors.New("run not found")

// ErrRunNotIngested is returned (wrapped) by TagChunk and AnnotateChunk for a
// run that FinishIngest has not settled (or that BeginIngest restarted).
var ErrRunNotIngested = errors.New("run not ingested")

// Advisory lock keys (pg_advisory_xact_lock).
const (
	lockMigrate      int64 = 0x7478666c6f770001 // "txflow" + 1
	lockFinishIngest int64 = 0x7478666c6f770002
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// DB is a connection pool to the txflow database. It is safe for concurrent
// use.
type DB struct {
	pool     *pgxpool.Pool
	password string
	// A run of more than settleInPartsAbove lines inserts its new transactions on settleParts
	// connections at once, in parts of at least settleMinPart lines (settle.go);
	// afterSettlePart, for tests, is called after each part commits, and its error fails the
	// settlement.
	settleParts        int
	settleInPartsAbove int64
	settleMinPart      int64
	afterSettlePart    func(part int64) error
}

// Default bounds on one statement, so that a database that stops answering
// fails the step (which Temporal retries) instead of holding it until the
// stage's start-to-close timeout.
//
// The longest legitimate statements are the dump's COPY TO and the settling
// of a large ingest: about 5 s per million rows each on the benchmark machine
// (README, "Scale"), so about 50 s for a 10,000,000-row file; ten minutes
// leaves a margin of more than ten. Lock waits are short in txflow: runs
// never share rows while loading, chunk transactions last seconds, and the
// longest wait is one run's settling waiting for another's (FinishIngest is
// serialised), under a minute at 10,000,000 rows; a longer wait fails and is
// retried like an outage.
const (
	DefaultStatementTimeout = 10 * time.Minute
	DefaultLockTimeout      = time.Minute
)

// TCP keepalives on txflow's connections, on both ends: a peer that vanished
// (a network partition, a host that died) is noticed after about 35 s of
// silence (15 s idle, then 4 probes 5 s apart), and unacknowledged data is
// given up after tcpUserTimeout, instead of the kernel's defaults (two hours
// of idle, fifteen minutes of retransmissions).
const (
	keepAliveIdle     = 15 * time.Second
	keepAliveInterval = 5 * time.Second
	keepAliveCount    = 4
	tcpUserTimeout    = keepAliveIdle + keepAliveCount*keepAliveInterval
)

// Options tune the store's connections.
type Options struct {
	// StatementTimeout bounds every statement (PostgreSQL statement_timeout);
	// 0 means DefaultStatementTimeout, a negative value no bound.
	StatementTimeout time.Duration
	// LockTimeout bounds every wait for a lock (PostgreSQL lock_timeout); 0
	// means DefaultLockTimeout, a negative value no bound.
	LockTimeout time.Duration
}

// Open connects to databaseURL with the default Options; see OpenWith.
func Open(ctx context.Context, databaseURL string) (*DB, error) {
	return OpenWith(ctx, databaseURL, Options{})
}

// OpenWith connects to databaseURL (a postgres:// URL or a key=value DSN),
// registers the shopspring decimal codec on every connection and pings the
// server. Every connection has the statement and lock timeouts of opts
// (unless the URL sets statement_timeout or lock_timeout itself) and TCP
// keepalives on both ends. A statement that exceeds a timeout fails with a
// *pgconn.PgError for which IsTimeout is true.
//
// It returns a parse error for a bad URL and the (wrapped) connection error
// when the server cannot be reached; neither contains the password.
func OpenWith(ctx context.Context, databaseURL string, opts Options) (*DB, error) {
	cfg, err := pgxpool.ParseConfig(databaseURL)
	if err != nil {
		// pgconn redacts the password in parse errors; redact again in case
		// the URL was too malformed to find it.
		return nil, fmt.Errorf("parse database url: %w", scrubURL(err, databaseURL))
	}
	db := &DB{password: cfg.ConnConfig.Password, settleParts: DefaultSettleParts,
		settleInPartsAbove: DefaultSettleInPartsAbove, settleMinPart: minSettlePart}
	params := cfg.ConnConfig.RuntimeParams
	setDefault := func(name, value string) {
		if _, set := params[name]; !set {
			params[name] = value
		}
	}
	// JIT compilation costs seconds on the large scans and joins of this
	// workload and never pays back.
	setDefault("jit", "off")
	setDefault("statement_timeout", timeoutParam(opts.StatementTimeout, DefaultStatementTimeout))
	setDefault("lock_timeout", timeoutParam(opts.LockTimeout, DefaultLockTimeout))
	// The server's side of the keepalives: a worker that vanished mid-
	// transaction releases its locks within a minute.
	setDefault("tcp_keepalives_idle", strconv.Itoa(int(keepAliveIdle/time.Second)))
	setDefault("tcp_keepalives_interval", strconv.Itoa(int(keepAliveInterval/time.Second)))
	setDefault("tcp_keepalives_count", strconv.Itoa(keepAliveCount))
	setDefault("tcp_user_timeout", strconv.FormatInt(tcpUserTimeout.Milliseconds(), 10))
	cfg.ConnConfig.DialFunc = dialer(cfg.ConnConfig.ConnectTimeout).DialContext
	cfg.AfterConnect = func(_ context.Context, conn *pgx.Conn) error {
		pgxdecimal.Register(conn.TypeMap())
		registerCents(conn.TypeMap())
		return nil
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, db.wrap("open database", err)
	}
	db.pool = pool
	if err := db.Ping(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	return db, nil
}

// timeoutParam is the value of a PostgreSQL timeout setting, in
// milliseconds: d, def when d is 0, none ("0") when d is negative.
func timeoutParam(d, def time.Duration) string {
	switch {
	case d == 0:
		d = def
	case d < 0:
		return "0"
	}
	return strconv.FormatInt(max(d.Milliseconds(), 1), 10)
}

// dialer is the dialer of txflow's connections: keepalives after
// keepAliveIdle of silence, and on Linux a TCP user timeout.
func dialer(connectTimeout time.Duration) *net.Dialer {
	return &net.Dialer{
		Timeout: connectTimeout,
		KeepAliveConfig: net.KeepAliveConfig{
			Enable:   true,
			Idle:     keepAliveIdle,
			Interval: keepAliveInterval,
			Count:    keepAliveCount,
		},
		Control: setTCPUserTimeout,
	}
}

// IsTimeout reports whether err comes from a statement that PostgreSQL
// cancelled because it ran longer than statement_timeout (or was cancelled
// otherwise) or waited longer than lock_timeout. Such an error says nothing
// about the data: the step is retried like an outage.
func IsTimeout(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return false
	}
	switch pgErr.Code {
	case "57014", // query_canceled: statement_timeout
		"55P03": // lock_not_available: lock_timeout
		return true
	}
	return false
}

// Close closes all connections of the pool.
func (db *DB) Close() { db.pool.Close() }

// Ping checks that the server answers; it returns the wrapped connection
// error otherwise.
func (db *DB) Ping(ctx context.Context) error {
	if err := db.pool.Ping(ctx); err != nil {
		return db.wrap("ping database", err)
	}
	return nil
}

// migration is one embedded migrations/NNN_name.sql file.
type migration struct {
	version int
	name    string
	sql     string
}

func loadMigrations() ([]migration, error) {
	names, err := fs.Glob(migrationFiles, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	var out []migration
	for _, name := range names {
		base := path.Base(name)
		num, _, ok := strings.Cut(base, "_")
		version, err := strconv.Atoi(num)
		if !ok || err != nil || version <= 0 {
			return nil, fmt.Errorf("migration %s: name must start with a positive number and an underscore", base)
		}
		data, err := migrationFiles.ReadFile(name)
		if err != nil {
			return nil, err
		}
		out = append(out, migration{version: version, name: strings.TrimSuffix(base, ".sql"), sql: string(data)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].version < out[j].version })
	for i := 1; i < len(out); i++ {
		if out[i].version == out[i-1].version {
			return nil, fmt.Errorf("migrations %s and %s share version %d", out[i-1].name, out[i].name, out[i].version)
		}
	}
	return out, nil
}

// Migrate applies the embedded migrations not yet recorded in
// schema_migrations, in one transaction holding an advisory lock, so that
// workers starting together apply each migration exactly once. It returns
// the wrapped connection or SQL error; on error nothing is applied.
func (db *DB) Migrate(ctx context.Context) error {
	migs, err := loadMigrations()
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	tx, err := db.pool.Begin(ctx)
	if err != nil {
		return db.wrap("migrate: begin", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	// Migrations run at a worker's start, outside any run: one may rewrite a
	// large table, and a worker waits for another that is migrating.
	if _, err := tx.Exec(ctx, "SET LOCAL statement_timeout = 0; SET LOCAL lock_timeout = 0"); err != nil {
		return db.wrap("migrate: settings", err)
	}
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", lockMigrate); err != nil {
		return db.wrap("migrate: lock", err)
	}
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    integer PRIMARY KEY,
		name       text NOT NULL,
		applied_at timestamptz NOT NULL DEFAULT now()
	)`); err != nil {
		return db.wrap("migrate: create schema_migrations", err)
	}
	rows, err := tx.Query(ctx, "SELECT version FROM schema_migrations")
	if err != nil {
		return db.wrap("migrate: read schema_migrations", err)
	}
	applied, err := pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		return db.wrap("migrate: read schema_migrations", err)
	}
	done := make(map[int]bool, len(applied))
	for _, v := range applied {
		done[v] = true
	}
	for _, m := range migs {
		if done[m.version] {
			continue
		}
		if _, err := tx.Exec(ctx, m.sql); err != nil {
			return db.wrap("migrate: apply "+m.name, err)
		}
		if _, err := tx.Exec(ctx, "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", m.version, m.name); err != nil {
			return db.wrap("migrate: record "+m.name, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return db.wrap("migrate: commit", err)
	}
	return nil
}

// wrap adds context to err and removes the password from its text. The
// result still unwraps to err.
func (db *DB) wrap(context string, err error) error {
	wrapped := fmt.Errorf("%s: %w", context, err)
	if db.password == "" || !strings.Contains(wrapped.Error(), db.password) {
		return wrapped
	}
	return &redactedError{msg: strings.ReplaceAll(wrapped.Error(), db.password, "xxxxx"), err: err}
}

// scrubURL removes databaseURL and anything looking like its password from
// err's text.
func scrubURL(err error, databaseURL string) error {
	msg := err.Error()
	if !strings.Contains(msg, databaseURL) && !strings.Contains(msg, "@") {
		return err
	}
	msg = strings.ReplaceAll(msg, databaseURL, "<database url>")
	if at := strings.LastIndex(databaseURL, "@"); at > 0 {
		if scheme := strings.Index(databaseURL, "://"); scheme >= 0 && scheme+3 < at {
			if _, pw, ok := strings.Cut(databaseURL[scheme+3:at], ":"); ok && pw != "" {
				msg = strings.ReplaceAll(msg, pw, "xxxxx")
			}
		}
	}
	return &redactedError{msg: msg, err: err}
}

// redactedError carries a message with secrets removed and the original
// error for errors.Is and errors.As.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }
