package backendsync

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"regexp"
	"strings"
	"time"
)

// Message is one transaction's result as txflow publishes it on
// txflow.transactions.<account> (docs/schema/transaction-message.schema.json).
type Message struct {
	Account    string
	ID         string
	Date       *string // YYYY-MM-DD; nil when txflow does not know it
	Amount     string  // a decimal, e.g. "-12.50", stored as it is
	Wording    string
	Tag        *string
	Annotation *string
	Error      *string
	RunID      string
	Version    int32
}

// ErrMalformed is wrapped by ParseMessage's errors: the message can never be
// applied, however often it is delivered.
var ErrMalformed = errors.New("malformed message")

// wireMessage has pointers so that a missing key can be told from an empty
// value. Keys txflow may add later are ignored (a tolerant reader).
type wireMessage struct {
	Account    *string          `json:"account"`
	ID         *string          `json:"id"`
	Date       *string          `json:"date"`
	Amount     *string          `json:"amount"`
	Wording    *string          `json:"wording"`
	Tag        *string          `json:"tag"`
	Annotation *string          `json:"annotation"`
	Error      *string          `json:"error"`
	RunID      *string          `json:"run_id"`
	Version    *json.RawMessage `json:"version"`
}

// decimalText is what a numeric column accepts without surprise: no
// exponent, no NaN or Infinity, no spaces.
var decimalText = regexp.MustCompile(`^-?([0-9]+)(?:\.([0-9]+))?$`)

// PostgreSQL's numeric limits: 131072 digits before the point, 16383 after.
const (
	maxIntegerDigits  = 131072
	maxFractionDigits = 16383
)

// ParseMessage decodes and checks a message body. Every check that the
// database would otherwise make is made here, so that a bad message is
// terminated on its own instead of failing the batch it arrived in. Its
// errors wrap ErrMalformed.
func ParseMessage(body []byte) (Message, error) {
	var w wireMessage
	if err := json.Unmarshal(body, &w); err != nil {
		return Message{}, malformed("not a JSON object: %v", err)
	}
	var m Message
	required := []struct {
		name string
		src  *string
		dst  *string
	}{
		{"account", w.Account, &m.Account},
		{"id", w.ID, &m.ID},
		{"amount", w.Amount, &m.Amount},
		{"wording", w.Wording, &m.Wording},
		{"run_id", w.RunID, &m.RunID},
	}
	for _, f := range required {
		if f.src == nil {
			return Message{}, malformed("%s missing", f.name)
		}
		*f.dst = *f.src
	}
	if m.Account == "" || m.ID == "" || m.RunID == "" {
		return Message{}, malformed("empty account, id or run_id")
	}
	m.Date, m.Tag, m.Annotation, m.Error = w.Date, w.Tag, w.Annotation, w.Error
	for name, s := range map[string]*string{
		"account": &m.Account, "id": &m.ID, "wording": &m.Wording, "run_id": &m.RunID,
		"tag": m.Tag, "annotation": m.Annotation, "error": m.Error,
	} {
		// PostgreSQL text cannot hold a NUL character.
		if s != nil && strings.ContainsRune(*s, 0) {
			return Message{}, malformed("%s contains a NUL character", name)
		}
	}
	if m.Date != nil {
		if _, err := time.Parse(time.DateOnly, *m.Date); err != nil {
			return Message{}, malformed("date %q is not YYYY-MM-DD", *m.Date)
		}
	}
	parts := decimalText.FindStringSubmatch(m.Amount)
	if parts == nil || len(parts[1]) > maxIntegerDigits || len(parts[2]) > maxFractionDigits {
		return Message{}, malformed("amount %.40q is not a decimal", m.Amount)
	}
	if w.Version == nil {
		return Message{}, malformed("version missing")
	}
	var v int64
	if err := json.Unmarshal(*w.Version, &v); err != nil || v < 1 || v > math.MaxInt32 {
		return Message{}, malformed("version %.40s is not a positive 32-bit integer", *w.Version)
	}
	m.Version = int32(v)
	return m, nil
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}
