package ingest_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/trustpulse/trustpulse/deploy/natsrv"
	"github.com/trustpulse/trustpulse/deploy/testenv"
	"github.com/trustpulse/trustpulse/ingest"
	"github.com/trustpulse/trustpulse/schemas"
)

func TestSubmitResponse(t *testing.T) {
	e := mustEnv(t)
	tok := e.invite(t, 1)[0]
	status, body := e.post(t, "application/json", submitBody(tok, validAnswers()))
	if status != http.StatusAccepted {
		t.Fatalf("status %d: %s", status, body)
	}
	if string(body) != `{"status":"recorded"}` {
		t.Errorf("202 body without comments %s, want no reply link", body)
	}
	evs := e.responses(t)
	if len(evs) != 1 {
		t.Fatalf("%d ResponseSubmitted events on the stream, want 1", len(evs))
	}
	raw := string(evs[0])
	for _, secret := range []string{tok, ingest.TokenHash(tok)} {
		if strings.Contains(raw, secret) {
			t.Fatalf("response event carries the token or its hash: %s", raw)
		}
	}
	env, err := schemas.DecodeEnvelope(evs[0])
	if err != nil {
		t.Fatal(err)
	}
	r, err := schemas.DecodePayload[schemas.ResponseSubmitted](env, schemas.ResponseSubmittedType)
	if err != nil {
		t.Fatal(err)
	}
	if !env.Time.Equal(env.Time.Truncate(24*time.Hour)) || r.Date != e.clock.Now().Format(schemas.DateLayout) {
		t.Errorf("response time %s / date %s is finer than a day", env.Time, r.Date)
	}
	if !r.Cohort.Equal(testCohort) || len(r.Answers) != 4 || r.WaveID != "w1" {
		t.Errorf("unexpected payload %+v", r)
	}
}

// TestSubmitResponseReplyLink: a response with comments gets one private
// reply link in its 202 body, one capability per comment, under the
// dashboard URL; each comment's event carries only its own capability's
// hash, and no two share one.
func TestSubmitResponseReplyLink(t *testing.T) {
	e := mustEnv(t)
	tok := e.invite(t, 1)[0]
	status, body := e.post(t, "application/json", []byte(`{"token":"`+tok+`","answers":{"trust-1":4,"auto-1":5,"enps":9},"comments":{"better":"same words","worse":"same words"}}`))
	if status != http.StatusAccepted {
		t.Fatalf("status %d: %s", status, body)
	}
	var r ingest.SubmitResult
	if err := json.Unmarshal(body, &r); err != nil {
		t.Fatal(err)
	}
	rest, ok := strings.CutPrefix(r.ReplyLink, "https://results.acme.example/r/")
	if !ok {
		t.Fatalf("reply link %q is not under the dashboard URL", r.ReplyLink)
	}
	caps, err := schemas.ParseReplyLink(rest)
	if err != nil || len(caps) != 2 {
		t.Fatalf("reply link holds %d capabilities (%v), want one per comment", len(caps), err)
	}
	comments := e.stored(t, schemas.CommentSubmittedType)
	if len(comments) != 2 {
		t.Fatalf("%d comments stored, want 2", len(comments))
	}
	hashes := map[string]bool{}
	for _, raw := range comments {
		env, err := schemas.DecodeEnvelope(raw)
		if err != nil {
			t.Fatal(err)
		}
		c, err := schemas.DecodePayload[schemas.CommentSubmitted](env, schemas.CommentSubmittedType)
		if err != nil {
			t.Fatal(err)
		}
		hashes[c.ReplyHash] = true
		for _, cp := range caps {
			if strings.Contains(string(raw), cp) {
				t.Error("a comment's event carries a capability")
			}
		}
	}
	if !hashes[schemas.ReplyHash(caps[0])] || !hashes[schemas.ReplyHash(caps[1])] || len(hashes) != 2 {
		t.Errorf("comment hashes %v, want the two capabilities' hashes, distinct", hashes)
	}
}

