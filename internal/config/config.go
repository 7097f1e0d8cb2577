// Package config reads txflow's settings from the environment, the same way for the worker and
// the starter. Temporal's client settings follow the SDK's TEMPORAL_* conventions
// (TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_API_KEY, TEMPORAL_TLS_*, TEMPORAL_PROFILE and
// the TOML profile file); PostgreSQL's come from DATABASE_URL or the libpq PG* variables.
package config

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/shopspring/decimal"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/contrib/envconfig"

	"github.com/txflow/txflow/postgres"
	"github.com/txflow/txflow/txn"
)

// Env is where settings are read from: the process environment (envconfig.EnvLookupOS) or, in
// tests, a Map.
type Env = envconfig.EnvLookup

// Map is an environment given as a map.
type Map map[string]string

// LookupEnv implements Env.
func (m Map) LookupEnv(key string) (string, bool) { v, ok := m[key]; return v, ok }

// Environ implements Env.
func (m Map) Environ() []string {
	out := make([]string, 0, len(m))
	for k, v := range m {
		out = append(out, k+"="+v)
	}
	return out
}

// Defaults.
const (
	DefaultInputDir     = "data/input"
	DefaultOutputDir    = "data/output"
	DefaultUIURL        = "http://localhost:8233"
	DefaultHTTPAddr     = ":8080"
	DefaultConcurrency  = 4
	DefaultBatchSize    = 50_000
	DefaultMaxFieldSize = 4096
)

// Config is everything the worker and the starter read from the environment.
type Config struct {
	Temporal    client.Options // from TEMPORAL_* (and the optional TOML profile)
	DatabaseURL string         // DATABASE_URL; "" lets pgx use the PG* variables
	InputDir    string         // TXFLOW_INPUT_DIR
	OutputDir   string         // TXFLOW_OUTPUT_DIR
	UIURL       string         // TXFLOW_UI_URL: base address of the Temporal Web UI, for links (starter, report.html)
	// Rules are TXFLOW_TAG_WORDS, TXFLOW_LARGE_SALE_ABOVE, TXFLOW_EXPENSE_BELOW and
	// TXFLOW_AMOUNT_LIMIT: they make version 1 of the rules stored in the database when there is
	// none (postgres.DB.CurrentRules); runs apply the stored versions.
	Rules  txn.Rules
	Reader txn.ReaderOptions
	// Profiles are the mapping profiles: the built-in ones and those of TXFLOW_PROFILES_DIR
	// (ProfilesDir, "" for none), which add to them or override them by name.
	Profiles    txn.Profiles
	ProfilesDir string
	BatchSize   int    // TXFLOW_BATCH_SIZE: rows per COPY batch during ingestion
	Concurrency int    // TXFLOW_WORKER_CONCURRENCY: activities one worker runs at once
	LogLevel    string // TXFLOW_LOG_LEVEL: debug, info, warn, error
	HTTPAddr    string // TXFLOW_HTTP_ADDR: the worker's /healthz, /readyz and /metrics; "off" disables
	// TXFLOW_DB_STATEMENT_TIMEOUT, TXFLOW_DB_LOCK_TIMEOUT: bounds on one database statement and
	// on its wait for a lock; negative for none ("0" in the environment).
	Database postgres.Options

	AlertWebhook  string // TXFLOW_ALERT_WEBHOOK: URL that receives one JSON alert per failed run; "" for none
	EventsWebhook string // TXFLOW_EVENTS_WEBHOOK: URL that receives one JSON event per completed run; "" for none

	// Delivery of results to NATS JetStream (docs/delivery.md): off when NATSURL is empty.
	NATSURL    string // TXFLOW_NATS_URL: server URLs, comma-separated (nats://, tls://)
	NATSCreds  string // TXFLOW_NATS_CREDS: path of a credentials file; "" for none
	NATSStream string // TXFLOW_NATS_STREAM: the stream's name
}

// DefaultNATSStream is the stream's name when TXFLOW_NATS_STREAM is not set.
const DefaultNATSStream = "TXFLOW"

// Delivery says whether delivery to NATS is on.
func (c Config) Delivery() bool { return c.NATSURL != "" }

