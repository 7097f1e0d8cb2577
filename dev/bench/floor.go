package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"time"

	"github.com/jackc/pgx/v5"
)

// floor is what PostgreSQL alone takes to move a file in and out: the least any pipeline that
// stores the file's rows and exports them could take on the same database.
type floor struct {
	In  time.Duration // COPY of the file into a fresh table shaped like the domain
	Out time.Duration // COPY of that table back out into a file, synced
}

func (f floor) total() time.Duration { return f.In + f.Out }

func (f floor) String() string {
	return fmt.Sprintf("%s (COPY in %s, COPY out %s)", f.total().Round(time.Millisecond),
		f.In.Round(time.Millisecond), f.Out.Round(time.Millisecond))
}

// floorTable is the table the floor fills, dropped after each measure.
var floorTable = pgx.Identifier{"txflow_floor"}.Sanitize()

// measureFloor measures the floor on the database at dbURL, which should be quiet (no pipeline
// running): it COPYs the CSV file at path (header id,amount,wording) into a fresh table with a
// text primary key and a numeric amount, as the pipeline's tables hold them, then COPYs the table
// back out through a 1 MiB buffered writer into outPath, synced before the clock stops, as the
// pipeline writes its output; and drops the table.
func measureFloor(ctx context.Context, dbURL, path, outPath string) (floor, error) {
	var f floor
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return f, fmt.Errorf("floor: connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "DROP TABLE IF EXISTS "+floorTable+"; CREATE TABLE "+floorTable+
		" (id text PRIMARY KEY, amount numeric NOT NULL, wording text NOT NULL)"); err != nil {
		return f, fmt.Errorf("floor: create table: %w", err)
	}
	defer conn.Exec(context.WithoutCancel(ctx), "DROP TABLE IF EXISTS "+floorTable)

	in, err := os.Open(path)
	if err != nil {
		return f, fmt.Errorf("floor: %w", err)
	}
	defer in.Close()
	began := time.Now()
	if _, err := conn.PgConn().CopyFrom(ctx, in, "COPY "+floorTable+" FROM STDIN (FORMAT csv, HEADER true)"); err != nil {
		return f, fmt.Errorf("floor: copy in: %w", err)
	}
	f.In = time.Since(began)

	if f.Out, err = copyOut(ctx, conn, "COPY "+floorTable+" TO STDOUT (FORMAT csv, HEADER true)", outPath); err != nil {
		return f, fmt.Errorf("floor: copy out: %w", err)
	}
	return f, nil
}

// copyOut runs the COPY … TO STDOUT statement sql on conn into a new file at path, through a
// 1 MiB buffer, and syncs the file, as the pipeline writes its outputs: it returns how long that
// took from the file's creation.
func copyOut(ctx context.Context, conn *pgx.Conn, sql, path string) (time.Duration, error) {
	out, err := os.Create(path)
	if err != nil {
		return 0, err
	}
	defer out.Close()
	began := time.Now()
	bw := bufio.NewWriterSize(out, 1<<20)
	if _, err := conn.PgConn().CopyTo(ctx, bw, sql); err != nil {
		return 0, err
	}
	if err := bw.Flush(); err != nil {
		return 0, err
	}
	if err := out.Sync(); err != nil {
		return 0, err
	}
	d := time.Since(began)
	return d, out.Close()
}

// settle lets the database calm down after the pipeline before the floor is measured again: a
// CHECKPOINT writes out the pipeline's dirty pages (so that the floor does not pay for them),
// then a pause lets autovacuum and the disk finish. A role that may not CHECKPOINT only pauses.
func settle(ctx context.Context, dbURL string, pause time.Duration) error {
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return fmt.Errorf("settle: connect: %w", err)
	}
	_, err = conn.Exec(ctx, "CHECKPOINT")
	conn.Close(context.WithoutCancel(ctx))
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: no checkpoint before the second floor: %v\n", err)
	}
	select {
	case <-time.After(pause):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
