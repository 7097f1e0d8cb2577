package devtemporal

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
)

// readyTimeout bounds the wait for a started server to answer when the
// caller's context has no deadline.
const readyTimeout = time.Minute

// waitReady waits until the frontend answers and every namespace exists, then
// makes sure each namespace has the requested search attributes.
func (s *Server) waitReady(ctx context.Context, o settings) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()

	c, err := dialWithRetry(ctx, client.Options{
		HostPort:  s.frontendHostPort,
		Namespace: o.Namespace,
		Logger:    sdklog.NewStructuredLogger(slogWithMinLevel(o.Logger, o.level)),
	})
	if err != nil {
		return err
	}
	defer c.Close()

	for _, ns := range o.namespaces() {
		if err := waitNamespace(ctx, c.WorkflowService(), ns); err != nil {
			return err
		}
		if err := ensureSearchAttributes(ctx, c.OperatorService(), ns, o.SearchAttributes); err != nil {
			return err
		}
	}
	return nil
}

// retry calls f until it succeeds or ctx ends, returning the last error.
func retry(ctx context.Context, what string, f func() error) error {
	for {
		err := f()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %w", what, errors.Join(ctx.Err(), err))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func dialWithRetry(ctx context.Context, opts client.Options) (client.Client, error) {
	var c client.Client
	err := retry(ctx, "dial frontend", func() error {
		var err error
		c, err = client.DialContext(ctx, opts)
		return err
	})
	return c, err
}

func waitNamespace(ctx context.Context, ws workflowservice.WorkflowServiceClient, ns string) error {
	return retry(ctx, fmt.Sprintf("wait for namespace %q", ns), func() error {
		_, err := ws.DescribeNamespace(ctx, &workflowservice.DescribeNamespaceRequest{Namespace: ns})
		return err
	})
}

// ensureSearchAttributes adds the attributes of want that namespace ns lacks.
// It fails if one of them exists with another type or is a system attribute.
func ensureSearchAttributes(ctx context.Context, ops operatorservice.OperatorServiceClient, ns string, want map[string]enumspb.IndexedValueType) error {
	if len(want) == 0 {
		return nil
	}
	have, err := ops.ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: ns})
	if err != nil {
		return fmt.Errorf("list search attributes of %q: %w", ns, err)
	}
	missing := map[string]enumspb.IndexedValueType{}
	for _, name := range slices.Sorted(maps.Keys(want)) {
		typ := want[name]
		if _, ok := have.GetSystemAttributes()[name]; ok {
			return fmt.Errorf("search attribute %q is a system attribute", name)
		}
		got, ok := have.GetCustomAttributes()[name]
		switch {
		case !ok:
			missing[name] = typ
		case got != typ:
			return fmt.Errorf("search attribute %q of %q has type %s, want %s", name, ns, got, typ)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	if _, err := ops.AddSearchAttributes(ctx, &operatorservice.AddSearchAttributesRequest{
		Namespace:        ns,
		SearchAttributes: missing,
	}); err != nil {
		return fmt.Errorf("add search attributes to %q: %w", ns, err)
	}
	return nil
}
