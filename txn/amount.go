package txn

import (
	"errors"
	"math/big"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/shopspring/decimal"
)

// ErrInvalidAmount is matched (errors.Is) by every error ParseAmount returns.
var ErrInvalidAmount = errors.New("invalid amount")

// amountError explains why an amount was refused. Constant values keep the
// common refusals allocation-free.
type amountError string

func (e amountError) Error() string        { return "invalid amount: " + string(e) }
func (e amountError) Is(target error) bool { return target == ErrInvalidAmount }

// MaxIntegerDigits is the most significant integer digits an amount may have: what PostgreSQL's
// numeric stores. Any amount up to it parses (and one above the rules' limit is amount_too_high);
// a longer one is invalid_amount, since no store could hold it.
const MaxIntegerDigits = 131072

const (
	errAmountTooLong       amountError = "more than 131072 integer digits"
	errAmountEmpty         amountError = "empty"
	errAmountParenthesis   amountError = "unbalanced parenthesis"
	errAmountSignInParens  amountError = "sign inside parentheses"
	errAmountNoDigits      amountError = "no digits"
	errAmountDecimals      amountError = "more than two decimal digits"
	errAmountTwoDecimalSep amountError = "several decimal separators"
	errAmountNoIntPart     amountError = "no digit before the decimal separator"
	errAmountNoFraction    amountError = "no digit after the decimal separator"
	errAmountGrouping      amountError = "misplaced thousands separator"
	errAmountMixedGrouping amountError = "mixed thousands separators"
	errAmountComma         amountError = "ambiguous comma (use a dot as decimal separator)"
	errAmountExponent      amountError = "exponent notation not allowed"
	errAmountNaN           amountError = "not a finite number"
)

