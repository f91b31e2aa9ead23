package main

import (
	"flag"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/trustpulse/trustpulse/deploy/testenv"
)

// TestDeployFlags: every flag and every TRUSTPULSE_* variable that the
// compose file and the Helm chart (rendered with each value set) give
// trustpulse exists on `trustpulse serve`. Variables are matched to flags by
// envName, the rule TestEnvNames holds the flags to.
func TestDeployFlags(t *testing.T) {
	t.Run("compose", func(t *testing.T) {
		services, err := testenv.ComposeServices(filepath.Join(testenv.RepoRoot(t), "deploy", "compose", "docker-compose.yml"))
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for name, s := range services {
			if s.Trustpulse() {
				n++
				checkServeSettings(t, "service "+name, s.Command, s.EnvNames())
			}
		}
		if n == 0 {
			t.Fatal("no service builds deploy/Dockerfile")
		}
	})
	testenv.Helm(t)
	for name, values := range testenv.HelmValueSets(t) {
		t.Run("helm/"+name, func(t *testing.T) {
			objs, err := testenv.Objects(testenv.HelmTemplate(t, values...))
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for _, o := range objs {
				if !o.Workload() {
					continue
				}
				spec := o.Spec.Template.Spec
				for _, c := range append(spec.InitContainers, spec.Containers...) {
					n++
					where := o.Kind + " " + o.Metadata.Name + " container " + c.Name
					if len(c.EnvFrom) > 0 {
						t.Errorf("%s: envFrom hides variable names from this test; list them in env", where)
					}
					checkServeSettings(t, where, append(c.Command, c.Args...), c.EnvNames())
				}
			}
			if n == 0 {
				t.Fatal("no containers rendered")
			}
		})
	}
}

// checkServeSettings checks a command line (serve and its flags; the image's
// entrypoint is trustpulse) and variable names against serve's flags.
func checkServeSettings(t *testing.T, where string, args, env []string) {
	t.Helper()
	fs := flagSet("serve", new(Config), nil)
	vars := map[string]string{}
	fs.VisitAll(func(f *flag.Flag) { vars[envName(f.Name)] = f.Name })
	if len(args) == 0 || args[0] != "serve" {
		t.Errorf("%s: command %q; want serve and its flags", where, args)
		return
	}
	for i := 1; i < len(args); i++ {
		a := args[i]
		name, hasValue := strings.CutPrefix(a, "--")
		if !hasValue {
			name, hasValue = strings.CutPrefix(a, "-")
		}
		if !hasValue || name == "" {
			t.Errorf("%s: argument %q is not a flag (serve takes none)", where, a)
			continue
		}
		name, _, inline := strings.Cut(name, "=")
		f := fs.Lookup(name)
		if f == nil {
			t.Errorf("%s: flag --%s: trustpulse serve has no such flag", where, name)
			continue
		}
		if b, ok := f.Value.(interface{ IsBoolFlag() bool }); !inline && !(ok && b.IsBoolFlag()) {
			i++ // the flag's value is the next argument
		}
	}
	var unknown []string
	for _, e := range env {
		if _, ok := vars[e]; strings.HasPrefix(e, envPrefix) && !ok {
			unknown = append(unknown, e)
		}
	}
	sort.Strings(unknown)
	for _, e := range unknown {
		t.Errorf("%s: variable %s: trustpulse serve has no flag it sets", where, e)
	}
}
