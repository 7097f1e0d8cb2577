package health

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// tcpProbe dials addr: the real check a worker makes when it only needs to know a port answers.
func tcpProbe(addr string) func(context.Context) error {
	return func(ctx context.Context) error {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return fmt.Errorf("dial %s: %w", addr, err)
		}
		return c.Close()
	}
}

// openPort returns the address of a listening TCP port, closed when the test ends.
func openPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	return l.Addr().String()
}

// closedPort returns the address of a TCP port nobody listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return addr
}

func get(t *testing.T, srv *httptest.Server, method, path string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, nil)
	require.NoError(t, err)
	resp, err := srv.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(body), resp.Header
}

func TestHealthzAnswersWhateverTheChecks(t *testing.T) {
	srv := httptest.NewServer(Handler(Check{Name: "temporal", Probe: tcpProbe(closedPort(t))}))
	defer srv.Close()

	code, body, h := get(t, srv, http.MethodGet, "/healthz")
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, "ok\n", body)
	assert.Equal(t, "text/plain; charset=utf-8", h.Get("Content-Type"))
	assert.Equal(t, "no-store", h.Get("Cache-Control"))

	code, body, _ = get(t, srv, http.MethodHead, "/healthz")
	assert.Equal(t, http.StatusOK, code)
	assert.Empty(t, body)

	code, _, _ = get(t, srv, http.MethodPost, "/healthz")
	assert.Equal(t, http.StatusMethodNotAllowed, code)
	code, _, _ = get(t, srv, http.MethodGet, "/nothing-here")
	assert.Equal(t, http.StatusNotFound, code)
}

func TestReadyzAllChecksPass(t *testing.T) {
	srv := httptest.NewServer(Handler(
		Check{Name: "temporal", Probe: tcpProbe(openPort(t))},
		Check{Name: "postgres", Probe: tcpProbe(openPort(t))},
	))
	defer srv.Close()

	code, body, _ := get(t, srv, http.MethodGet, "/readyz")
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, "ok\n", body)
}

func TestReadyzWithoutChecksIsReady(t *testing.T) {
	srv := httptest.NewServer(Handler())
	defer srv.Close()
	code, body, _ := get(t, srv, http.MethodGet, "/readyz")
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, "ok\n", body)
}

func TestReadyzReportsEachFailingCheckInOrder(t *testing.T) {
	down := closedPort(t)
	srv := httptest.NewServer(Handler(
		Check{Name: "temporal", Probe: tcpProbe(down)},
		Check{Name: "filesystem", Probe: tcpProbe(openPort(t))},
		Check{Name: "postgres", Probe: func(context.Context) error { return errors.New("too many clients") }},
	))
	defer srv.Close()

	code, body, h := get(t, srv, http.MethodGet, "/readyz")
	assert.Equal(t, http.StatusServiceUnavailable, code)
	assert.Equal(t, "text/plain; charset=utf-8", h.Get("Content-Type"))
	lines := strings.Split(strings.TrimSuffix(body, "\n"), "\n")
	require.Len(t, lines, 2, body)
	assert.True(t, strings.HasPrefix(lines[0], "temporal: dial "+down+": "), lines[0])
	assert.Contains(t, lines[0], "connection refused")
	assert.Equal(t, "postgres: too many clients", lines[1])
	assert.NotContains(t, body, "filesystem")
}

func TestReadyzFollowsTheDependency(t *testing.T) {
	// The same handler turns ready when the dependency comes up, and unready when it goes away.
	addr := closedPort(t)
	srv := httptest.NewServer(Handler(Check{Name: "temporal", Probe: tcpProbe(addr)}))
	defer srv.Close()

	code, _, _ := get(t, srv, http.MethodGet, "/readyz")
	assert.Equal(t, http.StatusServiceUnavailable, code)

	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("port %s was taken in between: %v", addr, err)
	}
	code, _, _ = get(t, srv, http.MethodGet, "/readyz")
	assert.Equal(t, http.StatusOK, code)

	require.NoError(t, l.Close())
	code, _, _ = get(t, srv, http.MethodGet, "/readyz")
	assert.Equal(t, http.StatusServiceUnavailable, code)
}

func TestReadyzNeverShowsCredentials(t *testing.T) {
	dsn := "postgres://txflow:s3cr3t-pw@db.internal:5432/txflow?sslmode=require"
	srv := httptest.NewServer(Handler(
		Check{Name: "postgres", Probe: func(context.Context) error {
			return fmt.Errorf("connect %s: server closed the connection", dsn)
		}},
		Check{Name: "postgres-kv", Probe: func(context.Context) error {
			return errors.New("connect host=db user=txflow password=s3cr3t-pw dbname=txflow: refused")
		}},
		Check{Name: "temporal", Probe: func(context.Context) error {
			return errors.New("unauthenticated: Authorization: Bearer eyJhbGciOi.s3cr3t-pw.sig rejected\nretry later")
		}},
	))
	defer srv.Close()

	code, body, _ := get(t, srv, http.MethodGet, "/readyz")
	assert.Equal(t, http.StatusServiceUnavailable, code)
	assert.NotContains(t, body, "s3cr3t")
	assert.NotContains(t, body, "eyJhbGciOi")
	assert.Contains(t, body, "postgres: connect postgres://REDACTED@db.internal:5432/txflow?sslmode=require: server closed the connection\n")
	assert.Contains(t, body, "postgres-kv: connect host=db user=txflow password=REDACTED dbname=txflow: refused\n")
	assert.Contains(t, body, "temporal: unauthenticated: Authorization: Bearer REDACTED rejected retry later\n")
}

