package txn

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/encoding/charmap"
)

// Encodings reported in Stats.Encoding.
const (
	EncodingUTF8        = "utf-8"
	EncodingWindows1252 = "windows-1252"
)

// sniffSize is how much of the start of the file is examined to refuse
// empty, binary, HTML and UTF-16 content. It is also the size of the read
// buffer.
const sniffSize = 64 << 10

// sniff examines the start of the file: it drops a UTF-8 byte order mark
// (which decides the encoding) and refuses empty, binary, HTML and UTF-16
// files. It does not judge the encoding otherwise: see textCodec.
func sniff(br *bufio.Reader, codec *textCodec) error {
	head, err := br.Peek(sniffSize)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, bufio.ErrBufferFull) {
		return fmt.Errorf("read csv: %w", err)
	}
	atEOF := len(head) < sniffSize
	if bytes.HasPrefix(head, []byte("\xef\xbb\xbf")) {
		_, _ = br.Discard(3)
		head = head[3:]
		codec.enc = EncodingUTF8
	} else if bytes.HasPrefix(head, []byte("\xff\xfe")) || bytes.HasPrefix(head, []byte("\xfe\xff")) {
		return &FileError{Reason: FileUnsupportedText, Expected: "UTF-8 or Windows-1252 text", Found: "UTF-16 text"}
	}
	trimmed := bytes.TrimSpace(head)
	if len(trimmed) == 0 && atEOF {
		return &FileError{Reason: FileEmpty, Expected: "a header line and data rows", Found: "no text"}
	}
	if i := bytes.IndexByte(head, 0); i >= 0 {
		return &FileError{Reason: FileBinary, Expected: "CSV text", Found: fmt.Sprintf("a NUL byte at offset %d", i)}
	}
	if controls := countControls(head); controls*10 > len(head) {
		return &FileError{Reason: FileBinary, Expected: "CSV text", Found: fmt.Sprintf("%d control bytes in the first %d", controls, len(head))}
	}
	if len(trimmed) > 0 && trimmed[0] == '<' {
		first, _ := firstLine(trimmed)
		return &FileError{Reason: FileHTML, Expected: "CSV text", Found: quoteSample(first)}
	}
	return nil
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

// firstLine returns the first non-blank line of b without its line end.
func firstLine(b []byte) (string, bool) {
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
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

// textCodec judges and decodes the text of a file whose encoding is UTF-8
// or Windows-1252, while it streams.
//
// ASCII is the same in both encodings, so the decision waits for the first
// byte above 0x7F in the file, wherever it is (preamble, header or data):
// when it starts a valid UTF-8 multi-byte sequence the file is UTF-8,
// otherwise it is Windows-1252. A UTF-8 byte order mark decides UTF-8 at
// once. The decision is never revised: from then on a row whose bytes are
// not valid in the decided encoding is rejected with ReasonInvalidEncoding
// instead of being decoded another way. In a Windows-1252 file that means a
// byte Windows-1252 leaves undefined (0x81, 0x8D, 0x8F, 0x90, 0x9D) or a
// valid UTF-8 multi-byte sequence: such a row was written in UTF-8, and
// decoding it as Windows-1252 would store mojibake ("CAFÃ‰" for "CAFÉ").
type textCodec struct {
	enc string // "" until decided
}

// name is the encoding reported in Stats: UTF-8 while the file is ASCII.
func (c *textCodec) name() string {
	if c.enc == "" {
		return EncodingUTF8
	}
	return c.enc
}

// textMode says how the bytes of a row become strings.
type textMode int

const (
	textAsIs   textMode = iota // valid UTF-8 (ASCII included): used as is
	text1252                   // valid Windows-1252 with non-ASCII bytes: decoded
	textBroken                 // invalid in the decided encoding: made valid UTF-8 for the report
)

// check decides the encoding when raw holds the file's first non-ASCII
// byte, then reports how raw must be turned into text and, when raw is not
// valid in the decided encoding, why.
func (c *textCodec) check(raw []byte) (textMode, string) {
	i := firstNonASCII(raw)
	if i < 0 {
		return textAsIs, ""
	}
	if c.enc == "" {
		if _, size := utf8.DecodeRune(raw[i:]); size > 1 {
			c.enc = EncodingUTF8
		} else {
			c.enc = EncodingWindows1252
		}
	}
	if c.enc == EncodingUTF8 {
		if utf8.Valid(raw[i:]) {
			return textAsIs, ""
		}
		return textBroken, "invalid UTF-8 text"
	}
	for ; i < len(raw); i++ {
		b := raw[i]
		if b < 0x80 {
			continue
		}
		if charmap.Windows1252.DecodeByte(b) == utf8.RuneError {
			return textBroken, fmt.Sprintf("byte 0x%02X is not Windows-1252 text", b)
		}
		if _, size := utf8.DecodeRune(raw[i:]); size > 1 {
			return textBroken, "UTF-8 text in a Windows-1252 file"
		}
	}
	return text1252, ""
}

// text turns field bytes into a string according to mode.
func (m textMode) text(b []byte) string {
	switch m {
	case text1252:
		return decode1252(b)
	case textBroken:
		return strings.ToValidUTF8(string(b), "\uFFFD")
	}
	return string(b)
}

// decode1252 decodes Windows-1252 bytes to UTF-8.
func decode1252(b []byte) string {
	if firstNonASCII(b) < 0 {
		return string(b)
	}
	out := make([]byte, 0, len(b)+len(b)/2)
	for _, c := range b {
		if c < utf8.RuneSelf {
			out = append(out, c)
			continue
		}
		out = utf8.AppendRune(out, charmap.Windows1252.DecodeByte(c))
	}
	return string(out)
}

// firstNonASCII returns the index of the first byte of b above 0x7F, or -1.
func firstNonASCII(b []byte) int {
	i := 0
	for ; i+8 <= len(b); i += 8 {
		if binary.LittleEndian.Uint64(b[i:])&0x8080808080808080 != 0 {
			break
		}
	}
	for ; i < len(b); i++ {
		if b[i] >= utf8.RuneSelf {
			return i
		}
	}
	return -1
}

// dropIncompleteRune removes a UTF-8 sequence cut by the end of b, so that
// a line cut at the size limit is judged on whole characters.
func dropIncompleteRune(b []byte) []byte {
	for i := 1; i <= utf8.UTFMax && i <= len(b); i++ {
		c := b[len(b)-i]
		if c < utf8.RuneSelf {
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
