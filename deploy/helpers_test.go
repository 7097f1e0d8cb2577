package deploy

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/txflow/txflow/internal/config"
)

// httpAddrVariable is where the worker serves /healthz and /readyz.
const httpAddrVariable = "TXFLOW_HTTP_ADDR"

// knownVariables is every TXFLOW_* variable the code reads.
func knownVariables(t *testing.T) map[string]bool {
	t.Helper()
	known := map[string]bool{httpAddrVariable: true}
	for _, v := range config.Variables {
		known[v.Name] = true
	}
	require.Contains(t, known, "TXFLOW_INPUT_DIR", "config.Variables changed shape")
	return known
}

// moduleVersion returns the version of module path required by the go.mod of the repository's
// module dir ("." for the product, "dev" for the development tooling), without its "v".
func moduleVersion(t *testing.T, dir, path string) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", dir, "go.mod"))
	require.NoError(t, err)
	m := regexp.MustCompile(`(?m)^\s*(?:require\s+)?` + regexp.QuoteMeta(path) + `\s+v(\S+)`).FindSubmatch(raw)
	require.NotNil(t, m, "%s/go.mod does not require %s", dir, path)
	return string(m[1])
}

// goDirective returns the go line of go.mod.
func goDirective(t *testing.T) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "go.mod"))
	require.NoError(t, err)
	m := regexp.MustCompile(`(?m)^go (\S+)$`).FindSubmatch(raw)
	require.NotNil(t, m, "go.mod has no go directive")
	return string(m[1])
}

// versionTag is a tag that names a release (1.32.1, 16.10, 1.26.8-bookworm, nonroot is not one).
var versionTag = regexp.MustCompile(`^v?\d+(\.\d+)+([-.][0-9A-Za-z.-]+)?$`)

// reporter is the part of testing.T the assertion helpers use.
type reporter interface {
	Helper()
	Errorf(format string, args ...any)
}

// assertPinned checks that image names a tag or a digest, and not a moving one.
func assertPinned(t reporter, where, image string) {
	t.Helper()
	if !assert.NotEmpty(t, image, "%s: no image", where) {
		return
	}
	if strings.Contains(image, "@sha256:") {
		return
	}
	name, tag := image, ""
	if i := strings.LastIndex(image, ":"); i > strings.LastIndex(image, "/") {
		name, tag = image[:i], image[i+1:]
	}
	if !assert.NotEmpty(t, tag, "%s: image %s has no tag", where, image) {
		return
	}
	assert.NotEqual(t, "latest", tag, "%s: image %s", where, image)
	if strings.Contains(name, "/") || strings.Contains(name, ".") || name != "txflow" {
		// Third-party and published images: a release number. The locally built image
		// (txflow:dev in docker-compose.yml) is the only exception.
		if name == "gcr.io/distroless/static-debian12" {
			assert.Equal(t, "nonroot", tag, "%s: distroless is pinned by its Debian release and variant", where)
			return
		}
		assert.Regexp(t, versionTag, tag, "%s: image %s is not pinned to a version", where, image)
	}
}

func TestAssertPinnedCatchesMovingTags(t *testing.T) {
	// assertPinned must fail on these: run it against a recorder instead of t.
	for _, image := range []string{"postgres", "postgres:latest", "temporalio/server:latest", "temporalio/ui", "postgres:16", "busybox:stable", ""} {
		rec := &recorder{}
		assertPinned(rec, "case", image)
		assert.True(t, rec.failed, "%q passes as pinned", image)
	}
	for _, image := range []string{"postgres:16.10", "temporalio/server:1.32.1", "golang:1.26.8", "gcr.io/distroless/static-debian12:nonroot", "txflow:dev", "busybox@sha256:0123", "ghcr.io/txflow/txflow:0.1.0"} {
		rec := &recorder{}
		assertPinned(rec, "case", image)
		assert.False(t, rec.failed, "%q fails as not pinned", image)
	}
}

// recorder records whether an assertion helper failed, to test the helpers themselves.
type recorder struct{ failed bool }

func (r *recorder) Helper()               {}
func (r *recorder) Errorf(string, ...any) { r.failed = true }
