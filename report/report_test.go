package report_test

import (
	"bytes"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/net/html"

	"github.com/txflow/txflow/report"
)

func sample() report.Data {
	start := time.Date(2026, 1, 2, 6, 0, 1, 0, time.UTC)
	return report.Data{
		RunID: "txflow-0123456789abcdef", File: "inbox/2026-01-02.csv", Account: "acme", RulesVersion: 2,
		Status: "completed", StartedAt: start, FinishedAt: start.Add(1500 * time.Millisecond),
		WebUI: "http://localhost:8233/namespaces/default/workflows/txflow-0123456789abcdef",
		Counts: []report.Count{
			{Key: "rows_read", Name: "rows read", Value: 1_234_567}, {Key: "accepted", Name: "accepted", Value: 1_234_000},
			{Key: "new", Name: "new", Value: 1000}, {Key: "rejected", Name: "rejected", Value: 567}, {Key: "in_error", Name: "in error", Value: 0},
		},
		Tags:        []report.Count{{Key: "TAXI", Name: "TAXI", Value: 10}, {Key: "", Name: "", Value: 5}},
		Annotations: []report.Count{{Key: "SALE", Name: "SALE", Value: 7}},
		Reasons: []report.Reason{{Kind: "rejected", Name: "invalid_amount", Count: 567, Examples: []report.Line{
			{Line: 4, ID: "E104", Amount: "<script>alert(1)</script>", Wording: "<script>alert(1)</script>", Detail: "not a number"},
		}}},
		Amounts: []report.Bucket{{Low: "0", High: "1", Credits: 3}, {Low: "10", High: "100", Debits: 40, Credits: 2},
			{Low: "1000000000", High: "", Debits: 1}},
		ZeroAmounts:    2,
		LargestDebits:  []report.Line{{Line: 9, ID: "X", Amount: "-2500000.00", Wording: "TOTO LOAN", Detail: "amount_too_high"}},
		LargestCredits: []report.Line{{Line: 2, ID: "Y", Amount: "350.00", Wording: `"><img src=x onerror=alert(1)>`}},
		History: report.History{Runs: 6, Window: 30, MinRuns: 5, Factor: 3, Metrics: []report.Comparison{
			{Key: "rows_read", Name: "rows read", Value: 1_234_567, Median: 1000, Flag: "above"},
			{Key: "rejected", Name: "rejected", Value: 567, Median: 1.5},
		}},
	}
}

func render(t *testing.T, d report.Data) string {
	t.Helper()
	var b bytes.Buffer
	require.NoError(t, report.Render(&b, d))
	return b.String()
}

