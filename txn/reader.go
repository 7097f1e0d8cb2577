package txn

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/shopspring/decimal"
)

// The reader is split by concern: encoding.go refuses what is not text and
// judges the encoding, header.go finds the header after a bank's preamble,
// records.go splits the input into records with physical line numbers,
// decode.go hands the rows to gocsv, and this file ties them together.

// Defaults for ReaderOptions.
const (
	DefaultMaxFieldBytes  = 4096
	DefaultMaxRecordBytes = 1 << 20
)

// Record is an accepted data row.
type Record struct {
	Line int64 // physical line (1-based) where the record starts in the file
	// ID is the id as read, trimmed, never empty; or a derived id (see
	// DerivedID) when the file has no id column or its reference is empty.
	ID string
	// DerivedID: ID was derived from the row (see Read), not read.
	DerivedID bool
	// Date is the row's date (see Read) at midnight UTC; zero when the file
	// has no date column.
	Date      time.Time
	Amount    decimal.Decimal // parsed exactly
	RawAmount string          // the amount field exactly as read
	Wording   string          // as read
	// Account is the row's account (valid, see ParseAccount) when the file
	// has an account column, "" otherwise: the caller fills in the run's.
	Account string
	Error   Reason // left "" by Read; set by the caller with Rules.Check
}

// Rejected is a data row that cannot be accepted.
type Rejected struct {
	Line    int64  // physical line (1-based) where the row starts in the file
	ID      string // raw id as read, "" when absent
	Amount  string // raw amount as read, "" when absent
	Wording string // raw wording as read, "" when absent
	// Account is the raw account as read when the file has an account
	// column, "" otherwise (and when the field is empty): the caller fills
	// in the run's.
	Account string
	Date    string // raw date as read, "" when absent
	Reason  Reason
	Detail  string // human-readable explanation
}

// ReaderOptions tune Read. The zero value selects the defaults.
type ReaderOptions struct {
	// MaxFieldBytes bounds the id, the amount and the wording; a longer one
	// rejects the row with ReasonFieldTooLong. Default DefaultMaxFieldBytes.
	MaxFieldBytes int
	// MaxRecordBytes bounds one CSV record, which may span several lines
	// when quoted. A longer line is rejected as malformed; a quoted field
	// still open when its record reaches this size is an unterminated quote
	// (see Read). The bound keeps memory flat. Default DefaultMaxRecordBytes.
	MaxRecordBytes int
	// Account is the account of the rows of a file without an account
	// column, used in derived ids (see Read); empty: DefaultAccount. The
	// caller passes the run's account so that the ids of a re-import match.
	Account string
	// Profile, when set, says what the file is (see Profile): its columns,
	// delimiter, decimal separator, date format, sign convention, encoding
	// and lines to skip. nil: the file is recognised by its header.
	Profile *Profile
}

func (o ReaderOptions) withDefaults() ReaderOptions {
	if o.MaxFieldBytes <= 0 {
		o.MaxFieldBytes = DefaultMaxFieldBytes
	}
	if o.MaxRecordBytes <= 0 {
		o.MaxRecordBytes = DefaultMaxRecordBytes
	}
	if o.Account == "" {
		o.Account = DefaultAccount
	}
	return o
}

