package txn

// SafeCell neutralises a value before it is written to a CSV file that may be
// opened in a spreadsheet (OWASP CSV injection rule): when s starts with
// '=', '+', '-', '@', a TAB or a carriage return, it is prefixed with a single
// quote so that it is displayed as text instead of being evaluated as a
// formula. Other values are returned unchanged.
func SafeCell(s string) string {
	if s == "" {
		return s
	}
	switch s[0] {
	case '=', '+', '-', '@', '\t', '\r':
		return "'" + s
	}
	return s
}
