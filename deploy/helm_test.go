package deploy_test

import (
	"net"
	"path"
	"strconv"
	"strings"
	"testing"

	"github.com/trustpulse/trustpulse/deploy/testenv"
)

// TestHelmLint: `helm lint --strict` passes on the chart with each value set.
func TestHelmLint(t *testing.T) {
	testenv.Helm(t) // skip or fail once, not per value set
	for name, values := range testenv.HelmValueSets(t) {
		t.Run(name, func(t *testing.T) {
			t.Log(string(testenv.HelmLint(t, values...)))
		})
	}
}

// chartWant is what a value set must render, beyond what every set must.
var chartWant = map[string]struct {
	serviceMonitor, hpa, metrics bool
	partitions                   int
}{
	"default":    {hpa: true, metrics: true, partitions: 1},
	"full":       {serviceMonitor: true, metrics: true, partitions: 3},
	"no-metrics": {hpa: true, partitions: 1},
}

// TestHelmTemplate renders the chart with each value set and checks the
// manifests: every part runs non-root on a read-only root filesystem, is
// probed on /livez and /readyz where the binary answers them, serves metrics
// on a port of its own that no public Service exposes; the seal key is a
// 0400 file outside the data directory that only ingest mounts; the
// projector has a pod per partition. (TestDeployFlags in cmd/trustpulse
// checks every flag and variable against the binary.)
func TestHelmTemplate(t *testing.T) {
	testenv.Helm(t)
	for name, values := range testenv.HelmValueSets(t) {
		want, ok := chartWant[name]
		if !ok {
			t.Fatalf("deploy/testdata/helm-values-%s.yaml: add what it must render to chartWant", name)
		}
		t.Run(name, func(t *testing.T) {
			objs, err := testenv.Objects(testenv.HelmTemplate(t, values...))
			if err != nil {
				t.Fatal(err)
			}
			kinds := map[string]int{}
			deployments := map[string]bool{}
			metricsPorts := map[int]bool{}
			for _, o := range objs {
				kinds[o.Kind]++
				if o.Kind == "Deployment" {
					deployments[o.Metadata.Name] = true
				}
				if o.Workload() {
					for _, p := range checkWorkload(t, o, want.partitions) {
						metricsPorts[p] = true
					}
				}
			}
			for _, o := range objs {
				switch o.Kind {
				case "HorizontalPodAutoscaler":
					if o.Spec.ScaleTargetRef.Kind != "Deployment" || !deployments[o.Spec.ScaleTargetRef.Name] {
						t.Errorf("HorizontalPodAutoscaler %s scales %s %s, not a Deployment of the chart", o.Metadata.Name, o.Spec.ScaleTargetRef.Kind, o.Spec.ScaleTargetRef.Name)
					}
				case "Service":
					for _, p := range o.Spec.Ports {
						if metricsPorts[p.Port] && o.Spec.ClusterIP != "None" {
							t.Errorf("Service %s (%s) exposes the metrics port %d; only the headless metrics Service may", o.Metadata.Name, o.Spec.Type, p.Port)
						}
					}
				case "NetworkPolicy":
					// The metrics port only from the peers values name;
					// every rule with it names some.
					for _, rule := range o.Spec.Ingress {
						for _, p := range rule.Ports {
							if p.Port == "metrics" && len(rule.From) == 0 {
								t.Errorf("NetworkPolicy %s admits everyone to the metrics port", o.Metadata.Name)
							}
						}
					}
				case "ServiceMonitor":
					if len(o.Spec.Endpoints) != 1 || o.Spec.Endpoints[0].Port != "metrics" || o.Spec.Endpoints[0].Path != "/metrics" {
						t.Errorf("ServiceMonitor %s endpoints %+v; want port metrics, path /metrics", o.Metadata.Name, o.Spec.Endpoints)
					}
				}
			}
			checkCount(t, "Deployment", kinds["Deployment"], 2)
			checkCount(t, "StatefulSet", kinds["StatefulSet"], 1)
			checkCount(t, "HorizontalPodAutoscaler", kinds["HorizontalPodAutoscaler"], map[bool]int{true: 2}[want.hpa])
			checkCount(t, "ServiceMonitor", kinds["ServiceMonitor"], map[bool]int{true: 1}[want.serviceMonitor])
			checkCount(t, "NetworkPolicy", kinds["NetworkPolicy"], map[bool]int{true: 1}[want.metrics])
			if got := len(metricsPorts) > 0; got != want.metrics {
				t.Errorf("metrics ports %v; want metrics %v", metricsPorts, want.metrics)
			}
		})
	}
}

