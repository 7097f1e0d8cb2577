package txn

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"
)

// maxHeaderLine is the last physical line on which the header may be found:
// the lines before it (a bank export's account number, period, lines of
// bare delimiters, blank lines) are skipped.
const maxHeaderLine = 50

// expectedColumns describes the header Read accepts.
const expectedColumns = "columns id, amount (or montant), wording (or label, libelle, libellé)"

// header is the usable header line of a file.
type header struct {
	line  int64 // physical line
	delim byte  // ',', ';' or '\t'
	// cols is the file column of each role (colIndexID...), -1 when absent.
	// Only one way to the amount is kept: a signed amount (with a direction
	// column when there is one), or a debit and a credit column.
	cols   [numRoles]int
	names  [numRoles]string // the header names of the columns, as written
	weakID bool             // the id column is a reference often left empty
	fields int              // number of fields of the header line
	// trailingEmpty: the header ends with a delimiter (its last name is
	// empty), so rows without that last empty field are accepted too.
	trailingEmpty bool
	// atLeast: a file without a header row (a profile's columns by
	// position): a row has at least fields fields.
	atLeast bool
	// decimalComma: amounts may use a decimal comma (';' and TAB files, or
	// a profile's decimal separator).
	decimalComma bool
}

// headerStatus says what a candidate header line lacks.
type headerStatus int

const (
	headerUnusable headerStatus = iota // not a header
	headerNoIDDate                     // a header but without an id or a date column
	headerOK
)

// acceptsFields reports whether a row with n fields has the header's shape:
// as many fields as the header, or one trailing delimiter more or less.
// The extra trailing field must be blank (see Read).
func (h header) acceptsFields(n int) bool {
	if h.atLeast {
		return n >= h.fields
	}
	return n == h.fields || n == h.fields+1 || (h.trailingEmpty && n == h.fields-1)
}

// findHeader reads physical lines up to maxHeaderLine until one is a usable
// header, and returns it with the number of lines skipped before it. Each
// line is judged alone: a header is one line. With a profile, its first
// lines are skipped first; a profile without a header row gives its header
// at once (line 0), and one with columns looks for a line that has them.
func findHeader(sc *scanner, codec *textCodec, p *Profile, tr *readTrace) (header, int64, error) {
	var first string    // first non-blank line, for the error message
	var noIDDate string // first header line without an id or a date column
	var headless string // first line that looks like a row without a header
	var closest candidate
	skipped, err := p.skipLines(sc, codec, tr)
	if err != nil {
		return header{}, skipped, err
	}
	if p != nil && p.NoHeader {
		return p.positionalHeader(), skipped, nil
	}
	for limit := skipped + maxHeaderLine; sc.line < limit; {
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
		if whole && p.hasColumns() {
			h, found, ok := p.matchHeader(text)
			if ok {
				h.line = sc.line
				tr.header(text)
				return h, skipped, nil
			}
			if found > closest.score {
				closest = candidate{line: sc.line, text: text, score: found,
					detail: fmt.Sprintf("%d of the profile's %d columns", found, len(p.Columns))}
			}
		} else if whole {
			h, status := detectHeaderWith(text, p)
			switch status {
			case headerOK:
				h.line = sc.line
				tr.header(text)
				return h, skipped, nil
			case headerNoIDDate:
				if noIDDate == "" {
					noIDDate = text
				}
			default:
				if headless == "" && looksLikeRow(text) {
					headless = text
				}
			}
			if c := partialHeader(sc.line, text); c.score > closest.score {
				closest = c
			}
		}
		tr.skip(sc.line, text)
		skipped++
	}
	if noIDDate != "" {
		return header{}, skipped, &FileError{Reason: FileNoIDOrDate,
			Expected: "an id column (id, transaction id, numéro d'opération, reference) or a date column to tell the rows apart",
			Found:    quoteSample(noIDDate) + ", which has neither"}
	}
	found := fmt.Sprintf("no header in the first %d lines", maxHeaderLine)
	if first != "" {
		found = quoteSample(first)
	}
	if headless != "" {
		found += fmt.Sprintf("; rows such as %s come without a header line: a positional export needs a column mapping (a profile with no_header)", quoteSample(headless))
	}
	if closest.score > 0 {
		found += fmt.Sprintf("; closest candidate line %d %s has %s", closest.line, quoteSample(closest.text), closest.detail)
	}
	expected := expectedColumns
	if p.hasColumns() {
		expected = p.expected()
	}
	return header{}, skipped, &FileError{Reason: FileNoHeader, Expected: expected, Found: found, Line: closest.line}
}

// candidate is the line that came closest to a header, for the message of a
// file without one.
type candidate struct {
	line   int64
	text   string
	score  int    // roles (or profile columns) found
	detail string // what it has and lacks
}

