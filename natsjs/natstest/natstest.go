// Package natstest runs a real NATS server with JetStream inside a test: an embedded
// nats-server on a free loopback port, its store in the test's temporary directory, which the
// test can stop and start again (same port, same store) to play a broker going down.
package natstest

import (
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Server is an embedded NATS server with JetStream.
type Server struct {
	t        testing.TB
	storeDir string
	port     int
	srv      *server.Server
}

// Start starts a server for the test on a StablePort, stopped at cleanup. With -short it skips
// the test: the fast lane starts no server.
func Start(t testing.TB) *Server {
	t.Helper()
	if testing.Short() {
		t.Skip("natstest: starts a NATS server, skipped with -short")
	}
	port, err := StablePort()
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{t: t, storeDir: t.TempDir(), port: port}
	s.Restart()
	t.Cleanup(s.Stop)
	return s
}

// URL is the server's client URL (nats://127.0.0.1:<port>), the same across restarts.
func (s *Server) URL() string { return fmt.Sprintf("nats://127.0.0.1:%d", s.port) }

// Stop shuts the server down and waits until it is; it does nothing when it is not running.
func (s *Server) Stop() {
	if s.srv == nil {
		return
	}
	s.srv.Shutdown()
	s.srv.WaitForShutdown()
	s.srv = nil
}

// Restart starts the server (again), on the same port with the same store; it fails the test when
// the server is not ready within 30 seconds.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	srv, err := server.NewServer(&server.Options{
		ServerName: "txflow-test",
		Host:       "127.0.0.1",
		Port:       s.port,
		JetStream:  true,
		StoreDir:   s.storeDir,
		NoLog:      true,
		NoSigs:     true,
	})
	if err != nil {
		s.t.Fatalf("natstest: new server: %v", err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(30 * time.Second) {
		srv.Shutdown()
		s.t.Fatalf("natstest: server on port %d not ready within 30s", s.port)
	}
	s.srv = srv
	s.port = srv.Addr().(*net.TCPAddr).Port
}
