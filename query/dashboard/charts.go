package dashboard

import (
	"cmp"
	"fmt"
	"html/template"
	"math"
	"slices"
	"strconv"
	"strings"
)

// Colours: the Okabe–Ito palette, darkened where needed for 3:1 contrast
// against white, so that lines stay visible to everyone; every series also
// has its own marker shape and a text label, so colour is never the only
// cue.
var seriesStyles = []struct{ color, marker string }{
	{"#0072B2", "circle"},
	{"#B35900", "square"},
	{"#007A5E", "triangle"},
	{"#8E4C8E", "diamond"},
	{"#4D4D4D", "circle"},
}

// series is one line of a chart: a value per x position, nil where the
// point is suppressed (the line breaks there).
type series struct {
	Name   string
	Values []*float64
}

// lineChart draws a line chart as inline SVG with a title and a
// description for screen readers. The data is also in a table beside it.
func lineChart(id, title string, xLabels []string, lo, hi float64, ticks []float64, format func(float64) string, ss []series) template.HTML {
	const w, h, left, right, top, bottom = 640.0, 300.0, 48.0, 120.0, 16.0, 40.0
	pw, ph := w-left-right, h-top-bottom
	x := func(i int) float64 {
		if len(xLabels) < 2 {
			return left + pw/2
		}
		return left + pw*float64(i)/float64(len(xLabels)-1)
	}
	y := func(v float64) float64 { return top + ph*(1-(v-lo)/(hi-lo)) }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="chart" viewBox="0 0 %g %g" role="img" aria-labelledby="%s-t %s-d" focusable="false">`, w, h, id, id)
	fmt.Fprintf(&b, `<title id="%s-t">%s</title><desc id="%s-d">%s. The table below the chart holds the same values.</desc>`,
		id, template.HTMLEscapeString(title), id, template.HTMLEscapeString(chartDescription(xLabels, ss, format)))
	for _, t := range ticks {
		fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="#d0d7de" stroke-width="1"/>`, left, left+pw, y(t), y(t))
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="end" class="axis">%s</text>`, left-6, y(t)+4, template.HTMLEscapeString(format(t)))
	}
	for i, l := range xLabels {
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle" class="axis">%s</text>`, x(i), h-bottom+20, template.HTMLEscapeString(l))
	}
	type endLabel struct {
		x, y        float64
		text, color string
	}
	var labels []endLabel
	for si, s := range ss {
		st := seriesStyles[si%len(seriesStyles)]
		var seg []string
		flush := func() {
			if len(seg) > 1 {
				fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="2.5" points="%s"/>`, st.color, strings.Join(seg, " "))
			}
			seg = seg[:0]
		}
		lastX, lastY := -1.0, 0.0
		for i, v := range s.Values {
			if v == nil {
				flush()
				continue
			}
			px, py := x(i), y(*v)
			seg = append(seg, fmt.Sprintf("%.1f,%.1f", px, py))
			b.WriteString(marker(st.marker, st.color, px, py))
			lastX, lastY = px, py
		}
		flush()
		if lastX >= 0 {
			labels = append(labels, endLabel{lastX + 10, lastY + 4, s.Name, st.color})
		}
	}
	// Labels at the lines' ends, pushed apart where lines end close together.
	slices.SortFunc(labels, func(a, b endLabel) int { return cmp.Compare(a.y, b.y) })
	for i := 1; i < len(labels); i++ {
		labels[i].y = math.Max(labels[i].y, labels[i-1].y+15)
	}
	for _, l := range labels {
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" class="label" fill="%s">%s</text>`, l.x, l.y, l.color, template.HTMLEscapeString(l.text))
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

// chartDescription says in words what the chart shows: each series' first
// and last shown value.
func chartDescription(xLabels []string, ss []series, format func(float64) string) string {
	var parts []string
	for _, s := range ss {
		first, last := -1, -1
		for i, v := range s.Values {
			if v != nil {
				if first < 0 {
					first = i
				}
				last = i
			}
		}
		if first < 0 {
			parts = append(parts, s.Name+": not enough responses")
			continue
		}
		parts = append(parts, fmt.Sprintf("%s from %s in %s to %s in %s", s.Name, format(*s.Values[first]), xLabels[first], format(*s.Values[last]), xLabels[last]))
	}
	return strings.Join(parts, "; ")
}

func marker(shape, color string, x, y float64) string {
	switch shape {
	case "square":
		return fmt.Sprintf(`<rect x="%.1f" y="%.1f" width="9" height="9" fill="%s"/>`, x-4.5, y-4.5, color)
	case "triangle":
		return fmt.Sprintf(`<polygon points="%.1f,%.1f %.1f,%.1f %.1f,%.1f" fill="%s"/>`, x, y-6, x-5.5, y+4.5, x+5.5, y+4.5, color)
	case "diamond":
		return fmt.Sprintf(`<polygon points="%.1f,%.1f %.1f,%.1f %.1f,%.1f %.1f,%.1f" fill="%s"/>`, x, y-6, x+6, y, x, y+6, x-6, y, color)
	}
	return fmt.Sprintf(`<circle cx="%.1f" cy="%.1f" r="4.5" fill="%s"/>`, x, y, color)
}

// bar draws a small horizontal bar of width share (0..1) of its box, for
// table cells; its value is in the cell's text.
func bar(share float64, color string) template.HTML {
	share = math.Max(0, math.Min(1, share))
	return template.HTML(fmt.Sprintf(`<svg class="bar" viewBox="0 0 100 10" preserveAspectRatio="none" aria-hidden="true" focusable="false"><rect width="100" height="10" fill="#eaeef2"/><rect width="%.1f" height="10" fill="%s"/></svg>`, share*100, color))
}

// stacked draws unfavourable, neutral and favourable shares as one bar.
func stacked(unfav, neutral, fav float64) template.HTML {
	return template.HTML(fmt.Sprintf(`<svg class="stack" viewBox="0 0 100 12" preserveAspectRatio="none" aria-hidden="true" focusable="false">`+
		`<rect width="%.1f" height="12" fill="#B35900"/><rect x="%.1f" width="%.1f" height="12" fill="#b8bfc6"/><rect x="%.1f" width="%.1f" height="12" fill="#0072B2"/></svg>`,
		unfav*100, unfav*100, neutral*100, (unfav+neutral)*100, fav*100))
}

// heatClass bins a difference from the organisation into five classes of
// a blue–orange scale (safe for colour-blind readers; the signed number is
// always printed too). Thresholds are in mean points on the 1–5 scale, or
// in eNPS points.
func heatClass(diff float64, enps bool) string {
	small, large := 0.1, 0.3
	if enps {
		small, large = 5, 15
	}
	switch {
	case diff <= -large:
		return "h-low2"
	case diff <= -small:
		return "h-low1"
	case diff < small:
		return "h-mid"
	case diff < large:
		return "h-high1"
	}
	return "h-high2"
}

// Number formats. A minus is U+2212, which screen readers read as minus.
func fmtFixed(v float64, places int) string {
	s := strconv.FormatFloat(v, 'f', places, 64)
	return strings.Replace(s, "-", "\u2212", 1)
}

func fmtSigned(v float64, places int) string {
	if v > 0 || v == 0 && !math.Signbit(v) {
		return "+" + strconv.FormatFloat(v, 'f', places, 64)
	}
	return fmtFixed(v, places)
}

func fmtPercent(share float64) string { return strconv.Itoa(int(math.Round(share*100))) + "%" }
