//go:build !linux

package postgres

import "syscall"

// setTCPUserTimeout does nothing where TCP_USER_TIMEOUT is not available; keepalives still apply.
func setTCPUserTimeout(string, string, syscall.RawConn) error { return nil }
