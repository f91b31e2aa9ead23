package main

import (
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/trustpulse/trustpulse/schemas"
)

// press focuses the element of sel and presses keys on it: the keyboard
// reaches every control of the plan panel.
func press(sel string, keys ...string) []chromedp.Action[chromedp.Void] {
	out := []chromedp.Action[chromedp.Void]{chromedp.Focus(chromedp.CSS(sel))}
	for _, k := range keys {
		out = append(out, chromedp.KeyEvent(k))
	}
	return out
}

// waitPlan waits until the big team's one plan meets cond (a form's post
// has been stored).
func waitPlan(t *testing.T, m *Main, token, what string, cond func(planView) bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		list := listPlans(t, m, token, planTeam)
		if len(list) == 1 && cond(list[0]) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %+v", what, list)
		}
	}
}

// TestPlansInBrowser: in headless Chromium, with the keyboard alone, an
// analyst opens a team's plan panel, picks two focus drivers of w1 and
// writes two commitments, adds a third driver, completes the plan, and
// reads on the panel how the focus drivers moved from w1 to w2; a fourth
// driver is refused with a page saying why, and nothing is published.
// axe-core runs on the panel before and after, and on the refusal.
func TestPlansInBrowser(t *testing.T) {
	m := mustMain(t, nil)
	analyst, _ := tokenFor(t, m, "acme", schemas.RoleAnalyst)
	openPlanWaves(t, m, analyst)
	b := browser(t)
	out := outputDir(t, "plans")
	base := m.QueryURL + "/dashboard"
	signIn(t, b, base, analyst)
	do := func(steps ...[]chromedp.Action[chromedp.Void]) {
		t.Helper()
		for _, s := range steps {
			if err := chromedp.Do(b, s...); err != nil {
				t.Fatal(err)
			}
		}
	}
	events := func() uint64 {
		return streamCount(t, m, schemas.ActionPlannedType) + streamCount(t, m, schemas.ActionUpdatedType) + streamCount(t, m, schemas.ActionCompletedType)
	}

	// The page asks whose team; the manager's id is typed in.
	do([]chromedp.Action[chromedp.Void]{chromedp.Navigate(base + "/plans"), chromedp.WaitVisible(chromedp.CSS("#p-manager"))})
	checkAccessibility(t, b, "plans page without a team")
	do([]chromedp.Action[chromedp.Void]{chromedp.Focus(chromedp.CSS("#p-manager")), chromedp.SendKeys(chromedp.CSS("#p-manager"), planTeam), chromedp.KeyEvent(kb.Enter)})
	waitBody(t, b, base+"/plans?manager="+planTeam, "No plans yet")

	// A plan for w1: two drivers, two commitments, saved with Enter on
	// the button reached by Tab from the commitments.
	waitBody(t, b, base+"/plans?manager="+planTeam+"&wave=w1", "Focus drivers of wave w1")
	checkAccessibility(t, b, "plan panel with a new plan's form")
	do(press(`input[name="focus"][value="manager"]`, " "), press(`input[name="focus"][value="autonomy"]`, " "),
		[]chromedp.Action[chromedp.Void]{chromedp.Focus(chromedp.CSS("#commit-w1")), chromedp.SendKeys(chromedp.CSS("#commit-w1"), "Weekly one-to-ones\nSay why decisions are made"),
			chromedp.KeyEvent(kb.Tab), chromedp.KeyEvent(kb.Enter)})
	waitPath(t, b, "/dashboard/plans")
	text := waitBody(t, b, base+"/plans?manager="+planTeam, "Plan for wave w1")
	for _, want := range []string{"Say why decisions are made", "dashboard test (analyst)"} {
		if !strings.Contains(text, want) {
			t.Errorf("the panel does not show %q: %s", want, text)
		}
	}
	list := listPlans(t, m, analyst, planTeam)
	if len(list) != 1 || strings.Join(list[0].FocusDrivers, ",") != "autonomy,manager" && strings.Join(list[0].FocusDrivers, ",") != "manager,autonomy" ||
		strings.Join(list[0].Commitments, "|") != "Weekly one-to-ones|Say why decisions are made" {
		t.Fatalf("the plan as stored: %+v", list)
	}

	// Update: a third driver; then complete.
	do(press(`#plan-w1 input[name="focus"][value="meaning"]`, " "), press(`#plan-w1 form.plan-form button`, kb.Enter))
	waitPlan(t, m, analyst, "the update", func(p planView) bool { return len(p.FocusDrivers) == 3 })
	waitBody(t, b, base+"/plans?manager="+planTeam, "Mark the plan for w1 as completed")
	do(press(`#plan-w1 form[action$="/complete"] button`, kb.Enter))
	waitPlan(t, m, analyst, "completing", func(p planView) bool { return p.Status == schemas.PlanCompleted })
	if n := events(); n != 3 {
		t.Fatalf("%d plan events, want 3", n)
	}

	// The history: manager (trust-a) moved from 2.00 in w1 to 4.00 in w2.
	text = waitBody(t, b, base+"/plans?manager="+planTeam, "completed")
	row, err := chromedp.Run(b, chromedp.Text(chromedp.CSS(`#plan-w1 tbody tr:nth-child(2)`)))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(row, "manager") || !strings.Contains(row, "2.00") || !strings.Contains(row, "4.00") || !strings.Contains(row, "+2.00") {
		t.Errorf("the manager driver's row %q, want 2.00 -> 4.00 (+2.00)", row)
	}
	if strings.Contains(text, "Save changes to the plan for w1") {
		t.Error("a completed plan still has an edit form")
	}
	checkAccessibility(t, b, "plan panel with a completed plan")
	screenshot(t, b, out, "plans-desktop.png", 1280, 900)
	screenshot(t, b, out, "plans-phone.png", 390, 844)

	// A fourth driver for w2 is refused, with a page saying why.
	do([]chromedp.Action[chromedp.Void]{chromedp.EmulateViewport(1280, 900)})
	waitBody(t, b, base+"/plans?manager="+planTeam+"&wave=w2", "Focus drivers of wave w2")
	var steps [][]chromedp.Action[chromedp.Void]
	for _, d := range []string{"autonomy", "leadership", "manager", "meaning"} {
		steps = append(steps, press(`form.plan-form input[name="focus"][value="`+d+`"]`, " "))
	}
	steps = append(steps, []chromedp.Action[chromedp.Void]{chromedp.Focus(chromedp.CSS("#commit-w2")), chromedp.SendKeys(chromedp.CSS("#commit-w2"), "Everything at once"), chromedp.KeyEvent(kb.Tab), chromedp.KeyEvent(kb.Enter)})
	do(steps...)
	var refusal string
	for deadline := time.Now().Add(30 * time.Second); !strings.Contains(refusal, "The plan was not saved"); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no refusal page (last: %q)", refusal)
		}
		refusal, _ = chromedp.Run(b, chromedp.Text(chromedp.CSS("main")))
	}
	if !strings.Contains(refusal, "The plan was not saved") || !strings.Contains(refusal, "focus drivers") {
		t.Errorf("the refusal page says %q", refusal)
	}
	checkAccessibility(t, b, "a refused plan")
	if n := events(); n != 3 {
		t.Fatalf("%d plan events after a refused plan, want 3", n)
	}
}
