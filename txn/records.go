package txn

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
)

// Syntax problems reported in rawRecord.syntax; the texts are encoding/csv's.
var (
	syntaxBareQuote = "csv syntax error: " + csv.ErrBareQuote.Error()
	syntaxQuote     = "csv syntax error: " + csv.ErrQuote.Error()
)

// scanner splits the input into physical lines and CSV records (RFC 4180,
// with encoding/csv's rules: a field starting with a quote is quoted, may
// contain delimiters, doubled quotes and line ends; a quote elsewhere is an
// error; CRLF is read as LF), keeping the physical line numbers right.
//
// Unlike encoding/csv it never lets a broken quote swallow the rest of the
// file. A record with a syntax error is reduced to its first physical line,
// which is rejected, and reading resumes at the next line: the lines read
// after the first one are read again. In particular a quoted field that is
// still open at the end of the file, or when its record exceeds the size
// limit, is an unterminated quote: its first line is rejected and the lines
// after it are read as records again. A quoted field that closes on a later
// line but is followed by anything but a delimiter or a line end is also
// the sign of a missing quote, and handled the same way. The size limit
// bounds both the memory and the work of reading lines again.
type scanner struct {
	br     *bufio.Reader
	replay []byte // bytes to read again, before br, after a broken record
	limit  int    // most bytes of a record (ReaderOptions.MaxRecordBytes)
	delim  byte
	line   int64 // physical lines consumed

	raw      []byte // the current record's bytes as read, line ends included
	firstEnd int    // end in raw of the record's first line
	partial  bool   // the last line in raw was cut at the limit: its rest is unread
	fbuf     []byte // the current record's fields, unquoted, one after the other
	ends     []int  // end in fbuf of each field
}

// rawRecord describes the record the scanner just read; its fields are in
// scanner.fbuf and scanner.ends and its bytes in scanner.bytes().
type rawRecord struct {
	line   int64  // first physical line
	lines  int64  // physical lines spanned
	syntax string // why the record is malformed, "" when it is not
}

func newScanner(br *bufio.Reader, limit int) *scanner {
	return &scanner{br: br, limit: limit}
}

// chunk returns the input up to and including the next line end, first from
// replay then from br. bufio.ErrBufferFull means the line goes on.
func (s *scanner) chunk() ([]byte, error) {
	if len(s.replay) > 0 {
		if i := bytes.IndexByte(s.replay, '\n'); i >= 0 {
			c := s.replay[:i+1]
			s.replay = s.replay[i+1:]
			return c, nil
		}
		c := s.replay
		s.replay = nil
		return c, bufio.ErrBufferFull
	}
	return s.br.ReadSlice('\n')
}

// appendLine appends the next physical line, line end included, to s.raw
// and counts it. Once s.raw holds more than s.limit bytes it stops, leaves
// the rest of the line unread and sets s.partial; the line is then counted
// by skipRest or when it is read again. At the end of the input it returns
// io.EOF, having appended nothing.
func (s *scanner) appendLine() error {
	start := len(s.raw)
	for {
		c, err := s.chunk()
		s.raw = append(s.raw, c...)
		switch {
		case err == nil:
			s.line++
			return nil
		case errors.Is(err, bufio.ErrBufferFull):
			if len(s.raw) > s.limit {
				s.partial = true
				return nil
			}
		case errors.Is(err, io.EOF):
			if len(s.raw) > start {
				s.line++
				return nil
			}
			return io.EOF
		default:
			return err
		}
	}
}

// skipRest discards the unread rest of a line cut by appendLine, and counts
// the line.
func (s *scanner) skipRest() error {
	s.partial = false
	for {
		_, err := s.chunk()
		switch {
		case err == nil || errors.Is(err, io.EOF):
			s.line++
			return nil
		case !errors.Is(err, bufio.ErrBufferFull):
			return err
		}
	}
}

// physicalLine reads the next physical line alone (no quoted field spans
// lines), for the lines up to the header. It returns the line's bytes, its
// line end included, and whether it is whole: a line longer than the limit
// is cut, and the rest of it skipped.
func (s *scanner) physicalLine() ([]byte, bool, error) {
	s.raw, s.partial = s.raw[:0], false
	if err := s.appendLine(); err != nil {
		return nil, false, err
	}
	whole := len(s.raw) <= s.limit
	if s.partial {
		if err := s.skipRest(); err != nil {
			return nil, false, err
		}
	}
	return s.raw, whole, nil
}

// bytes returns the bytes of the record just read (only its first line when
// it is malformed and read again from the next line).
func (s *scanner) bytes() []byte { return s.raw[:s.firstEnd] }

