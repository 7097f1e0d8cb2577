package txn

import (
	"encoding/json"
	"testing"

	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func dec(s string) decimal.Decimal { return decimal.RequireFromString(s) }

func TestDefaultRulesAreValid(t *testing.T) {
	r := DefaultRules()
	require.NoError(t, r.Validate())
	assert.Equal(t, []string{"TATA", "TOTO", "TUTU", "TAXI"}, r.TagWords)
	assert.True(t, r.LargeSaleAbove.Equal(dec("300")))
	assert.True(t, r.ExpenseBelow.Equal(dec("-200")))
	assert.True(t, r.AmountLimit.Equal(dec("1000000.00")))
}

func TestAnnotate(t *testing.T) {
	r := DefaultRules()
	tests := []struct {
		amount string
		want   Annotation
	}{
		{"1000000000", AnnotationLargeSale},
		{"300.01", AnnotationLargeSale},
		{"300", AnnotationSale},
		{"300.00", AnnotationSale},
		{"0.01", AnnotationSale},
		{"0", ""},
		{"0.00", ""},
		{"-0.00", ""},
		{"-0.01", AnnotationSmallExpense},
		{"-200", AnnotationSmallExpense},
		{"-200.00", AnnotationSmallExpense},
		{"-200.01", AnnotationExpense},
		{"-1000000000", AnnotationExpense},
	}
	for _, tt := range tests {
		t.Run(tt.amount, func(t *testing.T) {
			assert.Equal(t, tt.want, r.Annotate(dec(tt.amount)))
		})
	}
	// The zero decimal.Decimal value is zero too.
	assert.Equal(t, Annotation(""), r.Annotate(decimal.Decimal{}))
}

func TestAnnotateCustomThresholds(t *testing.T) {
	r := DefaultRules()
	r.LargeSaleAbove = dec("10")
	r.ExpenseBelow = dec("-5.50")
	assert.Equal(t, AnnotationLargeSale, r.Annotate(dec("10.01")))
	assert.Equal(t, AnnotationSale, r.Annotate(dec("10")))
	assert.Equal(t, AnnotationSmallExpense, r.Annotate(dec("-5.50")))
	assert.Equal(t, AnnotationExpense, r.Annotate(dec("-5.51")))
}

func TestCheck(t *testing.T) {
	r := DefaultRules()
	tests := []struct {
		amount string
		want   Reason
	}{
		{"0", ""},
		{"999999.99", ""},
		{"1000000.00", ""},
		{"-1000000.00", ""},
		{"1000000.01", ReasonAmountTooHigh},
		{"-1000000.01", ReasonAmountTooHigh},
		{"9999999999999999.99", ReasonAmountTooHigh},
	}
	for _, tt := range tests {
		t.Run(tt.amount, func(t *testing.T) {
			assert.Equal(t, tt.want, r.Check(dec(tt.amount)))
		})
	}
}

func TestTag(t *testing.T) {
	def := DefaultRules()
	custom := DefaultRules()
	custom.TagWords = []string{"UBER", "Café"}
	tests := []struct {
		name    string
		rules   Rules
		wording string
		want    string
	}{
		{"no tag", def, "PAYMENT CARD 1234", ""},
		{"empty wording", def, "", ""},
		{"one tag", def, "CB TAXI PARIS", "TAXI"},
		{"tag as substring", def, "TOTOLAND", "TOTO"},
		{"whole wording", def, "TUTU", "TUTU"},
		{"two distinct tags", def, "TATA TOTO", ""},
		{"three distinct tags", def, "TATA TOTO TAXI", ""},
		{"same tag repeated", def, "TAXI TAXI TAXI", "TAXI"},
		{"same tag repeated glued", def, "TATATATA", "TATA"},
		{"lower case is not a tag", def, "taxi paris", ""},
		{"mixed case is not a tag", def, "Taxi", ""},
		{"lower case beside a real tag", def, "taxi TOTO", "TOTO"},
		{"custom word", custom, "UBER TRIP", "UBER"},
		{"custom accented word", custom, "Café de Flore", "Café"},
		{"default word not configured", custom, "TAXI", ""},
		{"custom two words", custom, "UBER Café", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, tt.rules.Tag(tt.wording))
		})
	}
}

