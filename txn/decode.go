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

// Column names of the rows handed to gocsv; the amount's name says whether
// a decimal comma is allowed (';' and TAB separated files).
const (
	colID             = "id"
	colAmount         = "amount"
	colAmountDecComma = "amount_decimal_comma"
	colWording        = "wording"
)

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
// columns, then the id, amount and wording of each row, strings already
// read by the scanner and handed over as they are. gocsv decodes the whole
// batch into out with gocsv.UnmarshalDecoder, in the calling goroutine.
type batchDecoder struct {
	rows  [][]string // rows[0] is the header
	cells []string   // backing array of rows[1:], three cells per row
	meta  []rowMeta  // meta[i] goes with rows[i+1]
	out   []csvRow   // decoded rows, reused from batch to batch
	bytes int
}

func (d *batchDecoder) init(decimalComma bool) {
	amount := colAmount
	if decimalComma {
		amount = colAmountDecComma
	}
	d.rows = make([][]string, 1, batchRows+1)
	d.rows[0] = []string{colID, amount, colWording}
	d.cells = make([]string, 3*batchRows)
	d.meta = make([]rowMeta, 0, batchRows)
	d.out = make([]csvRow, batchRows)
}

// GetCSVRows implements gocsv.Decoder.
func (d *batchDecoder) GetCSVRows() ([][]string, error) { return d.rows, nil }

// add queues a row and reports whether the batch is full.
func (d *batchDecoder) add(m rowMeta, id, amount, wording string) bool {
	i := len(d.meta)
	c := d.cells[3*i : 3*i+3 : 3*i+3]
	c[0], c[1], c[2] = id, amount, wording
	d.rows = append(d.rows, c)
	d.meta = append(d.meta, m)
	d.bytes += len(id) + len(amount) + len(wording) + len(m.rawAmount)
	return len(d.meta) == batchRows || d.bytes >= batchBytes
}

// flush decodes the queued rows with gocsv and delivers them in order. It
// stops at the first error of deliver.
func (d *batchDecoder) flush(deliver func(rowMeta, *csvRow) error) error {
	n := len(d.meta)
	if n == 0 {
		return nil
	}
	if err := gocsv.UnmarshalDecoder(d, &d.out); err != nil {
		return fmt.Errorf("decode rows: %w", err)
	}
	for i := range n {
		if err := deliver(d.meta[i], &d.out[i]); err != nil {
			return err
		}
	}
	// Drop the references to this batch's text before reusing the arrays.
	clear(d.cells[:3*n])
	clear(d.meta)
	clear(d.out[:n])
	d.rows, d.meta, d.bytes = d.rows[:1], d.meta[:0], 0
	return nil
}