// next reads the next record. It returns io.EOF at the end of the input.
func (s *scanner) next() (rawRecord, error) {
	s.raw, s.fbuf, s.ends, s.partial = s.raw[:0], s.fbuf[:0], s.ends[:0], false
	rec := rawRecord{line: s.line + 1, lines: 1}
	if err := s.appendLine(); err != nil {
		return rec, err
	}
	s.firstEnd = len(s.raw)
	if len(s.raw) > s.limit {
		// A single line too long to be a record: rejected, the rest of it skipped.
		if s.partial {
			if err := s.skipRest(); err != nil {
				return rec, err
			}
			s.raw = dropIncompleteRune(s.raw)
			s.firstEnd = len(s.raw)
		}
		s.fbuf, s.ends = splitLazy(trimLineEnd(s.raw), s.delim, s.fbuf, s.ends)
		rec.syntax = fmt.Sprintf("line longer than %d bytes", s.limit)
		return rec, nil
	}
	syntax, err := s.parse()
	if err != nil {
		return rec, err
	}
	if syntax != "" {
		// Keep the first line only; read the following ones again.
		if len(s.raw) > s.firstEnd {
			replay := make([]byte, 0, len(s.raw)-s.firstEnd+len(s.replay))
			replay = append(replay, s.raw[s.firstEnd:]...)
			s.replay = append(replay, s.replay...)
		}
		s.line, s.partial = rec.line, false
		s.fbuf, s.ends = splitLazy(trimLineEnd(s.raw[:s.firstEnd]), s.delim, s.fbuf[:0], s.ends[:0])
		rec.syntax = syntax
		return rec, nil
	}
	s.firstEnd = len(s.raw)
	rec.lines = s.line - rec.line + 1
	return rec, nil
}

// parse splits the record whose first line is in s.raw into fields,
// appending the following lines while a quoted field is open. It returns
// the syntax problem of a malformed record, or an I/O error.
func (s *scanner) parse() (string, error) {
	d := s.delim
	line, nl := lineContent(s.raw)
field:
	for {
		if len(line) == 0 || line[0] != '"' {
			// Unquoted field.
			i := bytes.IndexByte(line, d)
			f := line
			if i >= 0 {
				f = line[:i]
			}
			if bytes.IndexByte(f, '"') >= 0 {
				return syntaxBareQuote, nil
			}
			s.fbuf = append(s.fbuf, f...)
			s.ends = append(s.ends, len(s.fbuf))
			if i < 0 {
				return "", nil
			}
			line = line[i+1:]
			continue
		}
		// Quoted field.
		line = line[1:]
		for {
			i := bytes.IndexByte(line, '"')
			if i < 0 {
				s.fbuf = append(s.fbuf, line...)
				if !nl {
					return syntaxQuote, nil // open at the end of the input
				}
				s.fbuf = append(s.fbuf, '\n')
				start := len(s.raw)
				if err := s.appendLine(); err != nil {
					if errors.Is(err, io.EOF) {
						return syntaxQuote, nil // open at the end of the input
					}
					return "", err
				}
				if len(s.raw) > s.limit {
					return syntaxQuote, nil // open past the size limit
				}
				line, nl = lineContent(s.raw[start:])
				continue
			}
			s.fbuf = append(s.fbuf, line[:i]...)
			line = line[i+1:]
			switch {
			case len(line) > 0 && line[0] == '"':
				s.fbuf = append(s.fbuf, '"')
				line = line[1:]
			case len(line) > 0 && line[0] == d:
				s.ends = append(s.ends, len(s.fbuf))
				line = line[1:]
				continue field
			case len(line) == 0:
				s.ends = append(s.ends, len(s.fbuf))
				return "", nil
			default:
				return syntaxQuote, nil
			}
		}
	}
}

// lineContent returns a line without its line end (LF, CRLF, or a lone CR
// at the end of the input, as encoding/csv) and whether it had an LF.
func lineContent(b []byte) ([]byte, bool) {
	nl := len(b) > 0 && b[len(b)-1] == '\n'
	return trimLineEnd(b), nl
}

// trimLineEnd removes a trailing LF, CRLF or CR.
func trimLineEnd(b []byte) []byte {
	if len(b) > 0 && b[len(b)-1] == '\n' {
		b = b[:len(b)-1]
	}
	if len(b) > 0 && b[len(b)-1] == '\r' {
		b = b[:len(b)-1]
	}
	return b
}

// splitLazy splits one line into fields leniently, for a header candidate
// or the raw values of a malformed row: quotes are resolved where they are
// well placed and kept as they are elsewhere, and a quoted field still open
// ends with the line. The fields are appended to buf, their ends to ends.
func splitLazy(line []byte, d byte, buf []byte, ends []int) ([]byte, []int) {
field:
	for {
		if len(line) == 0 || line[0] != '"' {
			i := bytes.IndexByte(line, d)
			if i < 0 {
				buf = append(buf, line...)
				return buf, append(ends, len(buf))
			}
			buf = append(buf, line[:i]...)
			ends = append(ends, len(buf))
			line = line[i+1:]
			continue
		}
		line = line[1:]
		for {
			i := bytes.IndexByte(line, '"')
			if i < 0 {
				buf = append(buf, line...)
				return buf, append(ends, len(buf))
			}
			buf = append(buf, line[:i]...)
			line = line[i+1:]
			switch {
			case len(line) == 0:
				return buf, append(ends, len(buf))
			case line[0] == '"':
				buf = append(buf, '"')
				line = line[1:]
			case line[0] == d:
				ends = append(ends, len(buf))
				line = line[1:]
				continue field
			default:
				buf = append(buf, '"')
			}
		}
	}
}

// lineCounter counts the physical lines of everything read through it,
// independently of the scanner, for the line accounting check.
type lineCounter struct {
	r        io.Reader
	newlines int64
	n        int64
	last     byte
}

func (c *lineCounter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if n > 0 {
		c.newlines += int64(bytes.Count(p[:n], []byte{'\n'}))
		c.n += int64(n)
		c.last = p[n-1]
	}
	return n, err
}

// lines is the number of physical lines read: a last line without a line
// end counts.
func (c *lineCounter) lines() int64 {
	if c.n > 0 && c.last != '\n' {
		return c.newlines + 1
	}
	return c.newlines
}
