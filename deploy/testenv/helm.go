package testenv

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// HelmKubeVersion is the Kubernetes version the chart is rendered for: helm
// built by `go install` assumes v1.20 when not told, below the chart's
// kubeVersion.
const HelmKubeVersion = "1.32.0"

// RepoRoot is the directory of the module's go.mod, found upwards from the
// test's working directory.
func RepoRoot(tb testing.TB) string {
	tb.Helper()
	dir, err := os.Getwd()
	if err != nil {
		tb.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			tb.Fatal("testenv: no go.mod above the working directory")
		}
		dir = parent
	}
}

// ChartDir is the Helm chart's directory.
func ChartDir(tb testing.TB) string {
	return filepath.Join(RepoRoot(tb), "deploy", "helm", "trustpulse")
}

// Helm returns the helm binary: $TRUSTPULSE_HELM, else .cache/helm/helm (where
// `make test-deps` builds it), else helm on PATH. When there is none the
// test fails if CI or TRUSTPULSE_REQUIRE_TOOLS is set (`make test` sets the
// latter) and is skipped otherwise.
func Helm(tb testing.TB) string {
	tb.Helper()
	candidates := []string{os.Getenv("TRUSTPULSE_HELM"), filepath.Join(RepoRoot(tb), ".cache", "helm", "helm")}
	for _, c := range candidates {
		if c == "" {
			continue
		}
		if fi, err := os.Stat(c); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return c
		}
	}
	if p, err := exec.LookPath("helm"); err == nil {
		return p
	}
	const msg = "helm is not installed; `make test-deps` builds it into .cache/helm (deploy/scripts/ensure-helm.sh)"
	if os.Getenv("CI") != "" || os.Getenv("TRUSTPULSE_REQUIRE_TOOLS") != "" {
		tb.Fatal(msg)
	}
	tb.Skip(msg)
	return ""
}

// HelmValueSets are the value sets the chart is checked with, by name:
// "default" (the chart's values.yaml alone) and each
// deploy/testdata/helm-values-NAME.yaml.
func HelmValueSets(tb testing.TB) map[string][]string {
	tb.Helper()
	files, err := filepath.Glob(filepath.Join(RepoRoot(tb), "deploy", "testdata", "helm-values-*.yaml"))
	if err != nil || len(files) == 0 {
		tb.Fatalf("testenv: no deploy/testdata/helm-values-*.yaml (%v)", err)
	}
	sort.Strings(files)
	sets := map[string][]string{"default": nil}
	for _, f := range files {
		name := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(f), "helm-values-"), ".yaml")
		sets[name] = []string{f}
	}
	return sets
}

// HelmTemplate renders the chart with the values files, as release
// "trustpulse" in namespace "pulse", and returns the manifests.
func HelmTemplate(tb testing.TB, values ...string) []byte {
	tb.Helper()
	args := []string{"template", "trustpulse", ChartDir(tb), "--namespace", "pulse", "--kube-version", HelmKubeVersion}
	for _, v := range values {
		args = append(args, "--values", v)
	}
	return runHelm(tb, args...)
}

// HelmLint runs `helm lint --strict` on the chart with the values files.
func HelmLint(tb testing.TB, values ...string) []byte {
	tb.Helper()
	args := []string{"lint", "--strict", ChartDir(tb), "--kube-version", HelmKubeVersion}
	for _, v := range values {
		args = append(args, "--values", v)
	}
	return runHelm(tb, args...)
}

func runHelm(tb testing.TB, args ...string) []byte {
	tb.Helper()
	cmd := exec.Command(Helm(tb), args...)
	// helm keeps its caches and config under HOME; none of them is needed.
	home := tb.TempDir()
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+home, "HELM_CONFIG_HOME="+home, "HELM_DATA_HOME="+home)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		tb.Fatalf("helm %s: %v\n%s%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.Bytes()
}