// partialHeader says which roles a line that is not a usable header has,
// and which it lacks.
func partialHeader(line int64, text string) candidate {
	names := splitNames(text, delimCandidates(text, 0)[0])
	var has [numRoles]string
	score := 0
	for _, n := range names {
		if a, ok := lookupAlias(n); ok && has[a.role] == "" {
			has[a.role] = strings.TrimSpace(n)
			score++
		}
	}
	if score == 0 {
		return candidate{}
	}
	var got, missing []string
	for r, n := range has {
		if n != "" {
			got = append(got, fmt.Sprintf("%s %q", roleNames[r], n))
		}
	}
	if has[colIndexWording] == "" {
		missing = append(missing, "a wording")
	}
	if has[colIndexAmount] == "" && (has[colIndexDebit] == "" || has[colIndexCredit] == "") {
		missing = append(missing, "an amount (or debit and credit)")
	}
	if has[colIndexID] == "" && has[colIndexDate] == "" {
		missing = append(missing, "an id or a date")
	}
	detail := strings.Join(got, ", ")
	if len(missing) > 0 {
		detail += "; lacks " + strings.Join(missing, ", ")
	} else {
		detail += "; two columns of one role make it ambiguous"
	}
	return candidate{line: line, text: text, score: score, detail: detail}
}

// looksLikeRow reports whether a line that is not a header starts with a
// date and ends with an amount, as the rows of an export without a header.
func looksLikeRow(line string) bool {
	d := byte(';')
	if strings.Count(line, ",") > strings.Count(line, ";") {
		d = ','
	}
	fields := strings.Split(line, string(d))
	if _, _, err := parseDate(fields[0]); err != nil || len(fields) < 2 {
		return false
	}
	for i := len(fields) - 1; i > 0; i-- {
		if strings.TrimSpace(fields[i]) != "" {
			_, err := ParseAmount(fields[i], d != ',')
			return err == nil
		}
	}
	return false
}

// detectHeader tries ',', ';' and TAB, the most frequent in the line first,
// and returns the header the line forms with the first delimiter that gives
// all the required columns.
func detectHeader(line string) (header, headerStatus) {
	return detectHeaderWith(line, nil)
}

// detectHeaderWith is detectHeader with the delimiter and decimal separator
// of a profile without columns, when it gives them.
func detectHeaderWith(line string, p *Profile) (header, headerStatus) {
	if strings.Contains(line, "&") {
		// "Cr&eacute;dit": the entity's ';' is no delimiter.
		line = decodeAccentEntities(line)
	}
	var given byte
	if p != nil {
		given = p.Delimiter
	}
	cands := delimCandidates(line, given)
	var buf []byte
	var ends []int
	best := headerUnusable
	for _, d := range cands {
		buf, ends = splitLazy([]byte(line), d, buf[:0], ends[:0])
		names := make([]string, len(ends))
		prev := 0
		for i, e := range ends {
			names[i] = string(buf[prev:e])
			prev = e
		}
		h, status := mapHeader(names)
		if status == headerOK {
			h.delim = d
			h.fields = len(names)
			h.trailingEmpty = len(names) > 1 && strings.TrimSpace(names[len(names)-1]) == ""
			h.decimalComma = d != ','
			if p != nil {
				p.applyTo(&h)
			}
			return h, headerOK
		}
		best = max(best, status)
	}
	return header{}, best
}

// mapHeader finds the column of each role (see headerAliases). A usable
// header has a wording column, an amount (a signed amount column, or a
// debit and a credit column), and an id or a date column. A name that
// appears twice is not an error: its first column is used. Two different
// names of one role and one rank (for example amount and montant, or compte
// and iban) make the line unusable, as nothing tells which is meant.
func mapHeader(names []string) (header, headerStatus) {
	var h header
	var keys [numRoles]string
	var ranks [numRoles]int
	var ambiguous [numRoles]bool // the chosen column ties with another name
	for i := range h.cols {
		h.cols[i] = -1
	}
	for i, name := range names {
		a, ok := lookupAlias(name)
		if !ok {
			continue
		}
		key := foldHeader(name)
		r := a.role
		switch {
		case h.cols[r] < 0 || a.rank < ranks[r]:
		case key == keys[r] || a.rank > ranks[r]:
			continue // the first column of a name wins; a lower preference loses
		default:
			ambiguous[r] = true
			continue
		}
		h.cols[r], h.names[r], keys[r], ranks[r], ambiguous[r] = i, strings.TrimSpace(name), key, a.rank, false
		if r == colIndexID {
			h.weakID = a.weak
		}
	}
	if h.cols[colIndexAmount] >= 0 {
		h.cols[colIndexDebit], h.cols[colIndexCredit] = -1, -1
		h.names[colIndexDebit], h.names[colIndexCredit] = "", ""
	} else {
		h.cols[colIndexDirection], h.names[colIndexDirection] = -1, ""
		if h.cols[colIndexDebit] < 0 || h.cols[colIndexCredit] < 0 {
			return h, headerUnusable
		}
	}
	if h.cols[colIndexWording] < 0 {
		return h, headerUnusable
	}
	for r := range h.cols {
		if ambiguous[r] && h.cols[r] >= 0 {
			return h, headerUnusable
		}
	}
	if h.cols[colIndexID] < 0 && h.cols[colIndexDate] < 0 {
		return h, headerNoIDDate
	}
	return h, headerOK
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
