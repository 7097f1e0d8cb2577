package txn

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"

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
	Line      int64           // physical line (1-based) where the record starts in the file
	ID        string          // trimmed, never empty
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
}

func (o ReaderOptions) withDefaults() ReaderOptions {
	if o.MaxFieldBytes <= 0 {
		o.MaxFieldBytes = DefaultMaxFieldBytes
	}
	if o.MaxRecordBytes <= 0 {
		o.MaxRecordBytes = DefaultMaxRecordBytes
	}
	return o
}

// Stats summarise a Read. Records counts the data rows (blank lines
// excluded) and always equals Accepted + Rejected.
//
// Every physical line is accounted for: when Read succeeds,
// Lines = 1 (the header) + SkippedLines + AcceptedLines + RejectedLines.
type Stats struct {
	Records    int64
	Accepted   int64
	Rejected   int64
	Delimiter  rune   // ',', ';' or '\t'
	Encoding   string // EncodingUTF8 or EncodingWindows1252
	HeaderLine int64  // physical line of the header
	// AccountColumn: the header has an account column (account, compte or
	// iban), so every row carries its own account.
	AccountColumn bool

	// Lines is the number of physical lines in the file (a last line
	// without a line end counts).
	Lines int64
	// SkippedLines counts the lines that are neither the header nor part
	// of a row: the preamble before the header and blank lines (including
	// lines of bare delimiters such as ";;") anywhere.
	SkippedLines int64
	// AcceptedLines and RejectedLines count the physical lines spanned by
	// the accepted and the rejected rows; they exceed Accepted and Rejected
	// when quoted fields span lines.
	AcceptedLines int64
	RejectedLines int64
}

// Reasons reported in FileError.Reason.
const (
	FileEmpty           = "empty file"
	FileBinary          = "binary file"
	FileHTML            = "HTML document"
	FileNoHeader        = "no usable header"
	FileHeaderOnly      = "header only"
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
// The header is the first line, among the first 50, that has the required
// columns; the lines before it (a bank's account number, period, blank
// lines) are skipped. It is matched case-insensitively, ignoring
// surrounding spaces and accents, in any column order; extra columns are
// ignored. An optional account column (account, compte or iban) gives each
// row its own account (Record.Account, Stats.AccountColumn). A trailing delimiter on the header or on a row (an empty last
// field) is ignored. Blank lines, including lines whose fields are all
// blank such as ";;", are skipped and not counted as rows.
//
// Rows are rejected with ReasonMalformedRow (CSV syntax error, line too
// long, wrong number of fields), ReasonInvalidEncoding, ReasonMalformedRow
// (NUL byte), ReasonFieldTooLong, ReasonMissingID, ReasonInvalidAmount or
// ReasonInvalidAccount (a row whose account field is not a valid account,
// see ParseAccount, in a file with an account column), in that order of
// precedence. A row with a CSV syntax error is rejected as its
// first physical line only and reading resumes at the next line, so that an
// unterminated quote never swallows the rows after it (see scanner).
// Duplicate ids are not detected here. Record.Error is left empty.
//
// Read returns a *FileError when the file has no usable header or no data
// row or its lines do not add up, the callback's error (unwrapped) when a
// callback fails, or an I/O error wrapped with context. The Stats are valid
// even on error and count the rows delivered so far.
func Read(r io.Reader, opts ReaderOptions, onRecord func(Record) error, onRejected func(Rejected) error) (Stats, error) {
	opts = opts.withDefaults()
	stats := Stats{Encoding: EncodingUTF8}
	counter := &lineCounter{r: r}
	br := bufio.NewReaderSize(counter, sniffSize)
	codec := &textCodec{}
	if err := sniff(br, codec); err != nil {
		return stats, err
	}

	sc := newScanner(br, opts.MaxRecordBytes)
	h, skipped, err := findHeader(sc, codec)
	stats.SkippedLines = skipped
	stats.Encoding = codec.name()
	if err != nil {
		return stats, err
	}
	stats.HeaderLine = h.line
	stats.AccountColumn = h.cols[colIndexAccount] >= 0
	stats.Delimiter = rune(h.delim)
	sc.delim = h.delim

	rows := rowReader{sc: sc, codec: codec, hdr: h, opts: opts, stats: &stats}
	rows.dec.init(h.delim != ',')
	deliver := func(m rowMeta, row *csvRow) error {
		return rows.deliver(m, row, onRecord, onRejected)
	}
	err = rows.run(deliver)
	stats.Encoding = codec.name()
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
	const headerLines = 1
	sum := headerLines + s.SkippedLines + s.AcceptedLines + s.RejectedLines
	if sum == s.Lines {
		return nil
	}
	return &FileError{
		Reason: FileLineCount,
		Expected: fmt.Sprintf("%d lines (1 header, %d skipped, %d in accepted rows, %d in rejected rows)",
			sum, s.SkippedLines, s.AcceptedLines, s.RejectedLines),
		Found: fmt.Sprintf("%d lines in the file", s.Lines),
	}
}

// rowReader turns the records after the header into rows for gocsv.
type rowReader struct {
	sc     *scanner
	codec  *textCodec
	hdr    header
	opts   ReaderOptions
	stats  *Stats
	dec    batchDecoder
	fields []string
}

// run reads the records to the end, classifies them and delivers them in
// batches.
func (rr *rowReader) run(deliver func(rowMeta, *csvRow) error) error {
	for {
		rec, err := rr.sc.next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("read csv: %w", err)
		}
		m, id, amount, wording, blank := rr.classify(rec)
		if blank {
			rr.stats.SkippedLines += rec.lines
			continue
		}
		if rr.dec.add(m, id, amount, wording) {
			if err := rr.dec.flush(deliver); err != nil {
				return err
			}
		}
	}
	return rr.dec.flush(deliver)
}

