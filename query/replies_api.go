package query

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/trustpulse/trustpulse/schemas"
)

// replyRequest is the body of POST /v1/orgs/{org}/comments/{id}/replies.
type replyRequest struct {
	Text string `json:"text"`
}

// replyHandler records a reply to a comment. The query may carry the
// filters of the comment list the reply is written from (organisation-wide
// without); the comment must be in that list and the guard must serve the
// list to the caller. 201 with the new thread entry; nothing is published
// for any refusal.
func (s *Server) replyHandler(c *fiber.Ctx) error {
	filter, _, err := sliceRequest(c)
	if err != nil {
		return err
	}
	if !c.Is("json") {
		return schemas.Errorf(http.StatusUnsupportedMediaType, "unsupported_media_type", "send the body as application/json")
	}
	var req replyRequest
	dec := json.NewDecoder(bytes.NewReader(c.Body()))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil || dec.More() {
		return schemas.Errorf(http.StatusBadRequest, "invalid_body", `the body must be one JSON object {"text": "..."}`)
	}
	ctx, cancel := context.WithTimeout(c.UserContext(), 10*time.Second)
	defer cancel()
	e, err := s.Reply(ctx, principalOf(c), c.Params("comment"), req.Text, filter)
	if err != nil {
		return err
	}
	return c.Status(http.StatusCreated).JSON(e)
}
