package query

import (
	"encoding/csv"
	"io"
	"strconv"
)

// csvHeader is the header of a scores CSV: one row per served cell.
var csvHeader = []string{"wave_id", "group_by", "group", "kind", "key", "dimension", "text", "suppressed", "n", "mean", "favorable", "enps"}

// WriteCSV writes the result as CSV, one row per cell. Suppressed cells are
// rows with suppressed=true and every number empty.
func (r WaveScores) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	_ = cw.Write(csvHeader)
	num := func(f *float64) string {
		if f == nil {
			return ""
		}
		return strconv.FormatFloat(*f, 'f', -1, 64)
	}
	count := func(n *int) string {
		if n == nil {
			return ""
		}
		return strconv.Itoa(*n)
	}
	row := func(group, kind string, s Score) {
		_ = cw.Write([]string{r.WaveID, r.GroupBy, group, kind, s.Key, s.Dimension, s.Text,
			strconv.FormatBool(s.Suppressed), count(s.N), num(s.Mean), num(s.Favorable), num(s.ENPS)})
	}
	respondents := func(group string, c Count) {
		_ = cw.Write([]string{r.WaveID, r.GroupBy, group, "respondents", "", "", "", strconv.FormatBool(c.Suppressed), count(c.N), "", "", ""})
	}
	respondents("", r.Respondents)
	for _, s := range r.Dimensions {
		row("", "dimension", s)
	}
	for _, s := range r.Questions {
		row("", "question", s)
	}
	for _, g := range r.Groups {
		respondents(g.Value, g.Respondents)
		for _, s := range g.Dimensions {
			row(g.Value, "dimension", s)
		}
	}
	cw.Flush()
	return cw.Error()
}