func TestTagDoesNotAllocate(t *testing.T) {
	r := DefaultRules()
	wordings := []string{"CB TAXI PARIS 12/03", "TATA TOTO", "nothing here at all", "TAXI TAXI"}
	allocs := testing.AllocsPerRun(1000, func() {
		for _, w := range wordings {
			_ = r.Tag(w)
		}
	})
	assert.Zero(t, allocs)
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		modify func(*Rules)
		ok     bool
	}{
		{"default", func(*Rules) {}, true},
		{"zero thresholds", func(r *Rules) { r.LargeSaleAbove = decimal.Zero; r.ExpenseBelow = decimal.Zero }, true},
		{"no tag words", func(r *Rules) { r.TagWords = nil }, false},
		{"empty tag word", func(r *Rules) { r.TagWords = []string{"TATA", ""} }, false},
		{"padded tag word", func(r *Rules) { r.TagWords = []string{" TATA"} }, false},
		{"repeated tag word", func(r *Rules) { r.TagWords = []string{"TATA", "TATA"} }, false},
		{"contained tag word", func(r *Rules) { r.TagWords = []string{"TAXI", "TAX"} }, false},
		{"negative large sale", func(r *Rules) { r.LargeSaleAbove = dec("-0.01") }, false},
		{"positive expense", func(r *Rules) { r.ExpenseBelow = dec("0.01") }, false},
		{"zero limit", func(r *Rules) { r.AmountLimit = decimal.Zero }, false},
		{"negative limit", func(r *Rules) { r.AmountLimit = dec("-1") }, false},
		{"three decimals", func(r *Rules) { r.AmountLimit = dec("10.001") }, false},
		{"limit not storable", func(r *Rules) { r.AmountLimit = dec("10000000000000000") }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := DefaultRules()
			tt.modify(&r)
			err := r.Validate()
			if tt.ok {
				assert.NoError(t, err)
			} else {
				assert.Error(t, err)
			}
		})
	}
}

func TestParseTagWords(t *testing.T) {
	tests := []struct {
		in   string
		want []string
		ok   bool
	}{
		{"TATA", []string{"TATA"}, true},
		{"TATA,TOTO", []string{"TATA", "TOTO"}, true},
		{" TATA , TOTO ,\tTAXI ", []string{"TATA", "TOTO", "TAXI"}, true},
		{"Café,UBER", []string{"Café", "UBER"}, true},
		{"", nil, false},
		{"   ", nil, false},
		{"TATA,,TOTO", nil, false},
		{"TATA,", nil, false},
		{"TATA,TATA", nil, false},
		{"TAXI,TAX", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseTagWords(tt.in)
			if !tt.ok {
				assert.Error(t, err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestRulesJSONRoundTrip(t *testing.T) {
	r := DefaultRules()
	r.TagWords = []string{"UBER", "Café"}
	r.ExpenseBelow = dec("-12.50")
	b, err := json.Marshal(r)
	require.NoError(t, err)
	assert.JSONEq(t, `{"tag_words":["UBER","Café"],"large_sale_above":"300","expense_below":"-12.5","amount_limit":"1000000"}`, string(b))

	var back Rules
	require.NoError(t, json.Unmarshal(b, &back))
	require.NoError(t, back.Validate())
	assert.Equal(t, r.TagWords, back.TagWords)
	assert.True(t, back.LargeSaleAbove.Equal(r.LargeSaleAbove))
	assert.True(t, back.ExpenseBelow.Equal(r.ExpenseBelow))
	assert.True(t, back.AmountLimit.Equal(r.AmountLimit))
	assert.Equal(t, AnnotationExpense, back.Annotate(dec("-12.51")))
}

func BenchmarkTag(b *testing.B) {
	r := DefaultRules()
	b.ReportAllocs()
	for b.Loop() {
		_ = r.Tag("CB CARTE 1234 TAXI G7 PARIS 15/03")
	}
}

func TestRulesEqual(t *testing.T) {
	tests := []struct {
		name   string
		modify func(*Rules)
		equal  bool
	}{
		{"same", func(*Rules) {}, true},
		{"same value, other scale", func(r *Rules) { r.LargeSaleAbove = dec("300.00"); r.AmountLimit = dec("1000000") }, true},
		{"other word", func(r *Rules) { r.TagWords = []string{"TATA", "TOTO", "TUTU", "UBER"} }, false},
		{"words reordered", func(r *Rules) { r.TagWords = []string{"TOTO", "TATA", "TUTU", "TAXI"} }, false},
		{"one word less", func(r *Rules) { r.TagWords = r.TagWords[:3] }, false},
		{"large sale", func(r *Rules) { r.LargeSaleAbove = dec("300.01") }, false},
		{"expense", func(r *Rules) { r.ExpenseBelow = dec("-199") }, false},
		{"limit", func(r *Rules) { r.AmountLimit = dec("999999.99") }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := DefaultRules()
			tt.modify(&r)
			assert.Equal(t, tt.equal, DefaultRules().Equal(r))
			assert.Equal(t, tt.equal, r.Equal(DefaultRules()))
		})
	}
}
