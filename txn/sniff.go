package txn

import (
	"errors"
	"fmt"
	"io"
	"strings"
)

// Sniffed is what Read sees in a file, before anything is stored: the
// encoding, delimiter and decimal separator and why, the lines skipped
// before the header, the header, the column of each role and why, the date
// format and the debit and credit convention, the first rows as they would
// be stored and the rows that would be rejected, and the line accounting.
type Sniffed struct {
	Profile       string // the profile's name, "" when the file is read without one
	ProfileSource string // BuiltinSource or the profile's file

	Encoding, EncodingWhy   string
	Delimiter               rune
	DelimiterWhy            string
	DecimalSeparator        string // "," (a decimal comma is accepted, and a dot) or "."
	DecimalWhy              string
	HeaderLine              int64  // 0: no header (found, or the file has none)
	Header                  string // the header line as read
	NoHeader                bool   // the profile says the file has no header row
	Skipped                 []SniffedLine
	SkippedMore             int64 // skipped lines before the header beyond those listed
	Columns                 []SniffedColumn
	DateFormat, DateWhy     string
	Amounts                 string // how the amount is read: one signed column, with a direction, or debit and credit
	Sign                    string // the debit and credit sign convention
	Rows                    []SniffedRow
	Rejected                []Rejected
	RejectedMore            int64 // rejected rows beyond those listed
	Stats                   Stats
	Err                     error // what Read returned: a *FileError when the file cannot be read
	maxRows, maxRejectedOut int
}

// SniffedLine is a physical line and its text.
type SniffedLine struct {
	Line int64
	Text string
}

// SniffedColumn is the column chosen for one role, and why.
type SniffedColumn struct {
	Role   string
	Column int    // 1-based
	Name   string // the header name as written; "column N" in a file without a header
	Why    string // the header name matched and its rank among the role's names, or the profile
	Others []string
}

// SniffedRow is an accepted row as it would be stored.
type SniffedRow struct {
	Line      int64
	ID        string
	DerivedID bool
	Date      string // yyyy-mm-dd, "" without a date column
	Amount    string // two decimals
	Wording   string
	Account   string // the row's own account ("" when the file has no account column)
}

// Sniff reads the whole file as Read does, with the same options, and says
// what it sees (Sniffed), keeping the first n accepted rows, the first n
// rejected ones and the first n lines skipped before the header (n <= 0:
// 10). It returns Read's error too, also kept in Sniffed.Err: a *FileError
// when the file cannot be read, with what was seen up to there.
func Sniff(r io.Reader, opts ReaderOptions, n int) (Sniffed, error) {
	if n <= 0 {
		n = 10
	}
	tr := &readTrace{max: n}
	s := Sniffed{maxRows: n, maxRejectedOut: n}
	stats, err := read(r, opts,
		func(rec Record) error {
			if len(s.Rows) < n {
				row := SniffedRow{Line: rec.Line, ID: rec.ID, DerivedID: rec.DerivedID, Amount: rec.Amount.StringFixed(2),
					Wording: rec.Wording, Account: rec.Account}
				if !rec.Date.IsZero() {
					row.Date = rec.Date.Format("2006-01-02")
				}
				s.Rows = append(s.Rows, row)
			}
			return nil
		},
		func(rej Rejected) error {
			if len(s.Rejected) < n {
				s.Rejected = append(s.Rejected, rej)
			} else {
				s.RejectedMore++
			}
			return nil
		}, tr)
	s.Stats, s.Err = stats, err
	p := opts.Profile
	if p != nil {
		s.Profile, s.ProfileSource = p.Name, p.Source
	}
	s.Skipped, s.SkippedMore = tr.skipped, tr.skippedMore

	s.Encoding = stats.Encoding
	switch {
	case p != nil && p.Encoding != "":
		s.EncodingWhy = "profile"
	case tr.c != nil && tr.c.enc == "":
		s.EncodingWhy = "ASCII only so far"
	default:
		s.EncodingWhy = "judged on the file: its first byte above 0x7F"
	}
	if !tr.haveHeader {
		return s, err
	}
	h := tr.hdr
	s.HeaderLine, s.Header, s.NoHeader = h.line, tr.headerText, p != nil && p.NoHeader
	s.Delimiter = rune(h.delim)
	s.DelimiterWhy = "detected from the header line"
	if p != nil && p.Delimiter != 0 {
		s.DelimiterWhy = "profile"
	}
	s.DecimalSeparator, s.DecimalWhy = ".", "',' delimits the fields: a dot"
	if h.decimalComma {
		s.DecimalSeparator, s.DecimalWhy = ",", "a comma, or a dot: the fields are not delimited by ','"
	}
	if p != nil && p.DecimalSeparator != "" {
		s.DecimalWhy = "profile"
	}
	s.Columns = sniffColumns(h, tr.headerText, p)
	switch {
	case h.cols[colIndexDate] < 0:
		s.DateFormat, s.DateWhy = "", "no date column"
	case p != nil && p.DateFormat != "":
		s.DateFormat, s.DateWhy = p.DateFormat, "profile"
	default:
		s.DateFormat, s.DateWhy = stats.DateFormat, "the first date that parses"
		if s.DateFormat == "" {
			s.DateWhy = "no date parsed"
		}
	}
	switch {
	case h.cols[colIndexDebit] >= 0:
		s.Amounts = "debit and credit columns: a debit is stored negative, a credit positive; exactly one filled"
		s.Sign = SignAuto + ": a debit written positive or negative, a credit positive"
		if p != nil && p.Sign != SignAuto {
			s.Sign = p.Sign + " (profile)"
		}
	case h.cols[colIndexDirection] >= 0:
		s.Amounts = "one amount column made negative for a debit by the direction column"
	default:
		s.Amounts = "one signed amount column"
	}
	return s, err
}

