package natstest

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
)

// StablePort returns a loopback TCP port, free now, below the kernel's ephemeral range: a server
// that stops and starts again on it finds it free. A port of the ephemeral range (what port 0
// gives) can meanwhile be taken as the local end of any outgoing connection of the machine,
// including a client of that very server reconnecting to it (a TCP self-connection).
func StablePort() (int, error) {
	low := ephemeralLow()
	from := max(1024, low-16384)
	for range 200 {
		p := from + rand.IntN(low-from)
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			continue
		}
		l.Close()
		return p, nil
	}
	return 0, fmt.Errorf("natstest: no free port in [%d, %d) on 127.0.0.1", from, low)
}

// ephemeralLow is the first port of the ephemeral range: Linux says it, 32768 (its default,
// below macOS's 49152) otherwise.
func ephemeralLow() int {
	const fallback = 32768
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return fallback
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return fallback
	}
	low, err := strconv.Atoi(f[0])
	if err != nil || low <= 2048 {
		return fallback
	}
	return low
}
