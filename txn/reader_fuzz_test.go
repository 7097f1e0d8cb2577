package txn

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzRead checks that Read never panics, never fails with anything but a
// *FileError on in-memory input, and that what it delivers is consistent:
// every data row is either accepted or rejected, in increasing line order,
// every physical line is accounted for, and accepted rows satisfy the
// record invariants.
func FuzzRead(f *testing.F) {
	fixtures, err := filepath.Glob(filepath.Join("testdata", "*.csv"))
	if err != nil {
		f.Fatal(err)
	}
	banks, err := filepath.Glob(filepath.Join("testdata", "banks", "*.csv"))
	if err != nil {
		f.Fatal(err)
	}
	fixtures = append(fixtures, banks...)
	for _, name := range fixtures {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var (
			accepted, rejected int64
			lastLine           int64
		)
		checkLine := func(line int64) {
			if line <= lastLine {
				t.Fatalf("line %d delivered after line %d", line, lastLine)
			}
			lastLine = line
		}
		stats, err := Read(bytes.NewReader(data), ReaderOptions{MaxFieldBytes: 64, MaxRecordBytes: 4096},
			func(r Record) error {
				accepted++
				checkLine(r.Line)
				if r.ID == "" || strings.TrimSpace(r.ID) != r.ID {
					t.Fatalf("line %d: bad id %q", r.Line, r.ID)
				}
				if r.Amount.Exponent() < -2 {
					t.Fatalf("line %d: amount %s has more than two decimals", r.Line, r.Amount)
				}
				if len(r.Wording) > 64 {
					t.Fatalf("line %d: wording longer than the limit", r.Line)
				}
				return nil
			},
			func(r Rejected) error {
				rejected++
				checkLine(r.Line)
				if r.Reason == "" || r.Detail == "" {
					t.Fatalf("line %d: rejection without reason or detail: %+v", r.Line, r)
				}
				return nil
			})
		var fe *FileError
		if err != nil && !errors.As(err, &fe) {
			t.Fatalf("unexpected error type %T: %v", err, err)
		}
		if fe != nil && fe.Reason == FileLineCount {
			t.Fatalf("lines lost: %v", err)
		}
		if stats.Accepted != accepted || stats.Rejected != rejected {
			t.Fatalf("stats %+v, callbacks saw %d accepted %d rejected", stats, accepted, rejected)
		}
		if stats.Records != stats.Accepted+stats.Rejected {
			t.Fatalf("records %d != accepted %d + rejected %d", stats.Records, stats.Accepted, stats.Rejected)
		}
		if err == nil && stats.Records == 0 {
			t.Fatal("no error although no data row was delivered")
		}
		if stats.Records > 0 && lastLine <= stats.HeaderLine {
			t.Fatalf("data line %d not after header line %d", lastLine, stats.HeaderLine)
		}
	})
}
