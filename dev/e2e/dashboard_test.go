package e2e

import (
	"encoding/json"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/txflow/txflow/dev/internal/devnats"
	"github.com/txflow/txflow/dev/internal/devstack"
	"github.com/txflow/txflow/dev/internal/devtemporal"
	"github.com/txflow/txflow/internal/testdb"
	"github.com/txflow/txflow/workflows"
)

const (
	dashboardFile = "../../deploy/grafana/txflow.json"
	alertsFile    = "../../deploy/prometheus/alerts.yml"
)

// prometheusOwn are the series Prometheus makes itself for each target, not on /metrics.
var prometheusOwn = []string{"up"}

// dashboardExprs returns every PromQL expression of the dashboard's panels.
func dashboardExprs(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(dashboardFile)
	require.NoError(t, err)
	var doc any
	require.NoError(t, json.Unmarshal(b, &doc))
	var out []string
	var walk func(any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if e, ok := v["expr"].(string); ok {
				out = append(out, e)
			}
			for _, c := range v {
				walk(c)
			}
		case []any:
			for _, c := range v {
				walk(c)
			}
		}
	}
	walk(doc)
	return out
}

// alertRules returns the alerting rules of alerts.yml.
func alertRules(t *testing.T) map[string]string {
	t.Helper()
	b, err := os.ReadFile(alertsFile)
	require.NoError(t, err)
	var doc struct {
		Groups []struct {
			Rules []struct {
				Alert string `yaml:"alert"`
				Expr  string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	require.NoError(t, yaml.Unmarshal(b, &doc))
	out := map[string]string{}
	for _, g := range doc.Groups {
		for _, r := range g.Rules {
			out[r.Alert] = r.Expr
		}
	}
	return out
}

var (
	promStrings   = regexp.MustCompile(`"[^"]*"`)
	promMatchers  = regexp.MustCompile(`\{[^}]*\}`)
	promRanges    = regexp.MustCompile(`\[[^\]]*\]`)
	promGrouping  = regexp.MustCompile(`\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
	promIdent     = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*`)
	promFunction  = regexp.MustCompile(`^\s*\(`)
	promOperators = []string{"and", "or", "unless", "offset", "bool", "by", "without", "on", "ignoring", "group_left", "group_right", "inf", "nan"}
)

// metricNames returns the metric names an expression selects: its identifiers that are neither
// functions, aggregation or set operators, nor labels of matchers and groupings.
func metricNames(expr string) []string {
	e := promStrings.ReplaceAllString(expr, `""`)
	e = promMatchers.ReplaceAllString(e, " ")
	e = promRanges.ReplaceAllString(e, " ")
	e = promGrouping.ReplaceAllString(e, " ")
	var out []string
	for _, loc := range promIdent.FindAllStringIndex(e, -1) {
		name := e[loc[0]:loc[1]]
		if promFunction.MatchString(e[loc[1]:]) || slices.Contains(promOperators, strings.ToLower(name)) {
			continue
		}
		if loc[0] > 0 && (e[loc[0]-1] >= '0' && e[loc[0]-1] <= '9' || e[loc[0]-1] == '.') {
			continue // the exponent or unit of a number (1e3, 5m)
		}
		out = append(out, name)
	}
	return out
}

func TestMetricNamesOfAnExpression(t *testing.T) {
	require.Equal(t, []string{"txflow_stage_duration_seconds_bucket"},
		metricNames(`histogram_quantile(0.95, sum by (le, stage) (rate(txflow_stage_duration_seconds_bucket{stage="tag"}[5m])))`))
	require.Equal(t, []string{"a_total", "b_total", "up"},
		metricNames(`sum(increase(a_total[1h])) / clamp_min(sum(b_total) or vector(0), 1e3) > 3 and on (job) absent(up{job="x y"} == 1)`))
}

// familyOf returns the family of /metrics a selected name belongs to: the name itself, or the
// histogram whose _bucket, _sum or _count it is.
func familyOf(families map[string]*dto.MetricFamily, name string) (*dto.MetricFamily, bool) {
	if f, ok := families[name]; ok {
		return f, true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suffix); ok {
			if f, ok := families[base]; ok && f.GetType() == dto.MetricType_HISTOGRAM {
				return f, true
			}
		}
	}
	return nil, false
}

// TestDashboardAndAlertsUseRealMetrics runs the sample with errors, in one-line chunks and
// with delivery on, through a real worker, then checks that every metric the Grafana dashboard
// and the Prometheus alerts select is on that worker's /metrics, and that promtool accepts the
// rules when it is installed.
func TestDashboardAndAlertsUseRealMetrics(t *testing.T) {
	exprs := dashboardExprs(t)
	rules := alertRules(t)
	require.GreaterOrEqual(t, len(exprs), 10, "the dashboard's panels")
	require.ElementsMatch(t, []string{"TxflowRunFailed", "TxflowNoRunToday", "TxflowRejectionsFarAboveUsual", "TxflowWorkersAbsent"},
		slices.Collect(maps.Keys(rules)))
	used := map[string][]string{} // metric -> where
	for i, e := range exprs {
		for _, n := range metricNames(e) {
			used[n] = append(used[n], "dashboard expr "+strconv.Itoa(i+1))
		}
	}
	for name, e := range rules {
		require.NotEmpty(t, metricNames(e), "alert %s selects no metric", name)
		for _, n := range metricNames(e) {
			used[n] = append(used[n], "alert "+name)
		}
	}
	for _, want := range []string{"txflow_runs_total", "txflow_rows_rejected_by_reason_total", "txflow_stage_duration_seconds_bucket",
		"temporal_activity_schedule_to_start_latency_seconds_bucket", "txflow_delivery_lag_seconds_bucket", "txflow_messages_published_total"} {
		require.Contains(t, used, want, "the dashboard shows %s", want)
	}

	t.Run("promtool", func(t *testing.T) {
		bin, err := exec.LookPath("promtool")
		if err != nil {
			t.Skip("promtool not found on PATH (it comes with Prometheus): alerts.yml not checked by promtool")
		}
		out, err := exec.Command(bin, "check", "rules", alertsFile).CombinedOutput()
		require.NoError(t, err, "%s", out)
	})

	// A real worker with delivery on, its /metrics after a run of the sample with errors in
	// one-line chunks: more activities at once than the 3 the SDK hands to the worker that
	// schedules them (eager execution), so that some are polled and their schedule-to-start
	// latency recorded.
	srv := devtemporal.StartForTest(t, devtemporal.Options{SearchAttributes: workflows.SearchAttributes()})
	ns := devnats.StartForTest(t)
	port, err := devtemporal.FreePort()
	require.NoError(t, err)
	o := &observed{
		harness:  &harness{t: t, temporal: srv, dbURL: testdb.URL(t), input: t.TempDir(), output: t.TempDir()},
		httpAddr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
	}
	o.env = workerEnv(srv, o.dbURL, o.input, o.output)
	o.env["TXFLOW_HTTP_ADDR"] = o.httpAddr
	o.env[devstack.NATSURLVariable] = ns.URL()
	copySamples(t, o.input)
	runWorker(t, o.env)
	require.Eventually(t, func() bool {
		resp, err := http.Get("http://" + o.httpAddr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, time.Minute, 100*time.Millisecond, "worker never ready on %s", o.httpAddr)
	code, out, errOut := o.starter("run", "--chunk-size", "1", "transactions_with_errors.csv")
	require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", out, errOut)

	var families map[string]*dto.MetricFamily
	var missing []string
	// Counter increments reach the registry at the next interval (a second).
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(250 * time.Millisecond) {
		families = o.scrapeMetrics()
		missing = missing[:0]
		for name := range used {
			if slices.Contains(prometheusOwn, name) {
				continue
			}
			if _, ok := familyOf(families, name); !ok {
				missing = append(missing, name+" ("+strings.Join(used[name], ", ")+")")
			}
		}
		reasons, _ := metricValue(families, "txflow_rows_rejected_by_reason_total", map[string]string{"reason": "invalid_amount"})
		if len(missing) == 0 && reasons == 3 || time.Now().After(deadline) {
			break
		}
	}
	sort.Strings(missing)
	require.Empty(t, missing, "metrics the dashboard or the alerts select, not on the worker's /metrics")
	v, _ := metricValue(families, "txflow_rows_rejected_by_reason_total", map[string]string{"reason": "invalid_amount"})
	require.Equal(t, 3.0, v, "three rows of the sample have an invalid amount")

	// Prometheus's own series are selected for the worker job only.
	for name, e := range rules {
		if strings.Contains(e, "up{") {
			require.Contains(t, e, `up{job="txflow-worker"`, "alert %s", name)
		}
	}
}
