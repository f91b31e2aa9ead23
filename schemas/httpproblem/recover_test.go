package httpproblem_test

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gofiber/fiber/v2"

	"github.com/trustpulse/trustpulse/schemas"
	"github.com/trustpulse/trustpulse/schemas/httpproblem"
)

// TestRecover: a panicking handler answers 500 problem+json "internal" with
// a request id, the app keeps serving, and the log holds one line with that
// id and the stack, without the body or the path.
func TestRecover(t *testing.T) {
	var logs bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	app := fiber.New(fiber.Config{ErrorHandler: httpproblem.ErrorHandler(log)})
	app.Use(httpproblem.Recover(log))
	app.Post("/s/:token", func(c *fiber.Ctx) error {
		c.Set(fiber.HeaderContentDisposition, `attachment; filename="x.csv"`)
		_ = c.SendString("half an answer")
		var rec []string
		return c.SendString(rec[len(c.Body())]) // index out of range
	})
	app.Get("/ok", func(c *fiber.Ctx) error { return c.SendString("ok") })

	resp, err := app.Test(httptest.NewRequest("POST", "/s/secret-token", strings.NewReader("secret-body")), -1)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	var p schemas.Problem
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatalf("body %q: %v", body, err)
	}
	id := resp.Header.Get(httpproblem.RequestIDHeader)
	switch {
	case resp.StatusCode != 500 || p.Status != 500 || p.Code != "internal":
		t.Errorf("%d %s, want 500 internal", resp.StatusCode, body)
	case resp.Header.Get("Content-Type") != schemas.ProblemContentType:
		t.Errorf("Content-Type %q", resp.Header.Get("Content-Type"))
	case resp.Header.Get(fiber.HeaderContentDisposition) != "":
		t.Errorf("a problem sent as an attachment: %q", resp.Header.Get(fiber.HeaderContentDisposition))
	case id == "" || !strings.Contains(p.Detail, id):
		t.Errorf("request id %q, detail %q: want the id in both", id, p.Detail)
	case strings.Contains(string(body), "half an answer") || strings.Contains(string(body), "goroutine"):
		t.Errorf("the problem shows what it must not: %s", body)
	}

	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	if len(lines) != 1 {
		t.Fatalf("%d log lines, want 1:\n%s", len(lines), logs.String())
	}
	var line map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &line); err != nil {
		t.Fatal(err)
	}
	if line["request_id"] != id || line["route"] != "/s/:token" || !strings.Contains(line["stack"].(string), "recover_test.go") {
		t.Errorf("log line lacks the request id, route or stack: %s", lines[0])
	}
	if strings.Contains(lines[0], "secret-body") || strings.Contains(lines[0], "secret-token") {
		t.Errorf("log line holds the body or the token: %s", lines[0])
	}

	resp, err = app.Test(httptest.NewRequest("GET", "/ok", nil))
	if err != nil || resp.StatusCode != 200 || resp.Header.Get(httpproblem.RequestIDHeader) != "" {
		t.Fatalf("after the panic: %v %v", resp, err)
	}
}
