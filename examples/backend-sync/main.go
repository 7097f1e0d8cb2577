// Command backend-sync applies txflow's transaction results, published on
// NATS JetStream, to a backend_transactions table in the backend's
// PostgreSQL database. See README.md and package backendsync.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/txflow/txflow/examples/backend-sync/backendsync"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "backend-sync:", err)
		os.Exit(1)
	}
}

func run() error {
	var cfg backendsync.Config
	flag.StringVar(&cfg.NatsURL, "nats-url", os.Getenv("TXFLOW_NATS_URL"), "NATS server URL(s), comma-separated (env TXFLOW_NATS_URL)")
	flag.StringVar(&cfg.NatsCreds, "nats-creds", os.Getenv("TXFLOW_NATS_CREDS"), "NATS credentials file (env TXFLOW_NATS_CREDS)")
	flag.StringVar(&cfg.Stream, "stream", envOr("TXFLOW_NATS_STREAM", backendsync.DefaultStream), "JetStream stream (env TXFLOW_NATS_STREAM)")
	flag.StringVar(&cfg.Durable, "durable", envOr("BACKEND_SYNC_DURABLE", backendsync.DefaultDurable), "durable consumer name (env BACKEND_SYNC_DURABLE)")
	flag.StringVar(&cfg.DatabaseURL, "database-url", os.Getenv("DATABASE_URL"), "the backend's PostgreSQL database (env DATABASE_URL)")
	flag.IntVar(&cfg.BatchSize, "batch-size", backendsync.DefaultBatchSize, "messages applied per database transaction")
	flag.DurationVar(&cfg.AckWait, "ack-wait", backendsync.DefaultAckWait, "redelivery delay of a message not acked")
	flag.Parse()
	if flag.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", flag.Args())
	}
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// The first signal stops after the batch in progress; stop() restores the
	// default handling, so a second one kills the process.
	go func() {
		<-ctx.Done()
		stop()
	}()
	return backendsync.Run(ctx, cfg)
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
