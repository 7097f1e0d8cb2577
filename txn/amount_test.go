package txn

import (
	"errors"
	"strings"
	"testing"

	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseAmount(t *testing.T) {
	tests := []struct {
		in    string
		comma bool   // decimalComma
		want  string // "" when an error is expected
		err   error  // expected error when want == ""
	}{
		// Plain numbers and signs.
		{in: "0", want: "0"},
		{in: "12", want: "12"},
		{in: "12.5", want: "12.5"},
		{in: "12.50", want: "12.50"},
		{in: "-12.50", want: "-12.50"},
		{in: "+12.50", want: "12.50"},
		{in: "-0.00", want: "0"},
		{in: "  42.10  ", want: "42.10"},
		{in: "\t-7\r\n", want: "-7"},
		{in: "\u00a012.00\u00a0", want: "12"},
		{in: "007.10", want: "7.10"},
		{in: "(123.45)", want: "-123.45"},
		{in: "( 123.45 )", want: "-123.45"},
		{in: "(1 234.50)", want: "-1234.50"},
		// Any number of integer digits, exact (the rules flag large amounts).
		{in: "9999999999999999.99", want: "9999999999999999.99"},
		{in: "-9999999999999999.99", want: "-9999999999999999.99"},
		{in: "0009999999999999999", want: "9999999999999999"},
		{in: "10000000000000000", want: "10000000000000000"},
		{in: "100000000000000000", want: "100000000000000000"},
		{in: "99999999999999999.00", want: "99999999999999999"},
		{in: "-99999999999999999.99", want: "-99999999999999999.99"},
		{in: "999999999999999999.99", want: "999999999999999999.99"},
		{in: "9223372036854775808", want: "9223372036854775808"},
		{in: "(123 456 789 012 345 678 901.23)", want: "-123456789012345678901.23"},
		{in: "12345678901234567890123456789012345678901234567890,5", comma: true, want: "12345678901234567890123456789012345678901234567890.5"},
		{in: "123456789012345678901.234", err: errAmountDecimals},
		{in: "123456789012345678901x", err: ErrInvalidAmount},
		// Decimal comma.
		{in: "12,50", comma: true, want: "12.50"},
		{in: "-1 234,5", comma: true, want: "-1234.5"},
		{in: "12.50", comma: true, want: "12.50"},
		{in: "12,505", comma: true, err: errAmountDecimals},
		{in: "1.234,50", comma: true, err: ErrInvalidAmount}, // dot is never a thousands separator
		{in: "1,234.50", comma: true, err: ErrInvalidAmount},
		{in: "1,23.50", comma: true, err: errAmountTwoDecimalSep},
		// Thousands separators.
		{in: "1 234 567.89", want: "1234567.89"},
		{in: "1\u00a0234.00", want: "1234"},
		{in: "1\u202f234\u202f567,01", comma: true, want: "1234567.01"},
		{in: "1'234'567.50", want: "1234567.50"},
		{in: "123 456", want: "123456"},
		{in: "1,234.56", want: "1234.56"},
		{in: "-1,234,567.00", want: "-1234567"},
		{in: "1,234", err: errAmountComma},
		{in: "1,234,567", err: errAmountComma},
		{in: "12,50", err: errAmountGrouping},
		{in: "1 23", err: errAmountGrouping},
		{in: "1 2345", err: errAmountGrouping},
		{in: "1234 567", err: errAmountGrouping},
		{in: "1  234", err: errAmountGrouping},
		{in: " 1 234.5 6", err: errAmountGrouping},
		{in: "1 234'567", err: errAmountMixedGrouping},
		{in: "1 234,567.00", err: errAmountMixedGrouping},
		{in: "- 12", err: errAmountGrouping},
		{in: "1 234 .50", err: errAmountGrouping},
		// Refusals.
		{in: "", err: errAmountEmpty},
		{in: "   ", err: errAmountEmpty},
		{in: "-", err: errAmountNoDigits},
		{in: "+", err: errAmountNoDigits},
		{in: "()", err: errAmountNoDigits},
		{in: "(12", err: errAmountParenthesis},
		{in: "(-12)", err: errAmountSignInParens},
		{in: "12.345", err: errAmountDecimals},
		{in: "0.001", err: errAmountDecimals},
		{in: "1.2.3", err: errAmountTwoDecimalSep},
		{in: ".50", err: errAmountNoIntPart},
		{in: "5.", err: errAmountNoFraction},
		{in: "1e5", err: errAmountExponent},
		{in: "1.5E+3", err: errAmountExponent},
		{in: "NaN", err: errAmountNaN},
		{in: "-Inf", err: errAmountNaN},
		{in: "+infinity", err: errAmountNaN},
		{in: "12.50 EUR", err: errAmountGrouping},
		{in: "12.50EUR", err: ErrInvalidAmount},
		{in: "€12", err: ErrInvalidAmount},
		{in: "0x1F", err: ErrInvalidAmount},
		{in: "--12", err: ErrInvalidAmount},
		{in: "+-12", err: ErrInvalidAmount},
		{in: "12-", err: ErrInvalidAmount},
		{in: "١٢", err: ErrInvalidAmount},  // Arabic-Indic digits
		{in: "−12", err: ErrInvalidAmount}, // U+2212 MINUS SIGN
		{in: "12_000", err: ErrInvalidAmount},
	}
	for _, tt := range tests {
		name := tt.in
		if tt.comma {
			name += "/comma"
		}
		t.Run(name, func(t *testing.T) {
			got, err := ParseAmount(tt.in, tt.comma)
			if tt.want == "" {
				require.Error(t, err)
				assert.ErrorIs(t, err, ErrInvalidAmount)
				assert.ErrorIs(t, err, tt.err)
				assert.True(t, strings.HasPrefix(err.Error(), "invalid amount: "), err.Error())
				return
			}
			require.NoError(t, err)
			assert.True(t, got.Equal(decimal.RequireFromString(tt.want)), "got %s want %s", got, tt.want)
			assert.GreaterOrEqual(t, got.Exponent(), int32(-2))
		})
	}
}

func TestParseAmountUnexpectedCharacterIsNamed(t *testing.T) {
	_, err := ParseAmount("12#50", false)
	require.Error(t, err)
	assert.Equal(t, `invalid amount: unexpected character '#'`, err.Error())
}

func TestParseAmountDoesNotAllocateOnError(t *testing.T) {
	allocs := testing.AllocsPerRun(100, func() {
		_, _ = ParseAmount("12.345", false)
	})
	assert.Zero(t, allocs)
}

// TestParseAmountLargeIsTooHigh: however many digits, an amount above the
// limit parses exactly and the rules flag it, instead of an invalid amount.
func TestParseAmountLargeIsTooHigh(t *testing.T) {
	rules := DefaultRules()
	for _, s := range []string{"100000000000000000", "-99999999999999999.99", "1" + strings.Repeat("0", 400) + ".01"} {
		d, err := ParseAmount(s, false)
		require.NoError(t, err, s)
		assert.Equal(t, s, d.String())
		assert.Equal(t, ReasonAmountTooHigh, rules.Check(d), s)
	}
}

// FuzzParseAmount checks that ParseAmount never panics and that whatever it
// accepts is exact and stable through a canonical round trip.
func FuzzParseAmount(f *testing.F) {
	for _, s := range []string{"12.50", "-1 234,56", "(1'234.00)", "1e5", "NaN", "9999999999999999.99", "1,234.5"} {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, s string, decimalComma bool) {
		d, err := ParseAmount(s, decimalComma)
		if err != nil {
			if !errors.Is(err, ErrInvalidAmount) {
				t.Fatalf("ParseAmount(%q) error %v does not match ErrInvalidAmount", s, err)
			}
			return
		}
		if d.Exponent() < -2 {
			t.Fatalf("ParseAmount(%q) = %s has more than two decimals", s, d)
		}
		canonical := d.StringFixed(2)
		back, err := ParseAmount(canonical, false)
		if err != nil || !back.Equal(d) {
			t.Fatalf("round trip of %q through %q: got %s, %v", s, canonical, back, err)
		}
		if !decimalComma && !strings.Contains(s, ",") {
			// Without commas the decimal-comma mode must agree.
			other, err := ParseAmount(s, true)
			if err != nil || !other.Equal(d) {
				t.Fatalf("ParseAmount(%q, true) = %s, %v; want %s", s, other, err, d)
			}
		}
	})
}

func BenchmarkParseAmount(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		_, _ = ParseAmount("-1 234.56", false)
	}
}

// An amount of any size up to what PostgreSQL's numeric stores parses exactly; a longer one is
// invalid, whatever the field-size limit lets through.
func TestParseAmountIntegerDigitsLimit(t *testing.T) {
	atLimit := "-" + strings.Repeat("9", MaxIntegerDigits) + ".99"
	d, err := ParseAmount(atLimit, false)
	if err != nil {
		t.Fatalf("%d integer digits: %v", MaxIntegerDigits, err)
	}
	if got := d.StringFixed(2); got != atLimit {
		t.Fatalf("not exact: %d characters back for %d", len(got), len(atLimit))
	}
	if _, err := ParseAmount("0000"+strings.Repeat("1", MaxIntegerDigits), false); err != nil {
		t.Fatalf("leading zeros are not significant: %v", err)
	}
	_, err = ParseAmount(strings.Repeat("1", MaxIntegerDigits+1), false)
	if !errors.Is(err, ErrInvalidAmount) || !strings.Contains(err.Error(), "131072") {
		t.Fatalf("one digit more: got %v, want an invalid amount naming the limit", err)
	}
}
