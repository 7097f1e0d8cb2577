// Package workerapp assembles a txflow worker process: PostgreSQL store, Temporal client and
// worker, with the workflows and activities registered.
package workerapp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"

	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"

	"github.com/txflow/txflow/activities"
	"github.com/txflow/txflow/internal/config"
	"github.com/txflow/txflow/internal/health"
	"github.com/txflow/txflow/internal/metrics"
	"github.com/txflow/txflow/natsjs"
	"github.com/txflow/txflow/postgres"
	"github.com/txflow/txflow/workflows"
)

// Usage is the worker's help text.
var Usage = `worker: runs txflow's workflows and activities.

Usage: worker              run the worker
       worker healthcheck  exit 0 if the worker on TXFLOW_HTTP_ADDR is ready, 1 if not

It connects to Temporal and PostgreSQL, applies the database migrations, and polls the
"` + workflows.TaskQueue + `" task queue until SIGINT or SIGTERM, then finishes the activities
it is running (up to 30 s) and exits. Run as many workers as you like against one Temporal
namespace and one database: any worker can take any step of any run.

Settings come from the environment:
  TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_API_KEY, TEMPORAL_TLS_* (Temporal SDK conventions)
  DATABASE_URL (or the PG* variables)
` + variablesHelp()

func variablesHelp() string {
	var b strings.Builder
	for _, v := range config.Variables {
		fmt.Fprintf(&b, "  %-26s %s (default %q)\n", v.Name, v.Meaning, v.Default)
	}
	return b.String()
}

// NewLogger returns a text logger at the given level (debug, info, warn, error).
func NewLogger(w io.Writer, level string) *slog.Logger {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		l = slog.LevelInfo
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l}))
}

// Run connects, registers and polls until ctx is done. It returns an error when PostgreSQL or
// Temporal cannot be reached at start, or when the migrations fail.
func Run(ctx context.Context, cfg config.Config, log *slog.Logger) error {
	db, err := postgres.OpenWith(ctx, cfg.DatabaseURL, cfg.Database)
	if err != nil {
		return fmt.Errorf("open database: %w", err)
	}
	defer db.Close()
	if err := db.Migrate(ctx); err != nil {
		return fmt.Errorf("migrate database: %w", err)
	}
	// Delivery: NATS being down at start does not stop the worker; the broker keeps connecting
	// in the background and /readyz says so meanwhile.
	var broker *natsjs.Broker
	if cfg.Delivery() {
		if broker, err = natsjs.Open(cfg.NATSURL, cfg.NATSCreds, cfg.NATSStream, log); err != nil {
			return fmt.Errorf("nats: %w", err)
		}
		defer broker.Close()
	}

	opts := cfg.Temporal
	opts.Logger = sdklog.NewStructuredLogger(log)
	var reg *metrics.Registry
	if cfg.HTTPAddr != "" {
		// The SDK's metrics and the workflows' own go through the client's handler.
		if reg, err = metrics.New(log, metrics.DefaultInterval); err != nil {
			return fmt.Errorf("metrics: %w", err)
		}
		defer reg.Close()
		opts.MetricsHandler = reg.Handler()
	}
	c, err := client.DialContext(ctx, opts)
	if err != nil {
		return fmt.Errorf("connect to temporal at %s: %w", hostPort(opts), err)
	}
	defer c.Close()

	w := worker.New(c, workflows.TaskQueue, worker.Options{
		MaxConcurrentActivityExecutionSize: cfg.Concurrency,
		// Small runs' stages after Ingest, and small files' Ingest, run by the worker that runs
		// their workflow (workflows.LocalRunLines, workflows.LocalFileBytes).
		MaxConcurrentLocalActivityExecutionSize: cfg.Concurrency,
		WorkerStopTimeout:                       30 * time.Second,
	})
	// Big runs' activities, with slots of their own (workflows.BulkTaskQueue and
	// workflows.PublishTaskQueue).
	var bulk []worker.Worker
	for q, slots := range map[string]int{workflows.BulkTaskQueue: BulkConcurrency(cfg.Concurrency), workflows.PublishTaskQueue: cfg.Concurrency} {
		bulk = append(bulk, worker.New(c, q, worker.Options{
			MaxConcurrentActivityExecutionSize: slots,
			WorkerStopTimeout:                  30 * time.Second,
			DisableWorkflowWorker:              true,
		}))
	}
	if cfg.HTTPAddr != "" {
		checks := []health.Check{
			{Name: "postgresql", Probe: db.Ping},
			{Name: "temporal", Probe: func(ctx context.Context) error {
				_, err := c.CheckHealth(ctx, &client.CheckHealthRequest{})
				return err
			}},
		}
		if broker != nil {
			checks = append(checks, BrokerCheck(broker))
		}
		mux := health.Handler(checks...)
		mux.Handle("GET /metrics", reg.HTTPHandler())
		stopHTTP, err := serveHTTP(cfg.HTTPAddr, log, mux)
		if err != nil {
			return err
		}
		defer stopHTTP()
	}
	if err := EnsureSearchAttributes(ctx, c, opts.Namespace); err != nil {
		return err
	}
	var publisher activities.Publisher
	delivery := "off"
	if broker != nil {
		publisher = broker
		delivery = "nats stream " + broker.Stream()
	}
	RegisterWith(w, cfg, db, publisher)
	for _, b := range bulk {
		RegisterActivities(b, cfg, db, publisher)
		if err := b.Start(); err != nil {
			return fmt.Errorf("start the worker of big runs: %w", err)
		}
		defer b.Stop()
	}
	log.Info("worker started", "temporal", hostPort(opts), "namespace", opts.Namespace,
		"task_queue", workflows.TaskQueue, "big_runs", workflows.BulkTaskQueue+","+workflows.PublishTaskQueue, "input_dir", cfg.InputDir, "output_dir", cfg.OutputDir,
		"alert_webhook", WebhookForLog(cfg.AlertWebhook), "events_webhook", WebhookForLog(cfg.EventsWebhook), "delivery", delivery,
		"profiles", strings.Join(cfg.Profiles.Names(), ","), "profiles_dir", cfg.ProfilesDir)

	stop := make(chan any)
	go func() { <-ctx.Done(); close(stop) }()
	if err := w.Run(stop); err != nil {
		return fmt.Errorf("run worker: %w", err)
	}
	log.Info("worker stopped")
	return nil
}

