package txn

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync/atomic"
	"unicode"
	"unicode/utf8"

	"github.com/gocarina/gocsv"
	"github.com/shopspring/decimal"
	"golang.org/x/text/encoding/charmap"
	"golang.org/x/text/runes"
	"golang.org/x/text/transform"
	"golang.org/x/text/unicode/norm"
)

// Defaults for ReaderOptions.
const (
	DefaultMaxFieldBytes  = 4096
	DefaultMaxRecordBytes = 1 << 20
)

// Encodings reported in Stats.Encoding.
const (
	EncodingUTF8        = "utf-8"
	EncodingWindows1252 = "windows-1252"
)

// sniffSize is how much of the file is examined before reading it: to judge
// its encoding, to refuse binary and HTML content and to find the header.
const sniffSize = 64 << 10

// Record is an accepted data row.
type Record struct {
	Line      int64           // physical line (1-based) where the record starts in the file
	ID        string          // trimmed, never empty
	Amount    decimal.Decimal // parsed exactly
	RawAmount string          // the amount field exactly as read
	Wording   string          // as read
	Error     Reason          // left "" by Read; set by the caller with Rules.Check
}

// Rejected is a data row that cannot be accepted.
type Rejected struct {
	Line    int64  // physical line (1-based) where the row starts in the file
	ID      string // raw id as read, "" when absent
	Amount  string // raw amount as read, "" when absent
	Wording string // raw wording as read, "" when absent
	Reason  Reason
	Detail  string // human-readable explanation
}

// ReaderOptions tune Read. The zero value selects the defaults.
type ReaderOptions struct {
	// MaxFieldBytes bounds the id and the wording; a longer one rejects the
	// row with ReasonFieldTooLong. Default DefaultMaxFieldBytes.
	MaxFieldBytes int
	// MaxRecordBytes bounds one CSV record, which may span several lines
	// when quoted. Past it Read stops with a *FileError: it is the
	// signature of an unterminated quote, and the bound keeps memory flat.
	// Default DefaultMaxRecordBytes.
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
type Stats struct {
	Records    int64
	Accepted   int64
	Rejected   int64
	Delimiter  rune   // ',', ';' or '\t'
	Encoding   string // EncodingUTF8 or EncodingWindows1252
	HeaderLine int64  // physical line of the header
}

// Reasons reported in FileError.Reason.
const (
	FileEmpty           = "empty file"
	FileBinary          = "binary file"
	FileHTML            = "HTML document"
	FileNoHeader        = "no usable header"
	FileHeaderOnly      = "header only"
	FileRecordTooLarge  = "record too large"
	FileUnsupportedText = "unsupported encoding"
)

// expectedColumns describes the header Read accepts.
const expectedColumns = "columns id, amount (or montant), wording (or label, libelle, libellé)"

// FileError reports a file that cannot be read at all: empty, binary, HTML,
// without the expected header columns, with a header but no data row, or
// with a record exceeding ReaderOptions.MaxRecordBytes.
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

// errStopped ends the decoding goroutine after a callback failed.
var errStopped = errors.New("read stopped")

// errRecordTooLarge is returned by the guard under csv.Reader.
var errRecordTooLarge = errors.New("record too large")

// Read streams a bank CSV file. It calls onRecord for each accepted row and
// onRejected for each rejected row, in file order and from the calling
// goroutine, never holding the whole file in memory.
//
// The file may start with a UTF-8 byte order mark, use CRLF line ends, be
// encoded in UTF-8 or Windows-1252/Latin-1 (judged from its first 64 KiB),
// and separate fields with ',', ';' or TAB (detected from the header line).
// With ';' or TAB, amounts may use a decimal comma. The header is matched
// case-insensitively, ignoring surrounding spaces and accents, in any column
// order; extra columns are ignored. Blank lines, including lines whose
// fields are all blank such as ";;", are skipped and not counted.
//
// Rows are rejected with ReasonMalformedRow (CSV syntax error, wrong number
// of fields, invalid UTF-8 or NUL bytes), ReasonFieldTooLong, ReasonMissingID
// or ReasonInvalidAmount, in that order of precedence. Duplicate ids are not
// detected here. Record.Error is left empty.
//
// Read returns a *FileError when the file has no usable header or no data
// row, the callback's error (unwrapped) when a callback fails, or an I/O
// error wrapped with context. The Stats are valid even on error and count
// the rows delivered so far.
func Read(r io.Reader, opts ReaderOptions, onRecord func(Record) error, onRejected func(Rejected) error) (Stats, error) {
	opts = opts.withDefaults()
	var stats Stats

	in, enc, err := sniffEncoding(r)
	if err != nil {
		return stats, err
	}
	stats.Encoding = enc

	// Find the header line to choose the delimiter.
	hb := bufio.NewReaderSize(in, sniffSize)
	head, err := hb.Peek(sniffSize)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, bufio.ErrBufferFull) {
		return stats, fmt.Errorf("read csv header: %w", err)
	}
	headerText, ok := firstLine(head, len(head) < sniffSize)
	if !ok {
		return stats, &FileError{Reason: FileNoHeader, Expected: expectedColumns, Found: "no header line in the first 64 KiB"}
	}
	delim, ferr := detectDelimiter(headerText)
	if ferr != nil {
		return stats, ferr
	}
	stats.Delimiter = delim

	guard := &guardReader{r: hb, limit: int64(opts.MaxRecordBytes)}
	cr := csv.NewReader(guard)
	cr.Comma = delim
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true

	// The header record, as the CSV reader sees it (quotes resolved).
	var header []string
	for {
		rec, err := cr.Read()
		if err != nil {
			if errors.Is(err, errRecordTooLarge) {
				return stats, recordTooLarge(0, opts.MaxRecordBytes)
			}
			var pe *csv.ParseError
			if errors.As(err, &pe) || errors.Is(err, io.EOF) {
				return stats, &FileError{Reason: FileNoHeader, Expected: expectedColumns, Found: quoteSample(headerText)}
			}
			return stats, fmt.Errorf("read csv header: %w", err)
		}
		if !isBlank(rec) {
			header = rec
			break
		}
	}
	line, _ := cr.FieldPos(0)
	stats.HeaderLine = int64(line)
	cols, ok := mapHeader(header)
	if !ok {
		return stats, &FileError{Reason: FileNoHeader, Expected: expectedColumns, Found: quoteSample(headerText), Line: stats.HeaderLine}
	}

	src := &rowSource{cr: cr, guard: guard, cols: cols, ncols: len(header), maxRecord: opts.MaxRecordBytes}
	emit := func(m metaCell, id, wording string, amount amountCell) error {
		return deliver(&stats, opts, m, id, wording, amount, onRecord, onRejected)
	}
	if delim == ',' {
		err = decode[dotAmount](src, emit)
	} else {
		err = decode[commaAmount](src, emit)
	}
	if err != nil {
		return stats, err
	}
	if stats.Records == 0 {
		return stats, &FileError{Reason: FileHeaderOnly, Expected: "at least one data row after the header", Found: "no data row", Line: stats.HeaderLine}
	}
	return stats, nil
}