// Stats summarise a Read. Records counts the data rows (blank lines
// excluded) and always equals Accepted + Rejected.
//
// Every physical line is accounted for: when Read succeeds,
// Lines = 1 (the header) + SkippedLines + AcceptedLines + RejectedLines; in
// a file without a header row (NoHeaderRow: a profile with no_header),
// Lines = SkippedLines + AcceptedLines + RejectedLines.
type Stats struct {
	Records    int64
	Accepted   int64
	Rejected   int64
	Delimiter  rune   // ',', ';' or '\t'
	Encoding   string // EncodingUTF8 or EncodingWindows1252
	HeaderLine int64  // physical line of the header; 0 in a file without one (a profile's no_header)
	// NoHeaderRow: the file has no header row (a profile with no_header):
	// HeaderLine is 0 and no line is the header.
	NoHeaderRow bool
	// Profile is the name of the profile the file was read with, "" when
	// none (ReaderOptions.Profile).
	Profile string
	// AccountColumn: the header has an account column (account, compte or
	// iban), so every row carries its own account.
	AccountColumn bool
	// DateColumn is the header name of the column the dates are read from
	// ("" when the file has none); DateFormat the layout its dates use
	// (dd/mm/yyyy, dd.mm.yyyy, dd-mm-yyyy, yyyy-mm-dd, yyyy/mm/dd or
	// yyyymmdd, a two-digit year and a time of day accepted with the first
	// five), decided by the first date that parses.
	DateColumn string
	DateFormat string
	// DebitCredit: the amounts are read from a debit and a credit column.
	DebitCredit bool
	// DerivedIDs counts the accepted records whose id was derived.
	DerivedIDs int64

	// Lines is the number of physical lines in the file (a last line
	// without a line end counts).
	Lines int64
	// SkippedLines counts the lines that are neither the header nor part
	// of a row: the preamble before the header and blank lines (including
	// lines of bare delimiters such as ";;") anywhere, and the lines after
	// the data (see TrailerLines).
	SkippedLines int64
	// TrailerLine is the first line after the data that is not a row
	// (closing balance, another block; see Read), 0 when there is none;
	// TrailerLines counts those lines (blank lines among them excepted),
	// also counted in SkippedLines.
	TrailerLine  int64
	TrailerLines int64
	// AcceptedLines and RejectedLines count the physical lines spanned by
	// the accepted and the rejected rows; they exceed Accepted and Rejected
	// when quoted fields span lines.
	AcceptedLines int64
	RejectedLines int64
}

// Reasons reported in FileError.Reason.
const (
	FileEmpty      = "empty file"
	FileBinary     = "binary file"
	FileHTML       = "HTML document"
	FileNoHeader   = "no usable header"
	FileHeaderOnly = "header only"
	// FileNoIDOrDate: the header has a wording and an amount but neither an
	// id nor a date column, so nothing tells the rows apart.
	FileNoIDOrDate      = "no id or date column"
	FileUnsupportedText = "unsupported encoding"
	// FileLineCount: the lines read do not add up to the lines of the file
	// (see Stats); it would mean rows were lost.
	FileLineCount = "line count mismatch"
	// FileRecordTooLarge is no longer returned: a record exceeding
	// ReaderOptions.MaxRecordBytes is a rejected row.
	FileRecordTooLarge = "record too large"
)

// FileError reports a file that cannot be read at all: empty, binary, HTML,
// without the expected header columns, with a header but no data row, or
// whose lines do not add up.
type FileError struct {
	Reason   string // one of the File* constants
	Expected string // what a usable file has
	Found    string // what this file has instead
	Line     int64  // physical line concerned, 0 when not applicable
}

// Error says what was expected and what was found, for example
// `no usable header: expected columns id, amount (or montant), wording (or
// label, libelle, libellé); found "foo,bar"`.
func (e *FileError) Error() string {
	return e.Reason + ": expected " + e.Expected + "; found " + e.Found
}

