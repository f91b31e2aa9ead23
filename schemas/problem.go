package schemas

import (
	"fmt"
	"net/http"
)

// Problem is an RFC 9457 problem details body (application/problem+json),
// the error format of every trustpulse HTTP API. Detail is written for the
// person who sent the request; it never carries a token, an email, an answer
// or a hidden count.
type Problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail,omitempty"`
	// Code is a stable, machine-readable reason, e.g. "token_used".
	Code string `json:"code"`
	// Errors lists field-level problems of a rejected body.
	Errors []FieldError `json:"errors,omitempty"`
}

// FieldError names one invalid field of a request body.
type FieldError struct {
	Field  string `json:"field"`
	Detail string `json:"detail"`
}

// ProblemContentType is the media type of a Problem body.
const ProblemContentType = "application/problem+json"

// ProblemTypeBase prefixes a Problem's Type; the code completes it.
const ProblemTypeBase = "https://trustpulse.dev/problems/"

// Error is the application error both HTTP services return from handlers.
// Each service maps it to a Problem in exactly one place.
type Error struct {
	Status int
	Code   string
	Detail string
	Fields []FieldError
}

func (e *Error) Error() string { return e.Code + ": " + e.Detail }

// Errorf builds an Error.
func Errorf(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Detail: fmt.Sprintf(format, args...)}
}

// Problem renders the error as an RFC 9457 body.
func (e *Error) Problem() Problem {
	return Problem{
		Type:   ProblemTypeBase + e.Code,
		Title:  http.StatusText(e.Status),
		Status: e.Status,
		Detail: e.Detail,
		Code:   e.Code,
		Errors: e.Fields,
	}
}
