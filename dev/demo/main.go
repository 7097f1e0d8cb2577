// Command demo runs the whole txflow pipeline on the bundled sample files, on this machine:
// it starts a Temporal server with its Web UI, a NATS server with JetStream and, when
// DATABASE_URL is unset, a local PostgreSQL cluster (state in .txflow/), runs a worker that
// delivers results to NATS, and starts one run per sample file through the starter. It prints
// each run's summary, where its outputs are, and what the NATS stream holds.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/txflow/txflow/dev/internal/devstack"
	"github.com/txflow/txflow/internal/config"
	"github.com/txflow/txflow/internal/starterapp"
	"github.com/txflow/txflow/internal/workerapp"
)

var samples = []string{"transactions.csv", "transactions_with_errors.csv"}

func main() {
	state := flag.String("state-dir", ".txflow", "where the Temporal database and the local PostgreSQL cluster live")
	data := flag.String("data-dir", "data", "input/ and output/ roots are created here")
	keep := flag.Bool("keep", false, "keep Temporal and its Web UI running after the runs, until Ctrl-C")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *state, *data, *keep); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, stateDir, dataDir string, keep bool) error {
	inputDir, outputDir := filepath.Join(dataDir, "input"), filepath.Join(dataDir, "output")
	if err := os.MkdirAll(inputDir, 0o755); err != nil {
		return err
	}
	for _, name := range samples {
		if err := copyFile(filepath.Join("testdata", name), filepath.Join(inputDir, name)); err != nil {
			return fmt.Errorf("copy sample: %w", err)
		}
	}

	fmt.Println("starting Temporal and NATS (in-process) and PostgreSQL ...")
	stack, err := devstack.Start(ctx, devstack.Options{
		StateDir:    stateDir,
		DatabaseURL: os.Getenv("DATABASE_URL"),
		NATS:        true,
		Logf:        func(f string, a ...any) { fmt.Printf("  "+f+"\n", a...) },
	})
	if err != nil {
		return err
	}
	defer stack.Stop()
	env := stack.Env(inputDir, outputDir)
	fmt.Printf("Temporal %s, Web UI %s, database %s\n", stack.Temporal.FrontendHostPort(), stack.Temporal.UIURL(), redact(stack.DatabaseURL))
	fmt.Printf("NATS (JetStream, store %s): %s=%s\n\n", stack.NATS.Dir(), devstack.NATSURLVariable, stack.NATS.URL())

	cfg, err := config.Load(env)
	if err != nil {
		return err
	}
	wctx, stopWorker := context.WithCancel(ctx)
	workerDone := make(chan error, 1)
	go func() {
		workerDone <- workerapp.Run(wctx, cfg, workerapp.NewLogger(os.Stderr, "warn"))
	}()
	defer func() { stopWorker(); <-workerDone }()

	failed := 0
	for _, name := range samples {
		fmt.Printf("== starter run %s\n", name)
		if code := starterapp.Main(ctx, []string{"run", name}, env, os.Stdout, os.Stderr); code != starterapp.ExitOK {
			failed++
		}
		fmt.Println()
		select {
		case err := <-workerDone:
			return fmt.Errorf("worker stopped: %w", err)
		default:
		}
	}
	abs, _ := filepath.Abs(outputDir)
	fmt.Printf("outputs are under %s/<run id>/\n", abs)
	fmt.Println(devstack.DescribeStream(ctx, stack.NATS.URL(), devstack.DefaultStream))
	fmt.Printf("Web UI: %s/namespaces/%s/workflows\n", stack.Temporal.UIURL(), stack.Temporal.Namespace())
	if failed > 0 {
		return fmt.Errorf("%d run(s) failed", failed)
	}
	if keep {
		fmt.Println("Temporal and its Web UI keep running; Ctrl-C to stop.")
		<-ctx.Done()
	} else {
		fmt.Printf("(servers stopped; `go run ./dev/devserver` reopens this history from %s, or run the demo with --keep)\n", stateDir)
	}
	return nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// redact hides a password in a database URL.
func redact(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}
