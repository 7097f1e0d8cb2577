package e2e

import (
	"encoding/json"
	"fmt"
	"html"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/txflow/txflow/internal/starterapp"
)

// reportScreenshot is where the report's screenshot is saved with TXFLOW_UPDATE_SCREENSHOTS=1.
const reportScreenshot = "../../docs/report.png"

// scriptWording is a wording that would run if the page took file text for markup.
const scriptWording = "<script>alert(1)</script>"

// dataValues returns the data-value of each element of the dumped DOM carrying attribute attr,
// by the attribute's value, for the elements whose other data attributes include extra.
func dataValues(t *testing.T, dom, attr, extra string) map[string]int64 {
	t.Helper()
	re := regexp.MustCompile(`<[a-z]+[^>]* ` + attr + `="([^"]*)"` + extra + ` data-value="(-?\d+)"`)
	out := map[string]int64{}
	for _, m := range re.FindAllStringSubmatch(dom, -1) {
		n, err := strconv.ParseInt(m[2], 10, 64)
		require.NoError(t, err)
		out[html.UnescapeString(m[1])] += n
	}
	return out
}

func sum(m map[string]int64, skip string) int64 {
	var n int64
	for k, v := range m {
		if k != skip {
			n += v
		}
	}
	return n
}

// TestReportPageOfARunWithErrors runs the sample with rejected rows and rows in error (plus a
// wording that is markup) through the real worker and starter, opens the report.html the run
// wrote in headless Chromium, and checks the numbers it shows against summary.json, that the
// wording is text, that the page fits a phone's width, and that starter report writes it again.
func TestReportPageOfARunWithErrors(t *testing.T) {
	bin := chromiumPath(t)
	h := start(t)
	sample, err := os.ReadFile(filepath.Join(h.input, "transactions_with_errors.csv"))
	require.NoError(t, err)
	content := string(sample) + "E111,5000.00," + scriptWording + "\nE112,12.00,FINE\n"
	require.NoError(t, os.WriteFile(filepath.Join(h.input, "report_errors.csv"), []byte(content), 0o644))

	// The clean sample first, as in the golden scenario: T002 then conflicts with it.
	code, out, errOut := h.starter("run", "transactions.csv")
	require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", out, errOut)
	code, out, errOut = h.starter("run", "report_errors.csv")
	require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", out, errOut)
	id := h.runID("report_errors.csv")
	page := filepath.Join(h.output, id, "report.html")
	require.Contains(t, out, "report:\n  "+page+"\n", "starter run prints the report's path")
	s := h.summary(id)
	require.EqualValues(t, 7, s.Rejected)
	require.EqualValues(t, 2, s.InError)

	dom := chromium(t, bin, "file://"+page, "--dump-dom")
	require.NotContains(t, dom, "<script", "no script element: the wording is text")
	require.Contains(t, dom, html.EscapeString(scriptWording), "the wording is shown as text")
	require.Contains(t, dom, `data-field="status">completed<`)
	require.Contains(t, dom, `data-field="file">report_errors.csv<`)
	require.Contains(t, dom, `href="http://ui.example/namespaces/default/workflows/`+id+`"`)

	counts := dataValues(t, dom, "data-count", "")
	require.Equal(t, map[string]int64{"rows_read": s.RowsRead, "accepted": s.Ingested, "new": s.New,
		"rejected": s.Rejected, "in_error": s.InError}, counts)
	tags := dataValues(t, dom, "data-tag", "")
	require.Equal(t, s.Ingested, sum(tags, "x"), "every line under one tag or none: %v", tags)
	require.Equal(t, s.Tagged, sum(tags, ""), "the tagged lines, as in the output: %v", tags)
	notes := dataValues(t, dom, "data-annotation", "")
	require.Equal(t, s.Ingested, sum(notes, "x"))
	require.Equal(t, s.Annotated, sum(notes, ""), "the annotated lines, as in the output: %v", notes)
	rejected := dataValues(t, dom, "data-reason", ` data-kind="rejected"`)
	require.Equal(t, s.Rejected, sum(rejected, ""), "%v", rejected)
	require.EqualValues(t, 3, rejected["invalid_amount"])
	inError := dataValues(t, dom, "data-reason", ` data-kind="in_error"`)
	require.Equal(t, map[string]int64{"amount_too_high": s.InError}, inError)
	// The first rows of a reason, as read, with their lines.
	require.Regexp(t, `data-reason="invalid_amount"[\s\S]*?<tr data-line="5"><td class="n">5</td><td>E104</td><td>abc</td>`, dom)
	// The histogram holds every accepted line; the largest credit is the one in error.
	var debits, credits int64
	for _, m := range regexp.MustCompile(`data-debits="(\d+)" data-credits="(\d+)"`).FindAllStringSubmatch(dom, -1) {
		d, _ := strconv.ParseInt(m[1], 10, 64)
		c, _ := strconv.ParseInt(m[2], 10, 64)
		debits, credits = debits+d, credits+c
	}
	zero := int64(0)
	if m := regexp.MustCompile(`data-field="zero_amounts">(\d+)<`).FindStringSubmatch(dom); m != nil {
		zero, _ = strconv.ParseInt(m[1], 10, 64)
	}
	require.Equal(t, s.Ingested, debits+credits+zero)
	require.Regexp(t, `data-largest="credits"[\s\S]*?<td>E102</td><td class="n">1000000.01</td>`, dom)
	require.Regexp(t, `data-largest="credits"[\s\S]*?<td>E111</td><td class="n">5000.00</td><td>`+regexp.QuoteMeta(html.EscapeString(scriptWording)), dom)
	require.Contains(t, dom, `data-field="history_runs">1<`, "the clean sample's run before it")
	require.Contains(t, dom, `data-history="rows_read" data-value="16" data-flag=""`, "one past run: nothing flagged")

	// On a phone: the page is no wider than the screen (tables scroll inside their boxes).
	frame := filepath.Join(t.TempDir(), "phone.html")
	require.NoError(t, os.WriteFile(frame, []byte(fmt.Sprintf(`<!DOCTYPE html><html><body style="margin:0">
<iframe id="f" src="file://%s" style="width:360px;height:740px;border:0"></iframe><pre id="out">waiting</pre>
<script>document.getElementById("f").onload = function () {
  var e = this.contentDocument.documentElement;
  document.getElementById("out").textContent = "scroll=" + e.scrollWidth + " client=" + e.clientWidth;
};</script></body></html>`, page)), 0o644))
	phone := chromium(t, bin, "file://"+frame, "--dump-dom", "--allow-file-access-from-files")
	m := regexp.MustCompile(`scroll=(\d+) client=(\d+)`).FindStringSubmatch(phone)
	require.NotNil(t, m, "the phone frame reported nothing:\n%s", phone)
	scroll, _ := strconv.Atoi(m[1])
	client, _ := strconv.Atoi(m[2])
	require.Equal(t, 360, client)
	require.LessOrEqual(t, scroll, client, "the page is wider than a 360 px phone")

	// starter report writes the page again, from summary.json.
	require.NoError(t, os.Remove(page))
	code, out, errOut = h.starter("report", id)
	require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", out, errOut)
	require.Equal(t, "report: "+page+"\n", out)
	again, err := os.ReadFile(page)
	require.NoError(t, err)
	require.Contains(t, string(again), fmt.Sprintf(`data-count="rejected" data-value="%d"`, s.Rejected))
	code, _, errOut = h.starter("report", "txflow-0000000000000000")
	require.Equal(t, starterapp.ExitRunFailed, code)
	require.Contains(t, errOut, "no output directory")

	if os.Getenv("TXFLOW_UPDATE_SCREENSHOTS") == "1" {
		path, err := filepath.Abs(reportScreenshot)
		require.NoError(t, err)
		chromium(t, bin, "file://"+page, "--screenshot="+path, "--window-size=900,2200")
		info, err := os.Stat(path)
		require.NoError(t, err)
		require.Positive(t, info.Size())
		t.Logf("screenshot of %s saved to %s (%d bytes)", page, path, info.Size())
	}

	// summary.json and report.html agree on the run.
	var raw map[string]any
	b, err := os.ReadFile(filepath.Join(h.output, id, "summary.json"))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &raw))
	require.Equal(t, id, raw["run_id"])
	require.Contains(t, string(again), `data-field="run_id">`+id+`<`)
}