// decode runs gocsv over src in a goroutine, receiving the decoded rows on a
// buffered channel and handing them to emit in order. When emit fails, src
// is told to stop and the channel is drained so that the goroutine ends.
func decode[A any, PA amountField[A]](src *rowSource, emit func(metaCell, string, string, amountCell) error) error {
	rows := make(chan csvRow[A, PA], 1024)
	done := make(chan error, 1)
	go func() {
		done <- gocsv.UnmarshalDecoderToChan(gocsv.NewSimpleDecoderFromCSVReader(src), rows)
	}()
	defer func() {
		// Also runs when a callback panics: never leave the goroutine blocked.
		src.stop.Store(true)
		for range rows {
		}
	}()
	var cbErr error
	for row := range rows {
		if cbErr != nil {
			continue
		}
		if err := emit(row.Meta, row.ID, row.Wording, PA(&row.Amount).cell()); err != nil {
			cbErr = err
			src.stop.Store(true)
		}
	}
	err := <-done
	switch {
	case cbErr != nil:
		return cbErr
	case err == nil:
		return nil
	}
	var fe *FileError
	if errors.As(err, &fe) {
		return fe
	}
	return fmt.Errorf("read csv: %w", err)
}

// deliver classifies one decoded row and calls the matching callback.
func deliver(stats *Stats, opts ReaderOptions, m metaCell, id, wording string, amount amountCell,
	onRecord func(Record) error, onRejected func(Rejected) error) error {
	rej := Rejected{Line: m.line, ID: id, Amount: amount.raw, Wording: wording}
	trimmed := strings.TrimSpace(id)
	switch {
	case m.malformed:
		rej.Reason, rej.Detail = ReasonMalformedRow, m.detail
	case len(id) > opts.MaxFieldBytes:
		rej.Reason, rej.Detail = ReasonFieldTooLong, fmt.Sprintf("id is %d bytes long, limit %d", len(id), opts.MaxFieldBytes)
	case len(wording) > opts.MaxFieldBytes:
		rej.Reason, rej.Detail = ReasonFieldTooLong, fmt.Sprintf("wording is %d bytes long, limit %d", len(wording), opts.MaxFieldBytes)
	case trimmed == "":
		rej.Reason, rej.Detail = ReasonMissingID, "id is empty"
	case amount.err != nil:
		rej.Reason, rej.Detail = ReasonInvalidAmount, amount.err.Error()
	default:
		stats.Records++
		stats.Accepted++
		return onRecord(Record{Line: m.line, ID: trimmed, Amount: amount.value, RawAmount: amount.raw, Wording: wording})
	}
	stats.Records++
	stats.Rejected++
	return onRejected(rej)
}

