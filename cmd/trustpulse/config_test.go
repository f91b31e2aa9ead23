package main

import (
	"flag"
	"fmt"
	"testing"
	"time"
)

// TestEnvNames: every flag of serve takes its default from the variable
// envName names, so that a manifest's TRUSTPULSE_* can be checked against
// the flag names. Each variable is set to a value of its flag's type that
// no default has, and a fresh flag set must default to it.
func TestEnvNames(t *testing.T) {
	want := map[string]any{}
	flagSet("serve", new(Config), nil).VisitAll(func(f *flag.Flag) {
		var v any
		switch f.Value.(flag.Getter).Get().(type) {
		case string:
			v = "env-test-" + f.Name
		case int:
			v = 7331
		case float64:
			v = 0.731
		case time.Duration:
			v = 7331 * time.Millisecond
		case bool:
			v = true
		default:
			t.Fatalf("--%s: a %T; teach this test its type", f.Name, f.Value.(flag.Getter).Get())
		}
		want[f.Name] = v
		t.Setenv(envName(f.Name), fmt.Sprint(v))
	})
	flagSet("serve", new(Config), nil).VisitAll(func(f *flag.Flag) {
		if got := f.Value.(flag.Getter).Get(); got != want[f.Name] {
			t.Errorf("--%s defaults to %v with %s=%v set; its env name is not %s", f.Name, got, envName(f.Name), want[f.Name], envName(f.Name))
		}
	})
}
