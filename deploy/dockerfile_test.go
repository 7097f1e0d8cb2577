package deploy

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// dockerInstruction is one instruction of the Dockerfile, continuation lines joined.
type dockerInstruction struct {
	Op, Args string
}

func readDockerfile(t *testing.T) []dockerInstruction {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "deploy", "Dockerfile"))
	require.NoError(t, err)
	defer f.Close()
	var out []dockerInstruction
	var cur strings.Builder
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.HasSuffix(line, `\`) {
			cur.WriteString(strings.TrimSuffix(line, `\`) + " ")
			continue
		}
		cur.WriteString(line)
		op, args, _ := strings.Cut(cur.String(), " ")
		out = append(out, dockerInstruction{strings.ToUpper(op), strings.Join(strings.Fields(args), " ")})
		cur.Reset()
	}
	require.NoError(t, sc.Err())
	require.NotEmpty(t, out)
	return out
}

// finalStage returns the instructions after the last FROM.
func finalStage(t *testing.T) []dockerInstruction {
	t.Helper()
	ins := readDockerfile(t)
	last := 0
	for i, in := range ins {
		if in.Op == "FROM" {
			last = i
		}
	}
	return ins[last:]
}

// imageEnv returns the ENV of the final image (KEY=VALUE form).
func imageEnv(t *testing.T) map[string]string {
	t.Helper()
	env := map[string]string{}
	for _, in := range finalStage(t) {
		if in.Op != "ENV" {
			continue
		}
		for _, kv := range strings.Fields(in.Args) {
			k, v, ok := strings.Cut(kv, "=")
			require.True(t, ok, "ENV %s: use the KEY=VALUE form", in.Args)
			env[k] = v
		}
	}
	return env
}

func TestDockerfileStages(t *testing.T) {
	var froms []string
	for _, in := range readDockerfile(t) {
		if in.Op == "FROM" {
			image, _, _ := strings.Cut(in.Args, " ")
			froms = append(froms, image)
			assertPinned(t, "Dockerfile", image)
		}
	}
	require.Len(t, froms, 2, "a builder and a runtime stage")
	assert.Equal(t, "golang:"+goDirective(t), froms[0], "the builder's Go is the one go.mod names")
	assert.Equal(t, "gcr.io/distroless/static-debian12:nonroot", froms[1])
}

func TestDockerfileBuildsStaticWorkerAndStarter(t *testing.T) {
	var build string
	var cgoOff, localToolchain, workOff bool
	for _, in := range readDockerfile(t) {
		if in.Op == "ENV" {
			cgoOff = cgoOff || strings.Contains(" "+in.Args+" ", " CGO_ENABLED=0 ")
			localToolchain = localToolchain || strings.Contains(" "+in.Args+" ", " GOTOOLCHAIN=local ")
			workOff = workOff || strings.Contains(" "+in.Args+" ", " GOWORK=off ")
		}
		if in.Op == "RUN" && strings.Contains(in.Args, "go build") {
			build = in.Args
		}
	}
	assert.True(t, cgoOff, "the binaries must be static for distroless/static")
	assert.True(t, localToolchain)
	assert.True(t, workOff, "the image builds the product module alone, without the dev module")
	require.NotEmpty(t, build, "no go build")
	assert.Contains(t, build, "--mount=type=cache,target=/go/pkg/mod")
	assert.Contains(t, build, " ./worker ./starter")
	assert.NotContains(t, build, "./dev/")
	assert.DirExists(t, filepath.Join("..", "worker"))
	assert.DirExists(t, filepath.Join("..", "starter"))
}

func TestDockerfileRuntime(t *testing.T) {
	var entrypoint []string
	var user string
	copied := map[string]string{} // file name -> destination
	for _, in := range finalStage(t) {
		switch in.Op {
		case "ENTRYPOINT":
			require.NoError(t, json.Unmarshal([]byte(in.Args), &entrypoint), "ENTRYPOINT in exec form")
		case "USER":
			user = in.Args
		case "COPY":
			f := strings.Fields(in.Args)
			for _, src := range f[:len(f)-1] {
				if !strings.HasPrefix(src, "--") {
					copied[filepath.Base(src)] = f[len(f)-1]
				}
			}
		}
	}
	assert.Equal(t, []string{"/usr/local/bin/worker"}, entrypoint)
	assert.Equal(t, "/usr/local/bin/", copied["worker"])
	assert.Equal(t, "/usr/local/bin/", copied["starter"])
	assert.NotEmpty(t, user)
	assert.NotContains(t, []string{"root", "0", "0:0"}, user)

	env := imageEnv(t)
	known := knownVariables(t)
	for k := range env {
		assert.Contains(t, known, k, "the image sets %s, which the code does not read", k)
	}
	assert.Equal(t, "/data/input", env["TXFLOW_INPUT_DIR"])
	assert.Equal(t, "/data/output", env["TXFLOW_OUTPUT_DIR"])
	assert.Equal(t, ":8080", env[httpAddrVariable])
}

func TestDockerignoreKeepsTheSources(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", ".dockerignore"))
	require.NoError(t, err)
	var patterns []string
	for _, l := range strings.Split(string(raw), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			patterns = append(patterns, l)
		}
	}
	assert.Contains(t, patterns, ".git")
	assert.Contains(t, patterns, "data", "local inputs and outputs stay out of the image")
	for _, needed := range []string{"go.mod", "go.sum", "worker", "starter", "internal", "txn", "deploy/Dockerfile", "*.go"} {
		for _, p := range patterns {
			ok, err := filepath.Match(p, needed)
			require.NoError(t, err)
			assert.False(t, ok || p == needed || p == "*" || p == "**", ".dockerignore pattern %q excludes %s", p, needed)
		}
	}
}
