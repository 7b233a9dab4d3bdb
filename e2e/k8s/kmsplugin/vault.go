package main

// A client for the two Key Vault data-plane calls the plugin needs, as Key Vault's REST API defines them:
//
//	POST {vault}/keys/{name}/{version}/encrypt?api-version=7.4   {"alg": "RSA-OAEP-256", "value": base64url}
//	POST {vault}/keys/{name}/{version}/decrypt?api-version=7.4   -> {"kid": ..., "value": base64url}
//
// The requests go to --vault-endpoint (the local stand-in) while the key URLs, and so the key ids, keep the
// vault's real-looking https name.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path"
	"strings"
)

const (
	vaultAPIVersion = "7.4"
	wrapAlgorithm   = "RSA-OAEP-256"
)

type vaultClient struct {
	endpoint *url.URL // where requests go, e.g. http://127.0.0.1:PORT
	token    string
	http     *http.Client
}

type keyOperation struct {
	Alg   string `json:"alg"`
	Value string `json:"value"`
}

type keyOperationResult struct {
	Kid   string `json:"kid"`
	Value string `json:"value"`
}

type vaultError struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func (c *vaultClient) Wrap(ctx context.Context, key Key, plaintext []byte) ([]byte, error) {
	return c.operate(ctx, key, "encrypt", plaintext)
}

func (c *vaultClient) Unwrap(ctx context.Context, key Key, ciphertext []byte) ([]byte, error) {
	return c.operate(ctx, key, "decrypt", ciphertext)
}

func (c *vaultClient) operate(ctx context.Context, key Key, op string, value []byte) ([]byte, error) {
	body, err := json.Marshal(keyOperation{Alg: wrapAlgorithm, Value: base64.RawURLEncoding.EncodeToString(value)})
	if err != nil {
		return nil, err
	}
	target := c.endpoint.ResolveReference(&url.URL{
		Path:     path.Join("keys", key.Name, key.Version, op),
		RawQuery: url.Values{"api-version": {vaultAPIVersion}}.Encode(),
	})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target.String(), bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("key vault %s: %w", op, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("key vault %s: %w", op, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e vaultError
		if json.Unmarshal(data, &e) == nil && e.Error.Code != "" {
			return nil, fmt.Errorf("key vault %s: %d %s: %s", op, resp.StatusCode, e.Error.Code, e.Error.Message)
		}
		return nil, fmt.Errorf("key vault %s: HTTP %d", op, resp.StatusCode)
	}
	var result keyOperationResult
	if err := json.Unmarshal(data, &result); err != nil {
		return nil, fmt.Errorf("key vault %s: bad response: %w", op, err)
	}
	// As the Azure plugin does after encrypt: the vault must answer with the very key version we asked for.
	if sum := fmt.Sprintf("%x", sha256.Sum256([]byte(result.Kid))); sum != key.ID {
		return nil, fmt.Errorf("key vault %s: answered with key %q, not %s", op, result.Kid, key.URL)
	}
	out, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(result.Value, "="))
	if err != nil {
		return nil, fmt.Errorf("key vault %s: value is not base64url: %w", op, err)
	}
	return out, nil
}
