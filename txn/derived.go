package txn

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"strconv"
	"strings"
	"time"

	"github.com/shopspring/decimal"
)

// idDeriver gives ids to the rows of a file that has none.
//
// A derived id is "<h>-<n>": h is the first 16 hex digits (8 bytes) of the
// SHA-256 of the row's account, date (yyyy-mm-dd, "" without a date
// column), amount (two decimals) and trimmed wording, and n is the
// occurrence of that h among the rows of the file so far (1, 2, ...). Two
// identical coffees on one day are thus two transactions ("<h>-1",
// "<h>-2"), and importing again an export that overlaps one already
// imported gives its rows the same ids, so nothing is added twice: the same
// export of the same bank always lists the rows of one day in full.
//
// The one case derived ids cannot tell apart: two identical rows (same
// account, day, amount and wording) of which two overlapping exports hold a
// different number, because one export starts or ends in the middle of that
// day. The export with one of them gives "<h>-1", the other "<h>-1" and
// "<h>-2": which of the two was imported first cannot be known.
//
// Memory: one map entry per distinct h of the file, an 8-byte key and a
// 4-byte count, about 40 bytes with the map's overhead, i.e. about 40 MB for
// a million distinct rows; nothing else grows with the file.
type idDeriver struct {
	counts map[uint64]uint32
	buf    []byte
}

// derive returns the id of a row.
func (d *idDeriver) derive(account string, date time.Time, amount decimal.Decimal, wording string) string {
	if d.counts == nil {
		d.counts = make(map[uint64]uint32)
	}
	b := d.buf[:0]
	b = append(b, account...)
	b = append(b, 0x1f)
	if !date.IsZero() {
		b = date.AppendFormat(b, time.DateOnly)
	}
	b = append(b, 0x1f)
	b = append(b, amount.StringFixed(2)...)
	b = append(b, 0x1f)
	b = append(b, strings.TrimSpace(wording)...)
	d.buf = b
	sum := sha256.Sum256(b)
	key := binary.BigEndian.Uint64(sum[:8])
	d.counts[key]++
	var out [16 + 1 + 10]byte
	hex.Encode(out[:16], sum[:8])
	out[16] = '-'
	return string(strconv.AppendUint(out[:17], uint64(d.counts[key]), 10))
}
