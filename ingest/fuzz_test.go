package ingest_test

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/trustpulse/trustpulse/ingest"
)

// FuzzDecodeSubmitRequest feeds arbitrary bodies to the submission decoder:
// it must never panic, and what it accepts must be complete and survive a
// round trip unchanged.
func FuzzDecodeSubmitRequest(f *testing.F) {
	for _, seed := range []string{
		`{"token":"abc","answers":{"q1":4,"enps":10}}`,
		`{"token":"abc","answers":{}}`,
		`{"token":"","answers":{"q":1}}`,
		`{"token":"abc","answers":{"q":1},"x":1}`,
		`{"token":"abc","answers":{"q":1}} {}`,
		`{"answers":{"q":99999999999999999999}}`,
		`[]`, `null`, ``, `{`, `"\u0000"`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := ingest.DecodeSubmitRequest(body)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			return
		}
		if req.Token == "" || req.Answers == nil {
			t.Fatalf("accepted an incomplete request: %+v", req)
		}
		again, err := json.Marshal(req)
		if err != nil {
			t.Fatal(err)
		}
		req2, err := ingest.DecodeSubmitRequest(again)
		if err != nil || !reflect.DeepEqual(req, req2) {
			t.Fatalf("round trip: %+v != %+v (%v)", req, req2, err)
		}
	})
}
