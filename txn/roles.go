package txn

import (
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/encoding/charmap"
	"golang.org/x/text/runes"
	"golang.org/x/text/transform"
	"golang.org/x/text/unicode/norm"
)

// Roles of the header's columns, indexes in header.cols.
const (
	colIndexID = iota
	colIndexAmount
	colIndexWording
	colIndexAccount
	colIndexDate
	colIndexDebit
	colIndexCredit
	colIndexDirection
	numRoles
)

// roleNames name the roles in messages and in Stats.Columns.
var roleNames = [numRoles]string{"id", "amount", "wording", "account", "date", "debit", "credit", "direction"}

// alias is what a folded header name stands for. Among several columns of
// one role the lowest rank wins; two different names of the same role and
// the same rank make the header ambiguous (it is not used). The same name
// twice is not ambiguous: the first column wins.
type alias struct {
	role int
	rank int
	// weak: an id column that banks leave empty on many rows (SEPA
	// "Reference"); an empty value gets a derived id instead of missing_id.
	weak bool
}

// headerAliases maps folded header names (see foldHeader: lower case,
// letters and digits only) to their role. The names known before the
// others (id, amount, montant, wording, label, libelle, account, compte,
// iban) keep the first rank, so that no header read before becomes
// ambiguous. The preference orders:
//
//   - date: the operation date (dateOp, date opération, date de
//     l'opération, operation date (UTC), started date, transaction date)
//     before a plain "date", before the booking date (date de
//     comptabilisation, booking date, completed date, settlement date)
//     before the value date (date de valeur, dateVal, value date);
//   - wording: libellé, label, wording before description, libellé
//     opération and counterparty name, before libellé simplifié, before
//     détail and détail de l'écriture;
//   - id: id before transaction id and numéro d'opération, before
//     reference (weak);
//   - amount: amount, montant before montant(euros), montant de
//     l'opération, total amount (incl. VAT); one signed amount column wins
//     over debit and credit columns, used only when there is none;
//   - account: account, compte, iban before accountNum, account number,
//     numéro de compte.
var headerAliases = map[string]alias{
	"id":               {role: colIndexID},
	"transactionid":    {role: colIndexID, rank: 1},
	"idtransaction":    {role: colIndexID, rank: 1},
	"operationid":      {role: colIndexID, rank: 1},
	"numerodoperation": {role: colIndexID, rank: 1},
	"numerooperation":  {role: colIndexID, rank: 1},
	"reference":        {role: colIndexID, rank: 2, weak: true},

	"amount":              {role: colIndexAmount},
	"montant":             {role: colIndexAmount},
	"montanteuros":        {role: colIndexAmount, rank: 1},
	"montanteur":          {role: colIndexAmount, rank: 1},
	"montantdeloperation": {role: colIndexAmount, rank: 1},
	"totalamountinclvat":  {role: colIndexAmount, rank: 1},

	"wording":             {role: colIndexWording},
	"label":               {role: colIndexWording},
	"libelle":             {role: colIndexWording},
	"description":         {role: colIndexWording, rank: 1},
	"libelleoperation":    {role: colIndexWording, rank: 1},
	"libelledeloperation": {role: colIndexWording, rank: 1},
	"counterpartyname":    {role: colIndexWording, rank: 1},
	"libellesimplifie":    {role: colIndexWording, rank: 2},
	"detail":              {role: colIndexWording, rank: 3},
	"detaildelecriture":   {role: colIndexWording, rank: 3},

	"account":        {role: colIndexAccount},
	"compte":         {role: colIndexAccount},
	"iban":           {role: colIndexAccount},
	"accountnum":     {role: colIndexAccount, rank: 1},
	"accountnumber":  {role: colIndexAccount, rank: 1},
	"numerodecompte": {role: colIndexAccount, rank: 1},
	"numerocompte":   {role: colIndexAccount, rank: 1},

	"dateop":                 {role: colIndexDate},
	"dateoperation":          {role: colIndexDate},
	"datedoperation":         {role: colIndexDate},
	"datedeloperation":       {role: colIndexDate},
	"operationdate":          {role: colIndexDate},
	"operationdateutc":       {role: colIndexDate},
	"starteddate":            {role: colIndexDate},
	"transactiondate":        {role: colIndexDate},
	"date":                   {role: colIndexDate, rank: 1},
	"datedecomptabilisation": {role: colIndexDate, rank: 2},
	"datecomptabilisation":   {role: colIndexDate, rank: 2},
	"bookingdate":            {role: colIndexDate, rank: 2},
	"completeddate":          {role: colIndexDate, rank: 2},
	"settlementdate":         {role: colIndexDate, rank: 2},
	"settlementdateutc":      {role: colIndexDate, rank: 2},
	"datedevaleur":           {role: colIndexDate, rank: 3},
	"datevaleur":             {role: colIndexDate, rank: 3},
	"dateval":                {role: colIndexDate, rank: 3},
	"valuedate":              {role: colIndexDate, rank: 3},

	"debit":         {role: colIndexDebit},
	"debiteuros":    {role: colIndexDebit},
	"debiteur":      {role: colIndexDebit},
	"montantdebit":  {role: colIndexDebit},
	"credit":        {role: colIndexCredit},
	"crediteuros":   {role: colIndexCredit},
	"crediteur":     {role: colIndexCredit},
	"montantcredit": {role: colIndexCredit},

	"direction":            {role: colIndexDirection},
	"sens":                 {role: colIndexDirection},
	"debitcredit":          {role: colIndexDirection},
	"creditdebit":          {role: colIndexDirection},
	"creditdebitindicator": {role: colIndexDirection},
	"debitcreditindicator": {role: colIndexDirection},
}