// csvRow is what gocsv decodes each row into. The columns are the ones
// rowSource produces (rowHeader), not the file's own. A is the amount field
// type, which decides whether a decimal comma is allowed.
//
// csvRow implements gocsv.TypeUnmarshalCSVWithFields and hands each column
// to its field's UnmarshalCSV itself: gocsv then skips its reflection-based
// field setting, which boxes every field of every row and would double the
// cost of a read.
type csvRow[A any, PA amountField[A]] struct {
	Meta    metaCell `csv:"meta"`
	ID      string   `csv:"id"`
	Amount  A        `csv:"amount"`
	Wording string   `csv:"wording"`
}

// UnmarshalCSVWithFields sets the column named key. It never fails, so
// that gocsv never aborts the stream.
func (r *csvRow[A, PA]) UnmarshalCSVWithFields(key, value string) error {
	switch key {
	case "meta":
		return r.Meta.UnmarshalCSV(value)
	case "id":
		r.ID = value
	case "amount":
		return PA(&r.Amount).UnmarshalCSV(value)
	case "wording":
		r.Wording = value
	}
	return nil
}

// rowHeader is the header rowSource hands to gocsv.
var rowHeader = []string{"meta", "id", "amount", "wording"}

// metaCell carries the physical line of a row and, for a malformed row, why
// it is malformed. rowSource encodes it as "line" or "line|detail".
type metaCell struct {
	line      int64
	malformed bool
	detail    string
}

// UnmarshalCSV never fails, so that gocsv never aborts the stream.
func (m *metaCell) UnmarshalCSV(s string) error {
	num, detail, malformed := strings.Cut(s, "|")
	m.line, _ = strconv.ParseInt(num, 10, 64)
	m.malformed, m.detail = malformed, detail
	return nil
}

// amountCell holds a parsed amount or the reason it could not be parsed:
// a bad amount rejects its row instead of aborting the stream.
type amountCell struct {
	raw   string
	value decimal.Decimal
	err   error
}

func (c *amountCell) cell() amountCell { return *c }

func (c *amountCell) parse(s string, decimalComma bool) {
	c.raw = s
	c.value, c.err = ParseAmount(s, decimalComma)
}

// amountField is satisfied by *dotAmount and *commaAmount.
type amountField[A any] interface {
	*A
	gocsv.TypeUnmarshaller
	cell() amountCell
}

// dotAmount is an amount in a comma-separated file: dot decimals only.
type dotAmount struct{ amountCell }

// UnmarshalCSV never fails; see amountCell.
func (a *dotAmount) UnmarshalCSV(s string) error { a.parse(s, false); return nil }

// commaAmount is an amount in a ';' or TAB separated file: a decimal comma
// is allowed.
type commaAmount struct{ amountCell }

// UnmarshalCSV never fails; see amountCell.
func (a *commaAmount) UnmarshalCSV(s string) error { a.parse(s, true); return nil }

// rowSource is the gocsv.CSVReader given to gocsv. It reads the file with
// its own csv.Reader and hands gocsv a fixed header (rowHeader), then one
// projected row per data record: the record's physical line and problems
// (meta), followed by its id, amount and wording. CSV syntax errors, wrong
// field counts and invalid text thereby become malformed rows instead of
// aborting the stream, and blank lines are skipped.
type rowSource struct {
	cr         *csv.Reader
	guard      *guardReader
	cols       [3]int // file column of id, amount, wording
	ncols      int    // number of header columns
	maxRecord  int
	lastLine   int64 // line of the last record read, for error messages
	headerSent bool
	out        [4]string
	stop       atomic.Bool
}

