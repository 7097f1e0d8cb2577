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
	"path"
	"sort"
	"strconv"
	"strings"

	pgxdecimal "github.com/jackc/pgx-shopspring-decimal"
	"github.com/jackc/pgx/v5"
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
}

// Open connects to databaseURL (a postgres:// URL or a key=value DSN),
// registers the shopspring decimal codec on every connection and pings the
// server. It returns a parse error for a bad URL and the (wrapped) connection
// error when the server cannot be reached; neither contains the password.
func Open(ctx context.Context, databaseURL string) (*DB, error) {
	cfg, err := pgxpool.ParseConfig(databaseURL)
	if err != nil {
		// pgconn redacts the password in parse errors; redact again in case
		// the URL was too malformed to find it.
		return nil, fmt.Errorf("parse database url: %w", scrubURL(err, databaseURL))
	}
	db := &DB{password: cfg.ConnConfig.Password}
	// JIT compilation costs seconds on the large scans and joins of this
	// workload and never pays back.
	if _, set := cfg.ConnConfig.RuntimeParams["jit"]; !set {
		cfg.ConnConfig.RuntimeParams["jit"] = "off"
	}
	cfg.AfterConnect = func(_ context.Context, conn *pgx.Conn) error {
		pgxdecimal.Register(conn.TypeMap())
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