// classify turns the record just read into text and finds the problems
// that precede the field checks: syntax, field count, encoding, NUL bytes.
// blank reports a row to skip.
func (rr *rowReader) classify(rec rawRecord) (m rowMeta, id, amount, wording string, blank bool) {
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
		return m, "", "", "", true
	}
	id, amount, wording = rr.project(fields)
	if c := rr.hdr.cols[colIndexAccount]; c >= 0 && c < len(fields) {
		m.account = storable(fields[c])
	}
	switch {
	case rec.syntax != "":
		m.reason, m.detail = ReasonMalformedRow, rec.syntax
	case !rr.hdr.acceptsFields(len(fields)) || (len(fields) == rr.hdr.fields+1 && strings.TrimSpace(fields[len(fields)-1]) != ""):
		m.reason, m.detail = ReasonMalformedRow, fmt.Sprintf("expected %d fields, found %d", rr.hdr.fields, len(fields))
	case encProblem != "":
		m.reason, m.detail = ReasonInvalidEncoding, encProblem
	case strings.IndexByte(id, 0) >= 0 || strings.IndexByte(amount, 0) >= 0 || strings.IndexByte(wording, 0) >= 0:
		m.reason, m.detail = ReasonMalformedRow, "NUL byte in field"
	case len(id) > max:
		m.reason, m.detail = ReasonFieldTooLong, fmt.Sprintf("id is %d bytes long, limit %d", len(id), max)
	case len(amount) > max:
		// Also the guard on the size of the numbers ParseAmount makes.
		m.reason, m.detail = ReasonFieldTooLong, fmt.Sprintf("amount is %d bytes long, limit %d", len(amount), max)
	case len(wording) > max:
		m.reason, m.detail = ReasonFieldTooLong, fmt.Sprintf("wording is %d bytes long, limit %d", len(wording), max)
	}
	if m.reason != "" {
		// Rejected already: the amount is kept raw, not parsed.
		m.rawAmount = storable(amount)
		return m, storable(id), "", storable(wording), false
	}
	return m, id, amount, wording, false
}

// project returns the id, amount and wording fields ("" when absent).
func (rr *rowReader) project(fields []string) (id, amount, wording string) {
	get := func(c int) string {
		if c < len(fields) {
			return fields[c]
		}
		return ""
	}
	return get(rr.hdr.cols[colIndexID]), get(rr.hdr.cols[colIndexAmount]), get(rr.hdr.cols[colIndexWording])
}

// storable makes a raw value of a rejected row storable as text: valid
// UTF-8 without NUL bytes.
func storable(s string) string {
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "")
}

// deliver applies the last checks to a decoded row and calls the matching
// callback.
func (rr *rowReader) deliver(m rowMeta, row *csvRow, onRecord func(Record) error, onRejected func(Rejected) error) error {
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

// isBlank reports whether a record has only empty or blank fields.
func isBlank(rec []string) bool {
	for _, f := range rec {
		if strings.TrimSpace(f) != "" {
			return false
		}
	}
	return true
}
