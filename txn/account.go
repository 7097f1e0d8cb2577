package txn

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// DefaultAccount is the account of a run started without one, and of every
// transaction stored before accounts existed.
const DefaultAccount = "default"

// MaxAccountLength is the longest account value, in characters.
const MaxAccountLength = 64

// ParseAccount validates an account value: after trimming surrounding spaces,
// 1 to MaxAccountLength characters among ASCII letters, digits, '-', '_', '.'
// and ':' (an IBAN fits). It is case-sensitive: "FR76" and "fr76" are two
// accounts. It returns the trimmed value, or an error saying what is wrong.
func ParseAccount(s string) (string, error) {
	a := strings.TrimSpace(s)
	if a == "" {
		return "", fmt.Errorf("account is empty; expected 1 to %d characters among letters, digits, '-', '_', '.', ':'", MaxAccountLength)
	}
	if n := utf8.RuneCountInString(a); n > MaxAccountLength {
		return "", fmt.Errorf("account %s is %d characters long, at most %d allowed", quoteSample(a), n, MaxAccountLength)
	}
	for i, r := range a {
		if !accountChar(r) {
			return "", fmt.Errorf("account %s has %q at byte %d; allowed: letters, digits, '-', '_', '.', ':'", quoteSample(a), r, i)
		}
	}
	return a, nil
}

// accountChar reports whether r may appear in an account value.
func accountChar(r rune) bool {
	switch {
	case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		return true
	case r == '-', r == '_', r == '.', r == ':':
		return true
	}
	return false
}