// elements parses the page and returns its elements by tag name.
func elements(t *testing.T, page string) map[string][]*html.Node {
	t.Helper()
	doc, err := html.Parse(strings.NewReader(page))
	require.NoError(t, err)
	out := map[string][]*html.Node{}
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode {
			out[n.Data] = append(out[n.Data], n)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(doc)
	return out
}

func attr(n *html.Node, name string) string {
	for _, a := range n.Attr {
		if a.Key == name {
			return a.Val
		}
	}
	return ""
}

func TestRenderShowsTheRun(t *testing.T) {
	page := render(t, sample())
	for _, want := range []string{
		`data-field="run_id">txflow-0123456789abcdef<`,
		`data-field="file">inbox/2026-01-02.csv<`,
		`data-field="account">acme<`,
		`data-field="rules_version">version 2<`,
		`data-field="status">completed<`,
		`data-field="duration">1.5s<`,
		`href="http://localhost:8233/namespaces/default/workflows/txflow-0123456789abcdef"`,
		`data-count="rows_read" data-value="1234567"`,
		"1\u202f234\u202f567",
		`data-tag="TAXI" data-value="10"`,
		`(no tag)`,
		`data-annotation="SALE" data-value="7"`,
		`data-reason="invalid_amount" data-kind="rejected" data-value="567"`,
		`; the first 1)`,
		`data-bucket="10" data-debits="40" data-credits="2"`,
		`≥ 1bn`, `10 – 100`, `&lt; 1<`,
		`data-field="zero_amounts">2<`,
		`data-history="rows_read" data-value="1234567" data-flag="above"`,
		`far above usual`,
		`>1.5<`, // the median of rejections
		`at least 5 past runs`,
	} {
		require.Contains(t, page, want)
	}
	// The largest bar is full width, the others in proportion.
	require.Contains(t, page, `data-count="rows_read" data-value="1234567"><span class="name">rows read</span><span class="track"><span class="fill" style="width: 100%">`)
	require.Contains(t, page, `data-count="new" data-value="1000"><span class="name">new</span><span class="track"><span class="fill" style="width: 0.1%">`)
	require.Regexp(t, `data-bucket="10" data-debits="40" data-credits="2">\s*<rect x="109" y="\d+" width="90"`, page,
		"the longest debit bar is the longest bar, left of the axis")
}

// TestRenderEscapesFileText: text from the file is text, never markup: no script element, no
// attribute injected, whatever the wording or the amount as read.
func TestRenderEscapesFileText(t *testing.T) {
	page := render(t, sample())
	els := elements(t, page)
	require.Empty(t, els["script"], "no script element")
	require.Empty(t, els["img"], "no element injected through an attribute-like wording")
	require.Contains(t, page, "&lt;script&gt;alert(1)&lt;/script&gt;")
	require.NotContains(t, page, "<script")
	for _, n := range els["a"] {
		require.True(t, strings.HasPrefix(attr(n, "href"), "http://"), "the only link is the Web UI's")
	}

	// A hostile Web UI address or status cannot inject either.
	d := sample()
	d.WebUI = "javascript:alert(1)"
	d.Status = `x" onmouseover="alert(1)`
	page = render(t, d)
	require.NotContains(t, page, "javascript:alert")
	require.NotContains(t, page, `" onmouseover="`)
}

// TestRenderIsSelfContained: nothing is fetched from anywhere.
func TestRenderIsSelfContained(t *testing.T) {
	page := render(t, sample())
	els := elements(t, page)
	for _, tag := range []string{"script", "link", "img", "iframe", "object", "embed"} {
		require.Empty(t, els[tag], "no %s element", tag)
	}
	for _, style := range els["style"] {
		require.NotRegexp(t, `(?i)@import|url\(`, style.FirstChild.Data)
	}
	for _, list := range els {
		for _, n := range list {
			require.Empty(t, attr(n, "src"), "%s has a src", n.Data)
		}
	}
}

func TestRenderEmptyRun(t *testing.T) {
	page := render(t, report.Data{RunID: "txflow-empty", Status: "completed",
		Counts: []report.Count{{Key: "rows_read", Name: "rows read"}}})
	require.Contains(t, page, `data-count="rows_read" data-value="0"`)
	require.Contains(t, page, `style="width: 0%"`)
	require.Contains(t, page, `data-field="no_reasons"`)
	require.Contains(t, page, "No amount.")
	require.Contains(t, page, `data-field="rules_version">unknown<`)
	require.Contains(t, page, `data-field="duration">unknown<`)
	require.NotContains(t, page, "<svg")
	require.NotContains(t, page, "Web UI</dt>")
	els := elements(t, page)
	require.Len(t, els["html"], 1)

	// Past runs without enough history: medians shown, nothing flagged.
	d := sample()
	d.History = report.History{Runs: 0, Window: 30, MinRuns: 5, Factor: 3,
		Metrics: []report.Comparison{{Key: "rows_read", Name: "rows read", Value: 3}}}
	page = render(t, d)
	require.Contains(t, page, `data-history="rows_read" data-value="3" data-flag=""`)
	require.NotContains(t, page, "far above")
}

// TestRenderFitsAPhone: the page scales to the device's width (viewport), its layout has no
// fixed width wider than a phone's, wide tables scroll inside their box, and the histogram
// scales with the page.
func TestRenderFitsAPhone(t *testing.T) {
	page := render(t, sample())
	require.Contains(t, page, `<meta name="viewport" content="width=device-width, initial-scale=1">`)
	require.Contains(t, page, "@media (max-width: 480px)")
	for _, m := range regexp.MustCompile(`(?:[^-]width:\s*|minmax\()(\d+)px`).FindAllStringSubmatch(page, -1) {
		px, err := strconv.Atoi(m[1])
		require.NoError(t, err)
		require.LessOrEqual(t, px, 300, "a fixed width narrower than a phone: %s", m[0])
	}
	els := elements(t, page)
	for _, svg := range els["svg"] {
		require.NotEmpty(t, attr(svg, "viewBox"), "the histogram scales")
		require.Empty(t, attr(svg, "width"), "no fixed width")
	}
	for _, table := range els["table"] {
		require.Equal(t, "scroll", attr(table.Parent, "class"), "a table scrolls inside its box")
	}
}

// BenchmarkRender: rendering is a small part of the page's cost, the store's queries the rest.
//
//	go test -run '^$' -bench Render ./report/
func BenchmarkRender(b *testing.B) {
	d := sample()
	var buf bytes.Buffer
	for b.Loop() {
		buf.Reset()
		if err := report.Render(&buf, d); err != nil {
			b.Fatal(err)
		}
	}
}
