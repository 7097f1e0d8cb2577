package natstest

import (
	"net"
	"strconv"
	"testing"
)

func TestStablePortIsFreeAndBelowTheEphemeralRange(t *testing.T) {
	for range 20 {
		p, err := StablePort()
		if err != nil {
			t.Fatal(err)
		}
		if p < 1024 || p >= ephemeralLow() {
			t.Fatalf("port %d is not in [1024, %d)", p, ephemeralLow())
		}
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			t.Fatalf("port %d is not free: %v", p, err)
		}
		l.Close()
	}
}