// Read implements gocsv.CSVReader. gocsv is done with a row before asking
// for the next one, so the returned slice is reused.
func (s *rowSource) Read() ([]string, error) {
	if !s.headerSent {
		s.headerSent = true
		return rowHeader, nil
	}
	for {
		if s.stop.Load() {
			return nil, errStopped
		}
		s.guard.reset()
		rec, err := s.cr.Read()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil, io.EOF
			}
			var pe *csv.ParseError
			if errors.As(err, &pe) && !errors.Is(err, errRecordTooLarge) {
				return s.malformed(int64(pe.StartLine), rec, "csv syntax error: "+pe.Err.Error()), nil
			}
			if errors.Is(err, errRecordTooLarge) {
				return nil, recordTooLarge(s.lastLine, s.maxRecord)
			}
			return nil, err
		}
		if isBlank(rec) {
			continue
		}
		l, _ := s.cr.FieldPos(0)
		line := int64(l)
		s.lastLine = line
		if len(rec) != s.ncols {
			return s.malformed(line, rec, fmt.Sprintf("expected %d fields, found %d", s.ncols, len(rec))), nil
		}
		s.project(rec)
		for _, f := range s.out[1:] {
			if !utf8.ValidString(f) {
				return s.malformed(line, rec, "invalid UTF-8 text"), nil
			}
			if strings.IndexByte(f, 0) >= 0 {
				return s.malformed(line, rec, "NUL byte in field"), nil
			}
		}
		s.out[0] = strconv.FormatInt(line, 10)
		return s.out[:], nil
	}
}

// ReadAll implements gocsv.CSVReader; gocsv's streaming functions never call it.
func (s *rowSource) ReadAll() ([][]string, error) {
	return nil, errors.New("read all: not supported by the streaming reader")
}

// project copies the id, amount and wording of rec (when present) into s.out.
func (s *rowSource) project(rec []string) {
	for i, c := range s.cols {
		s.out[i+1] = ""
		if c < len(rec) {
			s.out[i+1] = rec[c]
		}
	}
}

// malformed produces a malformed row; its raw values are made valid UTF-8
// without NUL bytes so that they can be stored as text.
func (s *rowSource) malformed(line int64, rec []string, detail string) []string {
	s.project(rec)
	for i := 1; i < len(s.out); i++ {
		s.out[i] = strings.ReplaceAll(strings.ToValidUTF8(s.out[i], "\uFFFD"), "\x00", "")
	}
	s.out[0] = strconv.FormatInt(line, 10) + "|" + detail
	return s.out[:]
}

// recordTooLarge reports a record exceeding the limit after the record
// starting on line after (0 when it follows the header or is the header).
func recordTooLarge(after int64, limit int) *FileError {
	found := "a longer record (unterminated quote?)"
	if after > 0 {
		found = fmt.Sprintf("a longer record after line %d (unterminated quote?)", after)
	}
	return &FileError{
		Reason:   FileRecordTooLarge,
		Expected: fmt.Sprintf("records of at most %d bytes", limit),
		Found:    found,
		Line:     after,
	}
}

// guardReader fails once more than limit bytes have been read since the
// last reset, which rowSource does before each record: csv.Reader would
// otherwise buffer an unterminated quoted field up to the end of the file.
type guardReader struct {
	r     io.Reader
	limit int64
	n     int64
	err   error
}

func (g *guardReader) reset() { g.n = 0 }

