// Package txn holds the transaction domain of txflow: the business rules
// (tagging, annotation, checks), amount parsing and the streaming reader for
// the bank's daily CSV file.
//
// The package performs no I/O beyond the io.Reader and io.Writer values it is
// given: it knows nothing about the database or the workflow engine.
package txn

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/shopspring/decimal"
)

// Reason is a machine-readable code explaining why a row was rejected or is
// in error. Its values are stored as-is, so they must never change.
type Reason string

// Reason codes.
const (
	// ReasonMissingID: the id field is empty or blank.
	ReasonMissingID Reason = "missing_id"
	// ReasonInvalidAmount: the amount field cannot be parsed (see ParseAmount).
	ReasonInvalidAmount Reason = "invalid_amount"
	// ReasonMalformedRow: CSV syntax error, wrong number of fields, a line
	// longer than ReaderOptions.MaxRecordBytes or a NUL byte.
	ReasonMalformedRow Reason = "malformed_row"
	// ReasonInvalidEncoding: the row's bytes are not valid text in the
	// encoding decided for the file (UTF-8 or Windows-1252).
	ReasonInvalidEncoding Reason = "invalid_encoding"
	// ReasonFieldTooLong: the id or the wording exceeds ReaderOptions.MaxFieldBytes.
	ReasonFieldTooLong Reason = "field_too_long"
	// ReasonInvalidAccount: the row's account field is not a valid account
	// (see ParseAccount), in a file with an account column.
	ReasonInvalidAccount Reason = "invalid_account"
	// ReasonInvalidDate: the date field is empty, is not a date, or is not
	// in the file's date format (see Read).
	ReasonInvalidDate Reason = "invalid_date"
	// ReasonDuplicateID: the same id appears twice in one file (detected by the store).
	ReasonDuplicateID Reason = "duplicate_id"
	// ReasonIDConflict: the id was already stored with different content
	// (detected by the store).
	ReasonIDConflict Reason = "id_conflict"
	// ReasonAmountTooHigh: the row is accepted but flagged in error because
	// the absolute amount exceeds Rules.AmountLimit (see Rules.Check).
	ReasonAmountTooHigh Reason = "amount_too_high"
)

// Annotation qualifies a transaction by the size and sign of its amount.
type Annotation string

// Annotations, from the largest credit to the smallest debit.
const (
	AnnotationLargeSale    Annotation = "LARGE SALE"
	AnnotationSale         Annotation = "SALE"
	AnnotationExpense      Annotation = "EXPENSE"
	AnnotationSmallExpense Annotation = "SMALL EXPENSE"
)

// maxStoredAmount is the largest absolute amount NUMERIC(18,2) can hold.
var maxStoredAmount = decimal.RequireFromString("9999999999999999.99")

// Rules are the business rules applied to every transaction. The zero value
// is not usable: start from DefaultRules. Rules is JSON-serialisable
// (decimals are encoded as strings).
type Rules struct {
	// TagWords are the words searched in the wording (case-sensitive substring).
	TagWords []string `json:"tag_words"`
	// LargeSaleAbove: an amount strictly greater is annotated LARGE SALE.
	LargeSaleAbove decimal.Decimal `json:"large_sale_above"`
	// ExpenseBelow: an amount strictly lower is annotated EXPENSE.
	ExpenseBelow decimal.Decimal `json:"expense_below"`
	// AmountLimit: an amount whose absolute value is strictly greater is in
	// error with ReasonAmountTooHigh.
	AmountLimit decimal.Decimal `json:"amount_limit"`
}

// DefaultRules returns the rules used when nothing is configured: tag words
// TATA, TOTO, TUTU and TAXI; LARGE SALE above 300; EXPENSE below -200;
// amounts limited to 1000000.00 in absolute value.
func DefaultRules() Rules {
	return Rules{
		TagWords:       []string{"TATA", "TOTO", "TUTU", "TAXI"},
		LargeSaleAbove: decimal.NewFromInt(300),
		ExpenseBelow:   decimal.NewFromInt(-200),
		AmountLimit:    decimal.New(100000000, -2),
	}
}