// Variables lists every TXFLOW_* variable Load reads, with its meaning, for docs and checks.
var Variables = []struct{ Name, Default, Meaning string }{
	{"TXFLOW_INPUT_DIR", DefaultInputDir, "input root: the worker reads files only below it"},
	{"TXFLOW_OUTPUT_DIR", DefaultOutputDir, "output root: each run writes to <root>/<run id>/"},
	{"TXFLOW_UI_URL", DefaultUIURL, "Temporal Web UI address, for the links the starter prints and those of each run's report.html"},
	{"TXFLOW_TAG_WORDS", "TATA,TOTO,TUTU,TAXI", "tag words, comma-separated, case-sensitive (seed version 1 of the stored rules: docs/rules.md)"},
	{"TXFLOW_LARGE_SALE_ABOVE", "300", "amounts above it are LARGE SALE (seeds version 1 of the stored rules)"},
	{"TXFLOW_EXPENSE_BELOW", "-200", "amounts below it are EXPENSE (seeds version 1 of the stored rules)"},
	{"TXFLOW_AMOUNT_LIMIT", "1000000.00", "amounts whose absolute value exceeds it are in error (amount_too_high; seeds version 1 of the stored rules)"},
	{"TXFLOW_MAX_FIELD_BYTES", strconv.Itoa(DefaultMaxFieldSize), "longest id, amount or wording accepted, in bytes (field_too_long)"},
	{"TXFLOW_PROFILES_DIR", "", "folder of mapping profiles (*.yaml) added to the built-in ones, or overriding them by name (none when empty)"},
	{"TXFLOW_BATCH_SIZE", strconv.Itoa(DefaultBatchSize), "rows per COPY batch during ingestion"},
	{"TXFLOW_WORKER_CONCURRENCY", strconv.Itoa(DefaultConcurrency), "activities one worker process runs at once on the task queue txflow, and as many local activities (the stages of runs of up to 10,000 lines, and the Ingest of files of at most 1 MiB); half as many more on txflow-bulk and as many more on txflow-publish, for runs of over 100,000 lines"},
	{"TXFLOW_LOG_LEVEL", "info", "debug, info, warn or error"},
	{"TXFLOW_DB_STATEMENT_TIMEOUT", postgres.DefaultStatementTimeout.String(), "longest a database statement may run before the step fails and is retried (0: no limit)"},
	{"TXFLOW_DB_LOCK_TIMEOUT", postgres.DefaultLockTimeout.String(), "longest a database statement may wait for a lock before the step fails and is retried (0: no limit)"},
	{"TXFLOW_HTTP_ADDR", DefaultHTTPAddr, "worker's HTTP address for /healthz, /readyz and /metrics (\"off\" to disable)"},
	{"TXFLOW_ALERT_WEBHOOK", "", "URL the worker POSTs one JSON alert to per failed run (none when empty)"},
	{"TXFLOW_EVENTS_WEBHOOK", "", "URL the worker POSTs one JSON event to per completed run (none when empty)"},
	{"TXFLOW_NATS_URL", "", "NATS server URLs, comma-separated: every new result is delivered to JetStream (delivery off when empty)"},
	{"TXFLOW_NATS_CREDS", "", "NATS credentials file (none when empty)"},
	{"TXFLOW_NATS_STREAM", DefaultNATSStream, "JetStream stream the worker creates if missing, covering txflow.>"},
}

