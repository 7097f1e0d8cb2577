package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/txflow/txflow/dev/internal/devstack"
	"github.com/txflow/txflow/internal/config"
	"github.com/txflow/txflow/internal/starterapp"
	"github.com/txflow/txflow/workflows"
)

// stackRows is the size of the production stack test's file, and stackChunk its chunk size:
// ten tag and annotate chunks, so that a fault falls between chunks done and chunks left.
const (
	stackRows  = 200_000
	stackChunk = 20_000
)

// stack is the compose topology run as processes by deploy/local/up.sh: PostgreSQL, Temporal on
// PostgreSQL with SQL visibility, two workers. The test drives it through the scripts a person
// uses (up.sh, down.sh, starter.sh), which run the compose file's own scripts.
type stack struct {
	t      *testing.T
	root   string
	state  string
	env    config.Map // up.sh's settings
	pgPort int
	addr   string // the frontend
	uiURL  string // the Web UI
}

// startStack builds the binaries once into the state directory and brings the stack up on free
// ports, with TXFLOW_* settings extra.
func startStack(t *testing.T) *stack {
	t.Helper()
	root, err := devstack.RepoRoot()
	require.NoError(t, err)
	// PostgreSQL runs as an unprivileged user when the test runs as root: it must traverse the
	// directory, which t.TempDir makes 0700.
	state, err := os.MkdirTemp("", "txflow-stack-")
	require.NoError(t, err)
	require.NoError(t, os.Chmod(state, 0o755))
	t.Cleanup(func() { _ = os.RemoveAll(state) })

	began := time.Now()
	build := exec.Command("sh", filepath.Join(root, "deploy", "local", "build.sh"), filepath.Join(state, "bin"))
	out, err := build.CombinedOutput()
	require.NoError(t, err, "deploy/local/build.sh:\n%s", out)
	t.Logf("binaries built in %s", time.Since(began).Round(time.Second))

	// Temporal stores its membership ports in a smallint column: they must be below 32768,
	// under the kernel's ephemeral range, so they are probed rather than asked for.
	seen := map[int]bool{}
	port := func() string {
		for range 1000 {
			p := 20000 + rand.IntN(12000)
			if seen[p] {
				continue
			}
			l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
			if err != nil {
				continue
			}
			l.Close()
			seen[p] = true
			return strconv.Itoa(p)
		}
		t.Fatal("no free port between 20000 and 32000")
		return ""
	}
	s := &stack{t: t, root: root, state: state}
	s.env = config.Map{
		"TXFLOW_LOCAL_STATE":       state,
		"TXFLOW_LOCAL_SKIP_BUILD":  "1",
		"TXFLOW_LOCAL_PG_FAST":     "1",
		"TXFLOW_LOCAL_PG_PORT":     port(),
		"FRONTEND_GRPC_PORT":       port(),
		"FRONTEND_HTTP_PORT":       port(),
		"FRONTEND_MEMBERSHIP_PORT": port(),
		"MATCHING_GRPC_PORT":       port(),
		"MATCHING_MEMBERSHIP_PORT": port(),
		"HISTORY_GRPC_PORT":        port(),
		"HISTORY_MEMBERSHIP_PORT":  port(),
		"WORKER_GRPC_PORT":         port(),
		"WORKER_MEMBERSHIP_PORT":   port(),
		"TEMPORAL_UI_PORT":         port(),
		"TXFLOW_INPUT_DIR":         filepath.Join(state, "input"),
		"TXFLOW_OUTPUT_DIR":        filepath.Join(state, "output"),
		"TXFLOW_UI_URL":            "http://ui.example",
		"TXFLOW_BATCH_SIZE":        "10000", // several batches, so that a crash falls between two
		"TEMPORAL_CONFIG_FILE":     os.DevNull,
	}
	s.pgPort, _ = strconv.Atoi(s.env["TXFLOW_LOCAL_PG_PORT"])
	s.addr = net.JoinHostPort("127.0.0.1", s.env["FRONTEND_GRPC_PORT"])
	s.uiURL = "http://" + net.JoinHostPort("127.0.0.1", s.env["TEMPORAL_UI_PORT"])
	t.Cleanup(func() {
		if out, err := s.script("down.sh"); err != nil {
			t.Errorf("deploy/local/down.sh: %v\n%s", err, out)
		}
	})
	began = time.Now()
	s.up()
	t.Logf("stack up from scratch in %s", time.Since(began).Round(100*time.Millisecond))
	return s
}

