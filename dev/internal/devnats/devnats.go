// Package devnats runs a NATS server with JetStream in-process, on a loopback port, with its
// store in a directory: the broker the dev server, the demo, the benchmark and the end-to-end
// tests give the worker (TXFLOW_NATS_URL). Nothing is downloaded: the server is the
// nats-server module's.
package devnats

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/txflow/txflow/natsjs/natstest"
)

// DefaultPort is the port Start prefers when none is given and none was recorded.
const DefaultPort = 4222

// portFile, in the store directory, records the port of the last start, so that a server
// started again on the same store comes back at the same URL while the port is free.
const portFile = "port"

// readyTimeout bounds how long Start waits for the server to accept clients.
const readyTimeout = 30 * time.Second

// Server is a running NATS server with JetStream.
type Server struct {
	mu   sync.Mutex
	srv  *server.Server // nil while stopped
	dir  string
	port int
}

// Start starts a NATS server with JetStream on 127.0.0.1, storing its streams under dir
// (created if needed). A port above 0 is used as is; 0 takes the port recorded in dir by an
// earlier start when it is free, else DefaultPort when free, else a free port below the ephemeral range.
func Start(dir string, port int) (*Server, error) {
	if dir == "" {
		return nil, errors.New("devnats: a store directory is needed")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("devnats: store directory: %w", err)
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return nil, fmt.Errorf("devnats: create store directory: %w", err)
	}
	if port <= 0 {
		port = choosePort(abs)
	}
	s := &Server{dir: abs, port: port}
	if err := s.start(); err != nil {
		return nil, err
	}
	return s, nil
}

// choosePort returns the port recorded in dir when it is free, else DefaultPort when it is
// free, else 0 (start then picks one).
func choosePort(dir string) int {
	if b, err := os.ReadFile(filepath.Join(dir, portFile)); err == nil {
		if p, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && p > 0 && free(p) {
			return p
		}
	}
	if free(DefaultPort) {
		return DefaultPort
	}
	return 0
}

// free reports whether 127.0.0.1:port can be bound now.
func free(port int) bool {
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return false
	}
	l.Close()
	return true
}

// start starts the server on s.port (0: a free one below the ephemeral range, which a restart
// finds free again, then recorded in s.port) and s.dir.
func (s *Server) start() error {
	if s.port == 0 {
		p, err := natstest.StablePort()
		if err != nil {
			return fmt.Errorf("devnats: %w", err)
		}
		s.port = p
	}
	port := s.port
	opts := &server.Options{
		ServerName: "txflow-dev",
		Host:       "127.0.0.1",
		Port:       port,
		JetStream:  true,
		StoreDir:   s.dir,
		// The process that embeds the server owns the signals and the output.
		NoSigs: true,
		NoLog:  true,
	}
	// The server does not report a port it cannot bind before its readiness wait runs out.
	if s.port > 0 && !free(s.port) {
		return fmt.Errorf("devnats: port %d on 127.0.0.1 is taken", s.port)
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return fmt.Errorf("devnats: %w", err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(readyTimeout) {
		srv.Shutdown()
		srv.WaitForShutdown()
		return fmt.Errorf("devnats: server on 127.0.0.1:%d (store %s) not ready after %s", s.port, s.dir, readyTimeout)
	}
	if !srv.JetStreamEnabled() {
		srv.Shutdown()
		srv.WaitForShutdown()
		return fmt.Errorf("devnats: JetStream did not start (store %s)", s.dir)
	}
	s.port = srv.Addr().(*net.TCPAddr).Port
	s.srv = srv
	// Best effort: without the record a later start only takes another port.
	_ = os.WriteFile(filepath.Join(s.dir, portFile), []byte(strconv.Itoa(s.port)+"\n"), 0o644)
	return nil
}

// URL is the server's client URL, as TXFLOW_NATS_URL takes it.
func (s *Server) URL() string {
	return "nats://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Port()))
}

// Port is the port the server listens on (and comes back on after Restart).
func (s *Server) Port() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.port
}

// Dir is the store directory.
func (s *Server) Dir() string { return s.dir }

// Running reports whether the server runs (it does not between Stop and Restart).
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.srv != nil
}

// Stop shuts the server down and waits for it; its streams stay in the store. Stopping a
// stopped server does nothing.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv == nil {
		return
	}
	s.srv.Shutdown()
	s.srv.WaitForShutdown()
	s.srv = nil
}

// Restart starts a stopped server again on the same port and store (stopping it first if it
// runs): its clients reconnect to the same URL and find its streams as they were.
func (s *Server) Restart() error {
	s.Stop()
	s.mu.Lock()
	defer s.mu.Unlock()
	// The port was just released: allow a moment for it to be free again.
	var err error
	for i := 0; i < 50; i++ {
		if err = s.start(); err == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return err
}

// StartForTest starts a server for t on a free port with its store in a temporary directory,
// and stops it when t ends. With -short it skips t instead: the fast lane runs without servers.
func StartForTest(t testing.TB) *Server {
	t.Helper()
	if testing.Short() {
		t.Skip("devnats: starts a NATS server, skipped with -short")
	}
	s := &Server{dir: t.TempDir()}
	if err := s.start(); err != nil {
		t.Fatalf("%v", err)
	}
	t.Cleanup(s.Stop)
	return s
}
