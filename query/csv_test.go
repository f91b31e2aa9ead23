package query

import (
	"bytes"
	"encoding/csv"
	"testing"
)

func TestSafeText(t *testing.T) {
	for in, want := range map[string]string{
		`=HYPERLINK("http://x","y")`: `'=HYPERLINK("http://x","y")`,
		"+1+cmd|' /C calc'!A0":       "'+1+cmd|' /C calc'!A0",
		"-2+3":                       "'-2+3",
		"-1":                         "'-1", // text that looks like a number is still text
		"@SUM(A1)":                   "'@SUM(A1)",
		"\t=1":                       "'\t=1",
		"\r=1":                       "'\r=1",
		"Sales":                      "Sales",
		"a=b":                        "a=b",
		" =1":                        " =1",
		"":                           "",
	} {
		if got := safeText(in); got != want {
			t.Errorf("safeText(%q) = %q, want %q", in, got, want)
		}
	}
}

// readCSV parses what a WriteCSV wrote into rows of named fields.
func readCSV(t *testing.T, data []byte) []map[string]string {
	t.Helper()
	recs, err := csv.NewReader(bytes.NewReader(data)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	var rows []map[string]string
	for _, rec := range recs[1:] {
		row := map[string]string{}
		for i, h := range recs[0] {
			row[h] = rec[i]
		}
		rows = append(rows, row)
	}
	return rows
}

// TestCSVFormulaInjection: text cells that a spreadsheet would run as a
// formula are neutralised in the exports; number cells, a negative vs_org
// among them, stay numbers.
func TestCSVFormulaInjection(t *testing.T) {
	const evil = `=HYPERLINK("http://x","y")`
	n, mean, vs, share := 12, 3.5, -0.25, 0.5
	s := Score{Key: "trust", Dimension: "trust", Text: "-not a formula", N: &n, Mean: &mean, VsOrg: &vs,
		Distribution: []Share{{Value: 3, Share: share}, {Value: 4, Share: share}}}
	scores := Scores{Org: "acme", Waves: []string{"w1"}, GroupBy: "department", Respondents: Count{N: &n},
		Groups: []GroupScores{{Value: evil, Respondents: Count{N: &n}, Dimensions: []Score{s}}}}
	var buf bytes.Buffer
	if err := scores.WriteCSV(&buf); err != nil {
		t.Fatal(err)
	}
	var dim map[string]string
	for _, row := range readCSV(t, buf.Bytes()) {
		if row["group"] != "" && row["group"] != "'"+evil {
			t.Errorf("group cell %q, want %q", row["group"], "'"+evil)
		}
		if row["kind"] == "dimension" {
			dim = row
		}
		if row["kind"] == "respondents" && (row["n"] != "12" || row["mean"] != "" || row["share_0"] != "") {
			t.Errorf("respondents row %v", row)
		}
	}
	if dim == nil || dim["vs_org"] != "-0.25" || dim["mean"] != "3.5" || dim["n"] != "12" || dim["share_3"] != "0.5" || dim["share_0"] != "" {
		t.Errorf("numbers altered: %v", dim)
	}
	if dim["text"] != "'-not a formula" {
		t.Errorf("text cell %q", dim["text"])
	}

	attrition, leavers := 0.5, 6
	ret := RetentionResult{Org: "acme", From: "2026-01-01", To: "2027-01-01", GroupBy: "department",
		Overall: Retention{Headcount: &n, Leavers: &leavers, Attrition: &attrition},
		Groups:  []Retention{{Value: "@" + evil, Headcount: &n, Leavers: &leavers, Attrition: &attrition}}}
	buf.Reset()
	if err := ret.WriteCSV(&buf); err != nil {
		t.Fatal(err)
	}
	rows := readCSV(t, buf.Bytes())
	if len(rows) != 2 || rows[1]["group"] != "'@"+evil || rows[1]["attrition"] != "0.5" || rows[0]["from"] != "2026-01-01" {
		t.Errorf("retention CSV: %v", rows)
	}
}
