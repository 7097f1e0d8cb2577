// Package devtemporal runs a complete Temporal server, optionally with its Web
// UI, inside the current process, for local development and tests.
//
// The server is go.temporal.io/server linked in, persisting to SQLite (a file,
// or memory), and the UI is github.com/temporalio/ui-server with its embedded
// assets; nothing is downloaded at run time.
//
// Several servers may run in one process, concurrently or one after another,
// as long as they use distinct ports. One caveat comes from the server's SQLite
// driver: it keeps every database it opened in a process-wide pool and never
// closes it, so each in-memory server keeps its (small) database until the
// process exits, and a file database stays open after Stop. Restarting on the
// same file in the same process is supported and reuses that connection.
package devtemporal

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/server/temporal"
)

const (
	defaultIP        = "127.0.0.1"
	defaultPort      = 7233
	defaultNamespace = "default"
	uiPortOffset     = 1000

	// namespaceRetention is the workflow retention of namespaces created at start.
	namespaceRetention = 7 * 24 * time.Hour
)

// Options configures a server started with [Start]. The zero value is a
// server on 127.0.0.1:7233 with the UI on 8233, an in-memory database and the
// "default" namespace.
type Options struct {
	// IP the frontend and UI listen on; default "127.0.0.1". The server's
	// internal services always listen on 127.0.0.1.
	IP string
	// Port is the frontend gRPC port; default 7233. Use [FreePort] (or
	// [StartForTest]) to get a free one.
	Port int
	// UIPort is the Web UI port; 0 means Port+1000 (8233 by default) and a
	// negative value disables the UI.
	UIPort int
	// DBFilename is the SQLite database file, created with its schema if
	// missing; its directory must exist. "" keeps everything in memory.
	DBFilename string
	// Namespace is registered at start if missing; default "default".
	Namespace string
	// ExtraNamespaces are registered at start too, with the same search attributes.
	ExtraNamespaces []string
	// SearchAttributes are custom search attributes registered on every
	// namespace at start. Registration is idempotent: on restart with the same
	// DB file, attributes already present are kept and missing ones are added.
	SearchAttributes map[string]enumspb.IndexedValueType
	// LogLevel is the minimum level of server logs: "debug", "info", "warn"
	// (default), "error", or "off".
	LogLevel string
	// Logger receives the server logs; nil means a text logger on stderr.
	Logger *slog.Logger
}

// Server is a running Temporal server. Its methods are safe for concurrent use.
type Server struct {
	frontendHostPort string
	uiURL            string
	namespace        string

	temporal temporal.Server
	ui       *uiServer
	stopping *atomic.Bool // set when Stop begins; quietens the server's logs

	stopOnce sync.Once
	stopErr  error
}

// Start starts a Temporal server (and UI) as configured by opts and returns
// once the frontend answers, every namespace exists with its search
// attributes, and the UI, if enabled, serves HTTP.
//
// Start returns an error, without leaving anything running, when an option
// is invalid, a port is unavailable, the database cannot be opened or
// initialised, the server fails to start, or ctx ends before it is ready.
func Start(ctx context.Context, opts Options) (*Server, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}

	if err := checkPortFree("frontend", o.IP, o.Port); err != nil {
		return nil, err
	}
	// Hold the UI port from now on so nobody can take it while the server
	// starts.
	var uiListener net.Listener
	if o.UIPort > 0 {
		if uiListener, err = listen("ui", o.IP, o.UIPort); err != nil {
			return nil, err
		}
	}
	closeUIListener := func() {
		if uiListener != nil {
			_ = uiListener.Close()
		}
	}

	stopping := new(atomic.Bool)
	ts, err := newTemporalServer(o, stopping)
	if err != nil {
		closeUIListener()
		return nil, err
	}
	if err := ts.Start(); err != nil {
		// The server has already undone whatever part of it had started.
		closeUIListener()
		return nil, fmt.Errorf("start temporal server: %w", err)
	}

	s := &Server{
		frontendHostPort: net.JoinHostPort(dialIP(o.IP), strconv.Itoa(o.Port)),
		namespace:        o.Namespace,
		temporal:         ts,
		stopping:         stopping,
	}
	if err := s.waitReady(ctx, o); err != nil {
		closeUIListener()
		return nil, errors.Join(err, s.Stop())
	}

	if uiListener != nil {
		if s.ui, err = newUIServer(uiListener, s.frontendHostPort, o.Namespace); err != nil {
			return nil, errors.Join(err, s.Stop())
		}
		s.uiURL = "http://" + net.JoinHostPort(dialIP(o.IP), strconv.Itoa(o.UIPort))
		if err := s.ui.waitReady(ctx, s.uiURL); err != nil {
			return nil, errors.Join(err, s.Stop())
		}
	}
	return s, nil
}

