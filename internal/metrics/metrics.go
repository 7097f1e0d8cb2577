// Package metrics exposes a worker's metrics in the Prometheus text format.
//
// A Registry is both the Temporal SDK's metrics handler (client.Options.MetricsHandler) and the
// HTTP handler that serves what it collected. Everything the SDK emits goes through it: the SDK's
// own temporal_* metrics and the ones workflows emit with workflow.GetMetricsHandler (txflow_*).
//
// Names follow Prometheus conventions, as the Temporal SDK's Prometheus setup does:
//   - a counter named c is exposed as c_total;
//   - a timer named t is exposed as a histogram in seconds, t_seconds_bucket{le=…},
//     t_seconds_sum and t_seconds_count, over the bounds in Buckets;
//   - a gauge keeps its name.
//
// txflow's own metrics carry the help text of Help; the SDK's carry the reporter's generic one.
//
// Label names and values are restricted to letters, digits and '_' (anything else becomes '_').
// The Go runtime's go_* and the process's process_* metrics are exposed too.
package metrics

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/uber-go/tally/v4"
	tallyprom "github.com/uber-go/tally/v4/prometheus"
	"go.temporal.io/sdk/client"
	sdktally "go.temporal.io/sdk/contrib/tally"
)

// Buckets are the upper bounds, in seconds, of the histograms timers are exposed as: from a
// millisecond (an SDK request) to an hour (a stage of a very large file).
var Buckets = []float64{
	0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5,
	1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600,
}

// Help is the help text of txflow's own metrics, by exposed name (see the naming rules above):
// the HELP line of each in the exposition.
var Help = map[string]string{
	"txflow_rows_ingested_total":           "Rows accepted by Ingest (stored, new or already known), by workflow type.",
	"txflow_rows_rejected_total":           "Rows Ingest rejected (unreadable, duplicate id, id conflict), listed in each run's error report.",
	"txflow_rows_rejected_by_reason_total": "Rows Ingest rejected, by reason (invalid_amount, duplicate_id, ...), counted when the run's report is written.",
	"txflow_rows_in_error_total":           "Accepted rows in error (e.g. amount too high): stored and exported, listed in the error report.",
	"txflow_rows_tagged_total":             "Rows written to a run's output with a tag.",
	"txflow_rows_annotated_total":          "Rows written to a run's output with an annotation.",
	"txflow_runs_total":                    "ProcessFile runs that ended, by status (completed or failed).",
	"txflow_stage_duration_seconds":        "Duration of one stage of a run (ingest, tag, annotate, report, dump, publish), in seconds.",
	"txflow_messages_published_total":      "Transactions' messages JetStream acknowledged (delivery on), counted by the Publish activity as acknowledgements arrive.",
	"txflow_delivery_lag_seconds":          "Time from a run's settlement (its messages written to the outbox) to JetStream's acknowledgement, for the oldest message of each slice published, in seconds.",
}

// DefaultInterval is how often counter increments are handed to the Prometheus registry: a
// scrape sees them at most this late. Timers are recorded at once.
const DefaultInterval = time.Second

// Registry collects metrics and serves them to Prometheus. Create one with New; it is safe for
// concurrent use.
type Registry struct {
	reg    *prometheus.Registry
	scope  tally.Scope
	closer io.Closer
}

// New returns a Registry that hands collected values to Prometheus every interval (DefaultInterval
// when interval <= 0). A metric that cannot be registered (one name used with two different
// sets of labels) is logged on log as a warning and dropped, rather than stopping the process.
// New returns an error only when the process or Go runtime collectors cannot be registered.
func New(log *slog.Logger, interval time.Duration) (*Registry, error) {
	if interval <= 0 {
		interval = DefaultInterval
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	reg := prometheus.NewRegistry()
	for _, c := range []prometheus.Collector{
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register runtime collector: %w", err)
		}
	}
	reporter := tallyprom.NewReporter(tallyprom.Options{
		Registerer:              reg,
		DefaultTimerType:        tallyprom.HistogramTimerType,
		DefaultHistogramBuckets: Buckets,
		OnRegisterError: func(err error) {
			log.Warn("metric dropped", "error", err)
		},
	})
	scope, closer := tally.NewRootScope(tally.ScopeOptions{
		CachedReporter:         helpReporter{reporter},
		Separator:              tallyprom.DefaultSeparator,
		SanitizeOptions:        &sdktally.PrometheusSanitizeOptions,
		OmitCardinalityMetrics: true,
	}, interval)
	return &Registry{
		reg:    reg,
		scope:  sdktally.NewPrometheusNamingScope(scope),
		closer: closer,
	}, nil
}

// helpReporter registers the metrics named in Help with their help text; the others get the
// reporter's generic one.
type helpReporter struct {
	tallyprom.Reporter
}

func keys(tags map[string]string) []string {
	out := make([]string, 0, len(tags))
	for k := range tags {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func (r helpReporter) AllocateCounter(name string, tags map[string]string) tally.CachedCount {
	help, ok := Help[name]
	if !ok {
		return r.Reporter.AllocateCounter(name, tags)
	}
	vec, err := r.RegisterCounter(name, keys(tags), help)
	if err != nil {
		return r.Reporter.AllocateCounter(name, tags) // reports the error, as for any metric
	}
	return counter{vec.With(tags)}
}

func (r helpReporter) AllocateGauge(name string, tags map[string]string) tally.CachedGauge {
	help, ok := Help[name]
	if !ok {
		return r.Reporter.AllocateGauge(name, tags)
	}
	vec, err := r.RegisterGauge(name, keys(tags), help)
	if err != nil {
		return r.Reporter.AllocateGauge(name, tags)
	}
	return gauge{vec.With(tags)}
}

func (r helpReporter) AllocateTimer(name string, tags map[string]string) tally.CachedTimer {
	help, ok := Help[name]
	if !ok {
		return r.Reporter.AllocateTimer(name, tags)
	}
	vec, err := r.RegisterTimer(name, keys(tags), help, &tallyprom.RegisterTimerOptions{
		TimerType: tallyprom.HistogramTimerType, HistogramBuckets: Buckets,
	})
	if err != nil || vec.Histogram == nil {
		return r.Reporter.AllocateTimer(name, tags)
	}
	return timer{vec.Histogram.With(tags)}
}

type counter struct{ c prometheus.Counter }

func (c counter) ReportCount(v int64) { c.c.Add(float64(v)) }

type gauge struct{ g prometheus.Gauge }

func (g gauge) ReportGauge(v float64) { g.g.Set(v) }

type timer struct{ o prometheus.Observer }

func (t timer) ReportTimer(d time.Duration) { t.o.Observe(d.Seconds()) }

// Handler returns the Temporal SDK metrics handler to set as client.Options.MetricsHandler.
func (r *Registry) Handler() client.MetricsHandler {
	return sdktally.NewMetricsHandler(r.scope)
}

// HTTPHandler returns the handler serving the metrics in the Prometheus text exposition format
// (or OpenMetrics when the scraper asks for it), to mount at /metrics.
func (r *Registry) HTTPHandler() http.Handler {
	return promhttp.HandlerFor(r.reg, promhttp.HandlerOpts{
		EnableOpenMetrics: true,
		ErrorHandling:     promhttp.ContinueOnError,
	})
}

// Close hands the last collected values to Prometheus and stops the periodic hand-over. The
// HTTP handler keeps serving the values collected so far.
func (r *Registry) Close() error {
	if err := r.closer.Close(); err != nil {
		return fmt.Errorf("close metrics scope: %w", err)
	}
	return nil
}
