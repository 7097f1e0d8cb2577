package txn

import (
	"embed"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"gopkg.in/yaml.v3"
)

// A mapping profile says what a file is when recognition by header is not
// enough: its columns by header name or by position (for exports without a
// header row), delimiter, decimal separator, date format, debit and credit
// sign convention, encoding, and the lines to skip before the header or the
// rows. Profiles are small YAML files; see ParseProfile for the keys. Read
// applies one given in ReaderOptions.Profile.

// Debit and credit sign conventions of a profile (key sign).
const (
	// SignAuto: a debit may be written positive or negative, a credit
	// positive with or without '+' (what Read does without a profile).
	SignAuto = "auto"
	// SignDebitNegative: debits are written negative; a positive debit is
	// invalid_amount.
	SignDebitNegative = "debit-negative"
	// SignBothPositive: debits and credits are both written positive; a
	// negative debit is invalid_amount.
	SignBothPositive = "both-positive"
)

// ProfileColumn is where a profile finds the column of one role: by header
// name (matched as Read matches names: case, accents, spaces and
// punctuation ignored) or by 1-based position.
type ProfileColumn struct {
	Name     string // header name; "" when by position
	Position int    // 1-based; 0 when by name
}

// String is the column as a profile names it: "column 4" or the name quoted.
func (c ProfileColumn) String() string {
	if c.Position > 0 {
		return fmt.Sprintf("column %d", c.Position)
	}
	return fmt.Sprintf("%q", c.Name)
}

// Profile is a parsed mapping profile.
type Profile struct {
	Name        string
	Description string
	// Source is where the profile comes from: "built-in" or its file path.
	Source string
	// Match is a filename glob (path.Match syntax, case-insensitive, on the
	// file's base name) that chooses the profile for a file automatically;
	// "" when the profile is chosen by name only.
	Match string
	// NoHeader: the file has no header row; every column is by position and
	// the rows start after SkipLines.
	NoHeader bool
	// Columns maps role names (id, amount, wording, account, date, debit,
	// credit, direction) to their columns; empty: the header is recognised
	// as without a profile, the other settings still apply.
	Columns map[string]ProfileColumn
	// Delimiter is the field delimiter; 0: detected from the header line.
	Delimiter byte
	// DecimalSeparator is "," or "."; "": a decimal comma is accepted in
	// files delimited by ';' or TAB, as without a profile.
	DecimalSeparator string
	// DateFormat is the layout of the dates ("dd/mm/yyyy", "mm/dd/yyyy",
	// "yyyy-mm-dd"...; see DateFormats); "": the first date that parses
	// decides, as without a profile.
	DateFormat string
	// Sign is the debit and credit sign convention: SignAuto (default),
	// SignDebitNegative or SignBothPositive.
	Sign string
	// Encoding is EncodingUTF8 or EncodingWindows1252 ("latin-1" in a
	// profile is read as Windows-1252, of which it is a subset for text);
	// "": judged on the file.
	Encoding string
	// SkipLines is the number of physical lines skipped before the header,
	// or before the rows of a file without a header.
	SkipLines int

	layout dateLayout
	cols   [numRoles]ProfileColumn
	has    [numRoles]bool
}

// DateFormats lists the date formats a profile may name, each with the
// layout it reads.
var DateFormats = []string{"dd/mm/yyyy", "dd/mm/yy", "dd.mm.yyyy", "dd.mm.yy", "dd-mm-yyyy", "dd-mm-yy",
	"yyyy-mm-dd", "yyyy/mm/dd", "yyyymmdd", "mm/dd/yyyy", "mm/dd/yy"}

var dateFormatLayouts = map[string]dateLayout{
	"dd/mm/yyyy": layoutDaySlash, "dd/mm/yy": layoutDaySlash,
	"dd.mm.yyyy": layoutDayDot, "dd.mm.yy": layoutDayDot,
	"dd-mm-yyyy": layoutDayDash, "dd-mm-yy": layoutDayDash,
	"yyyy-mm-dd": layoutISO, "yyyy/mm/dd": layoutISOSlash, "yyyymmdd": layoutCompact,
	"mm/dd/yyyy": layoutMonthSlash, "mm/dd/yy": layoutMonthSlash,
}

// profileKeys are the keys of a profile file, in the order of the docs.
var profileKeys = []string{"name", "description", "match", "no_header", "skip_lines", "delimiter",
	"decimal_separator", "date_format", "sign", "encoding", "columns"}

