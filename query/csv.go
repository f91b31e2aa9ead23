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

// number is a numeric cell (inum, fnum), written as it is: a negative
// vs_org stays -0.25.
type number string

// row writes one row. Each cell is a number, text (a string: a cohort
// value, a question's text, an id, anything that may come from outside) or
// nil (empty). Text is neutralised against formula injection (safeText).
func (t csvTable) row(cells ...any) {
	fields := make([]string, len(cells))
	for i, c := range cells {
		switch v := c.(type) {
		case nil:
		case number:
			fields[i] = string(v)
		case string:
			fields[i] = safeText(v)
		default: // not a cell type: written as text, neutralised too
			fields[i] = safeText(fmt.Sprint(v))
		}
	}
	_ = t.w.Write(fields)
}

func (t csvTable) close() error { t.w.Flush(); return t.w.Error() }

// safeText keeps a spreadsheet from reading a text cell as a formula: one
// that begins with =, +, -, @, a tab or a carriage return gets a leading
// single quote (OWASP, CSV injection), so `=HYPERLINK(...)` is shown as
// text, never run.
func safeText(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

func fnum(f *float64) number {
	if f == nil {
		return ""
	}
	return number(strconv.FormatFloat(*f, 'f', -1, 64))
}

func inum(n *int) number {
	if n == nil {
		return ""
	}
	return number(strconv.Itoa(*n))
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
		shares := make([]any, 11)
		for _, d := range s.Distribution {
			shares[d.Value] = fnum(&d.Share)
		}
		t.row(append([]any{waves, filter, r.GroupBy, group, kind, s.Key, s.Dimension, s.Text, strconv.FormatBool(s.Suppressed),
			inum(s.N), fnum(s.Mean), fnum(s.Favorable), fnum(s.Neutral), fnum(s.Unfavorable), fnum(s.ENPS), fnum(s.VsOrg)}, shares...)...)
	}
	respondents := func(group string, c Count) {
		t.row(append([]any{waves, filter, r.GroupBy, group, "respondents", "", "", "", strconv.FormatBool(c.Suppressed), inum(c.N),
			"", "", "", "", "", ""}, make([]any, 11)...)...)
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