// Read streams a bank CSV file. It calls onRecord for each accepted row and
// onRejected for each rejected row, in file order and from the calling
// goroutine, never holding the whole file in memory.
//
// The file may start with a UTF-8 byte order mark, use CRLF line ends, be
// encoded in UTF-8 or Windows-1252/Latin-1 (decided at the first non-ASCII
// byte, see textCodec), and separate fields with ',', ';' or TAB (detected
// from the header line). With ';' or TAB, amounts may use a decimal comma.
//
// Header. The header is the first line, among the first 50, whose columns
// give the roles Read needs; the lines before it (a bank's account number,
// period, balance, blank lines) are skipped. Names are matched ignoring
// case, accents, spaces and punctuation, in any column order, also when the
// accents were damaged before (U+FFFD or '?' in place of a letter, HTML
// entities such as "Cr&eacute;dit", UTF-8 read as Latin-1); see
// headerAliases for the names and the preference among several columns of
// one role. The roles: a wording (libellé, label, description, counterparty
// name...); an amount, either one signed column (amount, montant,
// montant(euros), total amount (incl. VAT)...), possibly unsigned with a
// direction column (direction, sens: debit/credit, D/C, DB/CR), or a debit
// and a credit column (débit, crédit, débit euros...); and an id column
// (id, transaction id, numéro d'opération, reference) or a date column
// (date, date opération, dateOp, date de comptabilisation, booking date,
// started date, operation date (UTC)...), or both. An optional account
// column (account, compte, iban, accountNum) gives each row its own account
// (Record.Account, Stats.AccountColumn). Other columns (value date when
// another date is there, category, balance, currency, fees...) are ignored.
// A name that appears twice is no error: its first column is used. A file
// with a wording and an amount but neither an id nor a date column is
// refused (FileNoIDOrDate). A trailing delimiter on the header or on a row
// (an empty last field) is ignored. Blank lines, including lines whose
// fields are all blank such as ";;", are skipped and not counted as rows.
//
// Amounts. A debit is stored negative and a credit positive whatever the
// bank's convention: with debit and credit columns, a debit written
// positive or negative gives a negative amount and a credit written with or
// without '+' a positive one; a debit written with '+' or a negative credit
// is invalid_amount. Exactly one of the two must be filled, a zero in the
// other counting as empty: both filled, or neither, is invalid_amount ("both
// debit and credit are filled", "neither debit nor credit is filled"). The
// raw amount of such a row is the filled field, or "debit/credit" when both
// are. With a direction column the amount is made negative for a debit and
// positive for a credit; another direction, or a negative amount said to be
// a credit, is invalid_amount.
//
// Dates. See parseDate for the formats (31/01/2026, 31/01/26, 31.01.2026,
// 2026-01-31, 2026-01-31 12:16:54, 20260131): the day comes first when the
// date starts with one or two digits, the year when it starts with four,
// a two-digit year is 20yy, and a time of day is dropped. The first date
// that parses decides the file's format (Stats.DateFormat); a date that
// does not parse, or in another format (day-first formats do not mix with
// each other or with year-first ones), rejects its row as invalid_date.
// Record.Date is zero when the file has no date column.
//
// Ids. A file without an id column gets derived ids, "<hash>-<n>", stable
// across imports (see idDeriver, which also states the one case they cannot
// tell apart): the hash covers the row's account (the account column's, or
// ReaderOptions.Account), its date, amount and wording, and n counts the
// identical rows of the file. A reference column (the "Reference" of SEPA
// exports, often empty) is an id only where it is filled: a row whose
// reference is empty gets a derived id. This is decided per row, not per
// file, so that a row gets the same id in every export that holds it (a
// per-file rule would give a row its reference in one export and a
// derived id in another, depending on the other rows). An empty id in a
// real id column is still missing_id.
//
// Lines after the data. Only in a file with a date column: a record whose
// date does not parse and which either has a shape different from the
// header's (another number of fields) or has no amount that parses is held
// back, with any such records that follow it. If a row that is not of that
// kind comes after them, they are rejected as usual (a malformed row in the
// middle of the data is never skipped). If the end of the file comes, they
// are the closing lines of the export (a closing balance, a legal notice)
// and are skipped. A line that is a header again after data rows starts
// another block (a deferred card's operations): it, the held lines before
// it and every line after it are skipped. Skipped lines are counted in
// Stats.TrailerLines (from Stats.TrailerLine) and Stats.SkippedLines. At
// most maxHeldLines records are held: beyond, they are rejected.
//
// Rows are rejected with ReasonMalformedRow (CSV syntax error, line too
// long, wrong number of fields), ReasonInvalidEncoding, ReasonMalformedRow
// (NUL byte), ReasonFieldTooLong, ReasonMissingID, ReasonInvalidAmount,
// ReasonInvalidDate or ReasonInvalidAccount (a row whose account field is
// not a valid account, see ParseAccount, in a file with an account column),
// in that order of precedence. A row with a CSV syntax error is rejected as
// its first physical line only and reading resumes at the next line, so
// that an unterminated quote never swallows the rows after it (see
// scanner). Duplicate ids are not detected here. Record.Error is left
// empty.
//
// Read returns a *FileError when the file has no usable header or no data
// row or its lines do not add up, the callback's error (unwrapped) when a
// callback fails, or an I/O error wrapped with context. The Stats are valid
// even on error and count the rows delivered so far.
//
// Profile. With ReaderOptions.Profile the file is read as the profile says
// (see Profile and ParseProfile): its first SkipLines lines are skipped; a
// profile without a header row (NoHeader) reads the rows by position from
// there, the first row at line SkipLines+1, a row having at least as many
// fields as the last position, and Stats.HeaderLine is 0; a profile with
// columns takes as header the first line that has them all (by name, or
// with enough fields for the positions); its delimiter, decimal separator,
// date format and encoding replace what would be detected, and its sign
// convention makes a debit of the wrong sign invalid_amount. Everything else
// (rejections, derived ids, lines after the data, the line accounting) is
// as without a profile.
func Read(r io.Reader, opts ReaderOptions, onRecord func(Record) error, onRejected func(Rejected) error) (Stats, error) {
	return read(r, opts, onRecord, onRejected, nil)
}

