// Command devserver runs a local Temporal server with its Web UI for txflow
// development, with the namespace and the search attributes txflow needs, a NATS
// server with JetStream for the delivery of results and, when DATABASE_URL is unset,
// a local PostgreSQL cluster.
//
// Usage:
//
//	go run ./dev/devserver [flags]
//
// It persists to .txflow/temporal.db under the current directory unless
// --in-memory is given, and runs until interrupted (SIGINT or SIGTERM).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/txflow/txflow/dev/internal/devnats"
	"github.com/txflow/txflow/dev/internal/devtemporal"
	"github.com/txflow/txflow/internal/devpg"
	"github.com/txflow/txflow/workflows"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "devserver: %v\n", err)
		os.Exit(1)
	}
}

func run() error {
	fs := flag.NewFlagSet("devserver", flag.ExitOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: go run ./dev/devserver [flags]

Runs a Temporal server and its Web UI in one process, for local txflow runs.
The namespace is registered with the txflow search attributes (TxflowFile,
TxflowStatus, TxflowAccount, TxflowRulesVersion, TxflowRows, TxflowRejected,
TxflowErrors). When DATABASE_URL is
unset it also runs a project-local PostgreSQL cluster (--pg-dir) from the
machine's PostgreSQL binaries and prints the DATABASE_URL to give the worker;
a restart of the same cluster keeps its port, so that URL stays the same. It
also runs a NATS server with JetStream (--nats-dir) and prints the
TXFLOW_NATS_URL that turns the worker's delivery of results on; its port too
is kept across restarts. Stop with Ctrl+C; make clean-state forgets the history,
the cluster and the NATS store.

Flags (one or two dashes):
`)
		fs.PrintDefaults()
	}
	ip := fs.String("ip", "127.0.0.1", "IP `address` the frontend and UI listen on")
	port := fs.Int("port", 7233, "frontend gRPC `port`")
	uiPort := fs.Int("ui-port", 0, "Web UI `port` (default --port + 1000, i.e. 8233)")
	headless := fs.Bool("headless", false, "do not start the Web UI")
	dbFile := fs.String("db-filename", filepath.Join(".txflow", "temporal.db"),
		"SQLite database `file`; its directory is created if needed")
	inMemory := fs.Bool("in-memory", false, "keep all state in memory instead of --db-filename")
	namespace := fs.String("namespace", "default", "`namespace` to register")
	logLevel := fs.String("log-level", "warn", "server log `level`: debug, info, warn, error or off")
	withPG := fs.Bool("postgres", os.Getenv("DATABASE_URL") == "", "also run a local PostgreSQL cluster (default: when DATABASE_URL is unset)")
	pgDir := fs.String("pg-dir", filepath.Join(".txflow", "pg"), "`directory` of the local PostgreSQL cluster; when the server's user cannot reach it, the cluster lives in the temporary directory and this becomes a link to it")
	withNATS := fs.Bool("nats", true, "also run a NATS server with JetStream, for the worker's delivery of results")
	natsDir := fs.String("nats-dir", filepath.Join(".txflow", "nats"), "`directory` of the NATS server's store (its streams)")
	natsPort := fs.Int("nats-port", 0, "NATS client `port` (default: the one it had in --nats-dir when free, else 4222 when free, else any free port)")
	_ = fs.Parse(os.Args[1:]) // ExitOnError: Parse exits on failure and for --help
	if fs.NArg() > 0 {
		fs.Usage()
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}

	opts := devtemporal.Options{
		IP:               *ip,
		Port:             *port,
		UIPort:           *uiPort,
		Namespace:        *namespace,
		SearchAttributes: workflows.SearchAttributes(),
		LogLevel:         *logLevel,
	}
	if *headless {
		opts.UIPort = -1
	}
	if !*inMemory {
		if *dbFile == "" {
			return fmt.Errorf("--db-filename is empty; use --in-memory for a database in memory")
		}
		path, err := filepath.Abs(*dbFile)
		if err != nil {
			return fmt.Errorf("database path: %w", err)
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return fmt.Errorf("create database directory: %w", err)
		}
		opts.DBFilename = path
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	if *withPG {
		if err := os.MkdirAll(filepath.Dir(*pgDir), 0o755); err != nil {
			return fmt.Errorf("create postgres directory: %w", err)
		}
		pg, err := devpg.StartOrFallback(ctx, devpg.Options{DataDir: *pgDir, Logf: func(f string, a ...any) {
			fmt.Printf(f+"\n", a...)
		}})
		if err != nil {
			return fmt.Errorf("start local postgresql: %w", err)
		}
		defer pg.Stop()
		if err := pg.CreateDatabase(ctx, "txflow"); err != nil {
			return err
		}
		fmt.Printf("PostgreSQL: %s\n  for the worker: export DATABASE_URL='%s'\n", pg.DataDir(), pg.URL("txflow"))
	}

	if *withNATS {
		ns, err := devnats.Start(*natsDir, *natsPort)
		if err != nil {
			return fmt.Errorf("start nats: %w", err)
		}
		defer ns.Stop()
		fmt.Printf("NATS:     %s (JetStream, store %s)\n  for the worker: export TXFLOW_NATS_URL=%s\n", ns.URL(), ns.Dir(), ns.URL())
	}

	srv, err := devtemporal.Start(ctx, opts)
	if err != nil {
		return err
	}
	fmt.Printf("Temporal: %s (namespace %q)\n", srv.FrontendHostPort(), srv.Namespace())
	if u := srv.UIURL(); u != "" {
		fmt.Printf("Web UI:   %s\n", u)
	}
	if opts.DBFilename != "" {
		fmt.Printf("Database: %s\n", opts.DBFilename)
	} else {
		fmt.Println("Database: in memory")
	}
	fmt.Println("Press Ctrl+C to stop.")

	<-ctx.Done()
	stop() // a second signal now kills the process the default way
	fmt.Println("Stopping...")
	if err := srv.Stop(); err != nil {
		return err
	}
	fmt.Println("Stopped.")
	return nil
}
