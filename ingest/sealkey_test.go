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
	sealed, err := s.Seal("acme", "w1", plain, HeldResponseSize)
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

// TestHeldLengthsSayNothing: held messages of one kind have one length,
// whatever they hold (an eNPS of 10 against 0, a comment of 3 or 1,000
// characters, of ASCII or of characters JSON escapes), so the length of a
// released event cannot be matched to the held message of its author. A
// version 1 message (unpadded) still opens.
func TestHeldLengthsSayNothing(t *testing.T) {
	s, err := LoadSealKey(filepath.Join(t.TempDir(), "seal.key"), true)
	if err != nil {
		t.Fatal(err)
	}
	lengths := map[string]map[int]bool{}
	for kind, plains := range map[string][]string{
		"response": {`{"answers":[{"value":0}]}`, `{"answers":[{"value":10},{"value":5},{"value":5}]}`},
		"comment": {`{"text":"ok"}`, `{"text":"` + strings.Repeat("a", 1000) + `"}`,
			`{"text":"` + strings.Repeat(`\u003c`, 1000) + `"}`, `{"text":"` + strings.Repeat("é", 1000) + `"}`},
	} {
		size := HeldResponseSize
		if kind == "comment" {
			size = HeldCommentSize
		}
		lengths[kind] = map[int]bool{}
		for _, p := range plains {
			sealed, err := s.Seal("acme", "w1", []byte(p), size)
			if err != nil {
				t.Fatal(err)
			}
			if got, err := s.Open("acme", "w1", sealed); err != nil || string(got) != p {
				t.Fatalf("open: %q, %v", got, err)
			}
			lengths[kind][len(sealed)] = true
		}
		if len(lengths[kind]) != 1 {
			t.Errorf("%s: held lengths %v, want one", kind, lengths[kind])
		}
	}
	// Version 1, as sealed before padding.
	a, err := s.aead("acme", "w1")
	if err != nil {
		t.Fatal(err)
	}
	nonce := make([]byte, a.NonceSize())
	v1 := append(append([]byte("TPS1"), nonce...), a.Seal(nil, nonce, []byte("old"), []byte("acme/w1"))...)
	if got, err := s.Open("acme", "w1", v1); err != nil || string(got) != "old" {
		t.Fatalf("version 1: %q, %v", got, err)
	}
	// The held id is stable and not the event id.
	id := "436ddf57-0000-4000-8000-000000000000"
	if h := s.HeldMsgID("acme", "w1", id); h == id || strings.Contains(h, "436ddf57") || h != s.HeldMsgID("acme", "w1", id) || h == s.HeldMsgID("acme", "w2", id) {
		t.Fatalf("held id %q", h)
	}
}