func (g *guardReader) Read(p []byte) (int, error) {
	if g.err != nil {
		return 0, g.err
	}
	remaining := g.limit - g.n
	if remaining <= 0 {
		g.err = errRecordTooLarge
		return 0, g.err
	}
	if int64(len(p)) > remaining {
		p = p[:remaining]
	}
	n, err := g.r.Read(p)
	g.n += int64(n)
	return n, err
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

// sniffEncoding examines the start of the file: it drops a UTF-8 byte order
// mark, refuses empty, binary, HTML and UTF-16 files and returns a reader of
// UTF-8 text, converting from Windows-1252 when the start of the file is not
// valid UTF-8.
func sniffEncoding(r io.Reader) (io.Reader, string, error) {
	br := bufio.NewReaderSize(r, sniffSize)
	sniff, err := br.Peek(sniffSize)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, bufio.ErrBufferFull) {
		return nil, "", fmt.Errorf("read csv: %w", err)
	}
	atEOF := len(sniff) < sniffSize
	if bytes.HasPrefix(sniff, []byte("\xef\xbb\xbf")) {
		_, _ = br.Discard(3)
		sniff = sniff[3:]
	} else if bytes.HasPrefix(sniff, []byte("\xff\xfe")) || bytes.HasPrefix(sniff, []byte("\xfe\xff")) {
		return nil, "", &FileError{Reason: FileUnsupportedText, Expected: "UTF-8 or Windows-1252 text", Found: "UTF-16 text"}
	}
	trimmed := bytes.TrimSpace(sniff)
	if len(trimmed) == 0 && atEOF {
		return nil, "", &FileError{Reason: FileEmpty, Expected: "a header line and data rows", Found: "no text"}
	}
	if i := bytes.IndexByte(sniff, 0); i >= 0 {
		return nil, "", &FileError{Reason: FileBinary, Expected: "CSV text", Found: fmt.Sprintf("a NUL byte at offset %d", i)}
	}
	if controls := countControls(sniff); controls*10 > len(sniff) {
		return nil, "", &FileError{Reason: FileBinary, Expected: "CSV text", Found: fmt.Sprintf("%d control bytes in the first %d", controls, len(sniff))}
	}
	if len(trimmed) > 0 && trimmed[0] == '<' {
		first, _ := firstLine(trimmed, true)
		return nil, "", &FileError{Reason: FileHTML, Expected: "CSV text", Found: quoteSample(first)}
	}
	if !atEOF {
		sniff = dropIncompleteRune(sniff)
	}
	if utf8.Valid(sniff) {
		return br, EncodingUTF8, nil
	}
	return charmap.Windows1252.NewDecoder().Reader(br), EncodingWindows1252, nil
}

// countControls counts the bytes below 0x20 other than TAB, LF, CR and FF.
func countControls(b []byte) int {
	n := 0
	for _, c := range b {
		if c < 0x20 && c != '\t' && c != '\n' && c != '\r' && c != '\f' {
			n++
		}
	}
	return n
}

// dropIncompleteRune removes a UTF-8 sequence cut by the end of the buffer.
func dropIncompleteRune(b []byte) []byte {
	for i := 1; i <= utf8.UTFMax && i <= len(b); i++ {
		c := b[len(b)-i]
		if c < 0x80 {
			return b
		}
		if utf8.RuneStart(c) {
			if !utf8.FullRune(b[len(b)-i:]) {
				return b[:len(b)-i]
			}
			return b
		}
	}
	return b
}

// firstLine returns the first non-blank line of b without its line end. A
// last line without a line end counts only when complete is true.
func firstLine(b []byte, complete bool) (string, bool) {
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			if !complete {
				return "", false
			}
			i = len(b)
		}
		line := bytes.TrimRight(b[:i], "\r")
		if len(bytes.TrimSpace(line)) > 0 {
			return string(line), true
		}
		if i == len(b) {
			break
		}
		b = b[i+1:]
	}
	return "", false
}

// detectDelimiter picks, among ',', ';' and TAB, the delimiter with which the
// header line has all the required columns; the most frequent wins ties.
func detectDelimiter(header string) (rune, *FileError) {
	cands := []rune{';', '\t', ','}
	count := func(d rune) int { return strings.Count(header, string(d)) }
	// Stable insertion sort by descending count.
	for i := 1; i < len(cands); i++ {
		for j := i; j > 0 && count(cands[j]) > count(cands[j-1]); j-- {
			cands[j], cands[j-1] = cands[j-1], cands[j]
		}
	}
	for _, d := range cands {
		cr := csv.NewReader(strings.NewReader(header))
		cr.Comma = d
		cr.FieldsPerRecord = -1
		cr.LazyQuotes = true
		rec, err := cr.Read()
		if err != nil {
			continue
		}
		if _, ok := mapHeader(rec); ok {
			return d, nil
		}
	}
	return 0, &FileError{Reason: FileNoHeader, Expected: expectedColumns, Found: quoteSample(header)}
}

// headerAliases maps folded header names to the index of the column in
// rowSource.cols: 0 id, 1 amount, 2 wording.
var headerAliases = map[string]int{
	"id":      0,
	"amount":  1,
	"montant": 1,
	"wording": 2,
	"label":   2,
	"libelle": 2,
}

// mapHeader finds the id, amount and wording columns. It fails when one is
// missing or appears twice (for example both amount and montant).
func mapHeader(header []string) ([3]int, bool) {
	cols := [3]int{-1, -1, -1}
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
