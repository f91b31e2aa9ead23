package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/trustpulse/trustpulse/schemas"
)

// tokenFor issues an API token of an organisation and waits until the
// query API accepts it; it returns the token and its id.
func tokenFor(t *testing.T, m *Main, org string, role schemas.Role) (string, string) {
	t.Helper()
	token, id, err := m.Admin.IssueToken(context.Background(), org, role, "dashboard test")
	if err != nil {
		t.Fatal(err)
	}
	waitTokenUsable(t, m, org, token)
	return token, id
}

// apiScores fetches a scores result of the demo organisation.
func apiScores(t *testing.T, m *Main, token, path string) result {
	t.Helper()
	status, body := getAs(t, token, m.QueryURL+path)
	if status != http.StatusOK {
		t.Fatalf("%s: %d %s", path, status, body)
	}
	var r result
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		t.Fatal(err)
	}
	return r
}

// Number formats of the pages (a minus is U+2212).
func pageFixed(v float64, places int) string {
	return strings.Replace(strconv.FormatFloat(v, 'f', places, 64), "-", "\u2212", 1)
}

func pageSigned(v float64, places int) string {
	if v >= 0 {
		return "+" + strconv.FormatFloat(v, 'f', places, 64)
	}
	return pageFixed(v, places)
}

func pagePercent(v float64) string { return strconv.Itoa(int(math.Round(v*100))) + "%" }

var digit = regexp.MustCompile(`[0-9]`)