func checkCount(t *testing.T, kind string, got, want int) {
	t.Helper()
	if got != want {
		t.Errorf("%d %s objects; want %d", got, kind, want)
	}
}

// checkWorkload checks a Deployment's or StatefulSet's pods and returns the
// metrics ports of its containers.
func checkWorkload(t *testing.T, o testenv.Object, partitions int) []int {
	t.Helper()
	pod := o.Spec.Template.Spec
	where := o.Kind + " " + o.Metadata.Name
	if pod.SecurityContext["runAsNonRoot"] != true {
		t.Errorf("%s: pod securityContext %v; want runAsNonRoot", where, pod.SecurityContext)
	}
	var metrics []int
	for _, c := range pod.Containers {
		where := where + " container " + c.Name
		env := map[string]string{}
		for _, e := range c.Env {
			if e.Value != nil {
				env[e.Name] = *e.Value
			}
		}
		if c.SecurityContext["readOnlyRootFilesystem"] != true || c.SecurityContext["allowPrivilegeEscalation"] != false {
			t.Errorf("%s: securityContext %v; want readOnlyRootFilesystem and no allowPrivilegeEscalation", where, c.SecurityContext)
		}
		ports := map[string]int{}
		for _, p := range c.Ports {
			ports[p.Name] = p.ContainerPort
		}
		target := containerTarget(t, where, c)
		// Where the binary answers /livez and /readyz: the API of ingest and
		// query, --health-addr of the projector.
		healthVar := map[string]string{"ingest": "TRUSTPULSE_INGEST_ADDR", "query": "TRUSTPULSE_QUERY_ADDR", "projector": "TRUSTPULSE_HEALTH_ADDR"}[target]
		healthPort := addrPort(t, where, healthVar, env[healthVar])
		for _, pr := range []struct {
			name, path string
			p          *testenv.Probe
		}{{"livenessProbe", "/livez", c.LivenessProbe}, {"readinessProbe", "/readyz", c.ReadinessProbe}, {"startupProbe", "/livez", c.StartupProbe}} {
			if pr.p == nil || pr.p.HTTPGet == nil {
				t.Errorf("%s: no HTTP %s", where, pr.name)
				continue
			}
			if got := probePort(pr.p.HTTPGet.Port, ports); pr.p.HTTPGet.Path != pr.path || got != healthPort {
				t.Errorf("%s: %s %s on port %d; want %s on %d (%s)", where, pr.name, pr.p.HTTPGet.Path, got, pr.path, healthPort, healthVar)
			}
		}
		if addr, ok := env["TRUSTPULSE_METRICS_ADDR"]; ok {
			p := addrPort(t, where, "TRUSTPULSE_METRICS_ADDR", addr)
			if ports["metrics"] != p {
				t.Errorf("%s: container port metrics %d; want %d (TRUSTPULSE_METRICS_ADDR)", where, ports["metrics"], p)
			}
			if p == healthPort {
				t.Errorf("%s: metrics on the API's port %d", where, p)
			}
			metrics = append(metrics, p)
		}
		checkSealKey(t, where, target, pod, c, env)
		if target == "projector" {
			checkPartitionIDs(t, where, o, c, partitions)
		}
	}
	return metrics
}