// read is Read, telling tr (when not nil) what it sees, for Sniff.
func read(r io.Reader, opts ReaderOptions, onRecord func(Record) error, onRejected func(Rejected) error, tr *readTrace) (Stats, error) {
	opts = opts.withDefaults()
	p := opts.Profile
	stats := Stats{Encoding: EncodingUTF8, Profile: p.profileName()}
	counter := &lineCounter{r: r}
	br := bufio.NewReaderSize(counter, sniffSize)
	codec := &textCodec{}
	tr.codec(codec)
	if err := sniff(br, codec); err != nil {
		return stats, err
	}
	if p != nil && p.Encoding != "" {
		codec.enc = p.Encoding
	}

	sc := newScanner(br, opts.MaxRecordBytes)
	h, skipped, err := findHeader(sc, codec, p, tr)
	stats.SkippedLines = skipped
	stats.Encoding = codec.name()
	if err != nil {
		return stats, err
	}
	tr.found(h)
	stats.HeaderLine = h.line
	stats.NoHeaderRow = p != nil && p.NoHeader
	stats.AccountColumn = h.cols[colIndexAccount] >= 0
	stats.DateColumn = h.names[colIndexDate]
	stats.DebitCredit = h.cols[colIndexDebit] >= 0
	stats.Delimiter = rune(h.delim)
	sc.delim = h.delim

	rows := newRowReader(sc, codec, h, opts, &stats)
	deliver := func(m rowMeta, row *csvRow, x *csvRowExt) error {
		return rows.deliver(m, row, x, onRecord, onRejected)
	}
	err = rows.run(deliver)
	if err == nil {
		err = rows.endHeld()
	}
	stats.Encoding = codec.name()
	stats.DateFormat = rows.dates.layout.String()
	if err != nil {
		return stats, err
	}
	if stats.Records == 0 {
		return stats, &FileError{Reason: FileHeaderOnly, Expected: "at least one data row after the header", Found: "no data row", Line: stats.HeaderLine}
	}
	stats.Lines = counter.lines()
	if err := checkLines(stats); err != nil {
		return stats, err
	}
	return stats, nil
}

// checkLines verifies that every physical line is the header, skipped, or
// part of an accepted or a rejected row.
func checkLines(s Stats) error {
	headerLines := int64(1)
	if s.NoHeaderRow {
		headerLines = 0 // a file without a header row (a profile's no_header)
	}
	sum := headerLines + s.SkippedLines + s.AcceptedLines + s.RejectedLines
	if sum == s.Lines {
		return nil
	}
	return &FileError{
		Reason: FileLineCount,
		Expected: fmt.Sprintf("%d lines (%d header, %d skipped, %d in accepted rows, %d in rejected rows)",
			sum, headerLines, s.SkippedLines, s.AcceptedLines, s.RejectedLines),
		Found: fmt.Sprintf("%d lines in the file", s.Lines),
	}
}

// maxHeldLines bounds the records held back as possible lines after the
// data (see Read).
const maxHeldLines = 64

// rowReader turns the records after the header into rows for gocsv.
type rowReader struct {
	sc        *scanner
	codec     *textCodec
	hdr       header
	opts      ReaderOptions
	stats     *Stats
	simple    bool // only id, amount, wording: see deliverSimple
	simpleDec *batchDecoder[csvRow, *csvRow]
	wideDec   *batchDecoder[csvRowWide, *csvRowWide]
	valCols   []int // the file column of each value
	fields    []string
	vals      []string // the values handed to gocsv, in the order of roles
	roles     []int    // the role of each value
	hasDate   bool
	dates     dateReader
	sign      string // the profile's debit and credit sign convention
	profile   *Profile
	ids       idDeriver
	rec       Record     // the record being delivered
	held      []Rejected // records held back as possible lines after the data
	heldLines []int64
	trailer   bool // another block has started: the rest is skipped
}

