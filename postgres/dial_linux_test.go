package postgres

import (
	"context"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/txflow/txflow/internal/testdb"
)

// TestConnectionsKeepAlive checks both ends of a store's connection: the socket's keepalive and
// user timeout options, and the server's keepalive and timeout settings of the session.
func TestConnectionsKeepAlive(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	go func() {
		if c, err := l.Accept(); err == nil {
			defer c.Close()
			time.Sleep(time.Second)
		}
	}()
	conn, err := dialer(5*time.Second).DialContext(context.Background(), "tcp", l.Addr().String())
	require.NoError(t, err)
	defer conn.Close()
	raw, err := conn.(*net.TCPConn).SyscallConn()
	require.NoError(t, err)
	get := func(level, opt int) int {
		var v int
		var gerr error
		require.NoError(t, raw.Control(func(fd uintptr) { v, gerr = syscall.GetsockoptInt(int(fd), level, opt) }))
		require.NoError(t, gerr)
		return v
	}
	require.Equal(t, 1, get(syscall.SOL_SOCKET, syscall.SO_KEEPALIVE))
	require.Equal(t, 15, get(syscall.IPPROTO_TCP, syscall.TCP_KEEPIDLE))
	require.Equal(t, 5, get(syscall.IPPROTO_TCP, syscall.TCP_KEEPINTVL))
	require.Equal(t, 4, get(syscall.IPPROTO_TCP, syscall.TCP_KEEPCNT))
	require.Equal(t, 35_000, get(syscall.IPPROTO_TCP, tcpUserTimeoutOpt))

	ctx := context.Background()
	db, err := Open(ctx, testdb.URL(t))
	require.NoError(t, err)
	defer db.Close()
	want := map[string]string{
		"statement_timeout": "10min", "lock_timeout": "1min",
		"tcp_keepalives_idle": "15", "tcp_keepalives_interval": "5", "tcp_keepalives_count": "4",
		"tcp_user_timeout": "35000",
	}
	for name, value := range want {
		var got string
		require.NoError(t, db.pool.QueryRow(ctx, "SELECT current_setting($1)", name).Scan(&got))
		require.Equal(t, value, got, name)
	}
}