// TestDashboard runs the product on the demo organisation, seeded as `make
// demo` seeds it, and uses both pages in real headless Chromium: signs in
// with the keyboard, checks every number shown against the query API,
// checks that suppressed cells leak no number anywhere in the page, runs
// axe-core in each page, and leaves phone and desktop screenshots in
// test-output/dashboard.
func TestDashboard(t *testing.T) {
	m := mustMain(t, nil)
	ctx := context.Background()
	analyst, _ := tokenFor(t, m, demoOrg, schemas.RoleAnalyst)
	leader, _ := tokenFor(t, m, demoOrg, schemas.RoleLeader)
	if _, err := seedDemo(ctx, m, io.Discard, analyst); err != nil {
		t.Fatal(err)
	}
	latest := demoWaves[len(demoWaves)-1].id
	waitRelease(t, m, analyst, latest)
	out := outputDir(t, "dashboard")
	b := browser(t)
	base := m.QueryURL + "/dashboard"

	// Signed out, the dashboard sends people to the sign-in page; they sign
	// in with the keyboard.
	if err := chromedp.Do(b, chromedp.Navigate(base)); err != nil {
		t.Fatal(err)
	}
	waitPath(t, b, "/dashboard/login")
	signIn(t, b, base, leader)
	start := time.Now()
	if err := chromedp.Do(b, chromedp.Navigate(base), chromedp.WaitVisible(chromedp.CSS("#tile-trust"))); err != nil {
		t.Fatal(err)
	}
	t.Logf("overview loaded in the browser in %v (not asserted: speed lives in the benchmarks)", time.Since(start))

	// The overview's numbers are the API's.
	s := apiScores(t, m, leader, "/v1/orgs/demo/waves/"+latest+"/scores?group_by=department")
	for _, d := range s.Dimensions {
		if d.Dimension == "enps" {
			checkText(t, b, "#tile-enps .value", pageSigned(*d.ENPS, 0))
			continue
		}
		checkText(t, b, "#tile-"+d.Dimension+" .value", pagePercent(*d.Favorable))
		checkContains(t, b, "#tile-"+d.Dimension+" .detail", "mean "+pageFixed(*d.Mean, 2)+" of 5")
	}
	checkText(t, b, "#tile-participation .value", pagePercent(float64(*s.Respondents.N)/float64(s.Invited)))
	checkContains(t, b, "#tile-plans .value", fmt.Sprintf("%d of ", 1+demoPlanTeams)) // the demo's plans, still open
	// The plans' comparison is the API's, as a leader sees it: the first
	// focus driver picked by 1+demoPlanTeams teams, the Platform team's
	// second driver withheld from a leader (one team). Each group shows
	// what the guard serves it (the overview decides it after the
	// department heatmap), checked cell by cell.
	var impact planImpactJSON
	if status, body := getAs(t, leader, m.QueryURL+"/v1/orgs/demo/waves/"+demoWaves[len(demoWaves)-2].id+"/plan-impact"); status != http.StatusOK || json.Unmarshal([]byte(body), &impact) != nil || len(impact.Drivers) != 2 {
		t.Fatalf("plan impact: %d %s", status, body)
	}
	if impact.Drivers[0].Teams != 1+demoPlanTeams || impact.Drivers[1].WithPlan.Reason != "too_few_teams" {
		t.Fatalf("plan impact for a leader: %+v", impact)
	}
	impactRows, err := chromedp.Run(b, chromedp.Evaluate[[][]string](`[...document.querySelectorAll("#plan-impact tbody tr")].map(r => [...r.children].map(c => c.innerText.trim()))`))
	if err != nil {
		t.Fatal(err)
	}
	move := func(c impactCellJSON) string {
		switch {
		case c.Reason == "too_few_teams":
			return "fewer than 3 teams"
		case c.Change == nil:
			return "not enough responses"
		}
		return pageFixed(*c.Score, 2) + " → " + pageFixed(*c.Next, 2) + " (" + pageSigned(*c.Change, 2) + ")"
	}
	served := 0
	for _, d := range impact.Drivers {
		row := findRow(impactRows, d.Driver)
		if row == nil || len(row) != 4 || row[2] != move(d.WithPlan) || row[3] != move(d.WithoutPlan) {
			t.Errorf("the overview's plan row for %s: %v, want %q and %q", d.Driver, row, move(d.WithPlan), move(d.WithoutPlan))
		}
		for _, c := range []impactCellJSON{d.WithPlan, d.WithoutPlan} {
			if c.Change != nil {
				served++
			}
		}
	}
	t.Logf("plan impact on the demo's overview: %d of 4 groups served (%v)", served, impactRows)
	// The demo's plans leave a team unplanned in each department, so the
	// guard serves the first driver's comparison beside the heatmap.
	if first := impact.Drivers[0]; first.WithPlan.Change == nil || first.WithoutPlan.Change == nil {
		t.Errorf("the overview serves no comparison for %s, picked by %d teams: %+v", first.Driver, first.Teams, first)
	}
	rows, err := chromedp.Run(b, chromedp.Evaluate[[][]string](`[...document.querySelectorAll("table.heatmap tbody tr")].map(r => [...r.children].map(c => c.innerText.trim()))`))
	if err != nil {
		t.Fatal(err)
	}
	hidden := 0
	for _, g := range s.Groups {
		row := findRow(rows, g.Value)
		if row == nil {
			t.Fatalf("heatmap has no row for %s: %v", g.Value, rows)
		}
		if g.Respondents.Suppressed {
			hidden++
			if digit.MatchString(strings.Join(row[1:], " ")) || !strings.Contains(row[1], "not enough responses") {
				t.Errorf("suppressed department %s shows %v", g.Value, row)
			}
			continue
		}
		if row[1] != strconv.Itoa(*g.Respondents.N) {
			t.Errorf("%s respondents %q, API %d", g.Value, row[1], *g.Respondents.N)
		}
		for i, d := range g.Dimensions {
			cell := row[2+i]
			switch {
			case d.Suppressed:
				if digit.MatchString(cell) {
					t.Errorf("%s %s is suppressed but shows %q", g.Value, d.Dimension, cell)
				}
			case d.Dimension == "enps":
				if want := pageSigned(*d.ENPS, 0) + " " + pageSigned(*d.VsOrg, 0); !strings.HasPrefix(cell, want) {
					t.Errorf("%s eNPS cell %q, want %q", g.Value, cell, want)
				}
			default:
				if want := pageFixed(*d.Mean, 2) + " " + pageSigned(*d.VsOrg, 2); !strings.HasPrefix(cell, want) {
					t.Errorf("%s %s cell %q, want %q", g.Value, d.Dimension, cell, want)
				}
			}
		}
	}
	if hidden == 0 {
		t.Fatal("no department of the demo is suppressed; the leak check below would check nothing")
	}
	checkDrivers(t, m, b, leader, latest)
	if live, err := chromedp.Run(b, chromedp.Text(chromedp.CSS("#live-h"))); err != nil || !strings.Contains(live, demoOpenWave) {
		t.Errorf("no live participation of the open wave %s: %q %v", demoOpenWave, live, err)
	}
	checkNoLeak(t, b, true)
	shots(t, b, out, "overview")
	checkAccessibility(t, b, "overview")

	// Sign out with the header's form; the session is gone.
	if err := chromedp.Do(b, chromedp.Click(chromedp.CSS("button.link"))); err != nil {
		t.Fatal(err)
	}
	waitPath(t, b, "/dashboard/login")
	if err := chromedp.Do(b, chromedp.Navigate(base)); err != nil {
		t.Fatal(err)
	}
	waitPath(t, b, "/dashboard/login")

	// The analyst explores: Engineering by team, through the form.
	signIn(t, b, base, analyst)
	if err := chromedp.Do(b, chromedp.Navigate(base+"/explore"), chromedp.WaitVisible(chromedp.CSS("form.explore")),
		chromedp.SetValue(chromedp.CSS("#f-department"), "Engineering"),
		chromedp.SetValue(chromedp.CSS("#group_by"), "team"),
		chromedp.Click(chromedp.CSS("form.explore button[type=submit]"))); err != nil {
		t.Fatal(err)
	}
	var loc string
	for deadline := time.Now().Add(30 * time.Second); !strings.Contains(loc, "group_by=team"); time.Sleep(50 * time.Millisecond) {
		loc, _ = chromedp.Run(b, chromedp.Evaluate[string](`document.readyState === "complete" ? location.href : ""`))
		if time.Now().After(deadline) {
			t.Fatalf("the explorer form never went to its result (at %q)", loc)
		}
	}
	u, _ := url.Parse(loc)
	if u.Query().Get("department") != "Engineering" || u.Query().Get("group_by") != "team" {
		t.Fatalf("the explorer form went to %s", loc)
	}
	e := apiScores(t, m, analyst, "/v1/orgs/demo/waves/"+latest+"/scores?department=Engineering&group_by=team")
	checkText(t, b, "#respondents", strconv.Itoa(*e.Respondents.N))
	rows, err = chromedp.Run(b, chromedp.Evaluate[[][]string](`[...document.querySelectorAll("table.heatmap tbody tr")].map(r => [...r.children].map(c => c.innerText.trim()))`))
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range e.Groups {
		row := findRow(rows, g.Value)
		if row == nil {
			t.Fatalf("explorer heatmap has no row for team %s", g.Value)
		}
		for i, d := range g.Dimensions {
			if d.Suppressed || d.Dimension == "enps" {
				continue
			}
			if want := pageFixed(*d.Mean, 2); !strings.HasPrefix(row[2+i], want) {
				t.Errorf("team %s %s: %q, API %s", g.Value, d.Dimension, row[2+i], want)
			}
		}
	}
	dist, err := chromedp.Run(b, chromedp.Evaluate[[][]string](`[...document.querySelectorAll("#distributions tbody tr")].map(r => [...r.children].map(c => c.innerText.trim()))`))
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range e.Dimensions {
		row := findRow(dist, dimensionName(d.Dimension))
		if row == nil || d.Suppressed {
			continue
		}
		if row[1] != pagePercent(*d.Unfavorable) || row[2] != pagePercent(*d.Neutral) || row[3] != pagePercent(*d.Favorable) {
			t.Errorf("distribution of %s: %v, API %v %v %v", d.Dimension, row, *d.Unfavorable, *d.Neutral, *d.Favorable)
		}
	}
	checkCSVDownload(t, b, m)
	checkNoLeak(t, b, false)
	shots(t, b, out, "explorer")
	checkAccessibility(t, b, "explorer")

	// A leader may not slice by team, on the page either.
	signIn(t, b, base, leader)
	if err := chromedp.Do(b, chromedp.Navigate(base+"/explore?team=Mobile"), chromedp.WaitVisible(chromedp.CSS(".problem"))); err != nil {
		t.Fatal(err)
	}
	if msg, _ := chromedp.Run(b, chromedp.Text(chromedp.CSS(".problem"))); !strings.Contains(msg, "leader role") {
		t.Errorf("leader slicing by team: %q", msg)
	}
}

