package ingest

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Sealer encrypts the responses a wave holds while it is open, so that an
// operator who reads the stores (the NATS files, a backup) cannot read
// them: what the held stream keeps is AES-256-GCM ciphertext under a key of
// the wave's own, derived from a master key that lives in a file outside
// NATS and ClickHouse (--seal-key-file). The mixer opens them at the seal.
// Someone with the stores alone learns at most that a response arrived
// and when, never what it says.
type Sealer struct {
	master []byte
}

// sealedPrefix starts every sealed message; a held message without it is
// from before sealing (read as it is).
var sealedPrefix = []byte("TPS1")

// keyBytes is the master key's length.
const keyBytes = 32

// LoadSealKey reads the master key from path (64 hex digits), creating a
// new random one with mode 0600 (and its directory with 0700) when the
// file does not exist and create is set.
func LoadSealKey(path string, create bool) (*Sealer, error) {
	raw, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) && create {
		key := make([]byte, keyBytes)
		if _, err := rand.Read(key); err != nil {
			return nil, err
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, fmt.Errorf("seal key: %w", err)
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, fmt.Errorf("seal key: %w", err)
		}
		if _, err := f.WriteString(hex.EncodeToString(key) + "\n"); err != nil {
			f.Close()
			return nil, fmt.Errorf("seal key: %w", err)
		}
		if err := f.Close(); err != nil {
			return nil, fmt.Errorf("seal key: %w", err)
		}
		return &Sealer{master: key}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("seal key: %w", err)
	}
	key, err := hex.DecodeString(strings.TrimSpace(string(raw)))
	if err != nil || len(key) != keyBytes {
		return nil, fmt.Errorf("seal key %s: want %d hex digits", path, 2*keyBytes)
	}
	return &Sealer{master: key}, nil
}

// aead is the cipher of one wave: its key is HMAC-SHA256(master, wave).
func (s *Sealer) aead(org, wave string) (cipher.AEAD, error) {
	mac := hmac.New(sha256.New, s.master)
	mac.Write([]byte("trustpulse held v1\x00" + org + "/" + wave))
	block, err := aes.NewCipher(mac.Sum(nil))
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// Seal encrypts a held message of a wave; the wave is bound in as
// associated data, so a message moved to another wave does not open.
func (s *Sealer) Seal(org, wave string, plain []byte) ([]byte, error) {
	a, err := s.aead(org, wave)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, a.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	out := append(append(bytes.Clone(sealedPrefix), nonce...), a.Seal(nil, nonce, plain, []byte(org+"/"+wave))...)
	return out, nil
}

// Open decrypts a held message of a wave. A message without the sealed
// prefix was held before sealing and is returned as it is; one that does
// not open (another key, tampered) is an error.
func (s *Sealer) Open(org, wave string, data []byte) ([]byte, error) {
	open, err := s.opener(org, wave)
	if err != nil {
		return nil, err
	}
	return open(data)
}

// opener returns Open for one wave, with the wave's cipher made once (the
// seal opens every held message of a wave).
func (s *Sealer) opener(org, wave string) (func([]byte) ([]byte, error), error) {
	var a cipher.AEAD
	if s != nil {
		var err error
		if a, err = s.aead(org, wave); err != nil {
			return nil, err
		}
	}
	ad := []byte(org + "/" + wave)
	return func(data []byte) ([]byte, error) {
		rest, ok := bytes.CutPrefix(data, sealedPrefix)
		if !ok {
			return data, nil
		}
		if a == nil {
			return nil, errors.New("ingest: a sealed held response, and no seal key to open it")
		}
		if len(rest) < a.NonceSize() {
			return nil, errors.New("ingest: sealed held response too short")
		}
		plain, err := a.Open(nil, rest[:a.NonceSize()], rest[a.NonceSize():], ad)
		if err != nil {
			return nil, fmt.Errorf("ingest: sealed held response does not open with this seal key: %w", err)
		}
		return plain, nil
	}, nil
}
