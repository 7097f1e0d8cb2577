package config

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/require"

	"github.com/txflow/txflow/txn"
)

func TestLoadDefaults(t *testing.T) {
	c, err := Load(Map{"TEMPORAL_CONFIG_FILE": os.DevNull})
	require.NoError(t, err)
	require.Equal(t, "default", c.Temporal.Namespace)
	require.Equal(t, "", c.Temporal.HostPort, "the SDK default (localhost:7233) applies")
	require.Equal(t, DefaultInputDir, c.InputDir)
	require.Equal(t, DefaultOutputDir, c.OutputDir)
	require.Equal(t, txn.DefaultRules(), c.Rules)
	require.Equal(t, DefaultBatchSize, c.BatchSize)
	require.Equal(t, DefaultMaxFieldSize, c.Reader.MaxFieldBytes)
	require.Equal(t, 10*time.Minute, c.Database.StatementTimeout)
	require.Equal(t, time.Minute, c.Database.LockTimeout)
	require.Equal(t, "http://localhost:8233/namespaces/default/workflows/w1", c.WorkflowURL("w1"))
}

func TestLoadOverrides(t *testing.T) {
	c, err := Load(Map{
		"TEMPORAL_CONFIG_FILE":    os.DevNull,
		"TEMPORAL_ADDRESS":        "temporal.prod:7233",
		"TEMPORAL_NAMESPACE":      "payments",
		"TEMPORAL_API_KEY":        "secret-key",
		"DATABASE_URL":            "postgres://u:p@db/txflow",
		"TXFLOW_INPUT_DIR":        "/in",
		"TXFLOW_OUTPUT_DIR":       "/out",
		"TXFLOW_UI_URL":           "https://ui.example/",
		"TXFLOW_TAG_WORDS":        "FOO, BAR",
		"TXFLOW_LARGE_SALE_ABOVE": "1000",
		"TXFLOW_EXPENSE_BELOW":    "-50.5",
		"TXFLOW_AMOUNT_LIMIT":     "5000",
		"TXFLOW_BATCH_SIZE":       "100",

		"TXFLOW_DB_STATEMENT_TIMEOUT": "0",
		"TXFLOW_DB_LOCK_TIMEOUT":      "2.5s",
	})
	require.NoError(t, err)
	require.Equal(t, "temporal.prod:7233", c.Temporal.HostPort)
	require.Equal(t, "payments", c.Temporal.Namespace)
	require.NotNil(t, c.Temporal.Credentials)
	require.Equal(t, "postgres://u:p@db/txflow", c.DatabaseURL)
	require.Equal(t, []string{"FOO", "BAR"}, c.Rules.TagWords)
	require.True(t, c.Rules.LargeSaleAbove.Equal(decimal.NewFromInt(1000)))
	require.True(t, c.Rules.ExpenseBelow.Equal(decimal.RequireFromString("-50.5")))
	require.True(t, c.Rules.AmountLimit.Equal(decimal.NewFromInt(5000)))
	require.Equal(t, 100, c.BatchSize)
	require.Less(t, c.Database.StatementTimeout, time.Duration(0), "0 means no limit")
	require.Equal(t, 2500*time.Millisecond, c.Database.LockTimeout)
	require.Equal(t, "https://ui.example/namespaces/payments/workflows/w", c.WorkflowURL("w"))
}

func TestLoadRejectsBadValues(t *testing.T) {
	for key, val := range map[string]string{
		"TXFLOW_AMOUNT_LIMIT":         "lots",
		"TXFLOW_LARGE_SALE_ABOVE":     "-5",
		"TXFLOW_BATCH_SIZE":           "0",
		"TXFLOW_DB_LOCK_TIMEOUT":      "30",
		"TXFLOW_DB_STATEMENT_TIMEOUT": "-1m",
		"TXFLOW_TAG_WORDS":            ",",
	} {
		_, err := Load(Map{"TEMPORAL_CONFIG_FILE": os.DevNull, key: val})
		require.Error(t, err, key)
	}
	_, err := Load(Map{"TEMPORAL_CONFIG_FILE": os.DevNull, "TXFLOW_AMOUNT_LIMIT": "lots"})
	require.ErrorContains(t, err, "TXFLOW_AMOUNT_LIMIT")
}

func TestLoadNATS(t *testing.T) {
	c, err := Load(Map{"TEMPORAL_CONFIG_FILE": os.DevNull})
	require.NoError(t, err)
	require.False(t, c.Delivery(), "delivery is off by default")
	require.Equal(t, "TXFLOW", c.NATSStream)

	c, err = Load(Map{"TEMPORAL_CONFIG_FILE": os.DevNull, "TXFLOW_NATS_URL": "nats://a:4222, tls://b:4222,c:4222",
		"TXFLOW_NATS_CREDS": "/run/secrets/nats.creds", "TXFLOW_NATS_STREAM": "RESULTS"})
	require.NoError(t, err)
	require.True(t, c.Delivery())
	require.Equal(t, "nats://a:4222, tls://b:4222,c:4222", c.NATSURL)
	require.Equal(t, "/run/secrets/nats.creds", c.NATSCreds)
	require.Equal(t, "RESULTS", c.NATSStream)

	for env, msg := range map[string]string{
		"TXFLOW_NATS_URL=http://a:4222":         "TXFLOW_NATS_URL",
		"TXFLOW_NATS_URL=nats://u:secret@a:1,,": "TXFLOW_NATS_URL",
		"TXFLOW_NATS_CREDS=/x.creds":            "TXFLOW_NATS_URL is empty",
		"TXFLOW_NATS_STREAM=txflow.results":     "TXFLOW_NATS_STREAM",
	} {
		k, v, _ := strings.Cut(env, "=")
		_, err := Load(Map{"TEMPORAL_CONFIG_FILE": os.DevNull, k: v})
		require.ErrorContains(t, err, msg, env)
		require.NotContains(t, err.Error(), "secret")
	}
}
