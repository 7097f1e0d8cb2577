package postgres

import (
	"context"
	"strings"
	"testing"

	pgxdecimal "github.com/jackc/pgx-shopspring-decimal"
	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/require"

	"github.com/txflow/txflow/internal/testdb"
)

// Amounts copied as cents are stored as the same numeric as through pgx's own encoder, with two
// decimals; amounts too long for cents go through decimal.Decimal.
func TestCentsAreCopiedAsTheirNumeric(t *testing.T) {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, testdb.URL(t))
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close(ctx) })
	pgxdecimal.Register(conn.TypeMap())
	registerCents(conn.TypeMap())
	_, err = conn.Exec(ctx, "CREATE TEMP TABLE amounts (n int, mine numeric, pgx numeric)")
	require.NoError(t, err)

	cases := []struct {
		in, want string
		cents    bool
	}{
		{"0", "0.00", true},
		{"-0.00", "0.00", true},
		{"0.01", "0.01", true},
		{"-0.01", "-0.01", true},
		{"0.5", "0.50", true},
		{"1", "1.00", true},
		{"12.50", "12.50", true},
		{"-3", "-3.00", true},
		{"9999.99", "9999.99", true},
		{"10000", "10000.00", true},
		{"10000.01", "10000.01", true},
		{"100000000", "100000000.00", true},
		{"-12345678.90", "-12345678.90", true},
		{"1000000.01", "1000000.01", true},
		{"1234567890123456.78", "1234567890123456.78", true},
		{"-9999999999999999.99", "-9999999999999999.99", true},
		{"99999999999999999.99", "99999999999999999.99", false},
		{"100000000000000000", "100000000000000000.00", false},
		{"9" + strings.Repeat("0", 199) + ".05", "9" + strings.Repeat("0", 199) + ".05", false},
	}
	for _, c := range cases {
		_, isCents := copyAmount(decimal.RequireFromString(c.in)).(cents)
		require.Equal(t, c.cents, isCents, c.in)
	}
	_, err = conn.CopyFrom(ctx, pgx.Identifier{"amounts"}, []string{"n", "mine", "pgx"},
		pgx.CopyFromSlice(len(cases), func(i int) ([]any, error) {
			d := decimal.RequireFromString(cases[i].in)
			return []any{i, copyAmount(d), scale2(d)}, nil
		}))
	require.NoError(t, err)
	rows, err := conn.Query(ctx, "SELECT mine::text, pgx::text, mine = pgx, scale(mine) FROM amounts ORDER BY n")
	require.NoError(t, err)
	i := 0
	for rows.Next() {
		var mine, viaPgx string
		var equal bool
		var scale int
		require.NoError(t, rows.Scan(&mine, &viaPgx, &equal, &scale))
		require.Equal(t, cases[i].want, mine, cases[i].in)
		require.Equal(t, viaPgx, mine, cases[i].in)
		require.True(t, equal, cases[i].in)
		require.Equal(t, 2, scale, cases[i].in)
		i++
	}
	require.NoError(t, rows.Err())
	require.Equal(t, len(cases), i)
}

// readAmount decodes what PostgreSQL sends for a numeric, in binary and in text, as the same
// value: amounts of any size and scale, zero, negative zero; NaN is an error.
func TestReadAmountDecodesWhatPostgreSQLSends(t *testing.T) {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, testdb.URL(t))
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close(ctx) })
	values := []string{"0", "-0.00", "0.00", "0.01", "-0.01", "0.5", "1", "12.50", "-3.00", "9999.99", "10000", "10000.01",
		"100000000.00", "-12345678.90", "1000000.01", "999999999999.99", "1000000000000.01", "1234567890123456.78",
		"-9999999999999999.99", "99999999999999999.99", "100000000000000000", "9" + strings.Repeat("0", 199) + ".05",
		"0.0001", "-123.456", "0.00000000000000000001", "1e20"}
	for _, format := range []int16{pgx.BinaryFormatCode, pgx.TextFormatCode} {
		rows, err := conn.Query(ctx, "SELECT v, v::numeric FROM unnest($1::text[]) WITH ORDINALITY AS u(v, n) ORDER BY n",
			pgx.QueryResultFormats{pgx.TextFormatCode, format}, values)
		require.NoError(t, err)
		n := 0
		for rows.Next() {
			require.Equal(t, format, rows.FieldDescriptions()[1].Format)
			var v string
			require.NoError(t, rows.Scan(&v, nil))
			got, err := readAmount(rows.RawValues()[1], format)
			require.NoError(t, err, v)
			require.True(t, decimal.RequireFromString(v).Equal(got), "%s read as %s (format %d)", v, got, format)
			n++
		}
		require.NoError(t, rows.Err())
		require.Equal(t, len(values), n)

		var raw []byte
		require.NoError(t, conn.QueryRow(ctx, "SELECT 'NaN'::numeric", pgx.QueryResultFormats{format}).Scan(&raw))
		_, err = readAmount(raw, format)
		require.Error(t, err, "NaN")
	}
	_, err = readAmount(nil, pgx.BinaryFormatCode)
	require.Error(t, err, "NULL")
}