// ParseAmount parses a monetary amount exactly (no floating point).
//
// Accepted: surrounding spaces; an optional leading + or - sign, or a
// negative amount in parentheses such as "(123.45)"; a dot as decimal
// separator, or a comma when decimalComma is true; at most two decimal
// digits; any number of integer digits (the amount is exact however large:
// the caller bounds the length of the field and Rules.Check flags amounts
// above the limit); thousands separators between groups of exactly three digits, one kind per amount:
// space, U+00A0, U+202F or apostrophe, e.g. "1 234 567.89" or "1'234.50".
// When decimalComma is false a comma is accepted as thousands separator
// only when the amount also has a dot decimal part ("1,234.50"); "1,234"
// alone is refused as ambiguous.
//
// Refused, with an error matching ErrInvalidAmount: empty input, NaN or
// infinity, exponent notation, a decimal separator not surrounded by digits
// ("5." or ".5"), misplaced thousands separators and any other character.
func ParseAmount(s string, decimalComma bool) (decimal.Decimal, error) {
	t := strings.TrimSpace(s)
	if t == "" {
		return decimal.Decimal{}, errAmountEmpty
	}
	neg := false
	switch t[0] {
	case '(':
		if len(t) < 2 || t[len(t)-1] != ')' {
			return decimal.Decimal{}, errAmountParenthesis
		}
		t = strings.TrimSpace(t[1 : len(t)-1])
		if t == "" {
			return decimal.Decimal{}, errAmountNoDigits
		}
		if t[0] == '+' || t[0] == '-' {
			return decimal.Decimal{}, errAmountSignInParens
		}
		neg = true
	case '+', '-':
		neg = t[0] == '-'
		t = t[1:]
	}
	if t == "" {
		return decimal.Decimal{}, errAmountNoDigits
	}

	var (
		coef        int64  // the digits read so far, while they fit (sig <= maxInt64Digits)
		digits      []byte // the digits read so far, once they no longer fit in coef
		sig         int    // significant digits read (integer and fraction)
		sawDigit    bool   // at least one integer digit
		groupLen    int    // integer digits since the start or the last thousands separator
		groupSep    string
		commaGroups bool
		fracDigits  = -1 // -1 until a decimal separator is seen
	)
	for i := 0; i < len(t); {
		c := t[i]
		switch {
		case c >= '0' && c <= '9':
			if fracDigits >= 0 {
				if fracDigits == 2 {
					return decimal.Decimal{}, errAmountDecimals
				}
				fracDigits++
			} else {
				sawDigit = true
				groupLen++
				if groupSep != "" && groupLen > 3 {
					return decimal.Decimal{}, errAmountGrouping
				}
			}
			if sig > 0 || c != '0' {
				sig++
				if fracDigits < 0 && sig > MaxIntegerDigits {
					return decimal.Decimal{}, errAmountTooLong
				}
			}
			switch {
			case sig <= maxInt64Digits:
				coef = coef*10 + int64(c-'0')
			case digits == nil:
				digits = append(strconv.AppendInt(make([]byte, 0, 2*maxInt64Digits), coef, 10), c)
			default:
				digits = append(digits, c)
			}
			i++
		case c == '.' || (c == ',' && decimalComma):
			if fracDigits >= 0 {
				return decimal.Decimal{}, errAmountTwoDecimalSep
			}
			if !sawDigit {
				return decimal.Decimal{}, errAmountNoIntPart
			}
			if groupSep != "" && groupLen != 3 {
				return decimal.Decimal{}, errAmountGrouping
			}
			fracDigits = 0
			i++
		default:
			n := groupSeparatorLen(t[i:], decimalComma)
			if n == 0 {
				return decimal.Decimal{}, unexpectedAmountChar(t[i:], sawDigit)
			}
			if fracDigits >= 0 || groupLen == 0 || groupLen > 3 || (groupSep != "" && groupLen != 3) {
				return decimal.Decimal{}, errAmountGrouping
			}
			if groupSep != "" && groupSep != t[i:i+n] {
				return decimal.Decimal{}, errAmountMixedGrouping
			}
			groupSep = t[i : i+n]
			commaGroups = c == ','
			groupLen = 0
			i += n
		}
	}
	switch {
	case !sawDigit:
		return decimal.Decimal{}, errAmountNoDigits
	case fracDigits == 0:
		return decimal.Decimal{}, errAmountNoFraction
	case fracDigits < 0 && groupSep != "" && groupLen != 3:
		return decimal.Decimal{}, errAmountGrouping
	case commaGroups && fracDigits < 0:
		return decimal.Decimal{}, errAmountComma
	}
	if fracDigits < 0 {
		fracDigits = 0
	}
	if digits != nil {
		var b big.Int
		b.SetString(string(digits), 10) // only ASCII digits: cannot fail
		if neg {
			b.Neg(&b)
		}
		return decimal.NewFromBigInt(&b, int32(-fracDigits)), nil
	}
	if neg {
		coef = -coef
	}
	return decimal.New(coef, int32(-fracDigits)), nil
}

// maxInt64Digits is the number of decimal digits that always fit in an int64.
const maxInt64Digits = 18

// groupSeparatorLen returns the byte length of the thousands separator at
// the start of s, or 0 when s does not start with one.
func groupSeparatorLen(s string, decimalComma bool) int {
	switch {
	case s[0] == ' ' || s[0] == '\'':
		return 1
	case s[0] == ',' && !decimalComma:
		return 1
	case strings.HasPrefix(s, "\u00a0"):
		return len("\u00a0")
	case strings.HasPrefix(s, "\u202f"):
		return len("\u202f")
	}
	return 0
}

// unexpectedAmountChar explains a character that is neither a digit nor a
// separator.
func unexpectedAmountChar(s string, afterDigit bool) error {
	if afterDigit && (s[0] == 'e' || s[0] == 'E') {
		return errAmountExponent
	}
	for _, word := range []string{"nan", "inf"} {
		if len(s) >= len(word) && strings.EqualFold(s[:len(word)], word) {
			return errAmountNaN
		}
	}
	r, _ := utf8.DecodeRuneInString(s)
	return amountError("unexpected character " + strconv.QuoteRune(r))
}
