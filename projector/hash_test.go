package projector_test

import (
	"context"
	"testing"

	"github.com/go-faster/city"
	"github.com/google/uuid"

	"github.com/trustpulse/trustpulse/deploy/testenv"
)

// TestIDHashMatchesServer: the projector's filter of event ids (seen.go)
// hashes ids in Go and loads the server's hashes of projected_events, so
// the two must agree. The server's cityHash64 is the independent side.
func TestIDHashMatchesServer(t *testing.T) {
	ch, _ := testenv.ClickHouse(t)
	ctx := context.Background()
	ids := make([]string, 500)
	for i := range ids {
		ids[i] = uuid.NewString()
	}
	rows, err := ch.Query(ctx, "SELECT id, cityHash64(id) FROM system.one ARRAY JOIN ? AS id", ids)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var id string
		var h uint64
		if err := rows.Scan(&id, &h); err != nil {
			t.Fatal(err)
		}
		if got := city.CH64([]byte(id)); got != h {
			t.Fatalf("id %s: server cityHash64 %d, go-faster/city CH64 %d", id, h, got)
		}
		n++
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if n != len(ids) {
		t.Fatalf("server hashed %d ids of %d", n, len(ids))
	}
}