// Load reads the configuration. It returns an error naming the variable when a value is invalid.
func Load(env Env) (Config, error) {
	if env == nil {
		env = envconfig.EnvLookupOS
	}
	lookup := env.LookupEnv
	get := func(key, def string) string {
		if v, ok := lookup(key); ok && strings.TrimSpace(v) != "" {
			return strings.TrimSpace(v)
		}
		return def
	}
	var c Config
	var err error
	c.Temporal, err = envconfig.LoadClientOptions(envconfig.LoadClientOptionsRequest{
		EnvLookup: env,
	})
	if err != nil {
		return Config{}, fmt.Errorf("temporal client settings: %w", err)
	}
	if c.Temporal.Namespace == "" {
		c.Temporal.Namespace = "default"
	}
	c.DatabaseURL = get("DATABASE_URL", "")
	c.InputDir = get("TXFLOW_INPUT_DIR", DefaultInputDir)
	c.OutputDir = get("TXFLOW_OUTPUT_DIR", DefaultOutputDir)
	c.UIURL = strings.TrimRight(get("TXFLOW_UI_URL", DefaultUIURL), "/")
	c.ProfilesDir = get("TXFLOW_PROFILES_DIR", "")
	if c.Profiles, err = txn.LoadProfiles(c.ProfilesDir); err != nil {
		return Config{}, fmt.Errorf("TXFLOW_PROFILES_DIR: %w", err)
	}
	c.LogLevel = get("TXFLOW_LOG_LEVEL", "info")
	c.HTTPAddr = get("TXFLOW_HTTP_ADDR", DefaultHTTPAddr)
	if c.HTTPAddr == "off" {
		c.HTTPAddr = ""
	}
	for _, w := range []struct {
		key string
		dst *string
	}{{"TXFLOW_ALERT_WEBHOOK", &c.AlertWebhook}, {"TXFLOW_EVENTS_WEBHOOK", &c.EventsWebhook}} {
		if v := get(w.key, ""); v != "" {
			if u, err := url.Parse(v); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return Config{}, fmt.Errorf("%s: not an http or https URL", w.key)
			}
			*w.dst = v
		}
	}

	c.NATSURL = get("TXFLOW_NATS_URL", "")
	c.NATSCreds = get("TXFLOW_NATS_CREDS", "")
	c.NATSStream = get("TXFLOW_NATS_STREAM", DefaultNATSStream)
	if c.NATSURL != "" {
		for _, raw := range strings.Split(c.NATSURL, ",") {
			raw = strings.TrimSpace(raw)
			if !strings.Contains(raw, "://") {
				raw = "nats://" + raw // host:port, as the NATS client takes it
			}
			u, err := url.Parse(raw)
			if raw == "" || err != nil || !slices.Contains([]string{"nats", "tls", "ws", "wss"}, u.Scheme) || u.Host == "" {
				return Config{}, fmt.Errorf("TXFLOW_NATS_URL: %q is not a nats:// or tls:// URL", redactUserinfo(raw))
			}
		}
	}
	if c.NATSCreds != "" && c.NATSURL == "" {
		return Config{}, errors.New("TXFLOW_NATS_CREDS is set but TXFLOW_NATS_URL is empty")
	}
	if strings.ContainsAny(c.NATSStream, " \t.*>/\\") {
		return Config{}, fmt.Errorf("TXFLOW_NATS_STREAM: %q is not a valid stream name (no spaces, '.', '*', '>', '/' or '\\')", c.NATSStream)
	}

	c.Rules = txn.DefaultRules()
	if v, ok := lookup("TXFLOW_TAG_WORDS"); ok && strings.TrimSpace(v) != "" {
		if c.Rules.TagWords, err = txn.ParseTagWords(v); err != nil {
			return Config{}, fmt.Errorf("TXFLOW_TAG_WORDS: %w", err)
		}
	}
	for _, d := range []struct {
		key string
		dst *decimal.Decimal
	}{
		{"TXFLOW_LARGE_SALE_ABOVE", &c.Rules.LargeSaleAbove},
		{"TXFLOW_EXPENSE_BELOW", &c.Rules.ExpenseBelow},
		{"TXFLOW_AMOUNT_LIMIT", &c.Rules.AmountLimit},
	} {
		if v := get(d.key, ""); v != "" {
			if *d.dst, err = decimal.NewFromString(v); err != nil {
				return Config{}, fmt.Errorf("%s: %q is not a decimal number", d.key, v)
			}
		}
	}
	if err := c.Rules.Validate(); err != nil {
		return Config{}, fmt.Errorf("rules: %w", err)
	}
	for _, n := range []struct {
		key string
		dst *int
		def int
	}{
		{"TXFLOW_MAX_FIELD_BYTES", &c.Reader.MaxFieldBytes, DefaultMaxFieldSize},
		{"TXFLOW_BATCH_SIZE", &c.BatchSize, DefaultBatchSize},
		{"TXFLOW_WORKER_CONCURRENCY", &c.Concurrency, DefaultConcurrency},
	} {
		*n.dst = n.def
		if v := get(n.key, ""); v != "" {
			i, err := strconv.Atoi(v)
			if err != nil || i <= 0 {
				return Config{}, fmt.Errorf("%s: %q is not a positive whole number", n.key, v)
			}
			*n.dst = i
		}
	}
	for _, d := range []struct {
		key string
		dst *time.Duration
		def time.Duration
	}{
		{"TXFLOW_DB_STATEMENT_TIMEOUT", &c.Database.StatementTimeout, postgres.DefaultStatementTimeout},
		{"TXFLOW_DB_LOCK_TIMEOUT", &c.Database.LockTimeout, postgres.DefaultLockTimeout},
	} {
		*d.dst = d.def
		if v := get(d.key, ""); v != "" {
			t, err := time.ParseDuration(v)
			if v == "0" {
				t, err = -1, nil // no limit
			} else if err != nil || t <= 0 {
				return Config{}, fmt.Errorf("%s: %q is not a positive duration (such as 30s or 5m) or 0", d.key, v)
			}
			*d.dst = t
		}
	}
	return c, nil
}

// WorkflowURL returns the Web UI address of a workflow.
func (c Config) WorkflowURL(workflowID string) string {
	return fmt.Sprintf("%s/namespaces/%s/workflows/%s", c.UIURL, c.Temporal.Namespace, workflowID)
}

// redactUserinfo hides the credentials a URL may carry, for error messages.
func redactUserinfo(raw string) string {
	if i := strings.Index(raw, "@"); i >= 0 {
		if j := strings.Index(raw, "://"); j >= 0 && j < i {
			return raw[:j+3] + "REDACTED" + raw[i:]
		}
	}
	return raw
}
