// Command chaoskit holds the small steps dev/chaos.sh needs that a shell cannot do alone:
// generating a file, creating a database, starting and watching a run, and checking a database
// for duplicates.
//
//	chaoskit freeport
//	chaoskit gen -rows N FILE
//	chaoskit createdb -url URL NAME         prints the new database's URL
//	chaoskit start -chunk N -heartbeat D FILE   (FILE below TXFLOW_INPUT_DIR) prints the run id
//	chaoskit stage RUN_ID                   prints the activities running now
//	chaoskit wait -timeout D RUN_ID         exits 1 unless the run completes
//	chaoskit dups -url URL                  exits 1 if a table holds a key twice
//	chaoskit settling -url URL -timeout D   waits until a settlement in parts committed a part
//	chaoskit pgstop DIR                     stops the PostgreSQL server running in DIR, if any
//
// Temporal is reached through TEMPORAL_ADDRESS and TEMPORAL_NAMESPACE.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/txflow/txflow/activities"
	"github.com/txflow/txflow/dev/internal/devstack"
	"github.com/txflow/txflow/dev/internal/devtemporal"
	"github.com/txflow/txflow/internal/devpg"
	"github.com/txflow/txflow/internal/gen"
	"github.com/txflow/txflow/workflows"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: chaoskit freeport|gen|createdb|start|stage|wait|dups|settling|pgstop ...")
		os.Exit(2)
	}
	ctx := context.Background()
	var err error
	cmd, args := os.Args[1], os.Args[2:]
	switch cmd {
	case "freeport":
		var p int
		if p, err = devtemporal.FreePort(); err == nil {
			fmt.Println(p)
		}
	case "gen":
		err = genFile(args)
	case "createdb":
		err = createDB(ctx, args)
	case "start":
		err = start(ctx, args)
	case "stage":
		err = stage(ctx, args)
	case "wait":
		err = wait(ctx, args)
	case "dups":
		err = dups(ctx, args)
	case "settling":
		err = settling(ctx, args)
	case "pgstop":
		err = pgStop(ctx, args)
	default:
		err = fmt.Errorf("unknown command %q", cmd)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaoskit "+cmd+":", err)
		os.Exit(1)
	}
}

func genFile(args []string) error {
	fs := flag.NewFlagSet("gen", flag.ExitOnError)
	rows := fs.Int("rows", 1_000_000, "data rows")
	seed := fs.Uint64("seed", 1, "generator seed")
	_ = fs.Parse(args)
	if fs.NArg() != 1 {
		return errors.New("one output file expected")
	}
	f, err := os.Create(fs.Arg(0))
	if err != nil {
		return err
	}
	if err := gen.Write(f, *rows, *seed); err != nil {
		f.Close()
		return fmt.Errorf("generate: %w", err)
	}
	return f.Close()
}

func createDB(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("createdb", flag.ExitOnError)
	admin := fs.String("url", "", "URL of an existing database on the server")
	_ = fs.Parse(args)
	if fs.NArg() != 1 || *admin == "" {
		return errors.New("-url and a database name expected")
	}
	conn, err := pgx.Connect(ctx, *admin)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{fs.Arg(0)}.Sanitize()); err != nil {
		return fmt.Errorf("create database: %w", err)
	}
	u, err := url.Parse(*admin)
	if err != nil {
		return err
	}
	u.Path = "/" + fs.Arg(0)
	fmt.Println(u.String())
	return nil
}

func dial(ctx context.Context) (client.Client, error) {
	ns := os.Getenv("TEMPORAL_NAMESPACE")
	if ns == "" {
		ns = "default"
	}
	return client.DialContext(ctx, client.Options{HostPort: os.Getenv("TEMPORAL_ADDRESS"), Namespace: ns})
}

