package ingest

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/trustpulse/trustpulse/schemas"
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

// sealedPrefix starts every sealed message (version 1, unpadded), and
// paddedPrefix every sealed and padded one (version 2: the plaintext is
// framed by its length and padded, see padHeld); a held message with
// neither is from before sealing (read as it is).
var (
	sealedPrefix = []byte("TPS1")
	paddedPrefix = []byte("TPS2")
)

// HeldResponseSize and HeldCommentSize are the sizes held plaintexts are padded to, so that a held message's length
// says nothing of what it holds (its answers' digits, its comment's words),
// which its released event's length would otherwise give away: every
// response to 2 KiB, every comment to 8 KiB (a comment's most, 1,000
// characters, fits in either form of JSON escaping), or, beyond that, to
// the next multiple.
const (
	HeldResponseSize = 2 << 10
	HeldCommentSize  = 8 << 10
)

// padHeld frames plain by its length (4 bytes, big-endian) and pads it
// with zeros to a multiple of size.
func padHeld(plain []byte, size int) []byte {
	n := 4 + len(plain)
	padded := (n + size - 1) / size * size
	out := make([]byte, padded)
	binary.BigEndian.PutUint32(out, uint32(len(plain)))
	copy(out[4:], plain)
	return out
}

// unpadHeld undoes padHeld.
func unpadHeld(framed []byte) ([]byte, error) {
	if len(framed) < 4 {
		return nil, errors.New("ingest: padded held message too short")
	}
	n := binary.BigEndian.Uint32(framed)
	if uint64(n) > uint64(len(framed)-4) {
		return nil, errors.New("ingest: padded held message with a bad length")
	}
	return framed[4 : 4+n], nil
}

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

// Seal encrypts a held message of a wave, padded to a multiple of size
// (HeldResponseSize, HeldCommentSize); the wave is bound in as associated
// data, so a message moved to another wave does not open.
func (s *Sealer) Seal(org, wave string, plain []byte, size int) ([]byte, error) {
	a, err := s.aead(org, wave)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, a.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	out := append(append(bytes.Clone(paddedPrefix), nonce...), a.Seal(nil, nonce, padHeld(plain, size), []byte(org+"/"+wave))...)
	return out, nil
}

// HeldMsgID is the Nats-Msg-Id a held event of a wave is stored under:
// HMAC-SHA256 of its event id under a key of the wave's own. It is the same
// for every retry of one submission, so JetStream stores it once, and tells
// nothing without the seal key: the event id, which the released event
// carries, must not be readable beside the held message, which ingest
// stores the moment its author submits.
func (s *Sealer) HeldMsgID(org, wave, eventID string) string {
	mac := hmac.New(sha256.New, s.master)
	mac.Write([]byte("trustpulse held id v1\x00" + org + "/" + wave + "\x00" + eventID))
	return hex.EncodeToString(mac.Sum(nil)[:16])
}

// ForWave is the held stream's codec of one wave (publishBatch): events
// encrypted and padded by type, under HeldMsgID.
func (s *Sealer) ForWave(org, wave string) heldCodec { return waveSealer{s, org, wave} }

type waveSealer struct {
	s         *Sealer
	org, wave string
}

func (w waveSealer) Wrap(env schemas.Envelope, data []byte) ([]byte, error) {
	size := HeldResponseSize
	if env.Type == schemas.CommentSubmittedType {
		size = HeldCommentSize
	}
	return w.s.Seal(w.org, w.wave, data, size)
}

func (w waveSealer) MsgID(env schemas.Envelope) string {
	return w.s.HeldMsgID(w.org, w.wave, env.ID.String())
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
		rest, padded := bytes.CutPrefix(data, paddedPrefix)
		if !padded {
			var sealed bool
			if rest, sealed = bytes.CutPrefix(data, sealedPrefix); !sealed {
				return data, nil
			}
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
		if padded {
			return unpadHeld(plain)
		}
		return plain, nil
	}, nil
}