func newRowReader(sc *scanner, codec *textCodec, h header, opts ReaderOptions, stats *Stats) *rowReader {
	rr := &rowReader{sc: sc, codec: codec, hdr: h, opts: opts, stats: stats, hasDate: h.cols[colIndexDate] >= 0,
		sign: SignAuto, profile: opts.Profile}
	if p := opts.Profile; p != nil {
		rr.dates.layout, rr.sign = p.layout, p.Sign
	}
	var columns []string
	for _, role := range []int{colIndexID, colIndexAmount, colIndexWording, colIndexDate, colIndexDebit, colIndexCredit, colIndexDirection} {
		if h.cols[role] >= 0 {
			rr.roles = append(rr.roles, role)
			columns = append(columns, batchColumn(role, h.decimalComma))
		}
	}
	for _, role := range rr.roles {
		rr.valCols = append(rr.valCols, h.cols[role])
	}
	// The files with only an id, an amount and a wording (and maybe an
	// account) take the path they always took.
	rr.simple = len(rr.roles) == 3 && rr.roles[0] == colIndexID && rr.roles[1] == colIndexAmount && rr.roles[2] == colIndexWording && !h.weakID
	if rr.simple {
		rr.simpleDec = newBatchDecoder[csvRow](columns)
	} else {
		rr.wideDec = newBatchDecoder[csvRowWide](columns)
	}
	return rr
}

// run reads the records to the end, classifies them and delivers them in
// batches.
func (rr *rowReader) run(deliver func(rowMeta, *csvRow, *csvRowExt) error) error {
	for {
		rec, err := rr.sc.next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("read csv: %w", err)
		}
		m, blank := rr.classify(rec)
		if blank {
			rr.stats.SkippedLines += rec.lines
			continue
		}
		if rr.simple {
			if rr.simpleDec.add(m, rr.vals) {
				if err := rr.simpleDec.flush(deliver); err != nil {
					return err
				}
			}
		} else if rr.wideDec.add(m, rr.vals) {
			if err := rr.wideDec.flush(deliver); err != nil {
				return err
			}
		}
	}
	if rr.simple {
		return rr.simpleDec.flush(deliver)
	}
	return rr.wideDec.flush(deliver)
}

// classify turns the record just read into text, puts the values of the
// roles in rr.vals and finds the problems that precede the field checks:
// syntax, field count, encoding, NUL bytes. blank reports a row to skip.
func (rr *rowReader) classify(rec rawRecord) (m rowMeta, blank bool) {
	sc, max := rr.sc, rr.opts.MaxFieldBytes
	m = rowMeta{line: rec.line, lines: rec.lines}
	mode, encProblem := rr.codec.check(sc.bytes())
	rr.fields = rr.fields[:0]
	if mode == textAsIs {
		all := string(sc.fbuf)
		prev := 0
		for _, e := range sc.ends {
			rr.fields = append(rr.fields, all[prev:e])
			prev = e
		}
	} else {
		prev := 0
		for _, e := range sc.ends {
			rr.fields = append(rr.fields, mode.text(sc.fbuf[prev:e]))
			prev = e
		}
	}
	fields := rr.fields
	if rec.syntax == "" && isBlank(fields) {
		return m, true
	}
	if rr.simple {
		c := rr.valCols
		rr.vals = append(rr.vals[:0], field(fields, c[0]), field(fields, c[1]), field(fields, c[2]))
	} else {
		rr.vals = rr.vals[:0]
		for _, c := range rr.valCols {
			rr.vals = append(rr.vals, field(fields, c))
		}
	}
	if c := rr.hdr.cols[colIndexAccount]; c >= 0 && c < len(fields) {
		m.account = storable(fields[c])
	}
	shapeOK := rr.hdr.acceptsFields(len(fields)) && (rr.hdr.atLeast || len(fields) != rr.hdr.fields+1 || strings.TrimSpace(fields[len(fields)-1]) == "")
	switch {
	case rec.syntax != "":
		m.reason, m.detail = ReasonMalformedRow, rec.syntax
	case !shapeOK:
		atLeast := ""
		if rr.hdr.atLeast {
			atLeast = "at least "
		}
		m.reason, m.detail = ReasonMalformedRow, fmt.Sprintf("expected %s%d fields, found %d", atLeast, rr.hdr.fields, len(fields))
	case encProblem != "":
		m.reason, m.detail = ReasonInvalidEncoding, encProblem
	default:
		for _, v := range rr.vals {
			if strings.IndexByte(v, 0) >= 0 {
				m.reason, m.detail = ReasonMalformedRow, "NUL byte in field"
				break
			}
		}
		if m.reason != "" {
			break
		}
		for i, v := range rr.vals {
			// Also the guard on the size of the numbers ParseAmount makes.
			if len(v) > max {
				m.reason, m.detail = ReasonFieldTooLong, fmt.Sprintf("%s is %d bytes long, limit %d", roleNames[rr.roles[i]], len(v), max)
				break
			}
		}
	}
	if rr.hasDate {
		rr.markTrailer(&m, fields, shapeOK && rec.syntax == "")
	}
	if m.reason != "" {
		// Rejected already: the amounts are kept raw, not parsed.
		m.rawAmount = storable(rr.rawAmount(fields))
		for i, role := range rr.roles {
			switch role {
			case colIndexAmount, colIndexDebit, colIndexCredit:
				rr.vals[i] = ""
			default:
				rr.vals[i] = storable(rr.vals[i])
			}
		}
	}
	return m, false
}

