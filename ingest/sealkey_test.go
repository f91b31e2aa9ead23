package ingest

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSealKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys", "seal.key")
	if _, err := LoadSealKey(path, false); err == nil {
		t.Fatal("a missing key file was accepted without create")
	}
	s, err := LoadSealKey(path, true)
	if err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, want 0600", info.Mode().Perm())
	}
	again, err := LoadSealKey(path, true)
	if err != nil || !bytes.Equal(again.master, s.master) {
		t.Fatalf("reloading the key: %v", err)
	}
	plain := []byte(`{"answers":[{"question_id":"q1","value":5}],"marker":"PLANTED"}`)
	sealed, err := s.Seal("acme", "w1", plain)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, []byte("PLANTED")) || bytes.Contains(sealed, []byte("answers")) {
		t.Fatal("sealed message holds its plain text")
	}
	if got, err := s.Open("acme", "w1", sealed); err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("open: %q, %v", got, err)
	}
	if _, err := s.Open("acme", "w2", sealed); err == nil {
		t.Fatal("a message of w1 opened as w2's")
	}
	other, _ := LoadSealKey(filepath.Join(t.TempDir(), "other.key"), true)
	if _, err := other.Open("acme", "w1", sealed); err == nil {
		t.Fatal("a message opened with another key")
	}
	tampered := bytes.Clone(sealed)
	tampered[len(tampered)-1] ^= 1
	if _, err := s.Open("acme", "w1", tampered); err == nil {
		t.Fatal("a tampered message opened")
	}
	if got, err := s.Open("acme", "w1", plain); err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("a message held before sealing: %q, %v", got, err)
	}
	var none *Sealer
	if _, err := none.Open("acme", "w1", sealed); err == nil {
		t.Fatal("a sealed message opened without a key")
	}
	bad := filepath.Join(t.TempDir(), "bad.key")
	if err := os.WriteFile(bad, []byte("not hex"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadSealKey(bad, true); err == nil || !strings.Contains(err.Error(), "hex digits") {
		t.Fatalf("a bad key file: %v", err)
	}
}
