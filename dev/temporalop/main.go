// Command temporalop stands in for the `temporal operator` commands that
// deploy/temporal/create-namespace.sh runs, with the same flags, so that the script runs
// unchanged outside the temporalio/admin-tools image (deploy/local builds this command as
// `temporal` and puts it first on the PATH). The Temporal CLI itself is not a module txflow
// builds: it pins its own server version.
//
//	temporal operator cluster health --address HOST:PORT
//	temporal operator namespace describe --address HOST:PORT --namespace NS
//	temporal operator namespace create --address HOST:PORT --namespace NS [--retention 168h|7d]
//	temporal operator search-attribute list --address HOST:PORT --namespace NS
//
// TLS comes from the TEMPORAL_TLS_* variables of the SDK's environment configuration, as for the
// workers and the starter (TEMPORAL_TLS_CLIENT_CERT_PATH, TEMPORAL_TLS_CLIENT_KEY_PATH,
// TEMPORAL_TLS_SERVER_CA_CERT_PATH, TEMPORAL_TLS_SERVER_NAME), so that the script also runs
// against a frontend that requires client certificates.
//
// Exit status 0 on success, 1 on failure (with the error on stderr), 2 on bad usage.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/contrib/envconfig"
	"google.golang.org/protobuf/types/known/durationpb"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) < 3 || args[0] != "operator" {
		fmt.Fprintln(stderr, "usage: temporal operator {cluster health|namespace describe|namespace create|search-attribute list} --address HOST:PORT [--namespace NS] [--retention D]")
		return 2
	}
	cmd := args[1] + " " + args[2]
	fs := flag.NewFlagSet("temporal operator "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("address", envOr("TEMPORAL_ADDRESS", client.DefaultHostPort), "frontend host:port")
	ns := fs.String("namespace", envOr("TEMPORAL_NAMESPACE", client.DefaultNamespace), "namespace")
	retention := fs.String("retention", "72h", "retention of closed workflows (Go duration or Nd)")
	if err := fs.Parse(args[3:]); err != nil {
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var err error
	switch cmd {
	case "cluster health":
		err = health(ctx, *addr, stdout)
	case "namespace describe":
		err = describe(ctx, *addr, *ns, stdout)
	case "namespace create":
		err = create(ctx, *addr, *ns, *retention)
	case "search-attribute list":
		err = listSearchAttributes(ctx, *addr, *ns, stdout)
	default:
		fmt.Fprintf(stderr, "temporal operator: unknown command %q\n", cmd)
		return 2
	}
	if err != nil {
		fmt.Fprintf(stderr, "temporal operator %s: %v\n", cmd, err)
		return 1
	}
	return 0
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// options returns the client options for the frontend at addr and namespace ns, with TLS from
// the environment.
func options(addr, ns string) (client.Options, error) {
	o, err := envconfig.LoadClientOptions(envconfig.LoadClientOptionsRequest{})
	if err != nil {
		return client.Options{}, fmt.Errorf("client settings: %w", err)
	}
	o.HostPort, o.Namespace, o.Logger = addr, ns, quiet{}
	return o, nil
}

func health(ctx context.Context, addr string, stdout io.Writer) error {
	o, err := options(addr, "")
	if err != nil {
		return err
	}
	c, err := client.DialContext(ctx, o)
	if err != nil {
		return fmt.Errorf("connect to %s: %w", addr, err)
	}
	defer c.Close()
	if _, err := c.CheckHealth(ctx, &client.CheckHealthRequest{}); err != nil {
		return fmt.Errorf("check health of %s: %w", addr, err)
	}
	fmt.Fprintln(stdout, "temporal.api.workflowservice.v1.WorkflowService: SERVING")
	return nil
}

func describe(ctx context.Context, addr, ns string, stdout io.Writer) error {
	o, err := options(addr, "")
	if err != nil {
		return err
	}
	nc, err := client.NewNamespaceClient(o)
	if err != nil {
		return fmt.Errorf("connect to %s: %w", addr, err)
	}
	defer nc.Close()
	resp, err := nc.Describe(ctx, ns)
	if err != nil {
		return fmt.Errorf("describe namespace %s: %w", ns, err)
	}
	fmt.Fprintf(stdout, "%s %s retention %s\n", resp.GetNamespaceInfo().GetName(), resp.GetNamespaceInfo().GetState(),
		resp.GetConfig().GetWorkflowExecutionRetentionTtl().AsDuration())
	return nil
}

func create(ctx context.Context, addr, ns, retention string) error {
	d, err := parseRetention(retention)
	if err != nil {
		return err
	}
	o, err := options(addr, "")
	if err != nil {
		return err
	}
	nc, err := client.NewNamespaceClient(o)
	if err != nil {
		return fmt.Errorf("connect to %s: %w", addr, err)
	}
	defer nc.Close()
	err = nc.Register(ctx, &workflowservice.RegisterNamespaceRequest{
		Namespace: ns, WorkflowExecutionRetentionPeriod: durationpb.New(d),
	})
	var exists *serviceerror.NamespaceAlreadyExists
	if errors.As(err, &exists) {
		return fmt.Errorf("namespace %s already exists", ns)
	}
	if err != nil {
		return fmt.Errorf("register namespace %s: %w", ns, err)
	}
	return nil
}

// listSearchAttributes prints the namespace's custom search attributes. It is the call the
// worker makes first, and it fails until every service of the server knows a new namespace.
func listSearchAttributes(ctx context.Context, addr, ns string, stdout io.Writer) error {
	o, err := options(addr, ns)
	if err != nil {
		return err
	}
	c, err := client.DialContext(ctx, o)
	if err != nil {
		return fmt.Errorf("connect to %s: %w", addr, err)
	}
	defer c.Close()
	resp, err := c.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: ns})
	if err != nil {
		return fmt.Errorf("list search attributes of namespace %s: %w", ns, err)
	}
	for _, name := range slices.Sorted(maps.Keys(resp.GetCustomAttributes())) {
		fmt.Fprintf(stdout, "%s %s\n", name, resp.GetCustomAttributes()[name])
	}
	return nil
}

// parseRetention reads a Go duration ("168h") or a number of days ("7d"), as the CLI does.
func parseRetention(s string) (time.Duration, error) {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.Atoi(n)
		if err == nil && days > 0 {
			return time.Duration(days) * 24 * time.Hour, nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("retention %q: want a positive duration such as 168h or 7d", s)
	}
	return d, nil
}

// quiet drops the SDK's log lines: the commands print their own result.
type quiet struct{}

func (quiet) Debug(string, ...any) {}
func (quiet) Info(string, ...any)  {}
func (quiet) Warn(string, ...any)  {}
func (quiet) Error(string, ...any) {}
