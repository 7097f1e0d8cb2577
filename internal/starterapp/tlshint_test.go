package starterapp

import (
	"crypto/tls"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
)

func TestTLSHint(t *testing.T) {
	plain := client.Options{}
	noCert := client.Options{ConnectionOptions: client.ConnectionOptions{TLS: &tls.Config{}}}
	withCert := client.Options{ConnectionOptions: client.ConnectionOptions{TLS: &tls.Config{Certificates: []tls.Certificate{{}}}}}
	preface := errors.New(`failed reaching server: connection error: desc = "error reading server preface: EOF"`)
	pipe := errors.New("failed reaching server: write tcp 127.0.0.1:1->127.0.0.1:7233: write: broken pipe")
	refused := errors.New("failed reaching server: dial tcp 127.0.0.1:7233: connect: connection refused")

	require.Contains(t, tlsHint(plain, preface), "TEMPORAL_TLS_SERVER_CA_CERT_PATH")
	require.Empty(t, tlsHint(plain, pipe), "a plaintext client's other errors are not about TLS")
	require.Contains(t, tlsHint(noCert, pipe), "no client certificate")
	require.Contains(t, tlsHint(noCert, preface), "no client certificate")
	require.Empty(t, tlsHint(withCert, pipe))
	for _, o := range []client.Options{plain, noCert, withCert} {
		require.Empty(t, tlsHint(o, refused), "nothing listens: not a TLS matter")
	}
}