// sniffColumns says which column each role has, and why.
func sniffColumns(h header, headerText string, p *Profile) []SniffedColumn {
	var names []string
	if h.line > 0 {
		text := headerText
		if strings.Contains(text, "&") && !p.hasColumns() {
			text = decodeAccentEntities(text)
		}
		names = splitNames(text, h.delim)
	}
	var out []SniffedColumn
	for _, r := range []int{colIndexID, colIndexDate, colIndexAmount, colIndexDebit, colIndexCredit, colIndexDirection, colIndexWording, colIndexAccount} {
		c := h.cols[r]
		if c < 0 {
			continue
		}
		col := SniffedColumn{Role: roleNames[r], Column: c + 1, Name: h.names[r]}
		switch {
		case p.hasColumns():
			col.Why = "profile: " + p.cols[r].String()
		default:
			a, _ := lookupAlias(h.names[r])
			col.Why = fmt.Sprintf("header name %q, choice %d of %d for the %s", h.names[r], a.rank+1, roleRanks(r), roleNames[r])
			if a.weak {
				col.Why += " (an id only where filled, a derived id elsewhere)"
			}
			for i, n := range names {
				if i == c {
					continue
				}
				if o, ok := lookupAlias(n); ok && o.role == r {
					col.Others = append(col.Others, fmt.Sprintf("%q (column %d, choice %d)", strings.TrimSpace(n), i+1, o.rank+1))
				}
			}
		}
		out = append(out, col)
	}
	return out
}

// roleRanks is the number of preference ranks of a role's names.
func roleRanks(role int) int {
	n := 0
	for _, a := range headerAliases {
		if a.role == role {
			n = max(n, a.rank+1)
		}
	}
	return n
}

