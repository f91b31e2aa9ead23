package testenv

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"

	"gopkg.in/yaml.v3"
)

// Object is a Kubernetes object of rendered manifests, with the fields the
// deployment tests read.
type Object struct {
	Kind     string `yaml:"kind"`
	Metadata struct {
		Name   string            `yaml:"name"`
		Labels map[string]string `yaml:"labels"`
	} `yaml:"metadata"`
	Spec struct {
		Replicas  *int   `yaml:"replicas"`
		Type      string `yaml:"type"`
		ClusterIP string `yaml:"clusterIP"`
		Ports     []struct {
			Name string `yaml:"name"`
			Port int    `yaml:"port"`
		} `yaml:"ports"`
		Template struct {
			Spec PodSpec `yaml:"spec"`
		} `yaml:"template"`
		// ServiceMonitor
		Endpoints []struct {
			Port string `yaml:"port"`
			Path string `yaml:"path"`
		} `yaml:"endpoints"`
		// NetworkPolicy
		Ingress []struct {
			Ports []struct {
				Port any `yaml:"port"`
			} `yaml:"ports"`
			From []map[string]any `yaml:"from"`
		} `yaml:"ingress"`
		// HorizontalPodAutoscaler
		ScaleTargetRef struct {
			Kind string `yaml:"kind"`
			Name string `yaml:"name"`
		} `yaml:"scaleTargetRef"`
	} `yaml:"spec"`
}

// Workload reports whether o runs pods.
func (o Object) Workload() bool {
	switch o.Kind {
	case "Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "Pod":
		return true
	}
	return false
}

// PodSpec is a pod template's spec.
type PodSpec struct {
	SecurityContext map[string]any `yaml:"securityContext"`
	InitContainers  []Container    `yaml:"initContainers"`
	Containers      []Container    `yaml:"containers"`
	Volumes         []struct {
		Name   string `yaml:"name"`
		Secret *struct {
			SecretName  string `yaml:"secretName"`
			DefaultMode *int   `yaml:"defaultMode"`
			Items       []struct {
				Key  string `yaml:"key"`
				Path string `yaml:"path"`
				Mode *int   `yaml:"mode"`
			} `yaml:"items"`
		} `yaml:"secret"`
	} `yaml:"volumes"`
}

// Container is a container of a pod spec.
type Container struct {
	Name    string   `yaml:"name"`
	Image   string   `yaml:"image"`
	Command []string `yaml:"command"`
	Args    []string `yaml:"args"`
	Env     []struct {
		Name      string         `yaml:"name"`
		Value     *string        `yaml:"value"`
		ValueFrom map[string]any `yaml:"valueFrom"`
	} `yaml:"env"`
	EnvFrom []any `yaml:"envFrom"`
	Ports   []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
	} `yaml:"ports"`
	StartupProbe    *Probe         `yaml:"startupProbe"`
	LivenessProbe   *Probe         `yaml:"livenessProbe"`
	ReadinessProbe  *Probe         `yaml:"readinessProbe"`
	SecurityContext map[string]any `yaml:"securityContext"`
	VolumeMounts    []struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
		ReadOnly  bool   `yaml:"readOnly"`
	} `yaml:"volumeMounts"`
}

// Probe is an HTTP probe.
type Probe struct {
	HTTPGet *struct {
		Path string `yaml:"path"`
		Port any    `yaml:"port"`
	} `yaml:"httpGet"`
}

// EnvNames are the names of c's environment variables.
func (c Container) EnvNames() []string {
	var names []string
	for _, e := range c.Env {
		names = append(names, e.Name)
	}
	return names
}

// Objects parses a stream of YAML documents (helm template's output).
func Objects(manifests []byte) ([]Object, error) {
	var objs []Object
	dec := yaml.NewDecoder(bytes.NewReader(manifests))
	for {
		var o Object
		err := dec.Decode(&o)
		if errors.Is(err, io.EOF) {
			return objs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("manifest %d: %w", len(objs)+1, err)
		}
		if o.Kind != "" {
			objs = append(objs, o)
		}
	}
}

// ComposeService is a service of a compose file, with the fields the
// deployment tests read.
type ComposeService struct {
	Image       string            `yaml:"image"`
	Build       map[string]string `yaml:"build"`
	Command     []string          `yaml:"command"`
	Environment map[string]string `yaml:"environment"`
	Ports       []string          `yaml:"ports"`
	ReadOnly    bool              `yaml:"read_only"`
	Tmpfs       []string          `yaml:"tmpfs"`
	Volumes     []string          `yaml:"volumes"`
	Healthcheck *struct {
		Test []string `yaml:"test"`
	} `yaml:"healthcheck"`
}

// Trustpulse reports whether the service runs trustpulse: it builds
// deploy/Dockerfile.
func (s ComposeService) Trustpulse() bool { return s.Build["dockerfile"] == "deploy/Dockerfile" }

// EnvNames are the names of s's environment variables, sorted.
func (s ComposeService) EnvNames() []string {
	var names []string
	for k := range s.Environment {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

// ComposeServices reads a compose file's services by name (YAML merge keys,
// as the compose file's x-trustpulse, resolved).
func ComposeServices(path string) (map[string]ComposeService, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var f struct {
		Services map[string]ComposeService `yaml:"services"`
	}
	if err := yaml.Unmarshal(raw, &f); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return f.Services, nil
}