// checkSealKey: ingest reads the seal key from a read-only secret volume of
// mode 0400 outside the data directory; no other part mounts it.
func checkSealKey(t *testing.T, where, target string, pod testenv.PodSpec, c testenv.Container, env map[string]string) {
	t.Helper()
	key, data := env["TRUSTPULSE_SEAL_KEY_FILE"], env["TRUSTPULSE_DATA_DIR"]
	secretVolumes := map[string]bool{}
	for _, v := range pod.Volumes {
		if v.Secret == nil {
			continue
		}
		secretVolumes[v.Name] = true
		mode := v.Secret.DefaultMode
		for _, it := range v.Secret.Items {
			if it.Mode != nil {
				mode = it.Mode
			}
		}
		if mode == nil || *mode != 0o400 {
			t.Errorf("%s: secret volume %s mode %v; want 0400", where, v.Name, mode)
		}
	}
	if target != "ingest" {
		if key != "" || len(secretVolumes) > 0 {
			t.Errorf("%s: the %s part is given the seal key (%q) or secret volumes %v", where, target, key, secretVolumes)
		}
		return
	}
	if key == "" || data == "" || !path.IsAbs(key) || strings.HasPrefix(key, strings.TrimSuffix(data, "/")+"/") {
		t.Fatalf("%s: TRUSTPULSE_SEAL_KEY_FILE %q, TRUSTPULSE_DATA_DIR %q; want an absolute path outside the data directory", where, key, data)
	}
	for _, m := range c.VolumeMounts {
		if m.MountPath == path.Dir(key) {
			if !secretVolumes[m.Name] || !m.ReadOnly {
				t.Errorf("%s: %s is mounted from %s (secret %v, read-only %v); want a read-only secret volume", where, m.MountPath, m.Name, secretVolumes[m.Name], m.ReadOnly)
			}
			return
		}
	}
	t.Errorf("%s: nothing mounted at %s, the seal key's directory", where, path.Dir(key))
}

// checkPartitionIDs: a pod per partition, each told its own ordinal.
func checkPartitionIDs(t *testing.T, where string, o testenv.Object, c testenv.Container, partitions int) {
	t.Helper()
	if o.Kind != "StatefulSet" || o.Spec.Replicas == nil || *o.Spec.Replicas != partitions {
		t.Errorf("%s: %s of %v replicas; want a StatefulSet of %d", where, o.Kind, o.Spec.Replicas, partitions)
	}
	var from map[string]any
	var partitionsSet bool
	for _, e := range c.Env {
		switch e.Name {
		case "TRUSTPULSE_PROJECTOR_PARTITION_IDS":
			from = e.ValueFrom
		case "TRUSTPULSE_PROJECTOR_PARTITIONS":
			partitionsSet = e.Value != nil && *e.Value == strconv.Itoa(partitions)
		}
	}
	if partitions == 1 {
		return
	}
	ref, _ := from["fieldRef"].(map[string]any)
	if !partitionsSet || ref["fieldPath"] != "metadata.labels['apps.kubernetes.io/pod-index']" {
		t.Errorf("%s: partitions set %v, TRUSTPULSE_PROJECTOR_PARTITION_IDS from %v; want %d and the pod-index label", where, partitionsSet, from, partitions)
	}
}

// containerTarget is the --target a container runs.
func containerTarget(t *testing.T, where string, c testenv.Container) string {
	t.Helper()
	for _, a := range append(c.Command, c.Args...) {
		if v, ok := strings.CutPrefix(a, "--target="); ok {
			return v
		}
	}
	t.Fatalf("%s: args %q have no --target=", where, c.Args)
	return ""
}

// addrPort is the port of a listen address host:port.
func addrPort(t *testing.T, where, name, addr string) int {
	t.Helper()
	_, port, err := net.SplitHostPort(addr)
	p, perr := strconv.Atoi(port)
	if err != nil || perr != nil {
		t.Fatalf("%s: %s %q; want host:port", where, name, addr)
	}
	return p
}

// probePort resolves a probe's port, a number or a container port's name.
func probePort(port any, named map[string]int) int {
	switch p := port.(type) {
	case int:
		return p
	case string:
		return named[p]
	}
	return 0
}
