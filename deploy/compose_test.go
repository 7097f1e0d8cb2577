package deploy

import (
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"
)

// composeFile is the part of docker-compose.yml the tests read, after interpolation.
type composeFile struct {
	Services map[string]composeService `yaml:"services"`
	Volumes  map[string]any            `yaml:"volumes"`
}

type composeService struct {
	Image         string        `yaml:"image"`
	Build         *composeBuild `yaml:"build"`
	ContainerName string        `yaml:"container_name"`
	Profiles      []string      `yaml:"profiles"`
	DependsOn     map[string]struct {
		Condition string `yaml:"condition"`
	} `yaml:"depends_on"`
	User            string            `yaml:"user"`
	Environment     map[string]string `yaml:"environment"`
	Volumes         []string          `yaml:"volumes"`
	Ports           []string          `yaml:"ports"`
	Expose          []string          `yaml:"expose"`
	Healthcheck     *composeHealth    `yaml:"healthcheck"`
	Entrypoint      []string          `yaml:"entrypoint"`
	Command         []string          `yaml:"command"`
	StopGracePeriod string            `yaml:"stop_grace_period"`
	Restart         string            `yaml:"restart"`
}

type composeBuild struct {
	Context    string `yaml:"context"`
	Dockerfile string `yaml:"dockerfile"`
}

type composeHealth struct {
	Test     []string `yaml:"test"`
	Interval string   `yaml:"interval"`
	Timeout  string   `yaml:"timeout"`
	Retries  int      `yaml:"retries"`
}