// FrontendHostPort returns the frontend gRPC address to dial, e.g. "127.0.0.1:7233".
func (s *Server) FrontendHostPort() string { return s.frontendHostPort }

// UIURL returns the Web UI base URL, e.g. "http://127.0.0.1:8233", or "" when
// the UI is disabled.
func (s *Server) UIURL() string { return s.uiURL }

// Namespace returns the main namespace, registered at start.
func (s *Server) Namespace() string { return s.namespace }

// Stop stops the UI and the server and releases their ports. It is
// idempotent: later calls return the result of the first.
func (s *Server) Stop() error {
	s.stopOnce.Do(func() {
		s.stopping.Store(true)
		var errs []error
		if s.ui != nil {
			errs = append(errs, s.ui.stop())
		}
		if err := s.temporal.Stop(); err != nil {
			errs = append(errs, fmt.Errorf("stop temporal server: %w", err))
		}
		s.stopErr = errors.Join(errs...)
	})
	return s.stopErr
}

// settings are Options with defaults applied, plus derived values.
type settings struct {
	Options
	level slog.Level
}

// withDefaults validates opts and fills in defaults.
func (opts Options) withDefaults() (settings, error) {
	o := settings{Options: opts}
	if o.IP == "" || o.IP == "localhost" {
		o.IP = defaultIP
	}
	if net.ParseIP(o.IP) == nil {
		return o, fmt.Errorf("invalid IP %q", o.IP)
	}
	if o.Port == 0 {
		o.Port = defaultPort
	}
	if o.Port < 0 || o.Port > 65535 {
		return o, fmt.Errorf("invalid port %d", o.Port)
	}
	if o.UIPort == 0 {
		o.UIPort = min(o.Port+uiPortOffset, 65535)
	}
	if o.UIPort > 65535 {
		return o, fmt.Errorf("invalid UI port %d", o.UIPort)
	}
	if o.UIPort == o.Port {
		return o, fmt.Errorf("UI port %d equals frontend port", o.UIPort)
	}
	if o.Namespace == "" {
		o.Namespace = defaultNamespace
	}
	var err error
	if o.level, err = parseLogLevel(o.LogLevel); err != nil {
		return o, err
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: o.level}))
	}
	return o, nil
}

// namespaces returns the main namespace followed by the extra ones, without duplicates.
func (opts settings) namespaces() []string {
	seen := map[string]bool{}
	var out []string
	for _, ns := range append([]string{opts.Namespace}, opts.ExtraNamespaces...) {
		if ns != "" && !seen[ns] {
			seen[ns] = true
			out = append(out, ns)
		}
	}
	return out
}

// dialIP returns the address clients should dial to reach a listener bound
// to ip: the loopback address for wildcard binds, ip itself otherwise.
func dialIP(ip string) string {
	parsed := net.ParseIP(ip)
	switch {
	case parsed == nil || !parsed.IsUnspecified():
		return ip
	case parsed.To4() != nil:
		return "127.0.0.1"
	default:
		return "::1"
	}
}
