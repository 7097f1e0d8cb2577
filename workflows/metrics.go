package workflows

import (
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/workflow"

	"github.com/txflow/txflow/activities"
)

// Names of the metrics ProcessFile emits through the worker's metrics handler (Prometheus when
// the worker serves it), beside the SDK's own temporal_* metrics. The row counters carry the
// counts of activities.Counts of the same names. The workflow emits them with
// workflow.GetMetricsHandler, which stays silent during replay, so a run counts once.
const (
	MetricRowsIngested  = "txflow_rows_ingested"  // counter: rows accepted by Ingest
	MetricRowsRejected  = "txflow_rows_rejected"  // counter: rows rejected by Ingest
	MetricRowsInError   = "txflow_rows_in_error"  // counter: accepted rows in error
	MetricRowsTagged    = "txflow_rows_tagged"    // counter: rows with a tag in the dump
	MetricRowsAnnotated = "txflow_rows_annotated" // counter: rows with an annotation in the dump
	MetricRuns          = "txflow_runs"           // counter, tag "status": completed or failed
	MetricStageDuration = "txflow_stage_duration" // timer, tag "stage": ingest, tag, annotate, report, dump
)

// Tags of the metrics above.
const (
	MetricTagStatus = "status"
	MetricTagStage  = "stage"
)

// runMetrics emits a run's metrics.
type runMetrics struct {
	h client.MetricsHandler
}

func newRunMetrics(ctx workflow.Context) runMetrics {
	return runMetrics{h: workflow.GetMetricsHandler(ctx)}
}

func (m runMetrics) stage(name string, d time.Duration) {
	m.h.WithTags(map[string]string{MetricTagStage: name}).Timer(MetricStageDuration).Record(d)
}

// ingested counts Ingest's counts, once Ingest completed.
func (m runMetrics) ingested(c activities.Counts) {
	m.h.Counter(MetricRowsIngested).Inc(c.Ingested)
	m.h.Counter(MetricRowsRejected).Inc(c.Rejected)
	m.h.Counter(MetricRowsInError).Inc(c.InError)
}

// dumped counts Dump's counts, once Dump completed.
func (m runMetrics) dumped(c activities.Counts) {
	m.h.Counter(MetricRowsTagged).Inc(c.Tagged)
	m.h.Counter(MetricRowsAnnotated).Inc(c.Annotated)
}

func (m runMetrics) finished(status string) {
	m.h.WithTags(map[string]string{MetricTagStatus: status}).Counter(MetricRuns).Inc(1)
}