// Print writes the verdict for people, as starter sniff shows it. file
// names the file in the verdict of a file that cannot be read, which is
// the message a failed run gives.
func (s *Sniffed) Print(w io.Writer, file string) {
	if s.Profile != "" {
		fmt.Fprintf(w, "profile      %s (%s)\n", s.Profile, s.ProfileSource)
	} else {
		fmt.Fprintf(w, "profile      none: recognised by its header\n")
	}
	fmt.Fprintf(w, "encoding     %s (%s)\n", s.Encoding, s.EncodingWhy)
	if s.Delimiter != 0 {
		fmt.Fprintf(w, "delimiter    %s (%s)\n", DescribeDelimiter(s.Delimiter), s.DelimiterWhy)
		fmt.Fprintf(w, "decimal      %q (%s)\n", s.DecimalSeparator, s.DecimalWhy)
	}
	if len(s.Skipped) > 0 {
		if s.HeaderLine > 0 || s.NoHeader {
			fmt.Fprintf(w, "skipped before the header:\n")
		} else {
			fmt.Fprintf(w, "looked at for a header:\n")
		}
		for _, l := range s.Skipped {
			fmt.Fprintf(w, "  line %d: %s\n", l.Line, quoteSample(l.Text))
		}
		if s.SkippedMore > 0 {
			fmt.Fprintf(w, "  and %d more\n", s.SkippedMore)
		}
	}
	switch {
	case s.NoHeader:
		fmt.Fprintf(w, "header       none: the rows are read by position (profile)\n")
	case s.HeaderLine > 0:
		fmt.Fprintf(w, "header       line %d: %s\n", s.HeaderLine, quoteSample(s.Header))
	}
	if len(s.Columns) > 0 {
		fmt.Fprintf(w, "columns:\n")
		for _, c := range s.Columns {
			name := ""
			if c.Name != "" && c.Name != fmt.Sprintf("column %d", c.Column) {
				name = fmt.Sprintf(" %q", c.Name)
			}
			fmt.Fprintf(w, "  %-9s  column %d%s: %s\n", c.Role, c.Column, name, c.Why)
			if len(c.Others) > 0 {
				fmt.Fprintf(w, "  %-9s  not used: %s\n", "", strings.Join(c.Others, ", "))
			}
		}
		date := s.DateFormat
		if date == "" {
			date = "-"
		}
		fmt.Fprintf(w, "dates        %s (%s)\n", date, s.DateWhy)
		fmt.Fprintf(w, "amounts      %s\n", s.Amounts)
		if s.Sign != "" {
			fmt.Fprintf(w, "sign         %s\n", s.Sign)
		}
	}
	if s.Err != nil {
		var fe *FileError
		if errors.As(s.Err, &fe) {
			fmt.Fprintf(w, "cannot be read: %s: %s\n", file, fe.Error())
		} else {
			fmt.Fprintf(w, "cannot be read: %s: %v\n", file, s.Err)
		}
		return
	}
	fmt.Fprintf(w, "rows (first %d of %d accepted):\n", len(s.Rows), s.Stats.Accepted)
	for _, r := range s.Rows {
		id := r.ID
		if r.DerivedID {
			id += " (derived)"
		}
		date := r.Date
		if date == "" {
			date = "-"
		}
		account := ""
		if r.Account != "" {
			account = " account " + r.Account
		}
		fmt.Fprintf(w, "  line %d: id %s, date %s, amount %s, wording %s%s\n", r.Line, id, date, r.Amount, quoteSample(r.Wording), account)
	}
	fmt.Fprintf(w, "rejected (%d):\n", s.Stats.Rejected)
	for _, r := range s.Rejected {
		fmt.Fprintf(w, "  line %d: %s: %s\n", r.Line, r.Reason, r.Detail)
	}
	if s.RejectedMore > 0 {
		fmt.Fprintf(w, "  and %d more\n", s.RejectedMore)
	}
	st := s.Stats
	header := "1 header"
	if st.NoHeaderRow {
		header = "no header"
	}
	fmt.Fprintf(w, "lines        %d = %s + %d skipped + %d in accepted rows + %d in rejected rows\n",
		st.Lines, header, st.SkippedLines, st.AcceptedLines, st.RejectedLines)
	if st.TrailerLine > 0 {
		fmt.Fprintf(w, "             %d lines after the data skipped, from line %d\n", st.TrailerLines, st.TrailerLine)
	}
	if st.DerivedIDs > 0 {
		fmt.Fprintf(w, "             %d derived ids (the file has no id column, or its reference is empty)\n", st.DerivedIDs)
	}
}

// readTrace collects what read sees for Sniff. Its methods do nothing on a
// nil trace, as in Read.
type readTrace struct {
	max         int
	skipped     []SniffedLine
	skippedMore int64
	headerText  string
	hdr         header
	haveHeader  bool
	c           *textCodec
}

func (t *readTrace) skip(line int64, text string) {
	if t == nil {
		return
	}
	if len(t.skipped) < t.max {
		t.skipped = append(t.skipped, SniffedLine{Line: line, Text: text})
	} else {
		t.skippedMore++
	}
}

func (t *readTrace) header(text string) {
	if t != nil {
		t.headerText = text
	}
}

func (t *readTrace) found(h header) {
	if t != nil {
		t.hdr, t.haveHeader = h, true
	}
}

func (t *readTrace) codec(c *textCodec) {
	if t != nil {
		t.c = c
	}
}
