package postgres

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/big"

	"github.com/jackc/pgx/v5/pgtype"
	"github.com/shopspring/decimal"
)

// cents is an amount with two decimals, its value times 100, written to COPY in PostgreSQL's
// binary numeric format by hand. Through pgx's numeric codec, each decimal.Decimal went through a
// big.Int divided into base-10,000 digits: 1.4 s of the worker's CPU per 1,000,000 lines loaded,
// about a quarter of Ingest's. Only for COPY (binary format): see registerCents.
type cents int64

// maxCentsDigits is the most digits of a coefficient that cents holds (|value| < 10^18 fits an
// int64); longer amounts go through decimal.Decimal.
const maxCentsDigits = 18

// copyAmount returns what LoadBatch copies for the amount d: d with two decimals (scale2), as
// cents when its coefficient fits, as a decimal.Decimal otherwise.
func copyAmount(d decimal.Decimal) any {
	d = scale2(d)
	if d.Exponent() == -2 && d.NumDigits() <= maxCentsDigits {
		return cents(d.CoefficientInt64())
	}
	return d
}

// appendNumeric appends c / 100 in the binary format of numeric (numeric_send): the number of
// base-10,000 digits, the weight of the first (its power of 10,000), the sign (0x4000 negative),
// the display scale (2), then the digits, most significant first, without leading or trailing
// zero digits. Zero has no digit.
func (c cents) appendNumeric(buf []byte) []byte {
	u := uint64(c)
	sign := uint16(0)
	if c < 0 {
		u, sign = -u, 0x4000
	}
	var digits [6]uint16 // |c| < 10^18: up to 4 integer digits and one fractional
	n := len(digits) - 1
	digits[n] = uint16(u%100) * 100 // the two decimals: 10^-4 units
	weight := -1
	for x := u / 100; x > 0; x /= 10000 {
		n--
		digits[n] = uint16(x % 10000)
		weight++
	}
	ds := digits[n:]
	for len(ds) > 0 && ds[len(ds)-1] == 0 {
		ds = ds[:len(ds)-1]
	}
	if len(ds) == 0 {
		weight, sign = 0, 0
	}
	buf = binary.BigEndian.AppendUint16(buf, uint16(len(ds)))
	buf = binary.BigEndian.AppendUint16(buf, uint16(int16(weight)))
	buf = binary.BigEndian.AppendUint16(buf, sign)
	buf = binary.BigEndian.AppendUint16(buf, 2)
	for _, d := range ds {
		buf = binary.BigEndian.AppendUint16(buf, d)
	}
	return buf
}

// registerCents has m encode cents values with appendNumeric. pgx asks for a plan per value type
// and format; a cents value is only ever given to COPY, which uses the binary format.
func registerCents(m *pgtype.Map) {
	m.TryWrapEncodePlanFuncs = append([]pgtype.TryWrapEncodePlanFunc{tryWrapCents}, m.TryWrapEncodePlanFuncs...)
}

func tryWrapCents(value any) (pgtype.WrappedEncodePlanNextSetter, any, bool) {
	if _, ok := value.(cents); ok {
		// The next plan, which pgx requires, is never used: centsPlan writes the value itself.
		return centsPlan{}, int64(0), true
	}
	return nil, nil, false
}

type centsPlan struct{}

func (centsPlan) SetNext(pgtype.EncodePlan) {}

func (centsPlan) Encode(value any, buf []byte) ([]byte, error) {
	return value.(cents).appendNumeric(buf), nil
}

// readAmount decodes a numeric column as read (src, in format, a column of pgx.Rows.RawValues):
// the binary format by hand, as appendNumeric writes it, the text format with parseAmount.
// Through pgx's numeric codec each value went through a big.Int; computing cents in the query
// instead cost PostgreSQL twice the time of reading the column.
func readAmount(src []byte, format int16) (decimal.Decimal, error) {
	switch {
	case src == nil:
		return decimal.Decimal{}, errors.New("amount is NULL")
	case format == pgtype.TextFormatCode:
		return parseAmount(src)
	case len(src) < 8:
		return decimal.Decimal{}, fmt.Errorf("numeric of %d bytes", len(src))
	}
	n := int(binary.BigEndian.Uint16(src))
	weight := int(int16(binary.BigEndian.Uint16(src[2:])))
	sign := binary.BigEndian.Uint16(src[4:])
	if sign != 0 && sign != 0x4000 {
		return decimal.Decimal{}, fmt.Errorf("numeric is not a number (sign %#x)", sign)
	}
	if len(src) != 8+2*n {
		return decimal.Decimal{}, fmt.Errorf("numeric of %d bytes for %d digits", len(src), n)
	}
	// The value is the digits, base 10,000, as one integer, times 10,000^(weight - n + 1).
	exp := int32(4 * (weight - n + 1))
	if n <= 4 { // below 10,000^4 = 10^16: an int64
		var c int64
		for i := range n {
			c = c*10000 + int64(binary.BigEndian.Uint16(src[8+2*i:]))
		}
		if sign != 0 {
			c = -c
		}
		return decimal.New(c, exp), nil
	}
	c, base := new(big.Int), big.NewInt(10000)
	for i := range n {
		c.Mul(c, base).Add(c, big.NewInt(int64(binary.BigEndian.Uint16(src[8+2*i:]))))
	}
	if sign != 0 {
		c.Neg(c)
	}
	return decimal.NewFromBigInt(c, exp), nil
}
