package activities

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/txflow/txflow/postgres"
)

// BenchmarkTransactionMsg measures what the worker spends on each message it publishes.
func BenchmarkTransactionMsg(b *testing.B) {
	tag, annotation := "TAXI", "SMALL EXPENSE"
	m := postgres.OutboxMessage{OutboxKey: postgres.OutboxKey{Key: 1 << 32, Version: 1}, RunID: "txflow-1b2666569dcef9c4",
		Account: "acme", ID: "TX-000123456", Date: "2026-01-31", Amount: "-12.50", Wording: "TAXI PARIS 75001 CB*1234",
		Tag: &tag, Annotation: &annotation}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := TransactionMsg(m); err != nil {
			b.Fatal(err)
		}
	}
}

// encodingJSON is the body encoding/json makes of m's message, without HTML escaping.
func encodingJSON(t testing.TB, m postgres.OutboxMessage) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(TransactionMessage{Account: m.Account, ID: m.ID, Date: m.Date, Amount: m.Amount, Wording: m.Wording,
		Tag: m.Tag, Annotation: m.Annotation, Error: m.Error, RunID: m.RunID, Version: m.Version}); err != nil {
		t.Fatal(err)
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// The body TransactionMsg writes by hand is, byte for byte, what encoding/json writes, whatever
// the strings hold.
func TestTransactionMsgIsEncodingJSON(t *testing.T) {
	tag, reason := "TA\"XI", "amount_too_high"
	for _, w := range []string{
		"", "TAXI PARIS", `<TOTO> & "co" \ back`, "tab\there\nnew\rret\bbs\fff", "\x00\x01\x1f\x7f",
		"caf\u00e9 \u20ac \U0001F600", "line\u2028sep\u2029par", "bad \xff\xfe utf8 \xe2\x82", "\xc3",
	} {
		for _, m := range []postgres.OutboxMessage{
			{OutboxKey: postgres.OutboxKey{Key: 7, Version: 3}, RunID: "r", Account: "acme", ID: w, Amount: "0.00", Wording: w},
			{OutboxKey: postgres.OutboxKey{Key: 7, Version: 1}, RunID: w, Account: "a.b", ID: "T1", Date: "2026-01-31",
				Amount: "-12.50", Wording: w, Tag: &tag, Annotation: &w, Error: &reason},
		} {
			msg, err := TransactionMsg(m)
			if err != nil {
				t.Fatal(err)
			}
			if want := encodingJSON(t, m); string(msg.Data) != want {
				t.Errorf("wording %q:\n got %s\nwant %s", w, msg.Data, want)
			}
		}
	}
}

// FuzzTransactionMsgIsEncodingJSON checks any wording and id (go test -fuzz FuzzTransactionMsg).
func FuzzTransactionMsgIsEncodingJSON(f *testing.F) {
	f.Add("T1", "TAXI \"PARIS\"\n\u2028\xff")
	f.Fuzz(func(t *testing.T, id, wording string) {
		m := postgres.OutboxMessage{RunID: "r", Account: "acme", ID: id, Amount: "1.00", Wording: wording, Annotation: &wording}
		msg, err := TransactionMsg(m)
		if err != nil {
			t.Fatal(err)
		}
		if want := encodingJSON(t, m); string(msg.Data) != want {
			t.Errorf("got %s, want %s", msg.Data, want)
		}
	})
}
