package postgres

import (
	"strings"
	"syscall"
)

// tcpUserTimeoutOpt is TCP_USER_TIMEOUT of linux/tcp.h, which the syscall package does not name.
const tcpUserTimeoutOpt = 0x12

// setTCPUserTimeout makes the kernel give up a TCP connection whose sent data stays
// unacknowledged for tcpUserTimeout (a peer gone while txflow writes, as in a COPY).
func setTCPUserTimeout(network, _ string, c syscall.RawConn) error {
	if !strings.HasPrefix(network, "tcp") {
		return nil
	}
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, tcpUserTimeoutOpt, int(tcpUserTimeout.Milliseconds()))
	})
	if err != nil {
		return err
	}
	return serr
}