// interpolation matches Compose's ${VAR}, ${VAR:-default} and ${VAR-default}.
var interpolation = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?-)([^}]*))?\}`)

// interpolate resolves variables as Compose does with an empty environment: to their defaults.
// It fails the test on a variable without a default, which would make the file depend on the
// caller's environment.
func interpolate(t *testing.T, s string) string {
	t.Helper()
	s = interpolation.ReplaceAllStringFunc(s, func(m string) string {
		sub := interpolation.FindStringSubmatch(m)
		if sub[2] == "" {
			t.Errorf("docker-compose.yml: %s has no default", m)
		}
		return sub[3]
	})
	return strings.ReplaceAll(s, "$$", "$")
}

func loadCompose(t *testing.T) composeFile {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "docker-compose.yml"))
	require.NoError(t, err)
	var c composeFile
	require.NoError(t, yaml.Unmarshal([]byte(interpolate(t, string(raw))), &c), "docker-compose.yml")
	require.NotEmpty(t, c.Services)
	return c
}

func TestComposeHasTheStack(t *testing.T) {
	c := loadCompose(t)
	for _, name := range []string{"postgres", "temporal-schema", "temporal", "temporal-namespace", "temporal-ui", "nats", "worker", "starter"} {
		assert.Contains(t, c.Services, name)
	}
	// Long-running services report their health; one-shot ones are waited for by exit code.
	for _, name := range []string{"postgres", "temporal", "temporal-ui", "nats", "worker"} {
		s := c.Services[name]
		if assert.NotNil(t, s.Healthcheck, "%s has no healthcheck", name) {
			assert.NotEmpty(t, s.Healthcheck.Test, name)
			assert.Contains(t, []string{"CMD", "CMD-SHELL"}, s.Healthcheck.Test[0], name)
		}
		assert.Equal(t, "unless-stopped", s.Restart, name)
	}
	assert.Contains(t, c.Services["postgres"].Healthcheck.Test, "pg_isready")
}

func TestComposeDependenciesAreKnownServices(t *testing.T) {
	c := loadCompose(t)
	for name, s := range c.Services {
		for dep, d := range s.DependsOn {
			if assert.Contains(t, c.Services, dep, "%s depends on an unknown service", name) {
				assert.Contains(t, []string{"service_started", "service_healthy", "service_completed_successfully"}, d.Condition, "%s -> %s", name, dep)
				if d.Condition == "service_healthy" {
					assert.NotNil(t, c.Services[dep].Healthcheck, "%s waits for %s to be healthy, which has no healthcheck", name, dep)
				}
			}
		}
	}
	assert.Equal(t, "service_completed_successfully", c.Services["temporal"].DependsOn["temporal-schema"].Condition)
	assert.Equal(t, "service_completed_successfully", c.Services["worker"].DependsOn["temporal-namespace"].Condition)
	assert.Equal(t, "service_healthy", c.Services["worker"].DependsOn["postgres"].Condition)
}

func TestComposeImagesArePinned(t *testing.T) {
	c := loadCompose(t)
	for name, s := range c.Services {
		if s.Build != nil {
			// Built here: a local name, the same for the worker and the starter.
			assert.Equal(t, "deploy/Dockerfile", s.Build.Dockerfile, name)
			assert.Equal(t, ".", s.Build.Context, name)
			assert.FileExists(t, filepath.Join("..", s.Build.Dockerfile))
			assert.Equal(t, c.Services["worker"].Image, s.Image, "%s does not share the worker's image", name)
		}
		assertPinned(t, "docker-compose.yml "+name, s.Image)
	}
	// The Temporal images are those of the server version the module depends on; the UI the
	// one of the ui-server module.
	server := "temporalio/server:" + moduleVersion(t, "dev", "go.temporal.io/server")
	assert.Equal(t, server, c.Services["temporal"].Image)
	admin := "temporalio/admin-tools:" + moduleVersion(t, "dev", "go.temporal.io/server")
	assert.Equal(t, admin, c.Services["temporal-schema"].Image)
	assert.Equal(t, admin, c.Services["temporal-namespace"].Image)
	assert.Equal(t, "temporalio/ui:"+moduleVersion(t, "dev", "github.com/temporalio/ui-server/v2"), c.Services["temporal-ui"].Image)
}

func TestComposeWorkerAndStarter(t *testing.T) {
	c := loadCompose(t)
	known := knownVariables(t)
	for _, name := range []string{"worker", "starter"} {
		s := c.Services[name]
		for k := range s.Environment {
			if strings.HasPrefix(k, "TXFLOW_") {
				assert.Contains(t, known, k, "%s sets %s, which the code does not read", name, k)
			}
		}
		env := s.Environment

		// Temporal: the temporal service, on the port it serves.
		host, port, err := net.SplitHostPort(env["TEMPORAL_ADDRESS"])
		require.NoError(t, err, "%s TEMPORAL_ADDRESS", name)
		assert.Equal(t, "temporal", host, name)
		assert.Equal(t, "7233", port, name)
		assert.Equal(t, env["TEMPORAL_NAMESPACE"], c.Services["temporal-namespace"].Environment["TEMPORAL_NAMESPACE"],
			"%s uses a namespace the stack does not create", name)

		// The input root is mounted (writable for the worker, which moves inbox files to archive/
		// and failed/; read-only for the starter); paths are those the image defaults to.
		assert.Equal(t, imageEnv(t)["TXFLOW_INPUT_DIR"], env["TXFLOW_INPUT_DIR"], name)
		assert.Equal(t, imageEnv(t)["TXFLOW_OUTPUT_DIR"], env["TXFLOW_OUTPUT_DIR"], name)
		in := mountAt(t, s, env["TXFLOW_INPUT_DIR"])
		if assert.NotNil(t, in, "%s: nothing mounted at TXFLOW_INPUT_DIR", name) {
			assert.Equal(t, name != "worker", in.readOnly, "%s: input root read-only = %v", name, in.readOnly)
			assert.Equal(t, "./data/input", in.source, name)
		}
		assert.Empty(t, s.ContainerName, name)
		assert.Empty(t, s.Ports, "%s publishes a host port", name)
		assert.NotEmpty(t, s.User, name)
	}

	w := c.Services["worker"]
	out := mountAt(t, w, w.Environment["TXFLOW_OUTPUT_DIR"])
	if assert.NotNil(t, out, "worker: nothing mounted at TXFLOW_OUTPUT_DIR") {
		assert.False(t, out.readOnly)
		assert.Equal(t, "./data/output", out.source)
	}
	assert.Empty(t, w.Profiles, "the worker starts with docker compose up")
	assert.Equal(t, []string{"CMD", "/usr/local/bin/worker", "healthcheck"}, w.Healthcheck.Test)
	_, httpPort, err := net.SplitHostPort(w.Environment["TXFLOW_HTTP_ADDR"])
	require.NoError(t, err, "worker TXFLOW_HTTP_ADDR")
	assert.Equal(t, []string{httpPort}, w.Expose)
	assert.Equal(t, "45s", w.StopGracePeriod, "the worker drains for 30 s after SIGTERM")

	s := c.Services["starter"]
	assert.Equal(t, []string{"tools"}, s.Profiles, "the starter runs with docker compose run only")
	assert.Equal(t, []string{"/usr/local/bin/starter"}, s.Entrypoint)

	// The Web UI address the starter prints is the UI's published port.
	ui, err := url.Parse(s.Environment["TXFLOW_UI_URL"])
	require.NoError(t, err)
	assert.Contains(t, c.Services["temporal-ui"].Ports, "127.0.0.1:"+ui.Port()+":8080")
}

// bindVariable is the variable that opens the published ports to the network.
const bindVariable = "TXFLOW_BIND_ADDRESS"

// TestComposePortsOnLoopback checks that every published port listens on 127.0.0.1 unless
// TXFLOW_BIND_ADDRESS says otherwise: Temporal's frontend and its Web UI have no authentication.
func TestComposePortsOnLoopback(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "docker-compose.yml"))
	require.NoError(t, err)
	var file struct {
		Services map[string]struct {
			Ports []string `yaml:"ports"`
		} `yaml:"services"`
	}
	require.NoError(t, yaml.Unmarshal(raw, &file))
	published := 0
	for name, s := range file.Services {
		for _, p := range s.Ports {
			published++
			assert.True(t, strings.HasPrefix(p, "${"+bindVariable+":-127.0.0.1}:"),
				"%s publishes %q on every interface, or without the %s variable", name, p, bindVariable)
			// HOST:CONTAINER after the address, no range, no protocol suffix that would hide one.
			assert.Regexp(t, `^\$\{[A-Z_]+:-127\.0\.0\.1\}:[0-9]+:[0-9]+$`, p, name)
		}
	}
	assert.Equal(t, 3, published, "published ports: Temporal's frontend, the Web UI and NATS's client port")

	// Interpolated with an empty environment, as Compose does, every address is the loopback.
	c := loadCompose(t)
	for name, s := range c.Services {
		for _, p := range s.Ports {
			host, _, ok := strings.Cut(p, ":")
			assert.True(t, ok && host == "127.0.0.1", "%s: %q", name, p)
		}
	}
}

func TestComposeDatabases(t *testing.T) {
	c := loadCompose(t)
	pg := c.Services["postgres"]
	assertPinned(t, "postgres", pg.Image)
	assert.True(t, strings.HasPrefix(pg.Image, "postgres:"))
	require.NotNil(t, mountAt(t, pg, "/var/lib/postgresql/data"))
	assert.Contains(t, c.Volumes, mountAt(t, pg, "/var/lib/postgresql/data").source, "PostgreSQL data is not on a named volume")
	initScript := mountAt(t, pg, "/docker-entrypoint-initdb.d/10-init-databases.sh")
	require.NotNil(t, initScript, "no init script")
	script, err := os.ReadFile(filepath.Join("..", initScript.source))
	require.NoError(t, err)

	// txflow: DATABASE_URL names the postgres service, a role and a database the init script
	// creates, with the password given to it.
	for _, name := range []string{"worker", "starter"} {
		u, err := url.Parse(c.Services[name].Environment["DATABASE_URL"])
		require.NoError(t, err, name)
		assert.Equal(t, "postgres", u.Scheme)
		assert.Equal(t, "postgres", u.Hostname(), name)
		assert.Equal(t, "5432", u.Port(), name)
		db := strings.TrimPrefix(u.Path, "/")
		assert.Contains(t, string(script), "CREATE DATABASE "+db+" OWNER "+u.User.Username()+";")
		assert.Contains(t, string(script), "CREATE ROLE "+u.User.Username()+" LOGIN PASSWORD :'app_password';")
		pw, _ := u.User.Password()
		assert.Equal(t, pg.Environment["APP_DB_PASSWORD"], pw, name)
	}
	assert.Contains(t, string(script), `-v app_password="$APP_DB_PASSWORD"`)

	// Temporal: the schema job and the server use the role and databases the script creates.
	tmp := c.Services["temporal"].Environment
	schema := c.Services["temporal-schema"].Environment
	assert.Equal(t, "postgres", tmp["POSTGRES_SEEDS"])
	assert.Equal(t, "postgres", schema["SQL_HOST"])
	assert.Equal(t, "postgres12", tmp["DB"])
	assert.Equal(t, tmp["POSTGRES_USER"], schema["SQL_USER"])
	assert.Equal(t, pg.Environment["TEMPORAL_DB_PASSWORD"], tmp["POSTGRES_PWD"])
	assert.Equal(t, pg.Environment["TEMPORAL_DB_PASSWORD"], schema["SQL_PASSWORD"])
	assert.Contains(t, string(script), "CREATE ROLE "+tmp["POSTGRES_USER"]+" LOGIN PASSWORD :'temporal_password';")
	assert.Contains(t, string(script), `-v temporal_password="$TEMPORAL_DB_PASSWORD"`)
	for _, db := range []string{tmp["DBNAME"], tmp["VISIBILITY_DBNAME"]} {
		assert.Contains(t, string(script), "CREATE DATABASE "+db+" OWNER "+tmp["POSTGRES_USER"]+";")
	}
	setup, err := os.ReadFile(filepath.Join("..", "deploy", "temporal", "setup-schema.sh"))
	require.NoError(t, err)
	assert.Contains(t, string(setup), "for db in "+tmp["DBNAME"]+":temporal "+tmp["VISIBILITY_DBNAME"]+":visibility; do")
}

func TestComposeTemporal(t *testing.T) {
	c := loadCompose(t)
	tmp := c.Services["temporal"]
	assert.Equal(t, "0.0.0.0", tmp.Environment["BIND_ON_IP"], "other containers could not reach the frontend")
	assert.Contains(t, tmp.Ports, "127.0.0.1:7233:7233")
	dyn := mountAt(t, tmp, "/etc/temporal/config/dynamicconfig/docker.yaml")
	require.NotNil(t, dyn, "the server needs its dynamic config file")
	raw, err := os.ReadFile(filepath.Join("..", dyn.source))
	require.NoError(t, err)
	var dc map[string][]struct {
		Value       any            `yaml:"value"`
		Constraints map[string]any `yaml:"constraints"`
	}
	require.NoError(t, yaml.Unmarshal(raw, &dc))
	for key, values := range dc {
		assert.NotEmpty(t, values, key)
		for _, v := range values {
			assert.NotNil(t, v.Value, key)
		}
	}
	ns := c.Services["temporal-namespace"]
	assert.Equal(t, "temporal:7233", ns.Environment["TEMPORAL_ADDRESS"])
	assert.Equal(t, "temporal:7233", c.Services["temporal-ui"].Environment["TEMPORAL_ADDRESS"])
}

// TestComposeNATS checks the broker the worker delivers results to: the server the tests embed,
// JetStream on with its store on a named volume, and the worker pointed at its client port.
func TestComposeNATS(t *testing.T) {
	c := loadCompose(t)
	n := c.Services["nats"]
	assert.Equal(t, "nats:"+moduleVersion(t, ".", "github.com/nats-io/nats-server/v2")+"-alpine", n.Image,
		"the NATS image is the server version the tests run embedded")
	args := strings.Join(n.Command, " ")
	assert.Contains(t, n.Command, "-js", "JetStream is off")
	store := flagValue(t, n.Command, "-sd")
	if m := mountAt(t, n, store); assert.NotNil(t, m, "nothing mounted at the JetStream store %s (%s)", store, args) {
		assert.Contains(t, c.Volumes, m.source, "the JetStream store is not on a named volume")
		assert.False(t, m.readOnly)
	}
	// The health check asks the monitoring port the server is told to open.
	monitor := flagValue(t, n.Command, "-m")
	require.NotNil(t, n.Healthcheck)
	assert.Contains(t, n.Healthcheck.Test, "http://127.0.0.1:"+monitor+"/healthz")
	assert.Contains(t, n.Ports, "127.0.0.1:4222:4222", "the client port, for consumers on the host")

	// The worker publishes to the nats service's client port once it is healthy; the starter
	// publishes nothing.
	w := c.Services["worker"]
	u, err := url.Parse(w.Environment["TXFLOW_NATS_URL"])
	require.NoError(t, err)
	assert.Equal(t, "nats", u.Scheme)
	assert.Equal(t, "nats", u.Hostname())
	assert.Equal(t, "4222", u.Port())
	assert.Equal(t, "service_healthy", w.DependsOn["nats"].Condition)
	assert.NotContains(t, c.Services["starter"].Environment, "TXFLOW_NATS_URL")
}

// flagValue returns the argument after flag in args, failing the test when there is none.
func flagValue(t *testing.T, args []string, flag string) string {
	t.Helper()
	i := slices.Index(args, flag)
	require.True(t, i >= 0 && i+1 < len(args), "no %s in %q", flag, args)
	return args[i+1]
}

func TestComposeMountedFilesExist(t *testing.T) {
	c := loadCompose(t)
	for name, s := range c.Services {
		for _, v := range s.Volumes {
			m := parseMount(v)
			if strings.HasPrefix(m.source, "./deploy/") {
				assert.FileExists(t, filepath.Join("..", m.source), "%s mounts a missing file", name)
				if m.target != "" {
					assert.True(t, m.readOnly, "%s mounts %s writable", name, m.source)
				}
			} else if !strings.HasPrefix(m.source, "./") {
				assert.Contains(t, c.Volumes, m.source, "%s uses an undeclared volume", name)
			}
		}
		for _, arg := range s.Entrypoint {
			if strings.HasPrefix(arg, "/scripts/") {
				assert.NotNil(t, mountAt(t, s, arg), "%s runs %s, which is not mounted", name, arg)
			}
		}
	}
}

type mount struct {
	source, target string
	readOnly       bool
}

func parseMount(v string) mount {
	parts := strings.Split(v, ":")
	m := mount{source: parts[0]}
	if len(parts) > 1 {
		m.target = parts[1]
	}
	if len(parts) > 2 {
		m.readOnly = slices.Contains(strings.Split(parts[2], ","), "ro")
	}
	return m
}

// mountAt returns what s mounts exactly at target, or nil.
func mountAt(t *testing.T, s composeService, target string) *mount {
	t.Helper()
	for _, v := range s.Volumes {
		if m := parseMount(v); m.target == target {
			return &m
		}
	}
	return nil
}