func start(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("start", flag.ExitOnError)
	chunk := fs.Int64("chunk", workflows.DefaultChunkSize, "lines per tag/annotate activity")
	heartbeat := fs.Duration("heartbeat", workflows.DefaultHeartbeatTimeout, "heartbeat timeout of the run's activities")
	_ = fs.Parse(args)
	if fs.NArg() != 1 {
		return errors.New("one file expected")
	}
	rel := fs.Arg(0)
	sum, err := activities.HashFile(filepath.Join(os.Getenv("TXFLOW_INPUT_DIR"), rel))
	if err != nil {
		return err
	}
	c, err := dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:                       workflows.RunID("", sum),
		TaskQueue:                workflows.TaskQueue,
		WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
	}, workflows.ProcessFile, workflows.ProcessFileInput{File: rel, SHA256: sum, ChunkSize: *chunk, HeartbeatTimeout: *heartbeat})
	if err != nil {
		return fmt.Errorf("start run: %w", err)
	}
	fmt.Println(run.GetID())
	return nil
}

// stage prints the activity types the run is executing, from the server, without a worker.
func stage(ctx context.Context, args []string) error {
	if len(args) != 1 {
		return errors.New("one run id expected")
	}
	c, err := dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	desc, err := c.DescribeWorkflowExecution(ctx, args[0], "")
	if err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, pa := range desc.GetPendingActivities() {
		seen[pa.GetActivityType().GetName()] = true
	}
	var names []string
	for n := range seen {
		names = append(names, n)
	}
	sort.Strings(names)
	if len(names) == 0 {
		names = []string{"(between activities)"}
	}
	fmt.Println(strings.Join(names, "+"))
	return nil
}

func wait(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("wait", flag.ExitOnError)
	timeout := fs.Duration("timeout", 30*time.Minute, "how long to wait")
	_ = fs.Parse(args)
	if fs.NArg() != 1 {
		return errors.New("one run id expected")
	}
	c, err := dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	var s workflows.Summary
	if err := c.GetWorkflow(ctx, fs.Arg(0), "").Get(ctx, &s); err != nil {
		return fmt.Errorf("run %s: %w", fs.Arg(0), err)
	}
	fmt.Printf("%s %s: read %d, ingested %d, rejected %d, in error %d, tagged %d, annotated %d\n",
		s.RunID, s.Status, s.RowsRead, s.Ingested, s.Rejected, s.InError, s.Tagged, s.Annotated)
	return nil
}

// dups counts, in each table, rows and distinct keys.
func dups(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("dups", flag.ExitOnError)
	dbURL := fs.String("url", "", "database URL")
	_ = fs.Parse(args)
	conn, err := pgx.Connect(ctx, *dbURL)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(ctx)
	counts, err := devstack.CountKeys(ctx, conn)
	if err != nil {
		return err
	}
	bad := 0
	for _, c := range counts {
		mark := "ok"
		if c.Rows != c.Distinct {
			mark = "DUPLICATES"
			bad++
		}
		fmt.Printf("  %-14s %-25s %9d rows %9d distinct  %s\n", c.Table, "("+c.Key+")", c.Rows, c.Distinct, mark)
	}
	if bad > 0 {
		return fmt.Errorf("%d table(s) hold duplicates", bad)
	}
	return nil
}

// settling waits until a run of the database is half-way through a settlement in parts: a part
// has committed (runs.settling_new > 0) and the last step has not. It prints how many new
// transactions the parts committed so far.
func settling(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("settling", flag.ExitOnError)
	dbURL := fs.String("url", "", "database URL")
	timeout := fs.Duration("timeout", 10*time.Minute, "how long to wait")
	_ = fs.Parse(args)
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, *dbURL)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	for {
		var n int64
		err := conn.QueryRow(ctx, "SELECT coalesce(max(settling_new), 0) FROM runs").Scan(&n)
		if err != nil {
			return fmt.Errorf("read runs: %w", err)
		}
		if n > 0 {
			fmt.Println(n)
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("no settlement in parts within %s", *timeout)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// pgStop stops the PostgreSQL server running in the data directory args[0], which a dev server
// killed with SIGKILL leaves behind. A directory without a running server is left alone.
func pgStop(ctx context.Context, args []string) error {
	if len(args) != 1 {
		return errors.New("one data directory expected")
	}
	if _, err := os.Stat(filepath.Join(args[0], "postmaster.pid")); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	pg, err := devpg.Start(ctx, devpg.Options{DataDir: args[0]}) // adopts the running server
	if err != nil {
		return err
	}
	return pg.Stop()
}