func dimensionName(d string) string {
	return map[string]string{"engagement": "Engagement", "trust": "Trust", "empowerment": "Empowerment", "motivation": "Motivation", "enps": "eNPS"}[d]
}

// waitRelease waits until a closed wave's results are released.
func waitRelease(t *testing.T, m *Main, token, wave string) {
	t.Helper()
	waitReleaseOf(t, m, demoOrg, token, wave)
}

// waitReleaseOf waits until a wave of org is released (its participation
// is served to token).
func waitReleaseOf(t *testing.T, m *Main, org, token, wave string) {
	t.Helper()
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(100 * time.Millisecond) {
		if status, _ := getAs(t, token, m.QueryURL+"/v1/orgs/"+org+"/waves/"+wave+"/participation"); status == http.StatusOK {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("wave %s never released", wave)
		}
	}
}

// signIn opens the sign-in page and signs in with the keyboard: the token
// typed into its field, Enter sends the form.
func signIn(t *testing.T, b context.Context, base, token string) {
	t.Helper()
	signInTo(t, b, base, token, "/dashboard")
}

// signInTo signs in as signIn does and waits for the page the role lands
// on (a manager's is /dashboard/team).
func signInTo(t *testing.T, b context.Context, base, token, landing string) {
	t.Helper()
	if err := chromedp.Do(b, chromedp.Navigate(base+"/login")); err != nil {
		t.Fatal(err)
	}
	waitPath(t, b, "/dashboard/login")
	if err := chromedp.Do(b, chromedp.Focus(chromedp.CSS("#token")), chromedp.SendKeys(chromedp.CSS("#token"), token), chromedp.KeyEvent(kb.Enter)); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		path, err := chromedp.Run(b, chromedp.Evaluate[string](`document.readyState === "complete" ? location.pathname : ""`))
		if err == nil && path == landing {
			return
		}
		if problem, _ := chromedp.Run(b, chromedp.Evaluate[string](`(document.querySelector(".problem") || {}).innerText || ""`)); problem != "" {
			t.Fatalf("sign-in refused: %s", problem)
		}
		if time.Now().After(deadline) {
			t.Fatalf("sign-in never reached the dashboard (at %q, %v)", path, err)
		}
	}
}

