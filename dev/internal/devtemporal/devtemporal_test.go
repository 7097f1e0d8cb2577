package devtemporal_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/txflow/txflow/dev/internal/devtemporal"
	"github.com/txflow/txflow/workflows"
)

const taskQueue = "devtemporal-test"

// Greet is the workflow run end to end: it calls an activity and records
// typed txflow search attributes that the test then queries.
func Greet(ctx workflow.Context, name string) (string, error) {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: 10 * time.Second})
	var greeting string
	if err := workflow.ExecuteActivity(ctx, Greeting, name).Get(ctx, &greeting); err != nil {
		return "", err
	}
	err := workflow.UpsertTypedSearchAttributes(ctx,
		temporal.NewSearchAttributeKeyKeyword(workflows.SearchAttrFile.GetName()).ValueSet(name+".csv"),
		temporal.NewSearchAttributeKeyInt64(workflows.SearchAttrRows.GetName()).ValueSet(int64(len(name))),
	)
	if err != nil {
		return "", err
	}
	return greeting, nil
}

// Greeting is the activity Greet calls.
func Greeting(ctx context.Context, name string) (string, error) {
	return fmt.Sprintf("hello, %s (attempt %d)", name, activity.GetInfo(ctx).Attempt), nil
}

func dial(t *testing.T, s *devtemporal.Server, namespace string) client.Client {
	t.Helper()
	c, err := client.Dial(client.Options{
		HostPort:  s.FrontendHostPort(),
		Namespace: namespace,
		Logger:    sdklog.NewStructuredLogger(slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))),
	})
	require.NoError(t, err)
	return c
}

func describeNamespace(t *testing.T, c client.Client, ns string) *workflowservice.DescribeNamespaceResponse {
	t.Helper()
	resp, err := c.WorkflowService().DescribeNamespace(context.Background(),
		&workflowservice.DescribeNamespaceRequest{Namespace: ns})
	require.NoError(t, err, "describe namespace %q", ns)
	return resp
}

func customSearchAttributes(t *testing.T, c client.Client, ns string) map[string]enumspb.IndexedValueType {
	t.Helper()
	resp, err := c.OperatorService().ListSearchAttributes(context.Background(),
		&operatorservice.ListSearchAttributesRequest{Namespace: ns})
	require.NoError(t, err)
	return resp.GetCustomAttributes()
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err, "GET %s", url)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(body)
}

// portIsFree reports whether 127.0.0.1:port can be bound.
func portIsFree(port int) bool {
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return false
	}
	_ = l.Close()
	return true
}

// skipShort skips a test that starts Temporal servers: -short runs without them.
func skipShort(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts Temporal servers, skipped with -short")
	}
}