// markTrailer marks a record that may be a line after the data, or the
// header of another block (see Read).
func (rr *rowReader) markTrailer(m *rowMeta, fields []string, shapeOK bool) {
	date := field(fields, rr.hdr.cols[colIndexDate])
	if rr.dates.layout == layoutMonthSlash {
		if _, err := parseMonthFirst(date); err == nil {
			return
		}
	} else if _, _, err := parseDate(date); err == nil {
		return
	}
	if rr.isHeader(fields) {
		m.header = true
		return
	}
	if !shapeOK {
		m.trailer = true
		return
	}
	decimalComma := rr.hdr.decimalComma
	for _, role := range []int{colIndexAmount, colIndexDebit, colIndexCredit} {
		if c := rr.hdr.cols[role]; c >= 0 {
			if _, err := ParseAmount(field(fields, c), decimalComma); err == nil {
				return
			}
		}
	}
	m.trailer = true
}

// isHeader reports whether a row is a header line again (another block):
// one the profile's columns match, or a recognised header without a
// profile's columns. A file without a header row has none.
func (rr *rowReader) isHeader(fields []string) bool {
	p := rr.profile
	switch {
	case p != nil && p.NoHeader:
		return false
	case p.hasColumns():
		_, _, ok := p.matchHeader(strings.Join(fields, string(rr.hdr.delim)))
		return ok && p.hasNamedColumn()
	}
	_, status := mapHeader(fields)
	return status == headerOK
}

// rawAmount returns the amount as read: the amount field, or the filled one
// of debit and credit ("debit/credit" when both are).
func (rr *rowReader) rawAmount(fields []string) string {
	if c := rr.hdr.cols[colIndexAmount]; c >= 0 {
		return field(fields, c)
	}
	if rr.hdr.cols[colIndexDebit] < 0 {
		return ""
	}
	return rawDebitCredit(field(fields, rr.hdr.cols[colIndexDebit]), field(fields, rr.hdr.cols[colIndexCredit]))
}

func rawDebitCredit(debit, credit string) string {
	switch {
	case strings.TrimSpace(credit) == "":
		return debit
	case strings.TrimSpace(debit) == "":
		return credit
	}
	return debit + "/" + credit
}

// field returns fields[c], "" when absent.
func field(fields []string, c int) string {
	if c >= 0 && c < len(fields) {
		return fields[c]
	}
	return ""
}

// storable makes a raw value of a rejected row storable as text: valid
// UTF-8 without NUL bytes.
func storable(s string) string {
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "")
}

// deliver applies the last checks to a decoded row and calls the matching
// callback, or holds the row back as a possible line after the data.
func (rr *rowReader) deliver(m rowMeta, row *csvRow, x *csvRowExt, onRecord func(Record) error, onRejected func(Rejected) error) error {
	if rr.simple {
		return rr.deliverSimple(m, row, onRecord, onRejected)
	}
	stats := rr.stats
	if rr.trailer {
		rr.skipTrailer(m.line, m.lines)
		return nil
	}
	dataSeen := stats.Records > 0 || len(rr.held) > 0
	if m.header && dataSeen {
		// Another block: what is held and everything after is skipped.
		for i, r := range rr.held {
			rr.skipTrailer(r.Line, rr.heldLines[i])
		}
		rr.held, rr.heldLines = rr.held[:0], rr.heldLines[:0]
		rr.trailer = true
		rr.skipTrailer(m.line, m.lines)
		return nil
	}
	rec := &rr.rec
	reason, detail := rr.judge(m, row, x, rec)
	if reason != "" {
		rej := rr.rejection(m, row, x, reason, detail)
		if m.trailer && dataSeen && len(rr.held) < maxHeldLines {
			rr.held = append(rr.held, rej)
			rr.heldLines = append(rr.heldLines, m.lines)
			return nil
		}
		if err := rr.rejectHeld(onRejected); err != nil {
			return err
		}
		stats.Records++
		stats.Rejected++
		stats.RejectedLines += m.lines
		return onRejected(rej)
	}
	if len(rr.held) > 0 {
		if err := rr.rejectHeld(onRejected); err != nil {
			return err
		}
	}
	stats.Records++
	stats.Accepted++
	stats.AcceptedLines += m.lines
	if rec.DerivedID {
		stats.DerivedIDs++
	}
	return onRecord(*rec)
}

