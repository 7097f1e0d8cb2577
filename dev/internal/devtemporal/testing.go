package devtemporal

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// StartForTest starts a server for the test t and stops it when t ends.
//
// Unless opts says otherwise it listens on a free port, keeps its database in
// memory, runs without UI (set opts.UIPort > 0, e.g. from [FreePort], to get
// one) and sends warnings and errors to t.Log. It calls t.Fatal if the server
// cannot start, and reports a failed Stop with t.Error. With -short it skips t
// instead, before starting anything: the fast lane runs without servers.
func StartForTest(t testing.TB, opts Options) *Server {
	t.Helper()
	if testing.Short() {
		t.Skip("devtemporal: starts a Temporal server, skipped with -short")
	}
	if opts.Port == 0 {
		p, err := FreePort()
		if err != nil {
			t.Fatalf("devtemporal: %v", err)
		}
		opts.Port = p
	}
	if opts.UIPort <= 0 {
		opts.UIPort = -1
	}
	var tw *testLogWriter
	if opts.Logger == nil {
		tw = &testLogWriter{t: t}
		opts.Logger = slog.New(slog.NewTextHandler(tw, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := Start(ctx, opts)
	if err != nil {
		tw.close()
		t.Fatalf("devtemporal: %v", err)
	}
	t.Cleanup(func() {
		err := s.Stop()
		tw.close()
		if err != nil {
			t.Errorf("devtemporal: %v", err)
		}
	})
	return s
}

// testLogWriter forwards log lines to t.Log until closed; logging to a test
// that has finished would panic.
type testLogWriter struct {
	mu     sync.Mutex
	t      testing.TB
	closed bool
}

func (w *testLogWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.closed {
		w.t.Log(strings.TrimSuffix(string(p), "\n"))
	}
	return len(p), nil
}

func (w *testLogWriter) close() {
	if w == nil {
		return
	}
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
}
