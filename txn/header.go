package txn

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/runes"
	"golang.org/x/text/transform"
	"golang.org/x/text/unicode/norm"
)

// maxHeaderLine is the last physical line on which the header may be found:
// the lines before it (a bank export's account number, period, lines of
// bare delimiters, blank lines) are skipped.
const maxHeaderLine = 50

// expectedColumns describes the header Read accepts.
const expectedColumns = "columns id, amount (or montant), wording (or label, libelle, libellé)"

// Indexes in header.cols.
const (
	colIndexID = iota
	colIndexAmount
	colIndexWording
	colIndexAccount
)

// header is the usable header line of a file.
type header struct {
	line   int64  // physical line
	delim  byte   // ',', ';' or '\t'
	cols   [4]int // file column of id, amount, wording, account (-1: no account column)
	fields int    // number of fields of the header line
	// trailingEmpty: the header ends with a delimiter (its last name is
	// empty), so rows without that last empty field are accepted too.
	trailingEmpty bool
}

// acceptsFields reports whether a row with n fields has the header's shape:
// as many fields as the header, or one trailing delimiter more or less.
// The extra trailing field must be blank (see Read).
func (h header) acceptsFields(n int) bool {
	return n == h.fields || n == h.fields+1 || (h.trailingEmpty && n == h.fields-1)
}

// findHeader reads physical lines up to maxHeaderLine until one is a usable
// header, and returns it with the number of lines skipped before it. Each
// line is judged alone: a header is one line.
func findHeader(sc *scanner, codec *textCodec) (header, int64, error) {
	var first string // first non-blank line, for the error message
	var skipped int64
	for sc.line < maxHeaderLine {
		raw, whole, err := sc.physicalLine()
		if err == io.EOF {
			break
		}
		if err != nil {
			return header{}, skipped, fmt.Errorf("read csv header: %w", err)
		}
		if !whole {
			raw = dropIncompleteRune(raw)
		}
		mode, _ := codec.check(raw)
		text := mode.text(trimLineEnd(raw))
		if first == "" && strings.TrimSpace(text) != "" {
			first = text
		}
		if whole {
			if h, ok := detectHeader(text); ok {
				h.line = sc.line
				return h, skipped, nil
			}
		}
		skipped++
	}
	found := fmt.Sprintf("no header in the first %d lines", maxHeaderLine)
	if first != "" {
		found = quoteSample(first)
	}
	return header{}, skipped, &FileError{Reason: FileNoHeader, Expected: expectedColumns, Found: found}
}

// detectHeader tries ',', ';' and TAB, the most frequent in the line first,
// and returns the header the line forms with the first delimiter that gives
// all the required columns.
func detectHeader(line string) (header, bool) {
	cands := []byte{';', '\t', ','}
	count := func(d byte) int { return strings.Count(line, string(d)) }
	// Stable insertion sort by descending count.
	for i := 1; i < len(cands); i++ {
		for j := i; j > 0 && count(cands[j]) > count(cands[j-1]); j-- {
			cands[j], cands[j-1] = cands[j-1], cands[j]
		}
	}
	var buf []byte
	var ends []int
	for _, d := range cands {
		buf, ends = splitLazy([]byte(line), d, buf[:0], ends[:0])
		names := make([]string, len(ends))
		prev := 0
		for i, e := range ends {
			names[i] = string(buf[prev:e])
			prev = e
		}
		if cols, ok := mapHeader(names); ok {
			trailing := len(names) > 1 && strings.TrimSpace(names[len(names)-1]) == ""
			return header{delim: d, cols: cols, fields: len(names), trailingEmpty: trailing}, true
		}
	}
	return header{}, false
}

// headerAliases maps folded header names to the index of the column in
// header.cols.
var headerAliases = map[string]int{
	"id":      colIndexID,
	"amount":  colIndexAmount,
	"montant": colIndexAmount,
	"wording": colIndexWording,
	"label":   colIndexWording,
	"libelle": colIndexWording,
	"account": colIndexAccount,
	"compte":  colIndexAccount,
	"iban":    colIndexAccount,
}

// mapHeader finds the id, amount and wording columns, and the optional
// account column. It fails when a required one is missing or when one
// appears twice (for example both amount and montant, or compte and iban).
func mapHeader(header []string) ([4]int, bool) {
	cols := [4]int{-1, -1, -1, -1}
	for i, h := range header {
		k, ok := headerAliases[foldHeader(h)]
		if !ok {
			continue
		}
		if cols[k] >= 0 {
			return cols, false
		}
		cols[k] = i
	}
	return cols, cols[0] >= 0 && cols[1] >= 0 && cols[2] >= 0
}

// foldHeader trims, lower-cases and removes accents: " Libellé " -> "libelle".
func foldHeader(h string) string {
	h = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(h), "\ufeff"))
	folded, _, err := transform.String(transform.Chain(norm.NFD, runes.Remove(runes.In(unicode.Mn)), norm.NFC), h)
	if err != nil {
		folded = h
	}
	return strings.ToLower(folded)
}

// quoteSample quotes the start of s for an error message.
func quoteSample(s string) string {
	const max = 120
	if len(s) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		return strconv.Quote(s[:cut]) + "..."
	}
	return strconv.Quote(s)
}