func checkText(t *testing.T, b context.Context, sel, want string) {
	t.Helper()
	got, err := chromedp.Run(b, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		t.Fatalf("%s: %v", sel, err)
	}
	if strings.TrimSpace(got) != want {
		t.Errorf("%s shows %q, the API says %q", sel, got, want)
	}
}

func checkContains(t *testing.T, b context.Context, sel, want string) {
	t.Helper()
	got, err := chromedp.Run(b, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		t.Fatalf("%s: %v", sel, err)
	}
	if !strings.Contains(got, want) {
		t.Errorf("%s shows %q, want %q in it", sel, got, want)
	}
}

func findRow(rows [][]string, label string) []string {
	for _, r := range rows {
		if len(r) > 0 && r[0] == label {
			return r
		}
	}
	return nil
}

// checkDrivers compares the drivers shown with the API's.
func checkDrivers(t *testing.T, m *Main, b context.Context, token, wave string) {
	t.Helper()
	status, body := getAs(t, token, m.QueryURL+"/v1/orgs/demo/waves/"+wave+"/drivers")
	if status != http.StatusOK {
		t.Fatalf("drivers: %d %s", status, body)
	}
	var api struct {
		Drivers []struct {
			Driver string   `json:"driver"`
			R      *float64 `json:"r"`
		} `json:"drivers"`
	}
	if err := json.Unmarshal([]byte(body), &api); err != nil {
		t.Fatal(err)
	}
	rows, err := chromedp.Run(b, chromedp.Evaluate[[][]string](`[...document.querySelectorAll("table.driver-table tbody tr")].map(r => [...r.children].map(c => c.innerText.trim()))`))
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) < 2 {
		t.Fatalf("only %d drivers shown", len(rows))
	}
	for _, row := range rows {
		found := false
		for _, d := range api.Drivers {
			if d.Driver == row[0] && d.R != nil && row[1] == pageFixed(*d.R, 2) {
				found = true
			}
		}
		if !found {
			t.Errorf("driver row %v is not in the API's %s", row, body)
		}
	}
}

// checkNoLeak: wherever a cell is suppressed, neither it nor anything in
// its row's markup carries a digit, and the page embeds no data: no
// script, no data attributes.
func checkNoLeak(t *testing.T, b context.Context, wantHidden bool) {
	t.Helper()
	leaks, err := chromedp.Run(b, chromedp.Evaluate[[]string](`(() => {
		const out = [];
		for (const h of document.querySelectorAll(".hidden-cell")) {
			const cell = h.closest("td, p, li") || h;
			const attrs = [cell, ...cell.querySelectorAll("*")].flatMap(el => [...el.attributes].filter(a => a.name !== "colspan").map(a => a.value));
			if (/[0-9]/.test(cell.textContent + " " + attrs.join(" "))) out.push(cell.outerHTML);
		}
		if (document.querySelector("script")) out.push("a script element");
		for (const el of document.querySelectorAll("*")) for (const a of el.attributes) if (a.name.startsWith("data-")) out.push(el.outerHTML);
		return out;
	})()`))
	if err != nil {
		t.Fatal(err)
	}
	if len(leaks) > 0 {
		t.Errorf("suppressed cells leak numbers or data: %v", leaks)
	}
	n, err := chromedp.Run(b, chromedp.Evaluate[int](`document.querySelectorAll(".hidden-cell").length`))
	if err != nil || wantHidden && n == 0 {
		t.Errorf("the page has no suppressed cell to check (%d, %v)", n, err)
	}
}

