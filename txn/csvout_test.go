package txn

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestSafeCell(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"TAXI PARIS", "TAXI PARIS"},
		{"12.50", "12.50"},
		{"=1+1", "'=1+1"},
		{"=HYPERLINK(\"http://x\")", "'=HYPERLINK(\"http://x\")"},
		{"+33 1 23 45 67 89", "'+33 1 23 45 67 89"},
		{"-12.50", "'-12.50"},
		{"@SUM(A1:A2)", "'@SUM(A1:A2)"},
		{"\t=1", "'\t=1"},
		{"\r=1", "'\r=1"},
		{" =1", " =1"},
		{"'already quoted", "'already quoted"},
		{"a=b", "a=b"},
		{"\n=1", "\n=1"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			assert.Equal(t, tt.want, SafeCell(tt.in))
		})
	}
}