// profileFile is the YAML form of a profile.
type profileFile struct {
	Name             string               `yaml:"name"`
	Description      string               `yaml:"description"`
	Match            string               `yaml:"match"`
	NoHeader         bool                 `yaml:"no_header"`
	SkipLines        int                  `yaml:"skip_lines"`
	Delimiter        string               `yaml:"delimiter"`
	DecimalSeparator string               `yaml:"decimal_separator"`
	DateFormat       string               `yaml:"date_format"`
	Sign             string               `yaml:"sign"`
	Encoding         string               `yaml:"encoding"`
	Columns          map[string]yaml.Node `yaml:"columns"`
}

// maxSkipLines bounds a profile's skip_lines.
const maxSkipLines = 1000

// ParseProfile parses a profile file's YAML. source names the file in
// errors; the profile's name is its name key, or else the file's base name
// without its extension. Keys:
//
//	name: bnp-loan            # letters, digits, '-', '_', '.'
//	description: ...
//	match: "*.csv"            # filename glob choosing the profile automatically
//	no_header: true           # no header row: columns by position only
//	skip_lines: 1             # lines before the header (or the rows)
//	delimiter: ";"            # ";", ",", "tab", "|"... one character
//	decimal_separator: ","    # "," or "."
//	date_format: dd/mm/yyyy   # see DateFormats
//	sign: auto                # auto, debit-negative, both-positive
//	encoding: windows-1252    # utf-8, windows-1252, latin-1
//	columns:                  # role: header name, or 1-based position
//	  date: 1
//	  wording: "Libellé"
//
// An unknown key, an unknown role, a bad value or a mapping that lacks a
// role Read needs (a wording; an amount, or a debit and a credit; an id or a
// date) is an error naming the key and the file.
func ParseProfile(data []byte, source string) (*Profile, error) {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("profile %s: %s", source, fmt.Sprintf(format, args...))
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fail("%v", err)
	}
	if len(doc.Content) == 0 {
		return nil, fail("empty file")
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, fail("line %d: expected a mapping of keys (%s)", root.Line, strings.Join(profileKeys, ", "))
	}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k := root.Content[i]
		if !contains(profileKeys, k.Value) {
			return nil, fail("unknown key %q at line %d; known keys: %s", k.Value, k.Line, strings.Join(profileKeys, ", "))
		}
		if k.Value == "columns" && root.Content[i+1].Kind != yaml.MappingNode {
			return nil, fail("line %d: columns: expected a mapping of roles to header names or positions", k.Line)
		}
	}
	var f profileFile
	if err := root.Decode(&f); err != nil {
		return nil, fail("%v", err)
	}
	p := &Profile{Name: strings.TrimSpace(f.Name), Description: f.Description, Source: source, Match: f.Match,
		NoHeader: f.NoHeader, SkipLines: f.SkipLines, DecimalSeparator: f.DecimalSeparator, Sign: f.Sign}
	if p.Name == "" {
		base := path.Base(filepath.ToSlash(source))
		p.Name = strings.TrimSuffix(base, path.Ext(base))
	}
	if err := validProfileName(p.Name); err != nil {
		return nil, fail("name: %v", err)
	}
	if p.Match != "" {
		if _, err := path.Match(strings.ToLower(p.Match), ""); err != nil {
			return nil, fail("match: bad filename pattern %q: %v", p.Match, err)
		}
	}
	if p.SkipLines < 0 || p.SkipLines > maxSkipLines {
		return nil, fail("skip_lines: %d is not between 0 and %d", p.SkipLines, maxSkipLines)
	}
	var err error
	if p.Delimiter, err = parseDelimiter(f.Delimiter); err != nil {
		return nil, fail("delimiter: %v", err)
	}
	switch p.DecimalSeparator {
	case "", ",", ".":
	default:
		return nil, fail(`decimal_separator: %q is neither "," nor "."`, p.DecimalSeparator)
	}
	if f.DateFormat != "" {
		layout, ok := dateFormatLayouts[strings.ToLower(strings.TrimSpace(f.DateFormat))]
		if !ok {
			return nil, fail("date_format: unknown format %q; known: %s", f.DateFormat, strings.Join(DateFormats, ", "))
		}
		p.DateFormat, p.layout = strings.ToLower(strings.TrimSpace(f.DateFormat)), layout
	}
	switch p.Sign {
	case "":
		p.Sign = SignAuto
	case SignAuto, SignDebitNegative, SignBothPositive:
	default:
		return nil, fail("sign: %q is none of %s, %s, %s", p.Sign, SignAuto, SignDebitNegative, SignBothPositive)
	}
	switch strings.ToLower(strings.TrimSpace(f.Encoding)) {
	case "":
	case "utf-8", "utf8":
		p.Encoding = EncodingUTF8
	case "windows-1252", "cp1252", "latin-1", "latin1", "iso-8859-1":
		p.Encoding = EncodingWindows1252
	default:
		return nil, fail("encoding: %q is none of utf-8, windows-1252, latin-1", f.Encoding)
	}
	if err := p.setColumns(f.Columns, root); err != nil {
		return nil, fail("%v", err)
	}
	return p, nil
}