// script runs deploy/local/NAME with the stack's settings and returns its output.
func (s *stack) script(name string, args ...string) (string, error) {
	cmd := exec.Command("sh", append([]string{filepath.Join(s.root, "deploy", "local", name)}, args...)...)
	cmd.Env = devstack.Environ(s.env)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// up runs up.sh, which starts whatever is not running.
func (s *stack) up() {
	s.t.Helper()
	out, err := s.script("up.sh")
	require.NoError(s.t, err, "deploy/local/up.sh:\n%s\n%s", out, s.logTail("temporal"))
}

// starter runs deploy/local/starter.sh and returns its exit code and output.
func (s *stack) starter(args ...string) (int, string) {
	s.t.Helper()
	out, err := s.script("starter.sh", args...)
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), out
	}
	require.NoError(s.t, err)
	return 0, out
}

// logTail returns the end of logs/NAME.log, for messages.
func (s *stack) logTail(name string) string {
	b, _ := os.ReadFile(filepath.Join(s.state, "logs", name+".log"))
	return string(b[max(0, len(b)-3000):])
}

// pid returns the process id up.sh recorded for NAME (temporal, worker-1, ...).
func (s *stack) pid(name string) int {
	b, err := os.ReadFile(filepath.Join(s.state, "run", name+".pid"))
	require.NoError(s.t, err)
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	require.NoError(s.t, err)
	return pid
}

// stop ends NAME with SIGTERM, as down.sh does, and waits until it is gone.
func (s *stack) stop(name string) {
	s.t.Helper()
	pid := s.pid(name)
	require.NoError(s.t, syscall.Kill(pid, syscall.SIGTERM))
	eventually(s.t, 30*time.Second, name+" to stop", func() bool { return !running(pid) })
}

// kill ends NAME with SIGKILL, as a crash would, and waits until it is gone.
func (s *stack) kill(name string) {
	s.t.Helper()
	pid := s.pid(name)
	require.NoError(s.t, syscall.Kill(pid, syscall.SIGKILL))
	eventually(s.t, 10*time.Second, name+" to die", func() bool { return !running(pid) })
}

// running reports whether pid runs (a zombie does not).
func running(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	_, after, _ := strings.Cut(string(b), ") ")
	return !strings.HasPrefix(after, "Z")
}

// superuserURL is the URL of database db as the cluster's superuser (password authentication, as
// in the postgres image).
func (s *stack) superuserURL(db string) string {
	return fmt.Sprintf("postgres://postgres:postgres@127.0.0.1:%d/%s?sslmode=disable", s.pgPort, db)
}

// exec runs SQL statements as the superuser on database db.
func (s *stack) exec(db string, stmts ...string) {
	s.t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, s.superuserURL(db))
	require.NoError(s.t, err)
	defer conn.Close(ctx)
	for _, st := range stmts {
		_, err := conn.Exec(ctx, st)
		require.NoError(s.t, err, st)
	}
}

// useDatabase restarts the workers on a new txflow database db (owned by the txflow role, as
// init-databases.sh makes txflow's) and a new output root, and returns the database's URL as the
// txflow role and the output root.
func (s *stack) useDatabase(db string) (dbURL, output string) {
	s.t.Helper()
	if db != "txflow" {
		s.exec("postgres", "CREATE DATABASE "+db+" OWNER txflow")
	}
	out, err := s.script("down.sh", "workers")
	require.NoError(s.t, err, out)
	output = filepath.Join(s.state, "output-"+db)
	s.env["TXFLOW_APP_DB"] = db
	s.env["TXFLOW_OUTPUT_DIR"] = output
	s.up()
	return fmt.Sprintf("postgres://txflow:txflow@127.0.0.1:%d/%s?sslmode=disable", s.pgPort, db), output
}