func TestReadyzRealPostgresProbeAgainstADownServer(t *testing.T) {
	// A real pgx connection attempt, with a password in the URL, to a port nobody listens on.
	url := "postgres://txflow:s3cr3t-pw@" + closedPort(t) + "/txflow?connect_timeout=2"
	srv := httptest.NewServer(Handler(Check{Name: "postgres", Probe: func(ctx context.Context) error {
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			return fmt.Errorf("connect %s: %w", url, err)
		}
		defer conn.Close(ctx)
		return conn.Ping(ctx)
	}}))
	defer srv.Close()

	code, body, _ := get(t, srv, http.MethodGet, "/readyz")
	assert.Equal(t, http.StatusServiceUnavailable, code)
	assert.True(t, strings.HasPrefix(body, "postgres: connect postgres://REDACTED@127.0.0.1:"), body)
	assert.NotContains(t, body, "s3cr3t")
}

func TestReadyzTimesOutSlowChecks(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	defer close(release)
	srv := httptest.NewServer(Handler(
		// honours its context
		Check{Name: "slow", Probe: func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }},
		// ignores its context altogether
		Check{Name: "stuck", Probe: func(context.Context) error { <-release; return nil }},
		Check{Name: "fast", Probe: func(context.Context) error { return nil }},
	))
	defer srv.Close()

	start := time.Now()
	code, body, _ := get(t, srv, http.MethodGet, "/readyz")
	elapsed := time.Since(start)
	assert.Equal(t, http.StatusServiceUnavailable, code)
	assert.Equal(t, "slow: timed out after 3s\nstuck: timed out after 3s\n", body)
	assert.GreaterOrEqual(t, elapsed, Timeout)
	assert.Less(t, elapsed, Timeout+2*time.Second)
}

func TestReadyzRunsChecksConcurrently(t *testing.T) {
	t.Parallel()
	// Each probe waits for the other to have started: run one after the other, both time out.
	a, b := make(chan struct{}), make(chan struct{})
	meet := func(mine, other chan struct{}) func(context.Context) error {
		return func(ctx context.Context) error {
			close(mine)
			select {
			case <-other:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	srv := httptest.NewServer(Handler(Check{Name: "a", Probe: meet(a, b)}, Check{Name: "b", Probe: meet(b, a)}))
	defer srv.Close()

	code, body, _ := get(t, srv, http.MethodGet, "/readyz")
	assert.Equal(t, http.StatusOK, code, body)
}

func TestReadyzSurvivesAPanickingCheck(t *testing.T) {
	srv := httptest.NewServer(Handler(Check{Name: "broken", Probe: func(context.Context) error {
		var m map[string]int
		m["x"]++ // nil map write
		return nil
	}}))
	defer srv.Close()

	code, body, _ := get(t, srv, http.MethodGet, "/readyz")
	assert.Equal(t, http.StatusServiceUnavailable, code)
	assert.True(t, strings.HasPrefix(body, "broken: check panicked: assignment to entry in nil map"), body)
	code, _, _ = get(t, srv, http.MethodGet, "/healthz")
	assert.Equal(t, http.StatusOK, code)
}

func TestHandlerMuxAcceptsMoreRoutes(t *testing.T) {
	mux := Handler()
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "# metrics\n") })
	srv := httptest.NewServer(mux)
	defer srv.Close()

	code, body, _ := get(t, srv, http.MethodGet, "/metrics")
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, "# metrics\n", body)
	code, _, _ = get(t, srv, http.MethodGet, "/healthz")
	assert.Equal(t, http.StatusOK, code)
}

func TestHandlerRejectsACheckWithoutProbe(t *testing.T) {
	assert.PanicsWithValue(t, `health: check 0 ("postgres") has no Probe`, func() { Handler(Check{Name: "postgres"}) })
}

func TestUnnamedChecksGetANumber(t *testing.T) {
	srv := httptest.NewServer(Handler(
		Check{Probe: func(context.Context) error { return nil }},
		Check{Name: " ", Probe: func(context.Context) error { return errors.New("down") }},
	))
	defer srv.Close()
	_, body, _ := get(t, srv, http.MethodGet, "/readyz")
	assert.Equal(t, "check 2: down\n", body)
}

func TestSanitize(t *testing.T) {
	long := strings.Repeat("é", 400) // two bytes each: the cut must not split one
	for _, tc := range []struct{ in, want string }{
		{"plain error", "plain error"},
		{"dial tcp 10.0.0.1:5432: connect: connection refused", "dial tcp 10.0.0.1:5432: connect: connection refused"},
		{"postgres://u:p@h/db", "postgres://REDACTED@h/db"},
		{"postgresql://u:p%40ss/w0rd@h:5432/db x", "postgresql://REDACTED@h:5432/db x"},
		{"https://ghp_token123@example.com/x", "https://REDACTED@example.com/x"},
		{"http://example.com/a@b", "http://example.com/a@b"},
		{"password='a b c' user=x", "password=REDACTED user=x"},
		{`PASSWORD="x" sslpassword=y`, "PASSWORD=REDACTED sslpassword=REDACTED"},
		{"api_key=abc, apikey: def; token=ghi&next=1", "api_key=REDACTED, apikey: REDACTED; token=REDACTED&next=1"},
		{"authorization: Basic dXNlcjpwYXNz", "authorization: Basic REDACTED"},
		{"line one\r\nline\ttwo", "line one  line two"},
	} {
		assert.Equal(t, tc.want, Sanitize(tc.in), tc.in)
	}
	got := Sanitize(long)
	assert.True(t, strings.HasSuffix(got, "…"))
	assert.LessOrEqual(t, len(got), maxReasonBytes+len("…"))
	assert.True(t, strings.HasPrefix(long, strings.TrimSuffix(got, "…")))
}
