package natsjs

import "testing"

func TestCovers(t *testing.T) {
	for _, c := range []struct {
		filter, subject string
		want            bool
	}{
		{"txflow.>", "txflow.>", true},
		{">", "txflow.>", true},
		{"*.>", "txflow.>", true},
		{"txflow.*", "txflow.>", false},
		{"txflow.*.>", "txflow.>", false},
		{"txflow.transactions.>", "txflow.>", false},
		{"txflow", "txflow.>", false},
		{"other.>", "txflow.>", false},
		{"txflow.>", "txflow.runs.failed", true},
		{"txflow.runs.*", "txflow.runs.failed", true},
		{"txflow.runs.*", "txflow.runs.failed.x", false},
	} {
		if got := covers(c.filter, c.subject); got != c.want {
			t.Errorf("covers(%q, %q) = %v, want %v", c.filter, c.subject, got, c.want)
		}
	}
}
