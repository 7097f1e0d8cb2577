// Package devstack starts everything a txflow run needs on one machine: a Temporal server with
// its Web UI, in-process, a PostgreSQL cluster from the machine's binaries when no
// DATABASE_URL is given, and, when asked, a NATS server with JetStream, in-process, for the
// delivery of results. The demo and the benchmark use it.
package devstack

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"

	"github.com/txflow/txflow/dev/internal/devnats"
	"github.com/txflow/txflow/dev/internal/devtemporal"
	"github.com/txflow/txflow/internal/config"
	"github.com/txflow/txflow/internal/devpg"
	"github.com/txflow/txflow/workflows"
)

// Options configures Start.
type Options struct {
	StateDir    string // holds temporal.db and the PostgreSQL cluster (pg/); required unless InMemory
	InMemory    bool   // Temporal keeps no file (tests)
	DatabaseURL string // use this database instead of starting a local cluster
	Port        int    // Temporal frontend port; 0 picks 7233 when free, else any free port
	UIPort      int    // Web UI port; 0 picks 8233 when free, else any free port; -1 none
	// NATS starts a NATS server with JetStream, its store in nats/ under StateDir (in a
	// temporary directory removed by Stop when InMemory), on the port it had there before
	// when free, else 4222 when free, else any free port. Env then gives its URL as
	// TXFLOW_NATS_URL, which turns the delivery of results on.
	NATS bool
	Logf func(format string, args ...any)
}

// Stack is a running Temporal server, a PostgreSQL database and, when asked, a NATS server.
type Stack struct {
	Temporal    *devtemporal.Server
	Postgres    *devpg.Cluster // nil when DatabaseURL was given
	DatabaseURL string
	NATS        *devnats.Server // nil unless Options.NATS
	natsTemp    string          // the NATS store to remove at Stop, when temporary
}

// Start starts the stack. It returns an error when Temporal cannot start or when no database is
// given and no PostgreSQL binaries are found (the error says how to install them).
func Start(ctx context.Context, opts Options) (_ *Stack, err error) {
	if opts.Logf == nil {
		opts.Logf = func(string, ...any) {}
	}
	s := &Stack{DatabaseURL: opts.DatabaseURL}
	defer func() {
		if err != nil {
			s.Stop()
		}
	}()
	if opts.StateDir != "" {
		// Searchable by all: the PostgreSQL server runs as another user and needs to reach pg/.
		if err := os.MkdirAll(opts.StateDir, 0o755); err != nil {
			return nil, fmt.Errorf("create state directory: %w", err)
		}
	}
	if s.DatabaseURL == "" {
		if opts.StateDir == "" {
			return nil, errors.New("a state directory is needed for the local PostgreSQL cluster")
		}
		pgDir := filepath.Join(opts.StateDir, "pg")
		// A checkout under a private home directory is not reachable by the server's user: the
		// cluster then lives in the temporary directory, linked from pg/.
		s.Postgres, err = devpg.StartOrFallback(ctx, devpg.Options{DataDir: pgDir, Logf: opts.Logf})
		if err != nil {
			return nil, fmt.Errorf("start local postgresql: %w", err)
		}
		if err := s.Postgres.CreateDatabase(ctx, "txflow"); err != nil {
			return nil, fmt.Errorf("create database: %w", err)
		}
		s.DatabaseURL = s.Postgres.URL("txflow")
	}

	if opts.NATS {
		dir := filepath.Join(opts.StateDir, "nats")
		if opts.InMemory || opts.StateDir == "" {
			if dir, err = os.MkdirTemp("", "txflow-nats-"); err != nil {
				return nil, fmt.Errorf("nats store: %w", err)
			}
			s.natsTemp = dir
		}
		if s.NATS, err = devnats.Start(dir, 0); err != nil {
			return nil, fmt.Errorf("start nats: %w", err)
		}
	}

	topts := devtemporal.Options{IP: "127.0.0.1", SearchAttributes: workflows.SearchAttributes()}
	if topts.Port, err = pickPort(opts.Port, 7233); err != nil {
		return nil, err
	}
	switch {
	case opts.UIPort < 0:
		topts.UIPort = -1
	default:
		if topts.UIPort, err = pickPort(opts.UIPort, 8233); err != nil {
			return nil, err
		}
	}
	if !opts.InMemory {
		topts.DBFilename = filepath.Join(opts.StateDir, "temporal.db")
	}
	s.Temporal, err = devtemporal.Start(ctx, topts)
	if err != nil {
		return nil, fmt.Errorf("start temporal: %w", err)
	}
	return s, nil
}

// Env returns the environment a worker or starter needs to use this stack, with the given roots;
// with TXFLOW_NATS_URL when the stack runs NATS.
func (s *Stack) Env(inputDir, outputDir string) config.Map {
	env := config.Map{
		"TEMPORAL_ADDRESS":   s.Temporal.FrontendHostPort(),
		"TEMPORAL_NAMESPACE": s.Temporal.Namespace(),
		"DATABASE_URL":       s.DatabaseURL,
		"TXFLOW_INPUT_DIR":   inputDir,
		"TXFLOW_OUTPUT_DIR":  outputDir,
		"TXFLOW_UI_URL":      s.Temporal.UIURL(),
		"TXFLOW_HTTP_ADDR":   "127.0.0.1:0", // any free port: several workers may run here
		// No profile file: only the variables above configure the client.
		"TEMPORAL_CONFIG_FILE": os.DevNull,
	}
	if s.NATS != nil {
		env[NATSURLVariable] = s.NATS.URL()
	}
	return env
}

// NATSURLVariable is the worker's variable that names the NATS servers and turns delivery on.
const NATSURLVariable = "TXFLOW_NATS_URL"

// Stop stops Temporal, then PostgreSQL and NATS when they were started here.
func (s *Stack) Stop() {
	if s.Temporal != nil {
		_ = s.Temporal.Stop()
	}
	if s.Postgres != nil {
		_ = s.Postgres.Stop()
	}
	if s.NATS != nil {
		s.NATS.Stop()
	}
	if s.natsTemp != "" {
		_ = os.RemoveAll(s.natsTemp)
	}
}

// pickPort returns want when set, else def when it is free, else a free port.
func pickPort(want, def int) (int, error) {
	if want > 0 {
		return want, nil
	}
	if l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(def))); err == nil {
		l.Close()
		return def, nil
	}
	return devtemporal.FreePort()
}
