package query

import (
	"io"
	"log/slog"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/trustpulse/trustpulse/query/api"
)

// TestOpenAPIMatchesRoutes checks that the served description names exactly
// the routes the server has, with the same methods, and that it parses.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	var doc struct {
		OpenAPI string                               `yaml:"openapi"`
		Paths   map[string]map[string]map[string]any `yaml:"paths"`
	}
	if err := yaml.Unmarshal(api.OpenAPI, &doc); err != nil {
		t.Fatalf("openapi.yaml: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("openapi %q, want 3.x", doc.OpenAPI)
	}
	var documented []string
	for path, ops := range doc.Paths {
		for method := range ops {
			documented = append(documented, strings.ToUpper(method)+" "+path)
		}
	}
	s := NewServer(nil, 5, "projector", slog.New(slog.NewTextHandler(io.Discard, nil)))
	param := regexp.MustCompile(`:(\w+)`)
	var served []string
	for _, r := range s.App().GetRoutes(true) {
		if r.Method == "HEAD" || r.Method == "USE" || r.Path == "/" {
			continue
		}
		served = append(served, r.Method+" "+param.ReplaceAllString(r.Path, "{$1}"))
	}
	slices.Sort(documented)
	slices.Sort(served)
	served = slices.Compact(served)
	if !slices.Equal(documented, served) {
		t.Fatalf("openapi.yaml documents\n  %v\nthe server routes\n  %v", documented, served)
	}
	resp, err := s.App().Test(httptest.NewRequest("GET", "/openapi.yaml", nil))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET /openapi.yaml: %v %v", resp, err)
	}
}
