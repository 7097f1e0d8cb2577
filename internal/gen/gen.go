// Package gen writes deterministic transaction files shaped like real bank exports, for the
// benchmark and for tests that need volume: about 1% zero amounts, 0.1% amounts too high,
// 40% of wordings with one tag word and 10% with two distinct ones.
package gen

import (
	"bufio"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
)

var (
	tagWords = []string{"TATA", "TOTO", "TUTU", "TAXI"}
	words    = []string{"CARD", "PAYMENT", "STORE", "PARIS", "LYON", "MARKET", "TRANSFER", "SEPA",
		"REFUND", "GROCERY", "RENT", "SALARY", "FUEL", "PHARMACY", "ONLINE", "BOOKS", "CINEMA",
		"RESTAURANT", "INSURANCE", "TELECOM", "WATER", "ENERGY", "HOTEL", "TRAIN", "PARKING"}
)

// Write writes a CSV file (header id,amount,wording) of n data rows with ids B1, B2, ... The
// same n and seed always give the same bytes.
func Write(w io.Writer, n int, seed uint64) error {
	return WriteIDs(w, n, seed, "B")
}

// WriteIDs is Write with ids made of prefix and the row number.
func WriteIDs(w io.Writer, n int, seed uint64, prefix string) error {
	r := rand.New(rand.NewPCG(seed, 0x7478666c6f77))
	bw := bufio.NewWriterSize(w, 1<<20)
	bw.WriteString("id,amount,wording\n")
	line := make([]byte, 0, 128)
	for i := 0; i < n; i++ {
		line = line[:0]
		line = append(line, prefix...)
		line = strconv.AppendInt(line, int64(i+1), 10)
		line = append(line, ',')
		line = appendAmount(line, r)
		line = append(line, ',')
		line = appendWording(line, r)
		line = append(line, '\n')
		if _, err := bw.Write(line); err != nil {
			return fmt.Errorf("write row %d: %w", i+1, err)
		}
	}
	return bw.Flush()
}

func appendAmount(b []byte, r *rand.Rand) []byte {
	p := r.IntN(10000)
	var cents int64
	switch {
	case p < 100: // 1%: zero
		return append(b, "0.00"...)
	case p < 110: // 0.1%: beyond the default limit of 1,000,000.00
		cents = 100_000_001 + r.Int64N(900_000_000)
	default:
		cents = 1 + r.Int64N(150_000) // up to 1,500.00
	}
	if r.IntN(2) == 0 {
		b = append(b, '-')
	}
	b = strconv.AppendInt(b, cents/100, 10)
	b = append(b, '.')
	c := cents % 100
	if c < 10 {
		b = append(b, '0')
	}
	return strconv.AppendInt(b, c, 10)
}

func appendWording(b []byte, r *rand.Rand) []byte {
	start := len(b)
	p := r.IntN(100)
	var tags []string
	switch {
	case p < 40:
		tags = []string{tagWords[r.IntN(4)]}
	case p < 50:
		i := r.IntN(4)
		j := (i + 1 + r.IntN(3)) % 4
		tags = []string{tagWords[i], tagWords[j]}
	}
	target := 20 + r.IntN(21) // 20 to 40 characters
	for len(b)-start < target || len(tags) > 0 {
		if len(b) > start {
			b = append(b, ' ')
		}
		if len(tags) > 0 && (r.IntN(2) == 0 || len(b)-start >= target-5) {
			b = append(b, tags[0]...)
			tags = tags[1:]
			continue
		}
		b = append(b, words[r.IntN(len(words))]...)
	}
	return b
}
