package query

import (
	"encoding/csv"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"

	"github.com/gofiber/fiber/v2"
)

// wantsCSV reports whether a request asks for CSV: ?format=csv, or an
// Accept header preferring text/csv.
func wantsCSV(c *fiber.Ctx) bool {
	return c.Query("format") == "csv" || c.Accepts(fiber.MIMEApplicationJSON, "text/csv") == "text/csv"
}

var unsafeFileChars = regexp.MustCompile(`[^A-Za-z0-9_.+-]+`)

// setCSVHeaders marks the response as a CSV download named name.
func setCSVHeaders(c *fiber.Ctx, name string) {
	c.Set(fiber.HeaderContentType, "text/csv; charset=utf-8")
	c.Set(fiber.HeaderContentDisposition, fmt.Sprintf(`attachment; filename="%s"`, unsafeFileChars.ReplaceAllString(name, "_")))
}

// table is a result that also exists as CSV.
type table interface {
	FileName() string
	WriteCSV(io.Writer) error
}

// send answers with a result as JSON, or as a CSV download when asked for.
func send(c *fiber.Ctx, res table) error {
	if wantsCSV(c) {
		setCSVHeaders(c, res.FileName())
		return res.WriteCSV(c.Response().BodyWriter())
	}
	return c.JSON(res)
}

// csvTable writes rows under a header. Numbers that are nil (suppressed)
// are empty fields.
type csvTable struct{ w *csv.Writer }

func newCSV(w io.Writer, header ...string) csvTable {
	t := csvTable{csv.NewWriter(w)}
	_ = t.w.Write(header)
	return t
}

func (t csvTable) row(fields ...string) { _ = t.w.Write(fields) }

func (t csvTable) close() error { t.w.Flush(); return t.w.Error() }

func fnum(f *float64) string {
	if f == nil {
		return ""
	}
	return strconv.FormatFloat(*f, 'f', -1, 64)
}

func inum(n *int) string {
	if n == nil {
		return ""
	}
	return strconv.Itoa(*n)
}

// distributionColumns are the share columns of a scores CSV, values 0-10.
func distributionColumns() []string {
	out := make([]string, 11)
	for v := range out {
		out[v] = "share_" + strconv.Itoa(v)
	}
	return out
}

// FileName names the result's CSV download.
func (r Scores) FileName() string {
	waves := make([]WaveInfo, len(r.Waves))
	for i, id := range r.Waves {
		waves[i] = WaveInfo{ID: id}
	}
	return r.Org + "-" + NewScope(waves, clauses(r.Filter), 0).String() + "-scores.csv"
}

// WriteCSV writes the result as CSV, one row per cell. Suppressed cells are
// rows with suppressed=true and every number empty.
func (r Scores) WriteCSV(w io.Writer) error {
	header := append([]string{"waves", "filter", "group_by", "group", "kind", "key", "dimension", "text", "suppressed",
		"n", "mean", "favorable", "neutral", "unfavorable", "enps", "vs_org"}, distributionColumns()...)
	t := newCSV(w, header...)
	waves := strings.Join(r.Waves, " ")
	var filters []string
	for _, a := range sortedAttrs() {
		if v, ok := r.Filter[a]; ok {
			filters = append(filters, a+"="+v)
		}
	}
	filter := strings.Join(filters, " ")
	row := func(group, kind string, s Score) {
		shares := make([]string, 11)
		for _, d := range s.Distribution {
			shares[d.Value] = strconv.FormatFloat(d.Share, 'f', -1, 64)
		}
		t.row(append([]string{waves, filter, r.GroupBy, group, kind, s.Key, s.Dimension, s.Text, strconv.FormatBool(s.Suppressed),
			inum(s.N), fnum(s.Mean), fnum(s.Favorable), fnum(s.Neutral), fnum(s.Unfavorable), fnum(s.ENPS), fnum(s.VsOrg)}, shares...)...)
	}
	respondents := func(group string, c Count) {
		t.row(append([]string{waves, filter, r.GroupBy, group, "respondents", "", "", "", strconv.FormatBool(c.Suppressed), inum(c.N),
			"", "", "", "", "", ""}, make([]string, 11)...)...)
	}
	respondents("", r.Respondents)
	for _, s := range r.Dimensions {
		row("", "dimension", s)
	}
	for _, s := range r.Drivers {
		row("", "driver", s)
	}
	for _, s := range r.Questions {
		row("", "question", s)
	}
	for _, s := range r.Overall {
		row("", "organisation", s)
	}
	for _, g := range r.Groups {
		respondents(g.Value, g.Respondents)
		for _, s := range g.Dimensions {
			row(g.Value, "dimension", s)
		}
	}
	return t.close()
}