// shots takes phone and desktop screenshots and checks that nothing needs
// sideways scrolling but the tables' own scroll regions.
func shots(t *testing.T, b context.Context, dir, page string) {
	t.Helper()
	for _, vp := range []struct {
		name          string
		width, height int64
	}{{page + "-phone.png", 390, 844}, {page + "-desktop.png", 1280, 900}} {
		screenshot(t, b, dir, vp.name, vp.width, vp.height)
		overflow, err := chromedp.Run(b, chromedp.Evaluate[bool](`document.documentElement.scrollWidth > window.innerWidth + 1`))
		if err != nil {
			t.Fatal(err)
		}
		if overflow {
			wide, _ := chromedp.Run(b, chromedp.Evaluate[[]string](`[...document.querySelectorAll("body *")].filter(e => e.getBoundingClientRect().right > window.innerWidth + 1 && !(e.parentElement && e.parentElement.closest(".scroll"))).slice(0, 8).map(e => e.tagName + "." + e.className + " " + Math.round(e.getBoundingClientRect().right))`))
			t.Errorf("%s: the page scrolls sideways at %dpx: %v", vp.name, vp.width, wide)
		}
	}
}

// axeViolation is one rule axe-core found broken.
type axeViolation struct {
	ID, Impact, Help string
	Nodes            []string
}

// checkAccessibility runs axe-core (fetched by `make test-deps`) inside the
// page and fails on serious or critical violations.
func checkAccessibility(t *testing.T, b context.Context, page string) {
	t.Helper()
	path := os.Getenv("TRUSTPULSE_AXE")
	if path == "" {
		path = filepath.Join("..", "..", ".cache", "axe", "axe.min.js")
	}
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("axe-core is missing (%v): `make test-deps` fetches it", err)
	}
	if _, err := chromedp.Run(b, chromedp.Evaluate[bool](string(src)+";true")); err != nil {
		t.Fatalf("load axe-core: %v", err)
	}
	violations, err := chromedp.Run(b, chromedp.Evaluate[[]axeViolation](`axe.run(document, {runOnly: {type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]}})
		.then(r => r.violations.map(v => ({ID: v.id, Impact: v.impact || "", Help: v.help, Nodes: v.nodes.map(n => n.target.join(" "))})))`, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("axe-core: %v", err)
	}
	for _, v := range violations {
		msg := fmt.Sprintf("%s: axe %s (%s): %s at %v", page, v.ID, v.Impact, v.Help, v.Nodes)
		if v.Impact == "serious" || v.Impact == "critical" {
			t.Error(msg)
		} else {
			t.Log(msg)
		}
	}
}

// checkCSVDownload follows the explorer's scores download with the
// browser's session cookie.
func checkCSVDownload(t *testing.T, b context.Context, m *Main) {
	t.Helper()
	href, err := chromedp.Run(b, chromedp.Evaluate[string](`document.querySelector(".downloads a").getAttribute("href")`))
	if err != nil {
		t.Fatal(err)
	}
	cookies, err := chromedp.Call(b, network.GetCookies, network.GetCookiesParams{URLs: []string{m.QueryURL + "/dashboard"}})
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodGet, m.QueryURL+href, nil)
	for _, c := range cookies.Cookies {
		if c.Name == "tp_session" {
			if !c.HTTPOnly || c.SameSite != network.CookieSameSiteLax || c.Secure {
				t.Errorf("session cookie flags: HttpOnly %v SameSite %v Secure %v (plain HTTP)", c.HTTPOnly, c.SameSite, c.Secure)
			}
			req.AddCookie(&http.Cookie{Name: c.Name, Value: c.Value})
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(string(body), "waves,filter,group_by,") || !strings.Contains(string(body), "department=Engineering") {
		t.Errorf("CSV download %s: %d %.200s", href, resp.StatusCode, body)
	}
}
