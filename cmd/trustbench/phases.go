package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// phaseTimes is where a projector process's time went over its run, in
// seconds, from its trustpulse_projector_phase_seconds_total (by phase)
// and trustpulse_projector_insert_seconds_total (by table), summed over
// partitions.
type phaseTimes struct {
	phase, insert map[string]float64
}

// projectorPhases scrapes p's metrics for its phase times.
func projectorPhases(ctx context.Context, p *proc) (phaseTimes, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.metricsAddr+"/metrics", nil)
	if err != nil {
		return phaseTimes{}, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return phaseTimes{}, fmt.Errorf("projector metrics: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("%s", resp.Status)
	}
	if err != nil {
		return phaseTimes{}, fmt.Errorf("projector metrics: %w", err)
	}
	parser := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := parser.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		return phaseTimes{}, fmt.Errorf("projector metrics: %w", err)
	}
	sum := func(family, label string) map[string]float64 {
		out := map[string]float64{}
		f := fams[family]
		if f == nil {
			return out
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label {
					out[l.GetValue()] += m.GetCounter().GetValue()
				}
			}
		}
		return out
	}
	t := phaseTimes{phase: sum("trustpulse_projector_phase_seconds_total", "phase"), insert: sum("trustpulse_projector_insert_seconds_total", "table")}
	if len(t.phase) == 0 {
		return t, fmt.Errorf("projector metrics: no trustpulse_projector_phase_seconds_total (is the binary older than the harness?)")
	}
	return t, nil
}
