// Command kmsplugin is a KMS v2 plugin for kube-apiserver that wraps DEKs with a Key Vault key, for the
// real control plane of `make e2e-k8s` (docs/real-cluster.md). This file is plumbing: flags, the socket,
// signals. The three KMS calls are in service.go; the key slots in slots.go; the vault client in vault.go.
package main

import (
	"errors"
	"flag"
	"fmt"
	"log"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"k8s.io/kms/pkg/service"
)

func main() {
	socket := flag.String("listen", "", "unix socket path to serve on (the bare path: the EncryptionConfiguration's endpoint is unix://<this path>)")
	slotsPath := flag.String("key-slots", "", `JSON file naming the key slots, re-read on every Status call: {"current": URL, "previous": URL or null}`)
	endpoint := flag.String("vault-endpoint", "", "where Key Vault requests go, e.g. http://127.0.0.1:PORT (the key URLs keep the vault's own name)")
	tokenFile := flag.String("vault-token-file", "", "file holding the bearer token for the vault")
	timeout := flag.Duration("timeout", 10*time.Second, "gRPC connection timeout and vault request timeout")
	flag.Parse()
	log.SetFlags(log.LstdFlags | log.LUTC)
	if err := run(*socket, *slotsPath, *endpoint, *tokenFile, *timeout); err != nil {
		log.Printf("kmsplugin: %v", err)
		os.Exit(1)
	}
}

func run(socket, slotsPath, endpoint, tokenFile string, timeout time.Duration) error {
	if socket == "" || slotsPath == "" || endpoint == "" || tokenFile == "" {
		return errors.New("--listen, --key-slots, --vault-endpoint and --vault-token-file are all required")
	}
	if strings.HasPrefix(socket, "unix://") {
		return fmt.Errorf("--listen takes the bare socket path, not %q", socket)
	}
	vaultURL, err := url.Parse(endpoint)
	if err != nil || (vaultURL.Scheme != "http" && vaultURL.Scheme != "https") || vaultURL.Host == "" {
		return fmt.Errorf("--vault-endpoint %q: want http(s)://host:port", endpoint)
	}
	token, err := os.ReadFile(tokenFile)
	if err != nil {
		return err
	}
	vault := &vaultClient{endpoint: vaultURL, token: strings.TrimSpace(string(token)), http: &http.Client{Timeout: timeout}}
	kms, err := newKMSService(vault, slotsFromFile(slotsPath))
	if err != nil {
		return err
	}
	// A socket left by a killed run would make Listen fail with "address already in use".
	if err := os.Remove(socket); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	server := service.NewGRPCService(socket, timeout, kms)
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-signals
		server.Shutdown()
	}()
	log.Printf("kmsplugin: serving on %s, current key %s", socket, kms.current().Current.URL)
	err = server.ListenAndServe()
	_ = os.Remove(socket)
	return err
}