// setColumns reads the columns mapping and checks that it gives Read what
// it needs.
func (p *Profile) setColumns(cols map[string]yaml.Node, root *yaml.Node) error {
	if len(cols) == 0 {
		if p.NoHeader {
			return errors.New("no_header: a file without a header needs columns by position")
		}
		return nil
	}
	p.Columns = make(map[string]ProfileColumn, len(cols))
	// In file order, for stable messages.
	var keys []*yaml.Node
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value == "columns" {
			m := root.Content[i+1]
			for j := 0; j+1 < len(m.Content); j += 2 {
				keys = append(keys, m.Content[j])
			}
		}
	}
	for _, k := range keys {
		role := roleIndex(k.Value)
		if role < 0 {
			return fmt.Errorf("columns: unknown role %q at line %d; roles: %s", k.Value, k.Line, strings.Join(roleNames[:], ", "))
		}
		v := cols[k.Value]
		var c ProfileColumn
		switch {
		case v.Kind != yaml.ScalarNode:
			return fmt.Errorf("columns: %s at line %d: expected a header name or a position", k.Value, k.Line)
		case v.Tag == "!!int":
			if err := v.Decode(&c.Position); err != nil || c.Position < 1 {
				return fmt.Errorf("columns: %s at line %d: position %s is not a whole number from 1", k.Value, k.Line, v.Value)
			}
		default:
			c.Name = strings.TrimSpace(v.Value)
			if c.Name == "" {
				return fmt.Errorf("columns: %s at line %d: empty header name", k.Value, k.Line)
			}
			if p.NoHeader {
				return fmt.Errorf("columns: %s at line %d: a file without a header (no_header) has columns by position only, not %q", k.Value, k.Line, c.Name)
			}
		}
		for other, oc := range p.Columns {
			if oc == c || (oc.Name != "" && foldHeader(oc.Name) == foldHeader(c.Name)) {
				return fmt.Errorf("columns: %s and %s are both %s", other, k.Value, c)
			}
		}
		p.Columns[k.Value] = c
		p.cols[role], p.has[role] = c, true
	}
	switch {
	case !p.has[colIndexWording]:
		return errors.New("columns: no wording column")
	case p.has[colIndexAmount] && (p.has[colIndexDebit] || p.has[colIndexCredit]):
		return errors.New("columns: an amount column and debit/credit columns: give one or the other")
	case !p.has[colIndexAmount] && !(p.has[colIndexDebit] && p.has[colIndexCredit]):
		return errors.New("columns: no amount column (amount, or debit and credit)")
	case p.has[colIndexDirection] && !p.has[colIndexAmount]:
		return errors.New("columns: a direction column goes with an amount column")
	case !p.has[colIndexID] && !p.has[colIndexDate]:
		return errors.New("columns: neither an id nor a date column: nothing tells the rows apart")
	}
	return nil
}

