package txn

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// dateLayout is the shape of a file's dates. The first date of a file that
// parses decides it; a later date of another shape is invalid_date.
type dateLayout uint8

const (
	layoutUnknown    dateLayout = iota
	layoutDaySlash              // 31/01/2026 or 31/01/26: day first
	layoutDayDot                // 31.01.2026 or 31.01.26: day first
	layoutDayDash               // 31-01-2026 or 31-01-26: day first
	layoutISO                   // 2026-01-31, optionally followed by a time
	layoutISOSlash              // 2026/01/31
	layoutCompact               // 20260131
	layoutMonthSlash            // 01/31/2026 or 01/31/26: month first, only when a profile says so
)

// String is the format reported in Stats.DateFormat.
func (l dateLayout) String() string {
	switch l {
	case layoutDaySlash:
		return "dd/mm/yyyy"
	case layoutDayDot:
		return "dd.mm.yyyy"
	case layoutDayDash:
		return "dd-mm-yyyy"
	case layoutISO:
		return "yyyy-mm-dd"
	case layoutISOSlash:
		return "yyyy/mm/dd"
	case layoutCompact:
		return "yyyymmdd"
	case layoutMonthSlash:
		return "mm/dd/yyyy"
	}
	return ""
}

var (
	errDateEmpty = errors.New("invalid date: empty")
	errDateShape = errors.New("invalid date: expected dd/mm/yyyy, dd/mm/yy, dd.mm.yyyy, yyyy-mm-dd or yyyymmdd")
)

// parseDate reads a date as banks write it: 31/01/2026, 31/01/26,
// 31.01.2026, 31-01-2026, 2026-01-31, 2026/01/31, 20260131, each optionally
// followed by a time after a space or a 'T' ("2026-01-31 12:16:54"), which
// is dropped: the date-time keeps its date. The day comes first when the
// first number has one or two digits; the year comes first when it has four
// (or in 8 bare digits). A two-digit year is 20yy. The result is midnight
// UTC of that day.
func parseDate(s string) (time.Time, dateLayout, error) {
	t := strings.TrimSpace(s)
	if t == "" {
		return time.Time{}, layoutUnknown, errDateEmpty
	}
	if i := strings.IndexAny(t, " T"); i >= 0 {
		t = t[:i]
	}
	nums, seps, ok := splitDate(t)
	if !ok {
		return time.Time{}, layoutUnknown, errDateShape
	}
	var y, m, d int
	var layout dateLayout
	switch {
	case len(nums) == 1 && len(nums[0]) == 8:
		n := nums[0]
		y, m, d = atoi(n[:4]), atoi(n[4:6]), atoi(n[6:])
		layout = layoutCompact
	case len(nums) == 3 && seps[0] == seps[1] && len(nums[0]) == 4 && len(nums[1]) <= 2 && len(nums[2]) <= 2:
		y, m, d = atoi(nums[0]), atoi(nums[1]), atoi(nums[2])
		switch seps[0] {
		case '-':
			layout = layoutISO
		case '/':
			layout = layoutISOSlash
		default:
			return time.Time{}, layoutUnknown, errDateShape
		}
	case len(nums) == 3 && seps[0] == seps[1] && len(nums[0]) <= 2 && len(nums[1]) <= 2 && (len(nums[2]) == 2 || len(nums[2]) == 4):
		d, m, y = atoi(nums[0]), atoi(nums[1]), atoi(nums[2])
		if len(nums[2]) == 2 {
			y += 2000
		}
		switch seps[0] {
		case '/':
			layout = layoutDaySlash
		case '.':
			layout = layoutDayDot
		default:
			layout = layoutDayDash
		}
	default:
		return time.Time{}, layoutUnknown, errDateShape
	}
	if m < 1 || m > 12 || d < 1 || d > 31 || y < 1 {
		return time.Time{}, layoutUnknown, fmt.Errorf("invalid date: no such day %q", s)
	}
	date := time.Date(y, time.Month(m), d, 0, 0, 0, 0, time.UTC)
	if date.Day() != d {
		return time.Time{}, layoutUnknown, fmt.Errorf("invalid date: no such day %q", strings.TrimSpace(s))
	}
	return date, layout, nil
}

// splitDate splits t into runs of digits separated by single '/', '.' or
// '-'.
func splitDate(t string) (nums []string, seps []byte, ok bool) {
	start := 0
	for i := 0; i <= len(t); i++ {
		if i < len(t) && t[i] >= '0' && t[i] <= '9' {
			continue
		}
		if i == start || len(nums) == 3 {
			return nil, nil, false
		}
		nums = append(nums, t[start:i])
		if i < len(t) {
			c := t[i]
			if c != '/' && c != '.' && c != '-' {
				return nil, nil, false
			}
			seps = append(seps, c)
		}
		start = i + 1
	}
	return nums, seps, len(nums) == 1 || len(nums) == 3
}

// atoi converts a short run of ASCII digits.
func atoi(s string) int {
	n := 0
	for i := 0; i < len(s); i++ {
		n = n*10 + int(s[i]-'0')
	}
	return n
}

// dateReader parses a file's dates and holds its layout.
type dateReader struct {
	layout dateLayout // set in advance by a profile's date format
}

// parse parses one date of the file: the first that parses fixes the
// layout of the file; a date of another layout is refused.
func (dr *dateReader) parse(s string) (time.Time, error) {
	if dr.layout == layoutMonthSlash {
		return parseMonthFirst(s)
	}
	d, layout, err := parseDate(s)
	if err != nil {
		return time.Time{}, err
	}
	if dr.layout == layoutUnknown {
		dr.layout = layout
	} else if layout != dr.layout && !(sameFamily(layout, dr.layout)) {
		return time.Time{}, fmt.Errorf("invalid date: %q is not in the file's format %s", strings.TrimSpace(s), dr.layout)
	}
	return d, nil
}

// sameFamily: the year-first layouts with '-' and '/' are never confused
// with a day-first one, so they may mix; day-first layouts must not.
func sameFamily(a, b dateLayout) bool {
	yearFirst := func(l dateLayout) bool { return l == layoutISO || l == layoutISOSlash || l == layoutCompact }
	return yearFirst(a) && yearFirst(b)
}