func TestServerEndToEndAndRestart(t *testing.T) {
	skipShort(t)
	dbFile := filepath.Join(t.TempDir(), "temporal.db")
	uiPort, err := devtemporal.FreePort()
	require.NoError(t, err)

	began := time.Now()
	s := devtemporal.StartForTest(t, devtemporal.Options{
		UIPort:           uiPort,
		DBFilename:       dbFile,
		ExtraNamespaces:  []string{"txflow-extra"},
		SearchAttributes: workflows.SearchAttributes(),
	})
	t.Logf("first start took %v", time.Since(began))

	assert.Equal(t, "default", s.Namespace())
	assert.Equal(t, "http://127.0.0.1:"+strconv.Itoa(uiPort), s.UIURL())
	host, _, err := net.SplitHostPort(s.FrontendHostPort())
	require.NoError(t, err)
	assert.Equal(t, "127.0.0.1", host)

	c := dial(t, s, "default")

	// Namespaces exist with the configured retention and search attributes.
	ns := describeNamespace(t, c, "default")
	assert.Equal(t, enumspb.NAMESPACE_STATE_REGISTERED, ns.GetNamespaceInfo().GetState())
	assert.Equal(t, 7*24*time.Hour, ns.GetConfig().GetWorkflowExecutionRetentionTtl().AsDuration())
	namespaceID := ns.GetNamespaceInfo().GetId()
	describeNamespace(t, c, "txflow-extra")
	for _, name := range []string{"default", "txflow-extra"} {
		sas := customSearchAttributes(t, c, name)
		for sa, typ := range workflows.SearchAttributes() {
			assert.Equal(t, typ, sas[sa], "search attribute %s on %s", sa, name)
		}
	}

	// A workflow runs end to end on a worker and is found by its search attributes.
	w := worker.New(c, taskQueue, worker.Options{})
	w.RegisterWorkflow(Greet)
	w.RegisterActivity(Greeting)
	require.NoError(t, w.Start())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "greet-txflow", TaskQueue: taskQueue}, Greet, "txflow")
	require.NoError(t, err)
	var greeting string
	require.NoError(t, run.Get(ctx, &greeting))
	assert.Equal(t, "hello, txflow (attempt 1)", greeting)
	w.Stop()

	query := fmt.Sprintf("%s = 'txflow.csv' AND %s = 6", workflows.SearchAttrFile.GetName(), workflows.SearchAttrRows.GetName())
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: query})
		if assert.NoError(ct, err) && assert.Len(ct, resp.GetExecutions(), 1) {
			assert.Equal(ct, "greet-txflow", resp.GetExecutions()[0].GetExecution().GetWorkflowId())
		}
	}, 10*time.Second, 100*time.Millisecond, "query %s", query)

	// The UI serves its page and proxies the API to our frontend.
	code, body := httpGet(t, s.UIURL()+"/")
	assert.Equal(t, http.StatusOK, code)
	assert.Contains(t, strings.ToLower(body), "<html")
	code, body = httpGet(t, s.UIURL()+"/api/v1/namespaces")
	require.Equal(t, http.StatusOK, code, body)
	var list struct {
		Namespaces []struct {
			NamespaceInfo struct {
				Name string `json:"name"`
				ID   string `json:"id"`
			} `json:"namespaceInfo"`
		} `json:"namespaces"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &list), body)
	names := map[string]string{}
	for _, n := range list.Namespaces {
		names[n.NamespaceInfo.Name] = n.NamespaceInfo.ID
	}
	assert.Equal(t, namespaceID, names["default"], "namespaces via UI: %v", names)
	assert.Contains(t, names, "txflow-extra")
	code, body = httpGet(t, s.UIURL()+"/api/v1/namespaces/default/workflows/greet-txflow")
	assert.Equal(t, http.StatusOK, code)
	assert.Contains(t, body, run.GetRunID())

	// Stop releases the ports and is idempotent.
	c.Close()
	frontendPort, err := strconv.Atoi(s.FrontendHostPort()[len(host)+1:])
	require.NoError(t, err)
	require.NoError(t, s.Stop())
	require.NoError(t, s.Stop())
	assert.True(t, portIsFree(frontendPort), "frontend port still bound after Stop")
	assert.True(t, portIsFree(uiPort), "UI port still bound after Stop")

	// A restart on the same file keeps the namespace, its history and its
	// search attributes, and adds newly requested ones.
	wantSAs := workflows.SearchAttributes()
	wantSAs["TxflowBatch"] = enumspb.INDEXED_VALUE_TYPE_KEYWORD
	began = time.Now()
	s2 := devtemporal.StartForTest(t, devtemporal.Options{DBFilename: dbFile, SearchAttributes: wantSAs})
	t.Logf("restart took %v", time.Since(began))
	assert.Empty(t, s2.UIURL())
	c2 := dial(t, s2, "default")
	defer c2.Close()
	assert.Equal(t, namespaceID, describeNamespace(t, c2, "default").GetNamespaceInfo().GetId())
	describeNamespace(t, c2, "txflow-extra")
	sas := customSearchAttributes(t, c2, "default")
	for sa, typ := range wantSAs {
		assert.Equal(t, typ, sas[sa], "search attribute %s after restart", sa)
	}
	var again string
	require.NoError(t, c2.GetWorkflow(ctx, "greet-txflow", run.GetRunID()).Get(ctx, &again))
	assert.Equal(t, greeting, again)
	c2.Close()
	require.NoError(t, s2.Stop())

	// A search attribute that exists with another type is an error.
	conflicting := map[string]enumspb.IndexedValueType{workflows.SearchAttrRows.GetName(): enumspb.INDEXED_VALUE_TYPE_KEYWORD}
	_, err = devtemporal.Start(ctx, devtemporal.Options{
		Port: mustFreePort(t), UIPort: -1, DBFilename: dbFile, SearchAttributes: conflicting, LogLevel: "off",
	})
	require.Error(t, err)
	assert.Contains(t, err.Error(), workflows.SearchAttrRows.GetName())
}

func mustFreePort(t *testing.T) int {
	t.Helper()
	p, err := devtemporal.FreePort()
	require.NoError(t, err)
	return p
}

func TestTwoServersInOneProcess(t *testing.T) {
	a := devtemporal.StartForTest(t, devtemporal.Options{})
	b := devtemporal.StartForTest(t, devtemporal.Options{Namespace: "other"})
	require.NotEqual(t, a.FrontendHostPort(), b.FrontendHostPort())

	ca := dial(t, a, a.Namespace())
	defer ca.Close()
	cb := dial(t, b, b.Namespace())
	defer cb.Close()

	// Each server has its own in-memory database.
	describeNamespace(t, ca, "default")
	_, err := ca.WorkflowService().DescribeNamespace(context.Background(),
		&workflowservice.DescribeNamespaceRequest{Namespace: "other"})
	require.Error(t, err, "namespace of server b visible on server a")
	describeNamespace(t, cb, "other")
}

func TestStartErrors(t *testing.T) {
	skipShort(t)
	ctx := context.Background()
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer busy.Close()
	busyPort := busy.Addr().(*net.TCPAddr).Port

	tests := []struct {
		name string
		opts devtemporal.Options
		want string
	}{
		{"frontend port in use", devtemporal.Options{Port: busyPort, UIPort: -1}, "frontend port"},
		{"ui port in use", devtemporal.Options{Port: mustFreePort(t), UIPort: busyPort}, "ui port"},
		{"bad log level", devtemporal.Options{Port: mustFreePort(t), LogLevel: "loud"}, "log level"},
		{"bad ip", devtemporal.Options{IP: "not-an-ip"}, "invalid IP"},
		{"missing db directory", devtemporal.Options{
			Port: mustFreePort(t), UIPort: -1, DBFilename: filepath.Join(t.TempDir(), "absent", "t.db"),
		}, "database directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := devtemporal.Start(ctx, tt.opts)
			if s != nil {
				_ = s.Stop()
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent writers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestLogLevel(t *testing.T) {
	run := func(level string) string {
		var out syncBuffer
		logger := slog.New(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelDebug}))
		s := devtemporal.StartForTest(t, devtemporal.Options{Logger: logger, LogLevel: level})
		require.NoError(t, s.Stop())
		return out.String()
	}
	// The default keeps the server quiet: the logger's own level is not enough
	// to let info records through.
	assert.NotContains(t, run(""), "level=INFO")
	assert.Contains(t, run("info"), "level=INFO")
	assert.Empty(t, run("off"))
}

func TestStartCanceledLeavesNothingRunning(t *testing.T) {
	skipShort(t)
	port, uiPort := mustFreePort(t), mustFreePort(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	s, err := devtemporal.Start(ctx, devtemporal.Options{Port: port, UIPort: uiPort, LogLevel: "off"})
	require.ErrorIs(t, err, context.Canceled)
	assert.Nil(t, s)
	assert.True(t, portIsFree(port), "frontend port still bound")
	assert.True(t, portIsFree(uiPort), "UI port still bound")
}
