package main

// The key slots: which versioned Key Vault keys the plugin uses, read from a small JSON file that the test
// harness (testbed/controlplane.py) rewrites to rotate:
//
//	{"current": "https://kms-aks-dev.vault.azure.net/keys/kms-key/<version>",
//	 "previous": "https://kms-aks-dev.vault.azure.net/keys/kms-key/<older version>"}

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path"
	"strings"
)

// Key is one versioned Key Vault key.
type Key struct {
	URL     string // https://<vault>/keys/<name>/<version>
	Vault   *url.URL
	Name    string
	Version string
	ID      string // the key id the plugin reports: sha256 (hex) of URL
}

// Slots are the current key (wraps new DEKs) and, after a rotation, the previous one (still unwraps).
type Slots struct {
	Current  Key
	Previous *Key
}

// ByID finds the slot whose key id is id.
func (s Slots) ByID(id string) (Key, bool) {
	if s.Current.ID == id {
		return s.Current, true
	}
	if s.Previous != nil && s.Previous.ID == id {
		return *s.Previous, true
	}
	return Key{}, false
}

// parseKeyURL reads a versioned key URL. The key id is computed as the Azure KMS plugin computes it
// (getKeyIDHash in Azure/kubernetes-kms, pkg/plugin/keyvault.go): the vault URL resolved against
// "keys/<name>/<version>", and the sha256 of that string in hex. Written from that description, not copied.
func parseKeyURL(raw string) (Key, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return Key{}, fmt.Errorf("key URL %q: %w", raw, err)
	}
	parts := strings.Split(strings.TrimPrefix(u.Path, "/"), "/")
	if u.Scheme != "https" || u.Host == "" || len(parts) != 3 || parts[0] != "keys" || parts[1] == "" ||
		parts[2] == "" || u.RawQuery != "" || u.Fragment != "" {
		return Key{}, fmt.Errorf("key URL %q: want https://<vault host>/keys/<name>/<version>", raw)
	}
	vault := &url.URL{Scheme: u.Scheme, Host: u.Host, Path: "/"}
	id := vault.ResolveReference(&url.URL{Path: path.Join("keys", parts[1], parts[2])}).String()
	sum := sha256.Sum256([]byte(id))
	return Key{URL: id, Vault: vault, Name: parts[1], Version: parts[2], ID: fmt.Sprintf("%x", sum)}, nil
}

type slotsFile struct {
	Current  string  `json:"current"`
	Previous *string `json:"previous"`
}

// slotsFromFile returns a loader that reads the slots file afresh on every call.
func slotsFromFile(file string) func() (Slots, error) {
	return func() (Slots, error) {
		data, err := os.ReadFile(file)
		if err != nil {
			return Slots{}, fmt.Errorf("key slots: %w", err)
		}
		var raw slotsFile
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&raw); err != nil {
			return Slots{}, fmt.Errorf("key slots %s: %w (want {\"current\": URL, \"previous\": URL or null})", file, err)
		}
		current, err := parseKeyURL(raw.Current)
		if err != nil {
			return Slots{}, fmt.Errorf("key slots %s: current: %w", file, err)
		}
		slots := Slots{Current: current}
		if raw.Previous != nil {
			previous, err := parseKeyURL(*raw.Previous)
			if err != nil {
				return Slots{}, fmt.Errorf("key slots %s: previous: %w", file, err)
			}
			slots.Previous = &previous
		}
		return slots, nil
	}
}
