package postgres

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/jackc/pgx/v5"
)

// Floor is what PostgreSQL alone takes to move a file in and out.
type Floor struct {
	In  time.Duration // COPY of the file into a table with a text primary key
	Out time.Duration // COPY of that table back out to a file
}

// CopyFloor measures the floor a pipeline is compared with: it COPYs the CSV file at path
// (header id,amount,wording) into a fresh table with a text primary key, COPYs it back out to
// outPath, and drops the table. It returns the wrapped file, connection or SQL error.
func (db *DB) CopyFloor(ctx context.Context, path, outPath string) (Floor, error) {
	var f Floor
	conn, err := db.pool.Acquire(ctx)
	if err != nil {
		return f, db.wrap("floor", err)
	}
	defer conn.Release()
	table := pgx.Identifier{"txflow_floor"}.Sanitize()
	if _, err := conn.Exec(ctx, "DROP TABLE IF EXISTS "+table+"; CREATE TABLE "+table+
		" (id text PRIMARY KEY, amount numeric(18,2) NOT NULL, wording text NOT NULL)"); err != nil {
		return f, db.wrap("floor: create table", err)
	}
	defer conn.Exec(context.WithoutCancel(ctx), "DROP TABLE IF EXISTS "+table)

	in, err := os.Open(path)
	if err != nil {
		return f, fmt.Errorf("floor: %w", err)
	}
	defer in.Close()
	began := time.Now()
	if _, err := conn.Conn().PgConn().CopyFrom(ctx, in, "COPY "+table+" FROM STDIN (FORMAT csv, HEADER true)"); err != nil {
		return f, db.wrap("floor: copy in", err)
	}
	f.In = time.Since(began)

	out, err := os.Create(outPath)
	if err != nil {
		return f, fmt.Errorf("floor: %w", err)
	}
	defer out.Close()
	began = time.Now()
	if _, err := conn.Conn().PgConn().CopyTo(ctx, out, "COPY "+table+" TO STDOUT (FORMAT csv, HEADER true)"); err != nil {
		return f, db.wrap("floor: copy out", err)
	}
	if err := out.Sync(); err != nil {
		return f, fmt.Errorf("floor: %w", err)
	}
	f.Out = time.Since(began)
	return f, nil
}