// roleIndex returns the role of a role name, -1 when unknown.
func roleIndex(name string) int {
	for i, n := range roleNames {
		if n == name {
			return i
		}
	}
	return -1
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// parseDelimiter reads a profile's delimiter: one character, or "tab".
func parseDelimiter(s string) (byte, error) {
	switch s {
	case "":
		return 0, nil
	case "tab", "TAB", `\t`, "\t":
		return '\t', nil
	}
	if len(s) != 1 {
		return 0, fmt.Errorf(`%q is not one character (such as ";", ",", "tab" or "|")`, s)
	}
	c := s[0]
	if c == '"' || c == '\r' || c == '\n' || c == ' ' || c >= 0x80 || c < 0x20 ||
		(c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '.' || c == '-' || c == '+' {
		return 0, fmt.Errorf("%q cannot separate fields", s)
	}
	return c, nil
}

// validProfileName: 1 to 64 letters, digits, '-', '_', '.'.
func validProfileName(name string) error {
	if name == "" || len(name) > 64 {
		return fmt.Errorf("%q: expected 1 to 64 letters, digits, '-', '_', '.'", name)
	}
	for _, r := range name {
		if !accountChar(r) || r == ':' {
			return fmt.Errorf("%q has %q; allowed: letters, digits, '-', '_', '.'", name, r)
		}
	}
	return nil
}

// DescribeDelimiter names a delimiter for people: ";", ",", "tab".
func DescribeDelimiter(d rune) string {
	if d == '\t' {
		return "tab"
	}
	if d == 0 {
		return "none"
	}
	return fmt.Sprintf("%q", string(d))
}

// Profiles is a set of mapping profiles by name: the built-in ones and
// those of a profiles folder (LoadProfiles). The zero value holds the
// built-in profiles.
type Profiles struct {
	byName map[string]*Profile
	// order: the folder's profiles by name, then the built-in ones by name;
	// Match tries them in this order.
	order []*Profile
}

// BuiltinSource is the Source of the profiles shipped in the binary.
const BuiltinSource = "built-in"

//go:embed profiles/*.yaml
var builtinFS embed.FS

var builtinProfiles = sync.OnceValues(func() (Profiles, error) {
	entries, err := builtinFS.ReadDir("profiles")
	if err != nil {
		return Profiles{}, err
	}
	var list []*Profile
	for _, e := range entries {
		data, err := builtinFS.ReadFile("profiles/" + e.Name())
		if err != nil {
			return Profiles{}, err
		}
		p, err := ParseProfile(data, e.Name())
		if err != nil {
			return Profiles{}, err
		}
		p.Source = BuiltinSource
		list = append(list, p)
	}
	return newProfiles(nil, list)
})

// BuiltinProfiles returns the profiles shipped in the binary (txn/profiles/).
func BuiltinProfiles() Profiles {
	ps, err := builtinProfiles()
	if err != nil {
		panic("txn: built-in profiles: " + err.Error()) // tested: cannot happen in a build
	}
	return ps
}

// newProfiles makes a set of the folder's profiles and the built-in ones:
// a folder profile overrides a built-in one of the same name; two folder
// profiles of one name are an error.
func newProfiles(folder, builtin []*Profile) (Profiles, error) {
	ps := Profiles{byName: map[string]*Profile{}}
	sort.Slice(folder, func(i, j int) bool { return folder[i].Name < folder[j].Name })
	sort.Slice(builtin, func(i, j int) bool { return builtin[i].Name < builtin[j].Name })
	for _, p := range folder {
		if q, ok := ps.byName[p.Name]; ok {
			return Profiles{}, fmt.Errorf("profiles: duplicate name %q in %s and %s", p.Name, q.Source, p.Source)
		}
		ps.byName[p.Name] = p
		ps.order = append(ps.order, p)
	}
	for _, p := range builtin {
		if _, ok := ps.byName[p.Name]; ok {
			continue // overridden by the folder
		}
		ps.byName[p.Name] = p
		ps.order = append(ps.order, p)
	}
	return ps, nil
}

// LoadProfiles returns the built-in profiles and those of the files *.yaml
// and *.yml directly in dir (TXFLOW_PROFILES_DIR), which add to them or
// override a built-in one of the same name. dir "" gives the built-in ones.
// A file that is not a valid profile, or two files of one profile name, are
// an error naming the files.
func LoadProfiles(dir string) (Profiles, error) {
	builtin, err := builtinProfiles()
	if err != nil {
		return Profiles{}, fmt.Errorf("built-in profiles: %w", err)
	}
	if dir == "" {
		return builtin, nil
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return Profiles{}, fmt.Errorf("read profiles folder: %w", err)
	}
	var folder []*Profile
	for _, e := range entries {
		ext := strings.ToLower(filepath.Ext(e.Name()))
		if e.IsDir() || strings.HasPrefix(e.Name(), ".") || (ext != ".yaml" && ext != ".yml") {
			continue
		}
		file := filepath.Join(dir, e.Name())
		data, err := os.ReadFile(file)
		if err != nil {
			return Profiles{}, fmt.Errorf("read profile: %w", err)
		}
		p, err := ParseProfile(data, file)
		if err != nil {
			return Profiles{}, err
		}
		folder = append(folder, p)
	}
	return newProfiles(folder, builtin.order)
}

func (ps Profiles) set() Profiles {
	if ps.byName == nil {
		return BuiltinProfiles()
	}
	return ps
}

// Names returns the names of the profiles, sorted.
func (ps Profiles) Names() []string {
	ps = ps.set()
	names := make([]string, 0, len(ps.byName))
	for n := range ps.byName {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// All returns the profiles in the order Match tries them.
func (ps Profiles) All() []*Profile { return ps.set().order }

// UnknownProfileError reports a profile name that is not in the set.
type UnknownProfileError struct {
	Name  string
	Known []string
}

func (e *UnknownProfileError) Error() string {
	return fmt.Sprintf("unknown profile %q; known profiles: %s", e.Name, strings.Join(e.Known, ", "))
}

// Lookup returns the profile of that name, or an *UnknownProfileError
// listing the known names.
func (ps Profiles) Lookup(name string) (*Profile, error) {
	ps = ps.set()
	if p, ok := ps.byName[name]; ok {
		return p, nil
	}
	return nil, &UnknownProfileError{Name: name, Known: ps.Names()}
}

// Match returns the first profile whose filename pattern matches the base
// name of file (case-insensitive): the folder's profiles by name, then the
// built-in ones. nil when none does.
func (ps Profiles) Match(file string) *Profile {
	base := strings.ToLower(path.Base(filepath.ToSlash(file)))
	for _, p := range ps.set().order {
		if p.Match == "" {
			continue
		}
		if ok, _ := path.Match(strings.ToLower(p.Match), base); ok {
			return p
		}
	}
	return nil
}

// Resolve chooses the profile of a file: the one named (an
// *UnknownProfileError when there is none of that name), otherwise the
// first whose pattern matches the file's name, otherwise nil (the file is
// recognised by its header).
func (ps Profiles) Resolve(name, file string) (*Profile, error) {
	if name != "" {
		return ps.Lookup(name)
	}
	return ps.Match(file), nil
}

// ParseFolderSettings reads an inbox folder's settings file (.txflow.yaml):
// its only key, profile, names the profile of the folder's files.
func ParseFolderSettings(data []byte, source string) (profile string, err error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return "", fmt.Errorf("folder settings %s: %w", source, err)
	}
	if len(doc.Content) == 0 {
		return "", nil
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return "", fmt.Errorf("folder settings %s: expected a mapping such as \"profile: NAME\"", source)
	}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		if k.Value != "profile" {
			return "", fmt.Errorf("folder settings %s: unknown key %q at line %d; known keys: profile", source, k.Value, k.Line)
		}
		if v.Kind != yaml.ScalarNode {
			return "", fmt.Errorf("folder settings %s: profile at line %d: expected a name", source, k.Line)
		}
		profile = strings.TrimSpace(v.Value)
	}
	return profile, nil
}

// profileName is the name of p, "" for nil.
func (p *Profile) profileName() string {
	if p == nil {
		return ""
	}
	return p.Name
}

// hasNamedColumn: the profile names at least one column by its header name.
func (p *Profile) hasNamedColumn() bool {
	for _, c := range p.Columns {
		if c.Name != "" {
			return true
		}
	}
	return false
}

// hasColumns: the profile maps the columns itself.
func (p *Profile) hasColumns() bool { return p != nil && len(p.Columns) > 0 }

// skipLines skips the profile's first lines, tracing them.
func (p *Profile) skipLines(sc *scanner, codec *textCodec, tr *readTrace) (int64, error) {
	var skipped int64
	for p != nil && skipped < int64(p.SkipLines) {
		raw, whole, err := sc.physicalLine()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return skipped, fmt.Errorf("read csv: %w", err)
		}
		if !whole {
			raw = dropIncompleteRune(raw)
		}
		mode, _ := codec.check(raw)
		tr.skip(sc.line, mode.text(trimLineEnd(raw)))
		skipped++
	}
	return skipped, nil
}

// positionalHeader is the header of a file without a header row: the
// profile's columns by position. Rows have at least as many fields as the
// last position.
func (p *Profile) positionalHeader() header {
	h := header{delim: p.Delimiter, atLeast: true}
	for r := range h.cols {
		h.cols[r] = -1
		if p.has[r] {
			h.cols[r] = p.cols[r].Position - 1
			h.names[r] = p.cols[r].String()
			h.fields = max(h.fields, p.cols[r].Position)
		}
	}
	p.applyTo(&h)
	return h
}

// matchHeader maps a header line with the profile's columns: names are
// found among the fields (the first of a name wins), positions must be
// within them. With no delimiter in the profile, ';', TAB and ',' are tried,
// the most frequent in the line first. It returns the header and, when the
// line does not fit, how many of the profile's columns it has.
func (p *Profile) matchHeader(line string) (header, int, bool) {
	best := 0
	for _, d := range delimCandidates(line, p.Delimiter) {
		names := splitNames(line, d)
		var h header
		found := 0
		for r := range h.cols {
			h.cols[r] = -1
			if !p.has[r] {
				continue
			}
			c := p.cols[r]
			if c.Position > 0 {
				if c.Position <= len(names) {
					h.cols[r], h.names[r] = c.Position-1, strings.TrimSpace(names[c.Position-1])
					found++
				}
				continue
			}
			key := foldHeader(c.Name)
			for i, n := range names {
				if foldHeader(n) == key {
					h.cols[r], h.names[r] = i, strings.TrimSpace(n)
					found++
					break
				}
			}
		}
		if found == len(p.Columns) {
			h.delim = d
			h.fields = len(names)
			h.trailingEmpty = len(names) > 1 && strings.TrimSpace(names[len(names)-1]) == ""
			p.applyTo(&h)
			return h, found, true
		}
		best = max(best, found)
	}
	return header{}, best, false
}

// applyTo sets what the profile says beyond the columns.
func (p *Profile) applyTo(h *header) {
	h.decimalComma = h.delim != ','
	switch p.DecimalSeparator {
	case ",":
		h.decimalComma = true
	case ".":
		h.decimalComma = false
	}
}

// expected describes the header the profile wants, for FileError.
func (p *Profile) expected() string {
	var parts []string
	for r, ok := range p.has {
		if ok {
			parts = append(parts, roleNames[r]+" "+p.cols[r].String())
		}
	}
	return fmt.Sprintf("the columns of profile %s: %s", p.Name, strings.Join(parts, ", "))
}

// delimCandidates are the delimiters to try on a header line: the given
// one, or ';', TAB and ',' the most frequent first.
func delimCandidates(line string, given byte) []byte {
	if given != 0 {
		return []byte{given}
	}
	cands := []byte{';', '\t', ','}
	count := func(d byte) int { return strings.Count(line, string(d)) }
	sort.SliceStable(cands, func(i, j int) bool { return count(cands[i]) > count(cands[j]) })
	return cands
}

// splitNames splits a header line into its names.
func splitNames(line string, d byte) []string {
	buf, ends := splitLazy([]byte(line), d, nil, nil)
	names := make([]string, len(ends))
	prev := 0
	for i, e := range ends {
		names[i] = string(buf[prev:e])
		prev = e
	}
	return names
}

// checkDebitSign applies the profile's sign convention to a filled debit.
func checkDebitSign(sign string, d amountCell) error {
	switch {
	case sign == SignBothPositive && d.value.IsNegative():
		return fmt.Errorf("invalid amount: debit %s written negative; the profile says debits are written positive", quoteSample(strings.TrimSpace(d.raw)))
	case sign == SignDebitNegative && d.value.IsPositive():
		return fmt.Errorf("invalid amount: debit %s written positive; the profile says debits are written negative", quoteSample(strings.TrimSpace(d.raw)))
	}
	return nil
}

// parseMonthFirst parses a month-first date (01/31/2026, 01/31/26).
func parseMonthFirst(s string) (time.Time, error) {
	t := strings.TrimSpace(s)
	parts := strings.SplitN(t, "/", 3)
	if len(parts) != 3 {
		if t == "" {
			return time.Time{}, errDateEmpty
		}
		return time.Time{}, fmt.Errorf("invalid date: %q is not in the file's format mm/dd/yyyy", t)
	}
	d, layout, err := parseDate(parts[1] + "/" + parts[0] + "/" + parts[2])
	if err != nil {
		return time.Time{}, fmt.Errorf("invalid date: %q is not a day in the file's format mm/dd/yyyy", t)
	}
	if layout != layoutDaySlash {
		return time.Time{}, fmt.Errorf("invalid date: %q is not in the file's format mm/dd/yyyy", t)
	}
	return d, nil
}
