package main

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
)

// ClickHouse writes a part's column files (.bin) as a run of compressed
// blocks, LZ4 by default. A byte scan of such a file misses most of what it
// holds: LZ4 replaces any run of four or more bytes seen before in the
// block by a back-reference, so of 30 rows of one id only the first is
// written out, and a value that repeats a few bytes of itself (a department
// "...79624...79624...") is not written out whole even once. The scans
// therefore look in the decoded blocks too. The decoder is written here
// from the format (checksum, method, sizes, data), not taken from
// ClickHouse or its client, so it checks ClickHouse's files from outside.
//
// A block is:
//
//	16 bytes   CityHash128 of what follows (not checked here)
//	 1 byte    method: 0x02 none, 0x82 LZ4, 0x90 ZSTD
//	 4 bytes   compressed size, little-endian, counting these 9 header bytes
//	 4 bytes   decompressed size, little-endian
//	 ...       the data
const (
	chChecksum  = 16
	chHeader    = 9
	chMethodNo  = 0x02
	chMethodLZ4 = 0x82
	chMethodZST = 0x90
	// chMaxBlock bounds a block's sizes: ClickHouse's blocks are at most
	// max_compress_block_size (1 MiB) plus a little; anything far larger is
	// not a block.
	chMaxBlock = 64 << 20
)

// chDecoded is what b holds decoded, when b is a run of ClickHouse
// compressed blocks (a column file), or after a first line (checksums.txt's
// "checksums format version: 4"); nil when it is neither.
func chDecoded(b []byte) ([]byte, error) {
	out, err := chBlocks(b)
	if err == nil {
		return out, nil
	}
	if i := bytes.IndexByte(b, '\n'); i >= 0 && i < 64 {
		if out, err2 := chBlocks(b[i+1:]); err2 == nil {
			return out, nil
		}
	}
	return nil, err
}

// errNotBlocks says a file is not a run of compressed blocks (most files
// of ClickHouse's directory are not: marks, metadata, logs).
var errNotBlocks = fmt.Errorf("not ClickHouse compressed blocks")

func chBlocks(b []byte) ([]byte, error) {
	if len(b) < chChecksum+chHeader {
		return nil, errNotBlocks
	}
	var out []byte
	for len(b) > 0 {
		if len(b) < chChecksum+chHeader {
			return nil, errNotBlocks
		}
		h := b[chChecksum:]
		method := h[0]
		csize := int(binary.LittleEndian.Uint32(h[1:5]))
		dsize := int(binary.LittleEndian.Uint32(h[5:9]))
		if csize < chHeader || csize > chMaxBlock || dsize > chMaxBlock || chChecksum+csize > len(b) {
			return nil, errNotBlocks
		}
		data := h[chHeader:csize]
		switch method {
		case chMethodNo:
			if len(data) != dsize {
				return nil, errNotBlocks
			}
			out = append(out, data...)
		case chMethodLZ4:
			dst := make([]byte, dsize)
			n, err := lz4.UncompressBlock(data, dst)
			if err != nil || n != dsize {
				return nil, errNotBlocks
			}
			out = append(out, dst...)
		case chMethodZST:
			d, err := zstd.NewReader(nil)
			if err != nil {
				return nil, err
			}
			dst, err := d.DecodeAll(data, make([]byte, 0, dsize))
			d.Close()
			if err != nil || len(dst) != dsize {
				return nil, errNotBlocks
			}
			out = append(out, dst...)
		default:
			return nil, errNotBlocks
		}
		b = b[chChecksum+csize:]
	}
	return out, nil
}

// TestChDecodedFindsWhatLZ4Hides: the decoder finds in an LZ4 block what
// a byte scan of it cannot, and leaves files that are not blocks alone.
func TestChDecodedFindsWhatLZ4Hides(t *testing.T) {
	var plain []byte
	for i := range 30 {
		plain = append(plain, fmt.Sprintf("id-%06d|Engineering|", i)...)
	}
	comp := make([]byte, lz4.CompressBlockBound(len(plain)))
	n, err := lz4.CompressBlock(plain, comp, nil)
	if err != nil || n == 0 {
		t.Fatalf("compress: %d, %v", n, err)
	}
	file := make([]byte, chChecksum, chChecksum+chHeader+n)
	file = append(file, chMethodLZ4)
	file = binary.LittleEndian.AppendUint32(file, uint32(chHeader+n))
	file = binary.LittleEndian.AppendUint32(file, uint32(len(plain)))
	file = append(file, comp[:n]...)
	file = append(file, file...) // two blocks

	if bytes.Contains(file, []byte("id-000017")) {
		t.Fatal("the raw block holds the values: the case shows nothing")
	}
	got, err := chDecoded(file)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, bytes.Repeat(plain, 2)) {
		t.Fatalf("decoded %d bytes, want both blocks (%d)", len(got), 2*len(plain))
	}
	versioned := append([]byte("checksums format version: 4\n"), file...)
	if got, err := chDecoded(versioned); err != nil || !strings.Contains(string(got), "id-000017") {
		t.Fatalf("after a first line: %v", err)
	}
	for _, notBlocks := range [][]byte{[]byte("2026.12.02 23:00:00 <Information> a log line of the server\n"), file[:len(file)-3], nil} {
		if got, err := chDecoded(notBlocks); err == nil {
			t.Fatalf("%q decoded as blocks: %q", notBlocks, got)
		}
	}
}
