// Command worker runs txflow's workflows and activities: it connects to Temporal and PostgreSQL,
// applies the database migrations, and polls the txflow task queue until SIGINT or SIGTERM.
// Every setting comes from the environment; see the README's configuration table.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/txflow/txflow/internal/config"
	"github.com/txflow/txflow/internal/workerapp"
)

func main() {
	if len(os.Args) > 1 && (os.Args[1] == "-h" || os.Args[1] == "--help" || os.Args[1] == "help") {
		fmt.Print(workerapp.Usage)
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cfg, err := config.Load(nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		os.Exit(2)
	}
	if len(os.Args) > 1 && os.Args[1] == "healthcheck" {
		if err := workerapp.Healthcheck(ctx, cfg.HTTPAddr); err != nil {
			fmt.Fprintln(os.Stderr, "worker healthcheck:", err)
			os.Exit(1)
		}
		return
	}
	if len(os.Args) > 1 {
		fmt.Fprintf(os.Stderr, "worker: unknown argument %q\n\n%s", os.Args[1], workerapp.Usage)
		os.Exit(2)
	}
	if err := workerapp.Run(ctx, cfg, workerapp.NewLogger(os.Stderr, cfg.LogLevel)); err != nil {
		slog.Error("worker stopped", "error", err)
		os.Exit(1)
	}
}
