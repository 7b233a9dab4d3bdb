package main

// The plugin's core: the three calls of k8s.io/kms/pkg/service.Service. Everything else (flags, the socket,
// reading the key slots, talking HTTP to the vault) is plumbing in the other files.

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"sync"

	"k8s.io/kms/pkg/service"
)

// kmsAPIVersion is the only version the API server accepts from a KMS v2 plugin's Status (it also knows
// "v2beta1", which we do not speak).
const kmsAPIVersion = "v2"

// keyWrapper wraps and unwraps DEKs with one versioned key of the vault (vault.go).
type keyWrapper interface {
	Wrap(ctx context.Context, key Key, plaintext []byte) ([]byte, error)
	Unwrap(ctx context.Context, key Key, ciphertext []byte) ([]byte, error)
}

// kmsService answers the API server. Its key slots are re-read on every Status call, so a new key version
// takes effect when the API server next polls Status (about once a minute, or at its kms-provider healthz
// check), as on AKS after an `up` with a new key id.
type kmsService struct {
	vault     keyWrapper
	loadSlots func() (Slots, error)

	mu    sync.RWMutex
	slots Slots
}

var _ service.Service = (*kmsService)(nil)

func newKMSService(vault keyWrapper, loadSlots func() (Slots, error)) (*kmsService, error) {
	slots, err := loadSlots()
	if err != nil {
		return nil, err
	}
	return &kmsService{vault: vault, loadSlots: loadSlots, slots: slots}, nil
}

func (s *kmsService) current() Slots {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.slots
}

// Status re-reads the slots and proves the current key works with a wrap/unwrap round trip through the
// vault, so a key version the vault does not have makes the plugin unhealthy instead of failing writes later.
func (s *kmsService) Status(ctx context.Context) (*service.StatusResponse, error) {
	slots, err := s.loadSlots()
	if err != nil {
		return nil, err
	}
	probe := make([]byte, 32)
	if _, err := rand.Read(probe); err != nil {
		return nil, err
	}
	wrapped, err := s.vault.Wrap(ctx, slots.Current, probe)
	if err != nil {
		return nil, fmt.Errorf("status: current key %s: %w", slots.Current.URL, err)
	}
	unwrapped, err := s.vault.Unwrap(ctx, slots.Current, wrapped)
	if err != nil {
		return nil, fmt.Errorf("status: current key %s: %w", slots.Current.URL, err)
	}
	if !bytes.Equal(unwrapped, probe) {
		return nil, fmt.Errorf("status: current key %s: the vault's round trip changed the data", slots.Current.URL)
	}
	s.mu.Lock()
	s.slots = slots
	s.mu.Unlock()
	return &service.StatusResponse{Version: kmsAPIVersion, Healthz: "ok", KeyID: slots.Current.ID}, nil
}

// Encrypt wraps a DEK (or DEK seed) with the current key; the key id goes into the EncryptedObject in etcd.
func (s *kmsService) Encrypt(ctx context.Context, _ string, data []byte) (*service.EncryptResponse, error) {
	key := s.current().Current
	ciphertext, err := s.vault.Wrap(ctx, key, data)
	if err != nil {
		return nil, fmt.Errorf("encrypt with %s: %w", key.URL, err)
	}
	return &service.EncryptResponse{Ciphertext: ciphertext, KeyID: key.ID}, nil
}

// Decrypt unwraps with the slot whose key id the stored object names: the current or the previous key.
// Data under any older key can no longer be read, as on AKS after two rotations without a rewrite.
func (s *kmsService) Decrypt(ctx context.Context, _ string, req *service.DecryptRequest) ([]byte, error) {
	key, ok := s.current().ByID(req.KeyID)
	if !ok {
		return nil, fmt.Errorf("decrypt: key id %s is neither the current nor the previous key", req.KeyID)
	}
	plaintext, err := s.vault.Unwrap(ctx, key, req.Ciphertext)
	if err != nil {
		return nil, fmt.Errorf("decrypt with %s: %w", key.URL, err)
	}
	return plaintext, nil
}
