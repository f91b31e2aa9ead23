package ingest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"unicode"
)

// duplicateKey describes the first key that an object of the JSON value in
// body holds twice: encoding/json keeps the last of them and drops the
// others without a word. The top-level object's keys are compared as
// encoding/json matches them to struct fields, case-insensitively ("token"
// and "Token" are one field); the keys of nested objects (maps of question
// ids) exactly. It reports false for a body without duplicates; body is
// valid JSON, already decoded.
func duplicateKey(body []byte) (string, bool) {
	type object struct {
		keys    map[string]bool
		wantKey bool // the next string is a key
	}
	var stack []*object // nil for an array
	dec := json.NewDecoder(bytes.NewReader(body))
	for {
		tok, err := dec.Token()
		if err != nil {
			return "", false
		}
		var top *object
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if key, ok := tok.(string); ok && top != nil && top.wantKey {
			id, what := key, "key"
			if len(stack) == 1 {
				id, what = foldKey(key), "field"
			}
			if top.keys[id] {
				return fmt.Sprintf("%s %q given twice", what, truncate(key, 64)), true
			}
			top.keys[id], top.wantKey = true, false
			continue
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, &object{keys: map[string]bool{}, wantKey: true})
			continue
		case json.Delim('['):
			stack = append(stack, nil)
			continue
		case json.Delim('}'), json.Delim(']'):
			if stack = stack[:len(stack)-1]; len(stack) == 0 {
				return "", false
			}
			top = stack[len(stack)-1]
		}
		if top != nil { // a value of top ended: a key comes next
			top.wantKey = true
		}
	}
}

// foldKey maps every rune of s to the least rune of its case-folding
// orbit, so foldKey(a) == foldKey(b) exactly when strings.EqualFold(a, b),
// the rule encoding/json matches keys to fields by.
func foldKey(s string) string {
	return strings.Map(func(r rune) rune {
		least := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			least = min(least, f)
		}
		return least
	}, s)
}
