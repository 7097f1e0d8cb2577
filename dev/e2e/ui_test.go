package e2e

import (
	"bytes"
	"context"
	"flag"
	"html"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
)

var screenshot = flag.String("screenshot", "", "save a screenshot of the finished run's Web UI page to this PNG file (e.g. ../docs/webui-run.png)")

// chromiumPath returns the headless browser the Web UI test drives. Without one the test fails
// in CI (which installs Debian's chromium) and is skipped elsewhere.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("chromium not found: CI must install it (apt-get install chromium)")
	}
	t.Skip("chromium not found (apt-get install chromium); skipping the Web UI test")
	return ""
}

// chromium runs the headless browser on pageURL with the given extra flags and returns its
// standard output.
func chromium(t *testing.T, bin, pageURL string, extra ...string) string {
	t.Helper()
	args := append([]string{
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
		"--no-first-run", "--disable-background-networking", "--disable-component-update",
		"--disable-sync", "--disable-extensions", "--hide-scrollbars", "--mute-audio",
		"--user-data-dir=" + t.TempDir(),
		"--window-size=1400,1000",
		"--virtual-time-budget=15000",
	}, extra...)
	args = append(args, pageURL)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	require.NoError(t, err, "chromium %s:\n%s", strings.Join(args, " "), stderr.String())
	return stdout.String()
}

// frameContent returns the markdown the Web UI renders in the frame with the given id: the
// frame loads /render?content=….
func frameContent(t *testing.T, dom, id string) string {
	t.Helper()
	m := regexp.MustCompile(`<iframe[^>]*\bid="` + regexp.QuoteMeta(id) + `"[^>]*>`).FindString(dom)
	require.NotEmpty(t, m, "no frame %q in the page", id)
	src := regexp.MustCompile(`\bsrc="([^"]*)"`).FindStringSubmatch(m)
	require.NotNil(t, src, "frame %q has no src: %s", id, m)
	u, err := url.Parse(html.UnescapeString(src[1]))
	require.NoError(t, err)
	return u.Query().Get("content")
}

func TestWebUIShowsRun(t *testing.T) {
	bin := chromiumPath(t)
	o := startObserved(t, true)
	code, out, errOut := o.starter("run", "transactions.csv")
	require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", out, errOut)
	id := o.runID("transactions.csv")
	page := o.temporal.UIURL() + "/namespaces/" + url.PathEscape(o.temporal.Namespace()) + "/workflows/" + url.PathEscape(id)
	require.Contains(t, out, page, "the starter prints the run's Web UI link")

	// The run's page: its id, its status, and its activities on the timeline. A small file's
	// run is lean: every step is a local activity, which the timeline shows by name.
	dom := chromium(t, bin, page, "--dump-dom")
	require.Contains(t, dom, ">"+id+"<", "the page shows the workflow id")
	require.Contains(t, dom, "<span>Completed<", "the page shows the run completed")
	for _, activity := range []string{"Ingest", "Tag", "Annotate", "ReportErrors", "Dump", "WriteSummary", "Event"} {
		require.Contains(t, dom, ">"+activity+"<", "the timeline shows local activity %s", activity)
	}

	// Its User Metadata tab: the summary the starter gave the run, rendered in a frame whose
	// address carries the text.
	c, err := client.Dial(client.Options{HostPort: o.temporal.FrontendHostPort()})
	require.NoError(t, err)
	defer c.Close()
	desc, err := c.DescribeWorkflowExecution(context.Background(), id, "")
	require.NoError(t, err)
	runID := desc.GetWorkflowExecutionInfo().GetExecution().GetRunId()
	dom = chromium(t, bin, page+"/"+url.PathEscape(runID)+"/user-metadata", "--dump-dom")
	require.Equal(t, "Process transactions.csv", frameContent(t, dom, "user-metadata-summary"))
	require.Contains(t, frameContent(t, dom, "user-metadata-details"), "transactions.csv")

	if *screenshot != "" {
		path, err := filepath.Abs(*screenshot)
		require.NoError(t, err)
		chromium(t, bin, page, "--screenshot="+path)
		info, err := os.Stat(path)
		require.NoError(t, err)
		require.Positive(t, info.Size())
		t.Logf("screenshot of %s saved to %s (%d bytes)", page, path, info.Size())
	}
}