// BrokerCheck is the readiness check of delivery: not ready until the broker is connected and
// its stream ensured.
func BrokerCheck(b *natsjs.Broker) health.Check {
	return health.Check{Name: "broker", Probe: b.Ready}
}

// WebhookForLog returns what the start log says of a webhook URL: "none" when unset, else only
// its scheme and host, since its path or query often holds a secret token.
func WebhookForLog(raw string) string {
	if raw == "" {
		return "none"
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return "(unparsable URL)"
	}
	return u.Scheme + "://" + u.Host
}

// serveHTTP serves h on addr until the returned function is called.
func serveHTTP(addr string, log *slog.Logger, h http.Handler) (func(), error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on TXFLOW_HTTP_ADDR %s: %w", addr, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("http server stopped", "error", err)
		}
	}()
	log.Info("serving /healthz, /readyz and /metrics", "addr", l.Addr().String())
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}, nil
}

// Healthcheck asks the worker serving on httpAddr whether it is ready; it returns nil when it is.
// Container health checks run it as `worker healthcheck`.
func Healthcheck(ctx context.Context, httpAddr string) error {
	if httpAddr == "" {
		return errors.New("TXFLOW_HTTP_ADDR is off: nothing to check")
	}
	host, port, err := net.SplitHostPort(httpAddr)
	if err != nil {
		return fmt.Errorf("TXFLOW_HTTP_ADDR %q: %w", httpAddr, err)
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+net.JoinHostPort(host, port)+"/readyz", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("readyz: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("not ready (%s): %s", resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}

// Register registers txflow's workflows and activities on w, bound to cfg and db, with delivery
// off.
func Register(w worker.Registry, cfg config.Config, db *postgres.DB) {
	RegisterWith(w, cfg, db, nil)
}

// RegisterWith registers txflow's workflows and activities on w, bound to cfg and db; with a
// broker, delivery is on: Ingest writes the outbox, Publish and the notices publish to broker.
// Publish is registered either way, so that a run with messages to deliver waits (retrying)
// on a worker without a broker rather than failing.
func RegisterWith(w worker.Registry, cfg config.Config, db *postgres.DB, broker activities.Publisher) {
	w.RegisterWorkflow(workflows.ProcessFile)
	w.RegisterWorkflow(workflows.ProcessInbox)
	w.RegisterWorkflow(workflows.Notify)
	w.RegisterWorkflow(workflows.Reclassify)
	w.RegisterWorkflow(workflows.WriteReport)
	RegisterActivities(w, cfg, db, broker)
}

// BulkConcurrency is the number of activity slots a worker gives workflows.BulkTaskQueue, the
// big runs' chunks and outputs: half its concurrency, at least 1 (their Publish activities get
// as many slots as the worker's concurrency on workflows.PublishTaskQueue: they mostly wait).
func BulkConcurrency(concurrency int) int {
	return max(1, concurrency/2)
}

// RegisterActivities registers txflow's activities on w, bound to cfg and db, with delivery
// through broker when not nil: those of RegisterWith, for the worker of workflows.BulkTaskQueue.
func RegisterActivities(w worker.Registry, cfg config.Config, db *postgres.DB, broker activities.Publisher) {
	w.RegisterActivity(&activities.Activities{
		DB:         db,
		Reports:    db,
		UIURL:      cfg.UIURL,
		Rules:      cfg.Rules,
		Reader:     cfg.Reader,
		InputRoot:  cfg.InputDir,
		OutputRoot: cfg.OutputDir,
		BatchSize:  cfg.BatchSize,
		Profiles:   cfg.Profiles,
		Outbox:     broker != nil,
	})
	w.RegisterActivity(&activities.Notifier{
		AlertWebhook:  cfg.AlertWebhook,
		EventsWebhook: cfg.EventsWebhook,
		OutputRoot:    cfg.OutputDir,
		UIURL:         cfg.UIURL,
		Broker:        broker,
	})
	w.RegisterActivity(&activities.Delivery{DB: db, Broker: broker})
	w.RegisterActivity(&activities.Reclassifier{DB: db, Rules: cfg.Rules, OutputRoot: cfg.OutputDir, Outbox: broker != nil})
}

// EnsureSearchAttributes makes sure the namespace has the custom search attributes the
// workflows set: without them every workflow task would fail and runs would never move. It adds
// the missing ones when the server lets it, and otherwise returns an error naming the commands
// that register them.
func EnsureSearchAttributes(ctx context.Context, c client.Client, namespace string) error {
	resp, err := c.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: namespace})
	if err != nil {
		return fmt.Errorf("list search attributes of namespace %s: %w", namespace, err)
	}
	missing := map[string]enumspb.IndexedValueType{}
	var cmds []string
	want := workflows.SearchAttributes()
	for _, name := range slices.Sorted(maps.Keys(want)) {
		typ := want[name]
		if got, ok := resp.GetCustomAttributes()[name]; ok {
			if got != typ {
				return fmt.Errorf("search attribute %s of namespace %s has type %s, txflow needs %s", name, namespace, got, typ)
			}
			continue
		}
		missing[name] = typ
		t := strings.TrimPrefix(typ.String(), "INDEXED_VALUE_TYPE_")
		cmds = append(cmds, fmt.Sprintf("temporal operator search-attribute create --namespace %s --name %s --type %s",
			namespace, name, strings.ToUpper(t[:1])+strings.ToLower(t[1:])))
	}
	if len(missing) == 0 {
		return nil
	}
	_, err = c.OperatorService().AddSearchAttributes(ctx, &operatorservice.AddSearchAttributesRequest{
		Namespace: namespace, SearchAttributes: missing,
	})
	if err != nil {
		return fmt.Errorf("namespace %s lacks txflow's search attributes and they could not be added (%w); register them with:\n  %s",
			namespace, err, strings.Join(cmds, "\n  "))
	}
	return nil
}

func hostPort(o client.Options) string {
	if o.HostPort == "" {
		return client.DefaultHostPort
	}
	return o.HostPort
}
