package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// pki is a throwaway certificate authority with the frontend's and a client's certificates, as
// PEM files: what an operator would give the Temporal server, the workers and the starter.
type pki struct {
	ca                    string // the CA certificate: it signs the others
	serverCert, serverKey string // the frontend's: 127.0.0.1 and localhost
	clientCert, clientKey string // the workers', the starter's and the Web UI's
	rogueCert, rogueKey   string // a client certificate from another CA, self-signed
}

// newPKI makes a CA and its certificates in dir: ECDSA P-256, valid for an hour.
func newPKI(t *testing.T, dir string) pki {
	t.Helper()
	require.NoError(t, os.MkdirAll(dir, 0o700))
	now := time.Now()
	serial := int64(0)
	template := func(cn string) *x509.Certificate {
		serial++
		return &x509.Certificate{
			SerialNumber: big.NewInt(serial),
			Subject:      pkix.Name{Organization: []string{"txflow test"}, CommonName: cn},
			NotBefore:    now.Add(-time.Minute),
			NotAfter:     now.Add(time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature,
		}
	}
	// issue signs tmpl with the parent's key (itself when parent is nil) and writes NAME.pem and
	// NAME-key.pem.
	issue := func(name string, tmpl, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*x509.Certificate, *ecdsa.PrivateKey, string, string) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		require.NoError(t, err)
		if parent == nil {
			parent, parentKey = tmpl, key
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
		require.NoError(t, err)
		cert, err := x509.ParseCertificate(der)
		require.NoError(t, err)
		keyDER, err := x509.MarshalPKCS8PrivateKey(key)
		require.NoError(t, err)
		certFile, keyFile := filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem")
		require.NoError(t, os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644))
		require.NoError(t, os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600))
		return cert, key, certFile, keyFile
	}
	var p pki
	caTmpl := template("txflow test CA")
	caTmpl.IsCA, caTmpl.BasicConstraintsValid = true, true
	caTmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign
	ca, caKey, caFile, _ := issue("ca", caTmpl, nil, nil)
	p.ca = caFile

	server := template("temporal frontend")
	server.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	server.DNSNames = []string{"localhost"}
	server.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
	_, _, p.serverCert, p.serverKey = issue("server", server, ca, caKey)

	client := template("txflow")
	client.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	_, _, p.clientCert, p.clientKey = issue("client", client, ca, caKey)

	rogue := template("txflow")
	rogue.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	_, _, p.rogueCert, p.rogueKey = issue("rogue", rogue, nil, nil)
	return p
}

// uiExecution is a workflow execution as the Web UI's HTTP API lists it.
type uiExecution struct {
	Execution struct {
		WorkflowID string `json:"workflowId"`
	} `json:"execution"`
	Status string `json:"status"`
}

// uiWorkflows lists the executions of namespace default matching query through the Web UI's
// HTTP API, as the UI's workflow list does.
func uiWorkflows(t *testing.T, base, query string) []uiExecution {
	t.Helper()
	resp, err := http.Get(base + "/api/v1/namespaces/default/workflows?query=" + url.QueryEscape(query))
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
	var list struct {
		Executions []uiExecution `json:"executions"`
	}
	require.NoError(t, json.Unmarshal(body, &list), "%s", body)
	return list.Executions
}