// deliverSimple is deliver for the files with only an id, an amount and a
// wording (and maybe an account): no date, no derived id, no lines after
// the data.
func (rr *rowReader) deliverSimple(m rowMeta, row *csvRow, onRecord func(Record) error, onRejected func(Rejected) error) error {
	stats := rr.stats
	rej := Rejected{Line: m.line, ID: row.ID, Amount: row.Amount.raw, Wording: row.Wording, Account: m.account}
	trimmed := strings.TrimSpace(row.ID)
	var account string
	var accountErr error
	if rr.hdr.cols[colIndexAccount] >= 0 && m.reason == "" {
		account, accountErr = ParseAccount(m.account)
	}
	switch {
	case m.reason != "":
		rej.Amount, rej.Reason, rej.Detail = m.rawAmount, m.reason, m.detail
	case trimmed == "":
		rej.Reason, rej.Detail = ReasonMissingID, "id is empty"
	case row.Amount.err != nil:
		rej.Reason, rej.Detail = ReasonInvalidAmount, row.Amount.err.Error()
	case accountErr != nil:
		rej.Reason, rej.Detail = ReasonInvalidAccount, accountErr.Error()
	default:
		stats.Records++
		stats.Accepted++
		stats.AcceptedLines += m.lines
		return onRecord(Record{Line: m.line, ID: trimmed, Amount: row.Amount.value, RawAmount: row.Amount.raw,
			Wording: row.Wording, Account: account})
	}
	stats.Records++
	stats.Rejected++
	stats.RejectedLines += m.lines
	return onRejected(rej)
}

// skipTrailer counts a record after the data as skipped.
func (rr *rowReader) skipTrailer(line, lines int64) {
	if rr.stats.TrailerLine == 0 {
		rr.stats.TrailerLine = line
	}
	rr.stats.TrailerLines += lines
	rr.stats.SkippedLines += lines
}

// rejectHeld rejects the records held back: rows came after them.
func (rr *rowReader) rejectHeld(onRejected func(Rejected) error) error {
	for i, r := range rr.held {
		rr.stats.Records++
		rr.stats.Rejected++
		rr.stats.RejectedLines += rr.heldLines[i]
		if err := onRejected(r); err != nil {
			return err
		}
	}
	clear(rr.held)
	rr.held, rr.heldLines = rr.held[:0], rr.heldLines[:0]
	return nil
}

// endHeld skips the records still held at the end of the file: they are
// the lines after the data.
func (rr *rowReader) endHeld() error {
	for i, r := range rr.held {
		rr.skipTrailer(r.Line, rr.heldLines[i])
	}
	rr.held, rr.heldLines = nil, nil
	return nil
}

// rejection describes a rejected row with its raw values.
func (rr *rowReader) rejection(m rowMeta, row *csvRow, x *csvRowExt, reason Reason, detail string) Rejected {
	rej := Rejected{Line: m.line, ID: row.ID, Amount: row.Amount.raw, Wording: row.Wording, Account: m.account, Date: x.Date,
		Reason: reason, Detail: detail}
	if rr.hdr.cols[colIndexAmount] < 0 {
		rej.Amount = rawDebitCredit(x.Debit.raw, x.Credit.raw)
	}
	if m.reason != "" {
		rej.Amount = m.rawAmount
	}
	return rej
}