// midTag waits until run tags and annotates with chunks done and chunks left, and returns the
// identity of a worker running one of its chunks.
func midTag(t *testing.T, c client.Client, run client.WorkflowRun) string {
	t.Helper()
	var identity string
	eventually(t, 2*time.Minute, "tag and annotate halfway", func() bool {
		s, err := progress(c, run)
		tag := stageOf(s, workflows.StageTag)
		if err != nil || tag.Status != workflows.StatusRunning || tag.Done == 0 || tag.Done >= tag.Total {
			return false
		}
		pa := startedActivity(c, run, actTag, actAnnotate)
		if pa == nil {
			return false
		}
		identity = pa.GetLastWorkerIdentity()
		return true
	})
	return identity
}

// TestProductionStack runs docker-compose.yml's topology as processes (deploy/local/up.sh):
// PostgreSQL with the roles and databases of init-databases.sh, Temporal built from the pinned
// server module with its schemas from setup-schema.sh and the namespace from
// create-namespace.sh, and two workers. A 200,000-row file is run undisturbed, then again in a
// fresh txflow database while a worker is killed, while the Temporal server is killed and
// started again, and while PostgreSQL restarts: each run's outputs must be byte-identical to the
// undisturbed run's and no table may hold a key twice. Then the search attributes and visibility
// queries on SQL visibility, the starter's schedules, the Web UI listing the runs, a server whose
// schema is one version behind, and last the frontend on mutual TLS: the stack started again with
// the test's own CA, a run through the workers and the UI over it, and starters without a client
// certificate, with another CA's or in plaintext refused.
func TestProductionStack(t *testing.T) {
	if testing.Short() {
		t.Skip("builds Temporal, runs PostgreSQL, Temporal and two workers as processes, and a large file four times")
	}
	began := time.Now()
	defer func() { t.Logf("TestProductionStack took %s", time.Since(began).Round(time.Second)) }()
	s := startStack(t)
	c, err := client.Dial(client.Options{HostPort: s.addr, Namespace: "default"})
	require.NoError(t, err)
	t.Cleanup(c.Close)

	input := s.env["TXFLOW_INPUT_DIR"]
	require.NoError(t, os.MkdirAll(input, 0o755))
	name := generate(t, input, stackRows, 23)

	// The undisturbed run, in the database init-databases.sh made.
	refDB, refOut := s.useDatabase("txflow")
	ref := waitRun(t, startRun(t, c, input, name, stackChunk), 3*time.Minute)
	require.EqualValues(t, stackRows, ref.RowsRead)
	refCounts := requireNoDuplicates(t, refDB)
	refDir := filepath.Join(refOut, ref.RunID)

	// check compares a disturbed run with the undisturbed one.
	check := func(t *testing.T, run client.WorkflowRun, dbURL, output string) {
		t.Helper()
		got := waitRun(t, run, 3*time.Minute)
		requireSameCounts(t, ref, got)
		requireSameOutputs(t, refDir, filepath.Join(output, got.RunID))
		require.Equal(t, refCounts, requireNoDuplicates(t, dbURL))
	}

	t.Run("worker killed", func(t *testing.T) {
		dbURL, output := s.useDatabase("txflow_worker_killed")
		run := startRun(t, c, input, name, stackChunk)
		identity := midTag(t, c, run)
		victim := "worker-1"
		if strings.HasPrefix(identity, strconv.Itoa(s.pid("worker-2"))+"@") {
			victim = "worker-2"
		}
		t.Logf("killing %s (%s), which runs a chunk", victim, identity)
		s.kill(victim)
		check(t, run, dbURL, output)
		att := maxAttempts(t, c, run)
		require.GreaterOrEqual(t, max(att[actTag], att[actAnnotate]), int32(2), "no chunk ran again after the kill: %v", att)
	})

	t.Run("temporal killed", func(t *testing.T) {
		dbURL, output := s.useDatabase("txflow_temporal_killed")
		run := startRun(t, c, input, name, stackChunk)
		midTag(t, c, run)
		t.Log("killing the Temporal server during tag and annotate")
		s.kill("temporal")
		time.Sleep(2 * time.Second)
		restarted := time.Now()
		s.up() // starts the server again: setup-schema.sh and create-namespace.sh run again too
		t.Logf("Temporal back on the same database in %s", time.Since(restarted).Round(100*time.Millisecond))
		check(t, run, dbURL, output)
	})

	t.Run("postgres restarted", func(t *testing.T) {
		dbURL, output := s.useDatabase("txflow_pg_restarted")
		run := startRun(t, c, input, name, stackChunk)
		midTag(t, c, run)
		t.Log("restarting PostgreSQL during tag and annotate")
		// -l: without it, the restarted server would write to (and hold open) this command's output.
		pgdata := filepath.Join(s.state, "pg")
		pgctl := []string{"pg_ctl", "-D", pgdata, "-l", filepath.Join(pgdata, "server.log"), "-m", "fast", "-w", "restart"}
		if os.Getuid() == 0 {
			pgctl = append([]string{"runuser", "-u", "postgres", "--"}, pgctl...)
		}
		out, err := exec.Command(pgctl[0], pgctl[1:]...).CombinedOutput()
		require.NoError(t, err, "%s", out)
		check(t, run, dbURL, output)
	})

	t.Run("visibility and schedules", func(t *testing.T) {
		ctx := context.Background()
		// The workers registered txflow's search attributes on SQL visibility (the compose file
		// relies on them: create-namespace.sh registers none).
		resp, err := c.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: "default"})
		require.NoError(t, err)
		for attr, typ := range workflows.SearchAttributes() {
			require.Equal(t, typ, resp.GetCustomAttributes()[attr], "search attribute %s", attr)
		}

		// A run that fails: a page saved instead of a CSV.
		require.NoError(t, os.WriteFile(filepath.Join(input, "page.csv"), []byte("<!DOCTYPE html>\n<html><body>Not found</body></html>\n"), 0o644))
		code, out := s.starter("run", "page.csv")
		require.Equal(t, starterapp.ExitRunFailed, code, out)
		failedID, err := devstack.RunIDOf(filepath.Join(input, "page.csv"))
		require.NoError(t, err)

		list := func(query string) []string {
			var ids []string
			var token []byte
			for {
				r, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Namespace: "default", Query: query, NextPageToken: token})
				require.NoError(t, err, query)
				for _, e := range r.GetExecutions() {
					ids = append(ids, e.GetExecution().GetWorkflowId())
				}
				if token = r.GetNextPageToken(); len(token) == 0 {
					return ids
				}
			}
		}
		eventually(t, 30*time.Second, "the failed run in visibility", func() bool {
			return slices.Equal(list(`TxflowStatus = "failed"`), []string{failedID})
		})
		// The generated file ran four times, every time completed.
		byFile := list(fmt.Sprintf(`TxflowFile = %q AND TxflowStatus = "completed"`, name))
		require.Len(t, byFile, 4, "%v", byFile)
		for _, id := range byFile {
			require.Equal(t, ref.RunID, id)
		}

		// A schedule of the inbox, triggered and listed with the starter.
		inbox := filepath.Join(input, "inbox")
		require.NoError(t, os.MkdirAll(inbox, 0o755))
		copySamples(t, inbox)
		code, out = s.starter("schedule", "create", "nightly", "--cron", "0 6 * * *", "--dir", "inbox")
		require.Equal(t, 0, code, out)
		code, out = s.starter("schedule", "trigger", "nightly")
		require.Equal(t, 0, code, out)
		require.Contains(t, out, "transactions.csv", out)
		require.FileExists(t, filepath.Join(input, "archive", "transactions.csv"))
		code, out = s.starter("schedule", "list")
		require.Equal(t, 0, code, out)
		require.Contains(t, out, "nightly", out)
	})

	t.Run("web ui", func(t *testing.T) {
		// The page, as a browser opens it.
		resp, err := http.Get(s.uiURL + "/namespaces/default/workflows")
		require.NoError(t, err)
		page, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Contains(t, string(page), "<html")
		// The workflow list it shows, through its HTTP API: the four runs of the file.
		runs := uiWorkflows(t, s.uiURL, fmt.Sprintf(`TxflowFile = %q`, name))
		require.Len(t, runs, 4, "%v", runs)
		for _, r := range runs {
			require.Equal(t, ref.RunID, r.Execution.WorkflowID)
			require.Equal(t, "WORKFLOW_EXECUTION_STATUS_COMPLETED", r.Status)
		}
		t.Logf("the Web UI at %s lists the file's %d runs", s.uiURL, len(runs))
	})

	t.Run("schema one version behind", func(t *testing.T) {
		// The server's schemas as an older admin-tools image would have left them: Temporal's
		// two databases made anew, one schema version behind the server.
		out, err := s.script("down.sh", "workers")
		require.NoError(t, err, out)
		require.NoError(t, syscall.Kill(s.pid("temporal"), syscall.SIGTERM))
		eventually(t, 30*time.Second, "Temporal to stop", func() bool { return !running(s.pid("temporal")) })
		s.exec("postgres",
			"DROP DATABASE temporal WITH (FORCE)", "DROP DATABASE temporal_visibility WITH (FORCE)",
			"CREATE DATABASE temporal OWNER temporal", "CREATE DATABASE temporal_visibility OWNER temporal")
		schemaRoot := temporalSchemaRoot(t, s.root)
		bin := filepath.Join(s.state, "bin")
		for db, dir := range map[string]string{"temporal": "temporal", "temporal_visibility": "visibility"} {
			versioned := filepath.Join(schemaRoot, dir, "versioned")
			behind := previousVersion(t, versioned)
			for _, args := range [][]string{
				{"setup-schema", "-v", "0.0"},
				{"update-schema", "-d", versioned, "--version", behind},
			} {
				cmd := exec.Command(filepath.Join(bin, "temporal-sql-tool"), append([]string{"--plugin", "postgres12", "--db", db}, args...)...)
				cmd.Env = devstack.Environ(config.Map{"SQL_HOST": "127.0.0.1", "SQL_PORT": strconv.Itoa(s.pgPort), "SQL_USER": "temporal", "SQL_PASSWORD": "temporal"})
				out, err := cmd.CombinedOutput()
				require.NoError(t, err, "%s", out)
			}
			t.Logf("%s at schema %s", db, behind)
		}

		// The server itself refuses a schema behind its own, and says which.
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		server := exec.CommandContext(ctx, filepath.Join(bin, "temporal-server"),
			"--config-file", filepath.Join(s.root, "deploy", "local", "temporal.yaml"), "--allow-no-auth", "start")
		env := config.Map{
			"DB": "postgres12", "DB_PORT": strconv.Itoa(s.pgPort), "POSTGRES_SEEDS": "127.0.0.1", "POSTGRES_USER": "temporal",
			"POSTGRES_PWD": "temporal", "BIND_ON_IP": "127.0.0.1", "LOG_LEVEL": "error",
			"DYNAMIC_CONFIG_FILE_PATH": filepath.Join(s.root, "deploy", "temporal", "dynamicconfig.yaml"),
		}
		for k, v := range s.env {
			if strings.HasSuffix(k, "_PORT") && !strings.HasPrefix(k, "TXFLOW_") {
				env[k] = v
			}
		}
		server.Env = devstack.Environ(env)
		refused, err := server.CombinedOutput()
		require.NoError(t, ctx.Err(), "the server neither started nor exited on a schema one version behind")
		require.Error(t, err, "the server started on a schema one version behind")
		i := strings.Index(string(refused), "version mismatch")
		require.GreaterOrEqual(t, i, 0, "the server's refusal does not name the versions:\n%s", refused)
		line, _, _ := strings.Cut(string(refused[i:]), "\n")
		t.Logf("the server refuses: %s", line)
		require.Contains(t, line, "Expected version")
		require.Error(t, err, "the server started on a schema one version behind")

		// up.sh, like `docker compose up`, runs setup-schema.sh before the server: it upgrades.
		s.up()
		schemaLog, err := os.ReadFile(filepath.Join(s.state, "logs", "temporal-schema.log"))
		require.NoError(t, err)
		require.Contains(t, string(schemaLog), "Schema updated from", "setup-schema.sh did not upgrade")
		copySamples(t, input)
		code, out := s.starter("run", "transactions.csv")
		require.Equal(t, 0, code, out)
	})

	t.Run("frontend mutual TLS", func(t *testing.T) {
		// The frontend started again with TLS, requiring client certificates signed by the CA;
		// the workers, the starter and the Web UI given the CA's client certificate. The server's
		// services still talk to each other in plaintext, on 127.0.0.1.
		p := newPKI(t, filepath.Join(s.state, "tls"))
		out, err := s.script("down.sh", "workers")
		require.NoError(t, err, out)
		s.stop("temporal-ui")
		s.stop("temporal")
		maps.Copy(s.env, config.Map{
			"TEMPORAL_TLS_FRONTEND_CERT":       p.serverCert,
			"TEMPORAL_TLS_FRONTEND_KEY":        p.serverKey,
			"TEMPORAL_TLS_CLIENT1_CA_CERT":     p.ca,
			"TEMPORAL_TLS_CLIENT_CERT_PATH":    p.clientCert,
			"TEMPORAL_TLS_CLIENT_KEY_PATH":     p.clientKey,
			"TEMPORAL_TLS_SERVER_CA_CERT_PATH": p.ca,
		})
		restarted := time.Now()
		s.up()
		t.Logf("Temporal, its namespace, the Web UI and two workers up over mutual TLS in %s",
			time.Since(restarted).Round(100*time.Millisecond))

		small := generate(t, input, 2_000, 29)
		code, out := s.starter("run", small)
		require.Equal(t, 0, code, out)
		id, err := devstack.RunIDOf(filepath.Join(input, small))
		require.NoError(t, err)
		runs := uiWorkflows(t, s.uiURL, fmt.Sprintf(`WorkflowId = %q`, id))
		require.Len(t, runs, 1, "%v", runs)
		require.Equal(t, "WORKFLOW_EXECUTION_STATUS_COMPLETED", runs[0].Status)

		// starterWith runs the starter with txflow.env's settings after a shell snippet.
		starterWith := func(snippet string) (int, string) {
			cmd := exec.Command("sh", "-c", `. "$1/txflow.env" && `+snippet+` && exec "$1/bin/starter" run "$2"`,
				"sh", s.state, small)
			out, err := cmd.CombinedOutput()
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				return ee.ExitCode(), string(out)
			}
			require.NoError(t, err)
			return 0, string(out)
		}
		for _, c := range []struct{ name, snippet, want string }{
			{"without a client certificate", "unset TEMPORAL_TLS_CLIENT_CERT_PATH TEMPORAL_TLS_CLIENT_KEY_PATH",
				"(no client certificate: set TEMPORAL_TLS_CLIENT_CERT_PATH and TEMPORAL_TLS_CLIENT_KEY_PATH"},
			{"with another CA's certificate", fmt.Sprintf("export TEMPORAL_TLS_CLIENT_CERT_PATH=%s TEMPORAL_TLS_CLIENT_KEY_PATH=%s", p.rogueCert, p.rogueKey),
				"failed reaching server"},
			{"in plaintext", "unset TEMPORAL_TLS_CLIENT_CERT_PATH TEMPORAL_TLS_CLIENT_KEY_PATH TEMPORAL_TLS_SERVER_CA_CERT_PATH",
				"(the frontend may require TLS: set TEMPORAL_TLS_SERVER_CA_CERT_PATH"},
		} {
			began := time.Now()
			code, out := starterWith(c.snippet)
			require.Equal(t, starterapp.ExitRunFailed, code, "a starter %s was not refused:\n%s", c.name, out)
			require.Contains(t, out, "connect to temporal at "+s.addr, out)
			require.Contains(t, out, c.want, out)
			t.Logf("a starter %s is refused in %s: %s", c.name, time.Since(began).Round(100*time.Millisecond), strings.TrimSpace(out))
		}
	})
}

// temporalSchemaRoot returns schema/postgresql/v12 of the go.temporal.io/server module the dev
// module pins.
func temporalSchemaRoot(t *testing.T, root string) string {
	t.Helper()
	cmd := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "go.temporal.io/server")
	cmd.Dir = filepath.Join(root, "dev")
	out, err := cmd.Output()
	require.NoError(t, err)
	return filepath.Join(strings.TrimSpace(string(out)), "schema", "postgresql", "v12")
}

// previousVersion returns the version before the latest among a versioned schema directory's
// vMAJOR.MINOR subdirectories, without the v.
func previousVersion(t *testing.T, dir string) string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	type ver struct{ major, minor int }
	var vs []ver
	for _, e := range entries {
		var v ver
		if _, err := fmt.Sscanf(e.Name(), "v%d.%d", &v.major, &v.minor); err == nil {
			vs = append(vs, v)
		}
	}
	require.GreaterOrEqual(t, len(vs), 2)
	slices.SortFunc(vs, func(a, b ver) int {
		if a.major != b.major {
			return a.major - b.major
		}
		return a.minor - b.minor
	})
	p := vs[len(vs)-2]
	return fmt.Sprintf("%d.%d", p.major, p.minor)
}
