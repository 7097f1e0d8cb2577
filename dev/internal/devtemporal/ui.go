package devtemporal

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/temporalio/ui-server/v2/server/api"
	"github.com/temporalio/ui-server/v2/server/auth"
	uiconfig "github.com/temporalio/ui-server/v2/server/config"
	"github.com/temporalio/ui-server/v2/server/cors"
	"github.com/temporalio/ui-server/v2/server/csrf"
	"github.com/temporalio/ui-server/v2/server/headers"
	"github.com/temporalio/ui-server/v2/server/route"
	"github.com/temporalio/ui-server/v2/ui"
	"go.temporal.io/api/workflowservice/v1"
	"google.golang.org/grpc"
)

// uiServer serves the Temporal Web UI and its HTTP API.
//
// It assembles the same routes and middleware as the ui-server package's
// NewServer, but serves them on a listener we bind ourselves. The upstream
// Start binds the port internally and calls os.Exit when that fails, and its
// Stop leaves the gRPC connection to the frontend open; neither is acceptable
// for a server embedded in tests.
type uiServer struct {
	http *http.Server
	conn *grpc.ClientConn
	done chan struct{} // closed when Serve returns
}

// newUIServer builds the UI for the frontend at frontendAddr and starts
// serving it on ln. ln is closed by stop, or here on error.
func newUIServer(ln net.Listener, frontendAddr, namespace string) (*uiServer, error) {
	addr := ln.Addr().(*net.TCPAddr)
	cfg := &uiconfig.Config{
		TemporalGRPCAddress: frontendAddr,
		Host:                addr.IP.String(),
		Port:                addr.Port,
		EnableUI:            true,
		DefaultNamespace:    namespace,
		DisableNewsFetch:    true,
		CORS:                uiconfig.CORS{CookieInsecure: true},
		HideLogs:            true,
	}
	cfgProvider, err := uiconfig.NewConfigProviderWithRefresh(cfg)
	if err != nil {
		_ = ln.Close()
		return nil, fmt.Errorf("ui config: %w", err)
	}
	conn, err := api.CreateGRPCConnection(cfgProvider)
	if err != nil {
		_ = ln.Close()
		return nil, fmt.Errorf("ui connection to frontend: %w", err)
	}
	e, err := newUIHandler(cfg, cfgProvider, conn)
	if err != nil {
		_ = conn.Close()
		_ = ln.Close()
		return nil, err
	}

	s := &uiServer{
		http: &http.Server{Handler: e, ReadHeaderTimeout: 10 * time.Second},
		conn: conn,
		done: make(chan struct{}),
	}
	go func() {
		defer close(s.done)
		_ = s.http.Serve(ln) // returns http.ErrServerClosed after stop
	}()
	return s, nil
}

func newUIHandler(cfg *uiconfig.Config, cfgProvider *uiconfig.ConfigProviderWithRefresh, conn *grpc.ClientConn) (*echo.Echo, error) {
	apiMiddleware := []api.Middleware{
		headers.WithForwardHeaders([]string{auth.AuthorizationExtrasHeader, "Caller-Type"}),
	}
	cookieSecure := !cfg.CORS.CookieInsecure

	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.Use(middleware.Recover())
	e.Use(middleware.Gzip())
	e.Use(cors.CORSMiddleware(cors.CORSConfig{
		AllowHeaders: []string{
			echo.HeaderOrigin, echo.HeaderContentType, echo.HeaderAccept,
			echo.HeaderXCSRFToken, echo.HeaderAuthorization, auth.AuthorizationExtrasHeader,
			"Caller-Type",
		},
		AllowCredentials: true,
		ConfigProvider:   cfgProvider,
	}))
	e.Use(middleware.Secure())
	e.Use(csrf.EnsureTokenCookie(cookieSecure))
	e.Use(middleware.CSRFWithConfig(csrf.MiddlewareConfig(cfgProvider, cookieSecure)))
	e.Pre(route.PublicPath(cfg.PublicPath))

	route.SetHealthRoute(e)

	// API routes, as in route.SetAPIRoutes but on a connection we own.
	writeControl := route.DisableWriteMiddleware(cfgProvider)
	g := e.Group("/api/v1")
	g.GET("/settings", api.GetSettings(cfgProvider))
	g.GET(api.WorkflowRawHistoryUrl,
		api.WorkflowRawHistoryHandler(workflowservice.NewWorkflowServiceClient(conn)), writeControl)
	g.Match([]string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete},
		"/*", api.TemporalAPIHandler(cfgProvider, apiMiddleware, conn), writeControl)

	assets, err := ui.Assets()
	if err != nil {
		return nil, fmt.Errorf("ui assets: %w", err)
	}
	if assets, err = fs.Sub(assets, "local"); err != nil {
		return nil, fmt.Errorf("ui assets: %w", err)
	}
	if err := route.SetUIRoutes(e, cfg.PublicPath, assets); err != nil {
		return nil, fmt.Errorf("ui routes: %w", err)
	}
	route.SetRenderRoute(e, cfg.PublicPath)
	return e, nil
}

// waitReady polls the health route until it answers 200 or ctx ends.
func (s *uiServer) waitReady(ctx context.Context, baseURL string) error {
	c := &http.Client{Timeout: 2 * time.Second}
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, baseURL+"/healthz", nil)
		if err != nil {
			return fmt.Errorf("ui health request: %w", err)
		}
		resp, err := c.Do(req)
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("status %s", resp.Status)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("ui not ready: %w", errors.Join(ctx.Err(), err))
		case <-s.done:
			return errors.New("ui server exited")
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// stop shuts the HTTP server down, waiting briefly for in-flight requests,
// and closes the connection to the frontend.
func (s *uiServer) stop() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := s.http.Shutdown(ctx)
	if err != nil {
		err = errors.Join(err, s.http.Close())
	}
	<-s.done
	if cerr := s.conn.Close(); cerr != nil {
		err = errors.Join(err, cerr)
	}
	if err != nil {
		return fmt.Errorf("stop ui: %w", err)
	}
	return nil
}