// TestSubmitResponseBadInput sends every kind of bad request and checks the
// status, the problem code, that nothing was published, and that the
// invitation still records a response afterwards.
func TestSubmitResponseBadInput(t *testing.T) {
	e := mustEnv(t)
	toks := e.invite(t, 1)
	tok := toks[0]
	forged := ingest.NewToken()

	// An invitation to a wave the catalog does not know.
	orphan, _, err := e.ledger.Issue(context.Background(), schemas.Invitation{Org: "acme", WaveID: "ghost",
		Cohort: testCohort, ExpiresAt: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	wrongRange := validAnswers()
	wrongRange["enps"] = 11
	zeroLikert := validAnswers()
	zeroLikert["trust-1"] = 0
	missing := validAnswers()
	delete(missing, "auto-1")
	unknownQ := validAnswers()
	unknownQ["salary"] = 3

	for name, tc := range map[string]struct {
		contentType string
		body        []byte
		status      int
		code        string
	}{
		"ErrMalformedJSON":    {"application/json", []byte(`{"token": "abc", "answers": {`), 400, "invalid_body"},
		"ErrEmptyBody":        {"application/json", nil, 400, "invalid_body"},
		"ErrUnknownField":     {"application/json", []byte(`{"token":"` + tok + `","answers":{"enps":9},"email":"x@y.z"}`), 400, "invalid_body"},
		"ErrWrongType":        {"application/json", []byte(`{"token":"` + tok + `","answers":{"enps":"nine"}}`), 400, "invalid_body"},
		"ErrTrailingData":     {"application/json", append(submitBody(tok, validAnswers()), []byte(`{}`)...), 400, "invalid_body"},
		"ErrNotAnObject":      {"application/json", []byte(`[1,2,3]`), 400, "invalid_body"},
		"ErrContentType":      {"text/plain", submitBody(tok, validAnswers()), 415, "unsupported_media_type"},
		"ErrNoContentType":    {"", submitBody(tok, validAnswers()), 415, "unsupported_media_type"},
		"ErrOversizedBody":    {"application/json", bytes.Repeat([]byte(" "), ingest.MaxBodyBytes+1), 413, "body_too_large"},
		"ErrMissingToken":     {"application/json", submitBody("", validAnswers()), 400, "invalid_body"},
		"ErrMissingAnswers":   {"application/json", []byte(`{"token":"` + tok + `"}`), 400, "invalid_body"},
		"ErrForgedToken":      {"application/json", submitBody(forged, validAnswers()), 404, "token_unknown"},
		"ErrGarbageToken":     {"application/json", submitBody("../../etc/passwd", validAnswers()), 404, "token_unknown"},
		"ErrUnknownWave":      {"application/json", submitBody(orphan, validAnswers()), 404, "wave_not_found"},
		"ErrUnknownQuestion":  {"application/json", submitBody(tok, unknownQ), 422, "invalid_answers"},
		"ErrOutOfRangeENPS":   {"application/json", submitBody(tok, wrongRange), 422, "invalid_answers"},
		"ErrOutOfRangeLikert": {"application/json", submitBody(tok, zeroLikert), 422, "invalid_answers"},
		"ErrMissingRequired":  {"application/json", submitBody(tok, missing), 422, "invalid_answers"},
		"ErrNoAnswersAtAll":   {"application/json", submitBody(tok, map[string]int{}), 422, "invalid_answers"},
		// Duplicate keys: encoding/json would keep the last one.
		"ErrDuplicateAnswer":    {"application/json", []byte(`{"token":"` + tok + `","answers":{"trust-1":4,"auto-1":5,"enps":9,"trust-1":1}}`), 400, "invalid_body"},
		"ErrDuplicateToken":     {"application/json", []byte(`{"token":"` + forged + `","answers":{"trust-1":4,"auto-1":5,"enps":9},"token":"` + tok + `"}`), 400, "invalid_body"},
		"ErrDuplicateTokenCase": {"application/json", []byte(`{"token":"` + forged + `","Token":"` + tok + `","answers":{"trust-1":4,"auto-1":5,"enps":9}}`), 400, "invalid_body"},
		"ErrDuplicateAnswers":   {"application/json", []byte(`{"token":"` + tok + `","answers":{"enps":1},"answers":{"trust-1":4,"auto-1":5,"enps":9}}`), 400, "invalid_body"},
		"ErrDuplicateComment":   {"application/json", []byte(`{"token":"` + tok + `","answers":{"trust-1":4,"auto-1":5,"enps":9},"comments":{"better":"a","better":"b"}}`), 400, "invalid_body"},
	} {
		t.Run(name, func(t *testing.T) {
			status, body := e.post(t, tc.contentType, tc.body)
			if status != tc.status {
				t.Fatalf("status %d, want %d: %s", status, tc.status, body)
			}
			var p schemas.Problem
			if err := json.Unmarshal(body, &p); err != nil {
				t.Fatalf("body is not a problem+json document: %s", body)
			}
			if p.Code != tc.code || p.Status != tc.status || p.Detail == "" {
				t.Fatalf("problem %+v, want code %q", p, tc.code)
			}
			if strings.Contains(string(body), tok) || strings.Contains(string(body), forged) {
				t.Fatalf("error body echoes the token: %s", body)
			}
		})
	}
	if n := len(e.responses(t)); n != 0 {
		t.Fatalf("%d responses published for rejected requests", n)
	}
	// The invitation was never consumed by a rejected request.
	if status, body := e.post(t, "application/json", submitBody(tok, validAnswers())); status != http.StatusAccepted {
		t.Fatalf("valid submit after rejections: %d %s", status, body)
	}
	t.Run("ErrTokenUsed", func(t *testing.T) {
		status, body := e.post(t, "application/json", submitBody(tok, validAnswers()))
		if status != http.StatusConflict || !strings.Contains(string(body), `"token_used"`) {
			t.Fatalf("reuse: %d %s", status, body)
		}
	})
	if n := len(e.responses(t)); n != 1 {
		t.Fatalf("%d responses on the stream, want 1", n)
	}
}

func TestSubmitResponseExpired(t *testing.T) {
	t.Run("ErrWaveClosesAt", func(t *testing.T) {
		e := mustEnv(t)
		tok := e.invite(t, 1)[0]
		e.clock.Set(e.opened.Add(25 * time.Hour))
		status, body := e.post(t, "application/json", submitBody(tok, validAnswers()))
		if status != http.StatusGone || !strings.Contains(string(body), `"token_expired"`) {
			t.Fatalf("%d %s", status, body)
		}
	})
	t.Run("ErrWaveClosed", func(t *testing.T) {
		e := mustEnv(t)
		tok := e.invite(t, 1)[0]
		if err := e.admin.CloseWave(context.Background(), "acme", "w1"); err != nil {
			t.Fatal(err)
		}
		status, body := e.post(t, "application/json", submitBody(tok, validAnswers()))
		if status != http.StatusGone || !strings.Contains(string(body), `"token_expired"`) {
			t.Fatalf("%d %s", status, body)
		}
		if n := len(e.responses(t)); n != 0 {
			t.Fatalf("%d responses published to a closed wave", n)
		}
	})
}

// TestSubmitResponseConcurrent submits one token from 20 goroutines at once:
// exactly one response is recorded, whether the link was posted cold or
// its page was opened first (the claim from the link cache).
func TestSubmitResponseConcurrent(t *testing.T) {
	for _, page := range []bool{false, true} {
		t.Run(map[bool]string{false: "cold", true: "after the page"}[page], func(t *testing.T) {
			e := mustEnv(t)
			tok := e.invite(t, 1)[0]
			if page {
				e.openPage(t, tok)
			}
			const n = 20
			count := e.postAtOnce(t, tok, n)
			if count[http.StatusAccepted] != 1 || count[http.StatusConflict] != n-1 {
				t.Fatalf("statuses %v, want one 202 and %d 409", count, n-1)
			}
			if got := len(e.responses(t)); got != 1 {
				t.Fatalf("%d responses on the stream, want 1", got)
			}
		})
	}
}

// TestSubmitResponseNATSDown stops the NATS server: ingest answers 503 and
// records nothing; once NATS is back the same link records the response,
// once. Both with the link posted cold and with its page opened first (its
// read kept in the link cache across the restart).
func TestSubmitResponseNATSDown(t *testing.T) {
	for _, page := range []bool{false, true} {
		t.Run(map[bool]string{false: "cold", true: "after the page"}[page], func(t *testing.T) {
			e := mustEnv(t)
			tok := e.invite(t, 1)[0]
			if page {
				e.openPage(t, tok)
			}
			addr := e.srv.Addr().String()
			store := e.srv.JetStreamConfig().StoreDir
			e.srv.Stop()

			status, body := e.post(t, "application/json", submitBody(tok, validAnswers()))
			if status != http.StatusServiceUnavailable || !strings.Contains(string(body), `"unavailable"`) {
				t.Fatalf("with NATS down: %d %s", status, body)
			}

			srv, err := natsrv.Start(natsrv.Options{StoreDir: store, Listen: addr})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(srv.Stop)
			e.srv = srv
			deadline := time.Now().Add(20 * time.Second)
			for {
				status, body = e.post(t, "application/json", submitBody(tok, validAnswers()))
				if status == http.StatusAccepted {
					break
				}
				if status != http.StatusServiceUnavailable || time.Now().After(deadline) {
					t.Fatalf("after NATS restart: %d %s", status, body)
				}
				time.Sleep(200 * time.Millisecond)
			}
			if status, body := e.post(t, "application/json", submitBody(tok, validAnswers())); status != http.StatusConflict {
				t.Fatalf("second post after the restart: %d %s, want 409", status, body)
			}
			if got := len(e.responses(t)); got != 1 {
				t.Fatalf("%d responses on the stream, want 1", got)
			}
		})
	}
}

// TestSubmitResponsePublishFails removes the pending stream so that storing
// the response fails after the invitation was claimed: the claim is
// released, the answer is 503, and the link works once the stream is back.
func TestSubmitResponsePublishFails(t *testing.T) {
	e := mustEnv(t)
	tok := e.invite(t, 1)[0]
	ctx := context.Background()
	if err := e.js.DeleteStream(ctx, schemas.HeldStream("acme", "w1")); err != nil {
		t.Fatal(err)
	}
	status, body := e.post(t, "application/json", submitBody(tok, validAnswers()))
	if status != http.StatusServiceUnavailable {
		t.Fatalf("publish to a missing stream: %d %s", status, body)
	}
	if _, err := e.js.CreateOrUpdateStream(ctx, schemas.HeldStreamConfig("acme", "w1", 1)); err != nil {
		t.Fatal(err)
	}
	status, body = e.post(t, "application/json", submitBody(tok, validAnswers()))
	if status != http.StatusAccepted {
		t.Fatalf("retry after the stream is back: %d %s", status, body)
	}
	if got := len(e.responses(t)); got != 1 {
		t.Fatalf("%d responses on the stream, want 1", got)
	}
}

// TestDecodeSubmitRequestDuplicateKeys: a key given twice in any object of
// a submission is refused, naming the key; the same key in different
// objects is not a duplicate.
func TestDecodeSubmitRequestDuplicateKeys(t *testing.T) {
	for body, want := range map[string]string{
		`{"token":"t","answers":{"q":1,"q":2}}`:                       `key "q" given twice`,
		`{"token":"t","answers":{"q":1},"token":"u"}`:                 `field "token" given twice`,
		`{"token":"t","TOKEN":"u","answers":{"q":1}}`:                 `field "TOKEN" given twice`,
		`{"token":"t","answers":{"s":1},"anſwers":{"s":2}}`:           `field "anſwers" given twice`, // ſ folds to s, as encoding/json matches fields
		`{"token":"t","answers":{"q":1},"comments":{"c":"a","c":""}}`: `key "c" given twice`,
		`{"token":"t","answers":{"q\u0031":1,"q1":2}}`:                `key "q1" given twice`,
		`{"token":"t","answers":{"q":1,"Q":2}}`:                       "", // question ids are exact
		`{"token":"t","answers":{"token":1,"answers":2}}`:             "",
		`{"token":"t","answers":{"q":1},"comments":{"q":"x"}}`:        "",
		`{"token":"t","answers":null,"comments":null}`:                "answers: required",
	} {
		_, err := ingest.DecodeSubmitRequest([]byte(body))
		switch {
		case want == "" && err != nil:
			t.Errorf("%s: %v", body, err)
		case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
			t.Errorf("%s: %v, want %q", body, err, want)
		}
	}
}

// TestSubmitResponseBackPressure: beyond the bound of submissions recorded
// at once, a submission is refused at once with 503 and Retry-After,
// nothing recorded, and the same link works once there is room (issue 12,
// item 10).
func TestSubmitResponseBackPressure(t *testing.T) {
	e := mustEnv(t)
	tok := e.invite(t, 1)[0]
	e.server.SetMaxInFlight(2)
	free := e.server.FillInFlightForTest()
	req, _ := http.NewRequest(http.MethodPost, e.url+"/v1/responses", bytes.NewReader(submitBody(tok, validAnswers())))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || !bytes.Contains(body, []byte(`"unavailable"`)) {
		t.Fatalf("a submission beyond the bound: %d Retry-After %q %s", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	if got := len(e.responses(t)); got != 0 {
		t.Fatalf("%d responses stored for a refused submission", got)
	}
	free()
	if status, body := e.post(t, "application/json", submitBody(tok, validAnswers())); status != http.StatusAccepted {
		t.Fatalf("the same link once there is room: %d %s", status, body)
	}
}

// TestMaxConnections: beyond the bound of connections held open, a new
// connection is answered 503 at once and closed, and one is served again
// once a held connection closes. The bound is what keeps an overload of
// slow clients from filling ingest's memory with connections.
func TestMaxConnections(t *testing.T) {
	e := mustEnv(t)
	srv := ingest.NewServer(e.js, e.ledger, e.cat, 5, testenv.Logger(t), e.clock.Now)
	srv.SetMaxConnections(2)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.App().Listener(ln) }()
	t.Cleanup(func() { _ = srv.App().Shutdown() })
	addr := ln.Addr().String()
	get := func() (int, error) {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			return 0, err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.WriteString(c, "GET /livez HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"); err != nil {
			return 0, err
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	if code, err := get(); err != nil || code != http.StatusOK {
		t.Fatalf("below the bound: %d %v", code, err)
	}
	// Two connections held open, idle, as slow clients hold them.
	var held []net.Conn
	for range 2 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
	}
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	// The server counts a connection once it has accepted it, and
	// uncounts it once it has seen it closed: poll for the answer.
	await := func(want int, what string) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			code, err := get()
			if err == nil && code == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d %v, want %d", what, code, err, want)
			}
		}
	}
	await(http.StatusServiceUnavailable, "a third connection beyond the bound of 2")
	held[0].Close()
	held = held[1:]
	await(http.StatusOK, "once a held connection closed")
}
