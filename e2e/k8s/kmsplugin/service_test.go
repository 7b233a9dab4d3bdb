package main

import (
	"context"
	"crypto/sha256"
	"fmt"
	"strings"
	"testing"

	"k8s.io/kms/pkg/service"
)

// fakeVault "wraps" by prefixing the key version, so a test sees which key wrapped what.
type fakeVault struct{ missing map[string]bool }

func (f fakeVault) Wrap(_ context.Context, key Key, plaintext []byte) ([]byte, error) {
	if f.missing[key.Version] {
		return nil, fmt.Errorf("404 KeyNotFound")
	}
	return append([]byte(key.Version+":"), plaintext...), nil
}

func (f fakeVault) Unwrap(_ context.Context, key Key, ciphertext []byte) ([]byte, error) {
	rest, ok := strings.CutPrefix(string(ciphertext), key.Version+":")
	if !ok {
		return nil, fmt.Errorf("400 BadParameter")
	}
	return []byte(rest), nil
}

const vault = "https://kms-aks-dev.vault.azure.net/"

func mustKey(t *testing.T, version string) Key {
	t.Helper()
	key, err := parseKeyURL(vault + "keys/kms-key/" + version)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

func TestKeyIDIsTheSHA256OfTheVersionedKeyURL(t *testing.T) {
	key := mustKey(t, "v1")
	want := fmt.Sprintf("%x", sha256.Sum256([]byte("https://kms-aks-dev.vault.azure.net/keys/kms-key/v1")))
	if key.ID != want || key.Name != "kms-key" || key.Version != "v1" {
		t.Fatalf("got %+v, want id %s", key, want)
	}
	for _, bad := range []string{"http://v.vault.azure.net/keys/k/v", "https://v.vault.azure.net/keys/k",
		"https://v.vault.azure.net/secrets/k/v", "https://v.vault.azure.net/keys/k/v?x=1"} {
		if _, err := parseKeyURL(bad); err == nil {
			t.Errorf("%s: accepted", bad)
		}
	}
}

func TestStatusSwitchesKeysAndDecryptKeepsTwoSlots(t *testing.T) {
	slots := Slots{Current: mustKey(t, "v1")}
	kms, err := newKMSService(fakeVault{}, func() (Slots, error) { return slots, nil })
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	underV1, _ := kms.Encrypt(ctx, "uid", []byte("dek1"))

	v1 := slots.Current
	slots = Slots{Current: mustKey(t, "v2"), Previous: &v1}
	// Nothing changes until the API server asks for Status.
	if again, _ := kms.Encrypt(ctx, "uid", []byte("x")); again.KeyID != v1.ID {
		t.Fatalf("switched before Status")
	}
	status, err := kms.Status(ctx)
	if err != nil || status.KeyID != slots.Current.ID || status.Healthz != "ok" || status.Version != "v2" {
		t.Fatalf("status %+v, %v", status, err)
	}
	underV2, _ := kms.Encrypt(ctx, "uid", []byte("dek2"))
	if underV2.KeyID != slots.Current.ID {
		t.Fatalf("encrypt after the switch used %s", underV2.KeyID)
	}
	for _, c := range []*service.EncryptResponse{underV1, underV2} {
		if _, err := kms.Decrypt(ctx, "uid", &service.DecryptRequest{Ciphertext: c.Ciphertext, KeyID: c.KeyID}); err != nil {
			t.Fatalf("decrypt %s: %v", c.KeyID, err)
		}
	}

	// A second change drops v1 from the slots: its data can no longer be unwrapped.
	v2 := slots.Current
	slots = Slots{Current: mustKey(t, "v3"), Previous: &v2}
	if _, err := kms.Status(ctx); err != nil {
		t.Fatal(err)
	}
	_, err = kms.Decrypt(ctx, "uid", &service.DecryptRequest{Ciphertext: underV1.Ciphertext, KeyID: underV1.KeyID})
	if err == nil || !strings.Contains(err.Error(), "neither the current nor the previous key") {
		t.Fatalf("decrypt under a dropped key: %v", err)
	}
}

func TestStatusFailsWhenTheVaultLacksTheCurrentVersion(t *testing.T) {
	slots := Slots{Current: mustKey(t, "v1")}
	kms, _ := newKMSService(fakeVault{missing: map[string]bool{"v9": true}}, func() (Slots, error) { return slots, nil })
	slots = Slots{Current: mustKey(t, "v9")}
	if _, err := kms.Status(context.Background()); err == nil {
		t.Fatal("status passed with a key the vault does not have")
	}
	// The last good key stays in use.
	if c, _ := kms.Encrypt(context.Background(), "uid", []byte("x")); c.KeyID != mustKey(t, "v1").ID {
		t.Fatalf("switched to a key the vault lacks")
	}
}
