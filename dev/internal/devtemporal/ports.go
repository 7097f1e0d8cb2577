package devtemporal

import (
	"fmt"
	"net"
	"strconv"
)

// FreePort returns a TCP port on 127.0.0.1 that is currently free.
//
// The port is put in TIME_WAIT before it is returned, so the kernel will not
// hand it out again for an ephemeral bind(":0") for a while, while an explicit
// bind to it (as the server does) still succeeds. This keeps concurrently
// running test binaries from racing for the same port.
func FreePort() (int, error) {
	return freePort(defaultIP)
}

func freePort(ip string) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		return 0, fmt.Errorf("listen for free port: %w", err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port

	// Connect and close from the server side so the port enters TIME_WAIT.
	c, err := net.Dial("tcp", net.JoinHostPort(ip, strconv.Itoa(port)))
	if err != nil {
		return 0, fmt.Errorf("dial free port: %w", err)
	}
	defer c.Close()
	sc, err := l.Accept()
	if err != nil {
		return 0, fmt.Errorf("accept on free port: %w", err)
	}
	_ = sc.Close()
	return port, nil
}

// listen binds ip:port, returning a descriptive error when the port is taken.
func listen(what, ip string, port int) (net.Listener, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(port)))
	if err != nil {
		return nil, fmt.Errorf("%s port %d unavailable: %w", what, port, err)
	}
	return l, nil
}

// checkPortFree reports whether ip:port can be bound right now.
func checkPortFree(what, ip string, port int) error {
	l, err := listen(what, ip, port)
	if err != nil {
		return err
	}
	return l.Close()
}
