package txn

import (
	"fmt"

	"github.com/gocarina/gocsv"
	"github.com/shopspring/decimal"
)

// Batches handed to gocsv: at most batchRows rows, and no more rows once
// batchBytes of field text are held, so that memory stays bounded.
const (
	batchRows  = 512
	batchBytes = 1 << 20
)

// rowMeta is what Read knows about a row besides the fields gocsv decodes.
type rowMeta struct {
	line      int64  // first physical line
	lines     int64  // physical lines spanned
	reason    Reason // set when the row is rejected before decoding
	detail    string
	rawAmount string // the raw amount of a row rejected before decoding
	account   string // the account field as read ("" when the file has no account column)
	// trailer: the row may be a line after the data (see Read): its date
	// does not parse, and its shape differs from the header's or none of
	// its amounts parses.
	trailer bool
	// header: the row is the header of another block (see Read).
	header bool
}

// csvRow is what gocsv decodes each row into.
//
// csvRow implements gocsv.TypeUnmarshalCSVWithFields and sets each column
// itself: gocsv then skips its reflection-based field setting, which boxes
// every field of every row. It never fails, so that a bad amount rejects
// its row instead of aborting the file.
type csvRow struct {
	ID      string     `csv:"id"`
	Amount  amountCell `csv:"amount"`
	Wording string     `csv:"wording"`
}

// csvRowExt holds the date, debit, credit and direction of a row.
type csvRowExt struct {
	Date      string     `csv:"date"`
	Debit     amountCell `csv:"debit"`
	Credit    amountCell `csv:"credit"`
	Direction string     `csv:"direction"`
}

// csvRowWide is the row of the files with a date, debit, credit or
// direction column. The files with only an id, an amount and a wording are
// decoded into the smaller csvRow: gocsv allocates each row.
type csvRowWide struct {
	Base csvRow
	Ext  csvRowExt
}

// noExt is the ext of the rows of a csvRow batch; never written.
var noExt csvRowExt

func (r *csvRow) parts() (*csvRow, *csvRowExt)     { return r, &noExt }
func (r *csvRowWide) parts() (*csvRow, *csvRowExt) { return &r.Base, &r.Ext }

// UnmarshalCSVWithFields sets the column named key.
func (r *csvRowWide) UnmarshalCSVWithFields(key, value string) error {
	switch key {
	case colDate:
		r.Ext.Date = value
	case colDebit:
		r.Ext.Debit.parse(value, false)
	case colDebitDecComma:
		r.Ext.Debit.parse(value, true)
	case colCredit:
		r.Ext.Credit.parse(value, false)
	case colCreditDecComma:
		r.Ext.Credit.parse(value, true)
	case colDirection:
		r.Ext.Direction = value
	default:
		return r.Base.UnmarshalCSVWithFields(key, value)
	}
	return nil
}

// Column names of the rows handed to gocsv; the amount's name says whether
// a decimal comma is allowed (';' and TAB separated files).
const (
	colID             = "id"
	colAmount         = "amount"
	colAmountDecComma = "amount_decimal_comma"
	colWording        = "wording"
	colDate           = "date"
	colDebit          = "debit"
	colDebitDecComma  = "debit_decimal_comma"
	colCredit         = "credit"
	colCreditDecComma = "credit_decimal_comma"
	colDirection      = "direction"
)

// batchColumn returns the name of the column of a role in the rows handed
// to gocsv.
func batchColumn(role int, decimalComma bool) string {
	switch role {
	case colIndexID:
		return colID
	case colIndexAmount:
		if decimalComma {
			return colAmountDecComma
		}
		return colAmount
	case colIndexWording:
		return colWording
	case colIndexDate:
		return colDate
	case colIndexDebit:
		if decimalComma {
			return colDebitDecComma
		}
		return colDebit
	case colIndexCredit:
		if decimalComma {
			return colCreditDecComma
		}
		return colCredit
	case colIndexDirection:
		return colDirection
	}
	panic("txn: no batch column for role " + roleNames[role])
}

// UnmarshalCSVWithFields sets the column named key.
func (r *csvRow) UnmarshalCSVWithFields(key, value string) error {
	switch key {
	case colID:
		r.ID = value
	case colAmount:
		r.Amount.parse(value, false)
	case colAmountDecComma:
		r.Amount.parse(value, true)
	case colWording:
		r.Wording = value
	}
	return nil
}

// amountCell holds a parsed amount or the reason it could not be parsed.
type amountCell struct {
	raw   string
	value decimal.Decimal
	err   error
}

func (c *amountCell) parse(s string, decimalComma bool) {
	c.raw = s
	c.value, c.err = ParseAmount(s, decimalComma)
}

// batchDecoder is the gocsv.Decoder of a batch of rows: a header naming the
// columns, then the values of each row (the id, amount, wording, date,
// debit, credit and direction the file has, in that order), strings already
// read by the scanner and handed over as they are. gocsv decodes the whole
// batch into out with gocsv.UnmarshalDecoder, in the calling goroutine.
type batchDecoder[R any, P rowParts[R]] struct {
	rows  [][]string // rows[0] is the header
	cells []string   // backing array of rows[1:], width cells per row
	width int
	meta  []rowMeta // meta[i] goes with rows[i+1]
	out   []R       // decoded rows, reused from batch to batch
	bytes int
}

// rowParts is a pointer to a decoded row type (*csvRow or *csvRowWide).
type rowParts[R any] interface {
	*R
	parts() (*csvRow, *csvRowExt)
}

func newBatchDecoder[R any, P rowParts[R]](columns []string) *batchDecoder[R, P] {
	d := &batchDecoder[R, P]{}
	d.init(columns)
	return d
}

func (d *batchDecoder[R, P]) init(columns []string) {
	d.width = len(columns)
	d.rows = make([][]string, 1, batchRows+1)
	d.rows[0] = columns
	d.cells = make([]string, d.width*batchRows)
	d.meta = make([]rowMeta, 0, batchRows)
	d.out = make([]R, batchRows)
}

// GetCSVRows implements gocsv.Decoder.
func (d *batchDecoder[R, P]) GetCSVRows() ([][]string, error) { return d.rows, nil }

// add queues a row and reports whether the batch is full.
func (d *batchDecoder[R, P]) add(m rowMeta, vals []string) bool {
	i, w := len(d.meta), d.width
	c := d.cells[w*i : w*i+w : w*i+w]
	copy(c, vals)
	d.rows = append(d.rows, c)
	d.meta = append(d.meta, m)
	for _, v := range vals {
		d.bytes += len(v)
	}
	d.bytes += len(m.rawAmount)
	return len(d.meta) == batchRows || d.bytes >= batchBytes
}

// flush decodes the queued rows with gocsv and delivers them in order. It
// stops at the first error of deliver.
func (d *batchDecoder[R, P]) flush(deliver func(rowMeta, *csvRow, *csvRowExt) error) error {
	n := len(d.meta)
	if n == 0 {
		return nil
	}
	if err := gocsv.UnmarshalDecoder(d, &d.out); err != nil {
		return fmt.Errorf("decode rows: %w", err)
	}
	for i := range n {
		row, ext := P(&d.out[i]).parts()
		if err := deliver(d.meta[i], row, ext); err != nil {
			return err
		}
	}
	// Drop the references to this batch's text before reusing the arrays.
	clear(d.cells[:d.width*n])
	clear(d.meta)
	clear(d.out[:n])
	d.rows, d.meta, d.bytes = d.rows[:1], d.meta[:0], 0
	return nil
}
