package workerapp

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestWebhookForLogKeepsOnlySchemeAndHost(t *testing.T) {
	for raw, want := range map[string]string{
		"": "none",
		"https://hooks.slack.com/services/T000/B000/XXXXSECRET": "https://hooks.slack.com",
		"http://user:pass@127.0.0.1:9000/alerts?token=abc":      "http://127.0.0.1:9000",
		"not a url":        "(unparsable URL)",
		"hooks.example/x":  "(unparsable URL)",
		"https://[::1]:99": "https://[::1]:99",
	} {
		require.Equal(t, want, WebhookForLog(raw), raw)
	}
}
