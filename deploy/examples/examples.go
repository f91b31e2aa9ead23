// Package examples holds example inputs: a pulse survey definition and an
// invitee cohort file, used by the demo and shown in the README.
package examples

import _ "embed"

// PulseSurvey is deploy/examples/pulse-survey.yaml.
//
//go:embed pulse-survey.yaml
var PulseSurvey []byte

// LeadershipPulse is deploy/examples/leadership-pulse.yaml, the demo's
// survey.
//
//go:embed leadership-pulse.yaml
var LeadershipPulse []byte