// judge fills rec from a decoded row, or says why the row is rejected.
func (rr *rowReader) judge(m rowMeta, row *csvRow, x *csvRowExt, rec *Record) (Reason, string) {
	h := &rr.hdr
	if m.reason != "" {
		return m.reason, m.detail
	}
	id := strings.TrimSpace(row.ID)
	if id == "" && h.cols[colIndexID] >= 0 && !h.weakID {
		return ReasonMissingID, "id is empty"
	}
	amount, raw, err := rr.amount(row, x)
	if err != nil {
		return ReasonInvalidAmount, err.Error()
	}
	var date time.Time
	if rr.hasDate {
		if date, err = rr.dates.parse(x.Date); err != nil {
			return ReasonInvalidDate, err.Error()
		}
	}
	var account string
	if h.cols[colIndexAccount] >= 0 {
		if account, err = ParseAccount(m.account); err != nil {
			return ReasonInvalidAccount, err.Error()
		}
	}
	*rec = Record{Line: m.line, ID: id, Date: date, Amount: amount, RawAmount: raw, Wording: row.Wording, Account: account}
	if id == "" {
		idAccount := account
		if idAccount == "" {
			idAccount = rr.opts.Account
		}
		rec.ID, rec.DerivedID = rr.ids.derive(idAccount, date, amount, row.Wording), true
	}
	return "", ""
}

// amount returns the signed amount of a row and its raw text (see Read).
func (rr *rowReader) amount(row *csvRow, x *csvRowExt) (decimal.Decimal, string, error) {
	h := &rr.hdr
	if h.cols[colIndexAmount] >= 0 {
		a := row.Amount
		if a.err != nil {
			return decimal.Decimal{}, a.raw, a.err
		}
		if h.cols[colIndexDirection] < 0 {
			return a.value, a.raw, nil
		}
		switch direction(x.Direction) {
		case directionDebit:
			return a.value.Abs().Neg(), a.raw, nil
		case directionCredit:
			if a.value.IsNegative() {
				return decimal.Decimal{}, a.raw, fmt.Errorf("invalid amount: negative amount %s with direction credit", quoteSample(strings.TrimSpace(a.raw)))
			}
			return a.value, a.raw, nil
		}
		return decimal.Decimal{}, a.raw, fmt.Errorf("invalid amount: direction %s is neither debit nor credit", quoteSample(strings.TrimSpace(x.Direction)))
	}
	d, c := x.Debit, x.Credit
	dFilled, cFilled := strings.TrimSpace(d.raw) != "", strings.TrimSpace(c.raw) != ""
	if dFilled && cFilled {
		// A zero on one side counts as empty.
		switch {
		case d.err == nil && d.value.IsZero() && !(c.err == nil && c.value.IsZero()):
			dFilled = false
		case c.err == nil && c.value.IsZero() && !(d.err == nil && d.value.IsZero()):
			cFilled = false
		}
	}
	switch {
	case dFilled && cFilled:
		return decimal.Decimal{}, rawDebitCredit(d.raw, c.raw), errors.New("invalid amount: both debit and credit are filled")
	case !dFilled && !cFilled:
		return decimal.Decimal{}, "", errors.New("invalid amount: neither debit nor credit is filled")
	case dFilled:
		if d.err != nil {
			return decimal.Decimal{}, d.raw, fmt.Errorf("debit: %w", d.err)
		}
		if strings.HasPrefix(strings.TrimSpace(d.raw), "+") {
			return decimal.Decimal{}, d.raw, fmt.Errorf("invalid amount: debit %s written with '+'", quoteSample(strings.TrimSpace(d.raw)))
		}
		if err := checkDebitSign(rr.sign, d); err != nil {
			return decimal.Decimal{}, d.raw, err
		}
		return d.value.Abs().Neg(), d.raw, nil
	default:
		if c.err != nil {
			return decimal.Decimal{}, c.raw, fmt.Errorf("credit: %w", c.err)
		}
		if c.value.IsNegative() {
			return decimal.Decimal{}, c.raw, fmt.Errorf("invalid amount: negative credit %s", quoteSample(strings.TrimSpace(c.raw)))
		}
		return c.value, c.raw, nil
	}
}

// Directions of an unsigned amount.
const (
	directionNone = iota
	directionDebit
	directionCredit
)

// direction reads a direction value: debit, D, DB, DBIT, débit, - for a
// debit; credit, C, CR, CRDT, crédit, + for a credit (case and accents
// ignored).
func direction(s string) int {
	switch foldHeader(s) {
	case "debit", "d", "db", "dbit", "dr":
		return directionDebit
	case "credit", "c", "cr", "crdt":
		return directionCredit
	}
	switch strings.TrimSpace(s) {
	case "-":
		return directionDebit
	case "+":
		return directionCredit
	}
	return directionNone
}

// isBlank reports whether a record has only empty or blank fields.
func isBlank(rec []string) bool {
	for _, f := range rec {
		if strings.TrimSpace(f) != "" {
			return false
		}
	}
	return true
}