// damagedAliasKeys are the alias names in a fixed order, for matching a
// header name whose accents were damaged.
var damagedAliasKeys = func() []string {
	keys := make([]string, 0, len(headerAliases))
	for k := range headerAliases {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}()

// lookupAlias finds the alias of a header name. A name whose accents were
// damaged before the file reached us ("Libell?", "D\ufffdbit") matches an
// alias where each damaged character stands for one letter.
func lookupAlias(name string) (alias, bool) {
	key := foldHeader(name)
	if a, ok := headerAliases[key]; ok {
		return a, true
	}
	if strings.IndexByte(key, '?') < 0 || key == "?" {
		return alias{}, false
	}
	for _, k := range damagedAliasKeys {
		if wildcardMatch(key, k) {
			return headerAliases[k], true
		}
	}
	return alias{}, false
}

// wildcardMatch reports whether pattern, where '?' stands for exactly one
// character, matches s (both ASCII).
func wildcardMatch(pattern, s string) bool {
	if len(pattern) != len(s) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if pattern[i] != '?' && pattern[i] != s[i] {
			return false
		}
	}
	return true
}

// foldHeader reduces a header name to lower-case ASCII letters and digits:
// it trims a byte order mark, decodes the accent HTML entities
// ("Cr&eacute;dit"), repairs UTF-8 read as Latin-1 ("LibellÃ©"), removes
// accents, spaces and punctuation, and turns each run of damaged characters
// ('?' or U+FFFD) into one '?'. " Date de l'opération " -> "datedeloperation".
func foldHeader(h string) string {
	h = strings.TrimPrefix(strings.TrimSpace(h), "\ufeff")
	if strings.IndexByte(h, '&') >= 0 {
		h = decodeAccentEntities(h)
	}
	if strings.ContainsRune(h, 'Ã') {
		if b, err := charmap.ISO8859_1.NewEncoder().String(h); err == nil && utf8.ValidString(b) {
			h = b
		}
	}
	ascii := true
	for i := 0; i < len(h); i++ {
		if h[i] >= utf8.RuneSelf {
			ascii = false
			break
		}
	}
	if !ascii {
		folded, _, err := transform.String(transform.Chain(norm.NFD, runes.Remove(runes.In(unicode.Mn)), norm.NFC), h)
		if err == nil {
			h = folded
		}
	}
	var b strings.Builder
	b.Grow(len(h))
	for _, r := range h {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		case r >= 'A' && r <= 'Z':
			b.WriteRune(r + 'a' - 'A')
		case r == '?' || r == utf8.RuneError:
			if s := b.String(); len(s) == 0 || s[len(s)-1] != '?' {
				b.WriteByte('?')
			}
		}
	}
	return b.String()
}

// decodeAccentEntities replaces HTML entities of accented letters
// (&eacute;, &Egrave;, &ccedil;...) by the bare letter and &amp;, &nbsp;,
// &apos;, &quot; by their character; any other '&' is kept.
func decodeAccentEntities(s string) string {
	var b strings.Builder
	for {
		i := strings.IndexByte(s, '&')
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		b.WriteString(s[:i])
		s = s[i:]
		j := strings.IndexByte(s, ';')
		if r, ok := entity(s[1:max(j, 1)]); j > 1 && ok {
			b.WriteString(r)
			s = s[j+1:]
			continue
		}
		b.WriteByte('&')
		s = s[1:]
	}
}

// entity returns the text of an entity name such as "eacute" or "amp".
func entity(name string) (string, bool) {
	switch name {
	case "amp":
		return "&", true
	case "nbsp":
		return " ", true
	case "apos":
		return "'", true
	case "quot":
		return "\"", true
	}
	for _, suffix := range []string{"acute", "grave", "circ", "uml", "cedil", "tilde", "ring"} {
		if len(name) == len(suffix)+1 && strings.HasSuffix(name, suffix) {
			if c := name[0]; c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' {
				return name[:1], true
			}
		}
	}
	return "", false
}
