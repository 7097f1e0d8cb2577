// Package report renders a run's report page, report.html: one self-contained HTML file (inline
// CSS and SVG, no script, no external resource) written beside the run's outputs, readable on a
// phone. It renders a plain Data value and reads nothing itself: activities gathers the data
// (the summary and the figures the store computes) and writes the file.
//
// Every text of the file (wordings, ids, amounts as read, reasons) goes through html/template,
// which escapes it for where it appears: a wording such as <script>alert(1)</script> is shown
// as text.
package report

import (
	"embed"
	"fmt"
	"html/template"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
)

//go:embed report.html.tmpl
var files embed.FS

var page = template.Must(template.New("report.html.tmpl").Funcs(template.FuncMap{
	"num":    formatCount,
	"median": FormatMedian,
}).ParseFS(files, "report.html.tmpl"))

// Data is everything the page shows.
type Data struct {
	RunID        string
	File         string
	Account      string
	RulesVersion int // 0: unknown (a run recorded before versions existed)
	Status       string
	Error        string
	StartedAt    time.Time
	FinishedAt   time.Time // zero while unknown
	WebUI        string    // the run's page in the Temporal Web UI, "" for none

	// Counts are the rows read, accepted, new, rejected and in error, in that order.
	Counts []Count
	// Tags and Annotations count the lines per tag and annotation (Name "" for none); a note
	// says why a list is empty (the stage failed).
	Tags            []Count
	TagsNote        string
	Annotations     []Count
	AnnotationsNote string
	// Reasons are the rejected rows per reason, then the lines in error per error.
	Reasons []Reason
	// Amounts is the histogram of the accepted lines' amounts by powers of ten of |amount|.
	Amounts        []Bucket
	ZeroAmounts    int64
	LargestDebits  []Line
	LargestCredits []Line

	History History
	// Note explains a part missing from the page (figures the database no longer holds).
	Note string
}

// Count is one bar: a named number. Key names it for tools reading the page (data-key).
type Count struct {
	Key   string
	Name  string
	Value int64
}

// Reason counts the rows of one rejection reason (Kind "rejected") or error (Kind "in_error"),
// with the first of them.
type Reason struct {
	Kind     string
	Name     string
	Count    int64
	Examples []Line
}

// Line is a row of the file as read.
type Line struct {
	Line    int64
	ID      string
	Amount  string
	Wording string
	Detail  string
}

// Bucket counts the debits and credits whose |amount| is in [Low, High); High "" is unbounded.
type Bucket struct {
	Low, High string
	Debits    int64
	Credits   int64
}

// History compares the run with the account's past runs.
type History struct {
	Runs    int // past runs compared with
	Window  int // at most this many, the latest
	MinRuns int // fewer than this: nothing flagged
	Factor  int // flagged beyond Factor times the median, or under the median / Factor
	Metrics []Comparison
}

// Comparison is one count of the run against the median of the past runs; Flag is "above",
// "below" or "".
type Comparison struct {
	Key    string
	Name   string
	Value  int64
	Median float64
	Flag   string
}

// Render writes the page for d to w.
func Render(w io.Writer, d Data) error {
	if err := page.Execute(w, newView(d)); err != nil {
		return fmt.Errorf("render report: %w", err)
	}
	return nil
}

// view is Data with what the template draws: bar lengths, labels, the histogram's geometry.
type view struct {
	Data
	Duration   string
	CountBars  []bar
	TagBars    []bar
	NoteBars   []bar
	Histogram  histogram
	HasHistory bool
}

type bar struct {
	Key   string
	Name  string
	Value int64
	Pct   string // bar length, percent of the largest of its group
}

func bars(cs []Count, none string) []bar {
	var top int64
	for _, c := range cs {
		top = max(top, c.Value)
	}
	out := make([]bar, 0, len(cs))
	for _, c := range cs {
		b := bar{Key: c.Key, Name: c.Name, Value: c.Value, Pct: "0"}
		if b.Name == "" {
			b.Name = none
		}
		if top > 0 {
			b.Pct = strconv.FormatFloat(math.Round(1000*float64(c.Value)/float64(top))/10, 'f', -1, 64)
		}
		out = append(out, b)
	}
	return out
}

// histogram is the SVG of the amounts: one row per bucket, debits to the left of the middle,
// credits to the right, lengths proportional to the counts.
type histogram struct {
	Height int
	Rows   []histRow
}

type histRow struct {
	Y, TextY        int
	Label           string
	Low, High       string
	Debits, Credits int64
	DebitX, DebitW  string
	CreditW         string
}

// Geometry of the histogram, in SVG user units (the drawing scales to the page's width): the
// bucket's label, then debits growing left from the axis and credits right, then the counts.
const (
	histWidth = 360
	histMid   = 200 // the axis
	histBar   = 90  // the longest bar
	histRowH  = 22
	histTop   = 20
)

func newHistogram(bs []Bucket) histogram {
	var top int64
	for _, b := range bs {
		top = max(top, b.Debits, b.Credits)
	}
	h := histogram{Height: histTop + histRowH*len(bs) + 4}
	length := func(n int64) float64 {
		if top == 0 || n == 0 {
			return 0
		}
		return max(1, float64(histBar)*float64(n)/float64(top))
	}
	f := func(x float64) string { return strconv.FormatFloat(math.Round(10*x)/10, 'f', -1, 64) }
	for i, b := range bs {
		y := histTop + i*histRowH
		dw, cw := length(b.Debits), length(b.Credits)
		label := shortAmount(b.Low) + " – " + shortAmount(b.High)
		switch {
		case b.High == "":
			label = "≥ " + shortAmount(b.Low)
		case b.Low == "" || b.Low == "0":
			label = "< " + shortAmount(b.High)
		}
		h.Rows = append(h.Rows, histRow{
			Y: y + 3, TextY: y + 15, Label: label, Low: b.Low, High: b.High,
			Debits: b.Debits, Credits: b.Credits,
			DebitX: f(histMid - 1 - dw), DebitW: f(dw), CreditW: f(cw),
		})
	}
	return h
}

// shortAmount writes a power of ten as read aloud: 1k, 10M, 1bn; anything else as it is.
func shortAmount(s string) string {
	for _, u := range []struct {
		zeros string
		name  string
	}{{"000000000", "bn"}, {"000000", "M"}, {"000", "k"}} {
		if len(s) > len(u.zeros) && strings.HasSuffix(s, u.zeros) {
			return s[:len(s)-len(u.zeros)] + u.name
		}
	}
	return s
}

func newView(d Data) view {
	v := view{Data: d}
	if !d.FinishedAt.IsZero() && !d.StartedAt.IsZero() {
		v.Duration = formatDuration(d.FinishedAt.Sub(d.StartedAt))
	}
	v.CountBars = bars(d.Counts, "")
	v.TagBars = bars(d.Tags, "(no tag)")
	v.NoteBars = bars(d.Annotations, "(no annotation)")
	v.Histogram = newHistogram(d.Amounts)
	v.HasHistory = len(d.History.Metrics) > 0
	return v
}

// formatCount writes n with thin spaces between groups of three digits: 1 000 000.
func formatCount(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteRune('\u202f')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// formatDuration rounds d for people: milliseconds under a second, then seconds, minutes.
func formatDuration(d time.Duration) string {
	switch {
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	default:
		return d.Round(time.Second).String()
	}
}

// FormatMedian writes a median for the page: an integer when it is one, else one decimal.
func FormatMedian(m float64) string {
	if m == math.Trunc(m) {
		return strconv.FormatFloat(m, 'f', 0, 64)
	}
	return strconv.FormatFloat(m, 'f', 1, 64)
}