// Validate reports whether the rules are consistent. It returns an error when
// there is no tag word, when a tag word is empty, padded with spaces,
// repeated or contained in another tag word (the longer one could then never
// be the only match), when LargeSaleAbove < 0, ExpenseBelow > 0, AmountLimit
// <= 0, or when a threshold has more than two decimal digits or exceeds what
// NUMERIC(18,2) can store.
func (r Rules) Validate() error {
	if err := validateTagWords(r.TagWords); err != nil {
		return fmt.Errorf("validate rules: %w", err)
	}
	if r.LargeSaleAbove.IsNegative() {
		return fmt.Errorf("validate rules: large sale threshold %s is negative", r.LargeSaleAbove)
	}
	if r.ExpenseBelow.IsPositive() {
		return fmt.Errorf("validate rules: expense threshold %s is positive", r.ExpenseBelow)
	}
	if !r.AmountLimit.IsPositive() {
		return fmt.Errorf("validate rules: amount limit %s is not positive", r.AmountLimit)
	}
	for _, t := range []struct {
		name string
		v    decimal.Decimal
	}{{"large sale threshold", r.LargeSaleAbove}, {"expense threshold", r.ExpenseBelow}, {"amount limit", r.AmountLimit}} {
		if !t.v.Equal(t.v.Round(2)) {
			return fmt.Errorf("validate rules: %s %s has more than two decimal digits", t.name, t.v)
		}
		if t.v.Abs().GreaterThan(maxStoredAmount) {
			return fmt.Errorf("validate rules: %s %s exceeds %s", t.name, t.v, maxStoredAmount)
		}
	}
	return nil
}

func validateTagWords(words []string) error {
	if len(words) == 0 {
		return errors.New("no tag word")
	}
	for i, w := range words {
		if w == "" {
			return fmt.Errorf("tag word %d is empty", i+1)
		}
		if strings.TrimSpace(w) != w {
			return fmt.Errorf("tag word %q has surrounding spaces", w)
		}
		for j, o := range words {
			if i == j {
				continue
			}
			if w == o {
				return fmt.Errorf("tag word %q is repeated", w)
			}
			if strings.Contains(o, w) {
				return fmt.Errorf("tag word %q is contained in tag word %q", w, o)
			}
		}
	}
	return nil
}

// ParseTagWords parses a comma-separated list of tag words, trimming spaces
// around each word: " TATA, TOTO " gives [TATA TOTO]. It returns an error
// when the list is empty or a word is empty, repeated or contained in
// another word.
func ParseTagWords(s string) ([]string, error) {
	parts := strings.Split(s, ",")
	words := make([]string, 0, len(parts))
	for _, p := range parts {
		words = append(words, strings.TrimSpace(p))
	}
	if len(words) == 1 && words[0] == "" {
		return nil, errors.New("parse tag words: empty list")
	}
	if err := validateTagWords(words); err != nil {
		return nil, fmt.Errorf("parse tag words: %w", err)
	}
	return words, nil
}

// Tag returns the tag word occurring in wording (case-sensitive substring
// match). It returns "" when no tag word occurs or when several distinct tag
// words occur; one word occurring several times counts once. Tag does not
// allocate.
func (r Rules) Tag(wording string) string {
	found := ""
	for _, w := range r.TagWords {
		if w == "" || w == found || !strings.Contains(wording, w) {
			continue
		}
		if found != "" {
			return ""
		}
		found = w
	}
	return found
}

// Annotate qualifies an amount: above LargeSaleAbove LARGE SALE, otherwise
// positive SALE; below ExpenseBelow EXPENSE, otherwise negative SMALL
// EXPENSE. Zero gets no annotation ("").
func (r Rules) Annotate(amount decimal.Decimal) Annotation {
	switch {
	case amount.GreaterThan(r.LargeSaleAbove):
		return AnnotationLargeSale
	case amount.IsPositive():
		return AnnotationSale
	case amount.LessThan(r.ExpenseBelow):
		return AnnotationExpense
	case amount.IsNegative():
		return AnnotationSmallExpense
	default:
		return ""
	}
}

// Check returns ReasonAmountTooHigh when the absolute value of amount is
// strictly greater than AmountLimit, and "" otherwise.
func (r Rules) Check(amount decimal.Decimal) Reason {
	if amount.Abs().GreaterThan(r.AmountLimit) {
		return ReasonAmountTooHigh
	}
	return ""
}

// Equal reports whether r and o are the same rules: the same tag words in the same order and
// thresholds of equal value (300 equals 300.00).
func (r Rules) Equal(o Rules) bool {
	return slices.Equal(r.TagWords, o.TagWords) && r.LargeSaleAbove.Equal(o.LargeSaleAbove) &&
		r.ExpenseBelow.Equal(o.ExpenseBelow) && r.AmountLimit.Equal(o.AmountLimit)
}
