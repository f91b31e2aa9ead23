package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// TestTeamPage: the head of engineering opens the "your team's results are
// ready" email's link in real headless Chromium, signs in, lands on their
// team page, and sees what the API serves for reports_to=<them>: each dimension's
// favourable share and mean beside the organisation's, and participation;
// the page is usable with the keyboard (the plans link is reached by Tab)
// and passes axe-core. Opening the link shows a page with one button
// (axe-core, a phone's width), pressed with the keyboard; the link works
// once: a second visit is a 410 page.
func TestTeamPage(t *testing.T) {
	o := newManagerOrg(t)
	m := o.m
	emails := resultsEmails(t, m)
	links := emails["head-eng@acme.example"]
	if len(links) != 1 {
		t.Fatalf("results emails %v: want one to head-eng", emails)
	}
	b := browser(t)
	if err := chromedp.Do(b, chromedp.Navigate(links[0])); err != nil {
		t.Fatal(err)
	}
	// Opening the link shows its page, which uses nothing; the button,
	// pressed with the keyboard, signs in.
	waitPath(t, b, strings.TrimPrefix(links[0], m.QueryURL))
	checkText(t, b, "h1", "Sign in to your team's results")
	checkAccessibility(t, b, "sign-in link page")
	shots(t, b, t.TempDir(), "signin")
	pressed := false
	for range 10 {
		if err := chromedp.Do(b, chromedp.KeyEvent(kb.Tab)); err != nil {
			t.Fatal(err)
		}
		focused, _ := chromedp.Run(b, chromedp.Evaluate[string](`document.activeElement.tagName + " " + document.activeElement.innerText.trim()`))
		if focused == "BUTTON Sign in" {
			if err := chromedp.Do(b, chromedp.KeyEvent(kb.Enter)); err != nil {
				t.Fatal(err)
			}
			pressed = true
			break
		}
	}
	if !pressed {
		t.Fatal("Tab never reached the Sign in button")
	}
	waitPath(t, b, "/dashboard/team")

	analyst, _ := testTokens.Load(m)
	status, body := getAs(t, analyst.(string), m.QueryURL+"/v1/orgs/acme/waves/w1/scores?reports_to="+o.personOf["head-eng"])
	if status != 200 {
		t.Fatalf("scores: %d %s", status, body)
	}
	var r result
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		t.Fatal(err)
	}
	rows, err := chromedp.Run(b, chromedp.Evaluate[[][]string](`[...document.querySelectorAll("#team-scores tbody tr")].map(r => [...r.children].map(c => c.innerText.trim()))`))
	if err != nil {
		t.Fatal(err)
	}
	labels := map[string]string{"trust": "Trust", "empowerment": "Empowerment", "motivation": "Motivation", "enps": "eNPS"}
	for _, d := range r.Dimensions {
		row := findRow(rows, labels[d.Dimension])
		if row == nil {
			t.Fatalf("no row for %s in %v", d.Dimension, rows)
		}
		want := pagePercent(*d.Favorable) + " favourable · mean " + pageFixed(*d.Mean, 2)
		if d.Dimension == "enps" {
			want = pageSigned(*d.ENPS, 0)
		}
		if row[1] != want {
			t.Errorf("%s: the page shows %q for the team, the API %q", d.Dimension, row[1], want)
		}
	}
	checkContains(t, b, "#team-participation", "30 of 30 invited answered")

	// The keyboard reaches the plans link.
	found := false
	for range 40 {
		if err := chromedp.Do(b, chromedp.KeyEvent(kb.Tab)); err != nil {
			t.Fatal(err)
		}
		href, _ := chromedp.Run(b, chromedp.Evaluate[string](`document.activeElement.getAttribute("href") || ""`))
		if strings.HasPrefix(href, "/dashboard/plans?manager=") {
			found = true
			break
		}
	}
	if !found {
		t.Error("Tab never reached the team's plans link")
	}
	checkAccessibility(t, b, "team page")

	// The emailed link is spent.
	if err := chromedp.Do(b, chromedp.Navigate(links[0])); err != nil {
		t.Fatal(err)
	}
	checkContains(t, b, "main", "no longer works")
}
