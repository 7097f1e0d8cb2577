package workerapp

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/txflow/txflow/internal/health"
	"github.com/txflow/txflow/natsjs"
	"github.com/txflow/txflow/natsjs/natstest"
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

// With delivery on, the worker starts while NATS is down, and /readyz says the broker is not
// ready until it is connected and the stream exists.
func TestReadyzWaitsForTheBroker(t *testing.T) {
	srv := natstest.Start(t)
	srv.Stop()
	b, err := natsjs.Open(srv.URL(), "", "", nil)
	require.NoError(t, err)
	t.Cleanup(b.Close)
	h := httptest.NewServer(health.Handler(BrokerCheck(b)))
	t.Cleanup(h.Close)
	readyz := func() (int, string) {
		resp, err := http.Get(h.URL + "/readyz")
		require.NoError(t, err)
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	status, body := readyz()
	require.Equal(t, http.StatusServiceUnavailable, status)
	require.Contains(t, body, "broker: not connected to nats")

	srv.Restart()
	require.Eventually(t, func() bool { return b.Ready(context.Background()) == nil }, 20*time.Second, 20*time.Millisecond)
	status, body = readyz()
	require.Equal(t, http.StatusOK, status, body)
}
