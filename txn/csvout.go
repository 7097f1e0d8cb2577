package txn

import "strings"

// SafeCell neutralises a value before it is written to a CSV file that may be
// opened in a spreadsheet (OWASP CSV injection rule): when s starts with
// '=', '+', '-', '@', a TAB or a carriage return, it is prefixed with a single
// quote so that it is displayed as text instead of being evaluated as a
// formula. A plain number is not a formula and is returned unchanged, like
// every other value: a plain number is a '+' or '-' sign followed by groups
// of ASCII digits separated by single group or decimal separators (space,
// U+00A0, U+202F, apostrophe, comma or dot) and nothing else, such as
// "-12.50", "+3500,00" or "-1 234,56". The SQL function txflow_safe_cell
// must stay identical.
func SafeCell(s string) string {
	if s == "" {
		return s
	}
	switch s[0] {
	case '+', '-':
		if isPlainNumber(s[1:]) {
			return s
		}
		return "'" + s
	case '=', '@', '\t', '\r':
		return "'" + s
	}
	return s
}

// isPlainNumber reports whether s is made of groups of ASCII digits, separated
// by single space, U+00A0, U+202F, apostrophe, comma or dot characters.
func isPlainNumber(s string) bool {
	digits := false // the last character was a digit
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			digits = true
			i++
			continue
		case !digits:
			return false // empty string start, or two separators in a row
		case c == ' ' || c == '\'' || c == ',' || c == '.':
			i++
		case strings.HasPrefix(s[i:], "\u00a0"):
			i += len("\u00a0")
		case strings.HasPrefix(s[i:], "\u202f"):
			i += len("\u202f")
		default:
			return false
		}
		digits = false
	}
	return digits
}
