package schemas

import (
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

var planDrivers = []string{"autonomy", "growth", "manager", "meaning"}

// TestCleanPlan: a plan's focus drivers and commitments within their
// bounds are kept (cleaned); anything else is a 422 naming the field.
func TestCleanPlan(t *testing.T) {
	ten := slices.Repeat([]string{"do it"}, MaxCommitments)
	for name, tc := range map[string]struct {
		focus, commitments []string
		field              string // "" for OK
	}{
		"OK":                  {[]string{"manager"}, []string{"one"}, ""},
		"OKThreeAndTen":       {[]string{"manager", "growth", "meaning"}, ten, ""},
		"OKBlankLinesDropped": {[]string{" manager "}, []string{"", "one", "  \t "}, ""},
		"OKLongest":           {[]string{"manager"}, []string{strings.Repeat("é", MaxCommitmentLen)}, ""},
		"ErrNoDriver":         {nil, []string{"one"}, "focus_drivers"},
		"ErrFourDrivers":      {[]string{"manager", "growth", "meaning", "autonomy"}, []string{"one"}, "focus_drivers"},
		"ErrUnknownDriver":    {[]string{"salary"}, []string{"one"}, "focus_drivers"},
		"ErrDriverTwice":      {[]string{"manager", "manager"}, []string{"one"}, "focus_drivers"},
		"ErrNoCommitment":     {[]string{"manager"}, []string{" ", "\u0007"}, "commitments"},
		"ErrElevenCommitted":  {[]string{"manager"}, append(slices.Clone(ten), "more"), "commitments"},
		"ErrTooLong":          {[]string{"manager"}, []string{strings.Repeat("x", MaxCommitmentLen+1)}, "commitments"},
	} {
		t.Run(name, func(t *testing.T) {
			f, c, err := CleanPlan(tc.focus, tc.commitments, planDrivers)
			if tc.field == "" {
				if err != nil || len(f) == 0 || len(c) == 0 {
					t.Fatalf("%v %v %v", f, c, err)
				}
				return
			}
			e, ok := err.(*Error)
			if !ok || e.Status != 422 || len(e.Fields) != 1 || e.Fields[0].Field != tc.field {
				t.Fatalf("error %#v, want 422 on %s", err, tc.field)
			}
		})
	}
}

// FuzzCleanPlan: whatever comes in, what CleanPlan keeps is within the
// plan's bounds, drivers of the survey each once, commitments clean.
func FuzzCleanPlan(f *testing.F) {
	f.Add("manager\x00growth", "one\ntwo")
	f.Add("manager\x00manager", "")
	f.Add("salary", strings.Repeat("x", 600))
	f.Fuzz(func(t *testing.T, focus, commitments string) {
		fs, cs, err := CleanPlan(strings.Split(focus, "\x00"), strings.Split(commitments, "\n"), planDrivers)
		if err != nil {
			return
		}
		if len(fs) < 1 || len(fs) > MaxFocusDrivers || len(cs) < 1 || len(cs) > MaxCommitments {
			t.Fatalf("out of bounds: %q %q", fs, cs)
		}
		for i, d := range fs {
			if !slices.Contains(planDrivers, d) || slices.Contains(fs[:i], d) {
				t.Fatalf("driver %q", d)
			}
		}
		for _, c := range cs {
			if c == "" || c != CleanText(c) || !utf8.ValidString(c) || utf8.RuneCountInString(c) > MaxCommitmentLen {
				t.Fatalf("commitment %q", c)
			}
		}
	})
}
