package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/shopspring/decimal"

	"github.com/txflow/txflow/internal/gen"
	"github.com/txflow/txflow/internal/testdb"
	"github.com/txflow/txflow/txn"
)

func TestMain(m *testing.M) { testdb.Main(m) }

// SQL alone is a bound only if it does the run's work: its export must hold, line by line and in
// file order, the tag and the annotation txn's rules give.
func TestSQLAloneExportsWhatTheRulesSay(t *testing.T) {
	dbURL := testdb.URL(t)
	var file bytes.Buffer
	file.WriteString("id,amount,wording\n" +
		"E1,300.00,TATA\n" + // at the large-sale threshold: SALE
		"E2,300.01,TOTO TOTO\n" + // one word twice: TOTO
		"E3,0.00,TATA TUTU\n" + // two words: no tag; zero: no annotation
		"E4,-200.00,tata\n" + // case-sensitive: no tag; at the expense threshold: SMALL EXPENSE
		"E5,-200.01,TATAXI\n" + // TATA and TAXI overlap: two words, no tag
		"E6,1000000.00,TAXI\n" + // at the limit: LARGE SALE
		"E7,1000000.01,TUTU\n" + // above it: in error, no annotation
		"E8,-1000000.01,\"a, TAXI\"\n" + // below minus it: in error; a quoted comma
		"E9,-0.01,x\n")
	var more bytes.Buffer
	if err := gen.WriteIDs(&more, 5000, 7, "G"); err != nil {
		t.Fatal(err)
	}
	_, body, _ := bytes.Cut(more.Bytes(), []byte("\n"))
	file.Write(body)
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in.csv"), filepath.Join(dir, "out.csv")
	if err := os.WriteFile(in, file.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	inRows, err := csv.NewReader(bytes.NewReader(file.Bytes())).ReadAll()
	if err != nil {
		t.Fatal(err)
	}

	s, err := measureSQLAlone(context.Background(), dbURL, in, out, len(inRows)-1)
	if err != nil {
		t.Fatal(err)
	}
	if s.Lines <= 0 || s.Transactions <= 0 || s.Results <= 0 || s.Export <= 0 {
		t.Errorf("a step was not timed: %+v", s)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	outRows, err := csv.NewReader(bytes.NewReader(b)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(outRows) != len(inRows) {
		t.Fatalf("%d rows out, %d in", len(outRows), len(inRows))
	}
	rules := txn.DefaultRules()
	for i, row := range inRows[1:] {
		got := outRows[i+1]
		amount := decimal.RequireFromString(row[1])
		tag, annotation := rules.Tag(row[2]), string(rules.Annotate(amount))
		if rules.Check(amount) != "" {
			annotation = ""
		}
		want := []string{row[0], row[1], row[2], tag, annotation}
		if !slices.Equal(got, want) {
			t.Errorf("line %d: got %q, want %q", i+2, got, want)
		}
	}

	// The tables are dropped: the next measure starts afresh.
	if _, err := measureSQLAlone(context.Background(), dbURL, in, out, len(inRows)-1); err != nil {
		t.Fatalf("measured twice: %v", err)
	}
}
