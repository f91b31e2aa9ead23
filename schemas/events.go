package schemas

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	jsonv2 "github.com/go-json-experiment/json"
	jsonv1 "github.com/go-json-experiment/json/v1"

	"github.com/google/uuid"
)

// EventType names an event. Types are part of the stream's subject and of the
// envelope; renaming one is a breaking change.
type EventType string

// The event types trustpulse emits.
const (
	SurveyPublishedType   EventType = "SurveyPublished"
	WaveOpenedType        EventType = "WaveOpened"
	InvitationIssuedType  EventType = "InvitationIssued"
	ResponseSubmittedType EventType = "ResponseSubmitted"
	CommentSubmittedType  EventType = "CommentSubmitted"
	WaveClosedType        EventType = "WaveClosed"
	WaveSealedType        EventType = "WaveSealed"
	EmployeeJoinedType    EventType = "EmployeeJoined"
	EmployeeUpdatedType   EventType = "EmployeeUpdated"
	EmployeeLeftType      EventType = "EmployeeLeft"
	ScheduleSetType       EventType = "ScheduleSet"
	OrgConfiguredType     EventType = "OrgConfigured"
	TokenIssuedType       EventType = "TokenIssued"
	TokenRevokedType      EventType = "TokenRevoked"
	CommentRepliedType    EventType = "CommentReplied"
	CommentAnsweredType   EventType = "CommentAnswered"
	ActionPlannedType     EventType = "ActionPlanned"
	ActionUpdatedType     EventType = "ActionUpdated"
	ActionCompletedType   EventType = "ActionCompleted"
)

// Envelope wraps every event on the stream. Payload is the type's JSON
// payload at schema version Version.
type Envelope struct {
	ID      uuid.UUID       `json:"id"`
	Type    EventType       `json:"type"`
	Version int             `json:"version"`
	OrgID   string          `json:"org"`
	Time    time.Time       `json:"time"`
	Payload json.RawMessage `json:"payload"`
}

// Upcaster turns the payload of version N into the payload of version N+1.
type Upcaster func(json.RawMessage) (json.RawMessage, error)

// eventSpec describes one event type: its current version and the upcasters
// from each older version, keyed by the version they read.
type eventSpec struct {
	current   int
	upcasters map[int]Upcaster
}

// registry holds every known event type. A new version of a payload raises
// current and adds an upcaster from the previous version, so that events
// already on the stream replay into the new shape.
var registry = map[EventType]eventSpec{
	SurveyPublishedType:   {current: 1},
	WaveOpenedType:        {current: 1},
	InvitationIssuedType:  {current: 1},
	ResponseSubmittedType: {current: 2, upcasters: map[int]Upcaster{1: upcastResponseV1}},
	CommentSubmittedType:  {current: 1},
	WaveClosedType:        {current: 1},
	WaveSealedType:        {current: 1},
	EmployeeJoinedType:    {current: 1},
	EmployeeUpdatedType:   {current: 1},
	EmployeeLeftType:      {current: 1},
	ScheduleSetType:       {current: 1},
	OrgConfiguredType:     {current: 1},
	TokenIssuedType:       {current: 1},
	TokenRevokedType:      {current: 1},
	CommentRepliedType:    {current: 1},
	CommentAnsweredType:   {current: 1},
	ActionPlannedType:     {current: 1},
	ActionUpdatedType:     {current: 1},
	ActionCompletedType:   {current: 1},
}

// ErrUnknownEvent is returned (wrapped) for an event whose type or version
// this build does not know. It must stop a projector loudly: skipping it
// would silently lose data.
var ErrUnknownEvent = errors.New("unknown event type or version")

// CurrentVersion returns the schema version that this build writes for t.
func CurrentVersion(t EventType) int { return registry[t].current }

// NewEnvelope builds an envelope of the current version for payload p.
func NewEnvelope(t EventType, org string, at time.Time, p any) (Envelope, error) {
	spec, ok := registry[t]
	if !ok {
		return Envelope{}, fmt.Errorf("schemas: new %q: %w", t, ErrUnknownEvent)
	}
	raw, err := json.Marshal(p)
	if err != nil {
		return Envelope{}, fmt.Errorf("schemas: encode %s payload: %w", t, err)
	}
	return Envelope{ID: uuid.New(), Type: t, Version: spec.current, OrgID: org, Time: at.UTC(), Payload: raw}, nil
}

// Marshal encodes the envelope for the wire.
func (e Envelope) Marshal() ([]byte, error) { return json.Marshal(e) }

// DecodeEnvelope parses an envelope from the wire and upcasts its payload to
// the current version of its type. It returns an error wrapping
// ErrUnknownEvent for an unknown type or a version newer than this build or
// older than any upcaster reaches.
func DecodeEnvelope(data []byte) (Envelope, error) {
	var e Envelope
	if err := jsonv2.Unmarshal(data, &e, strict); err != nil {
		return Envelope{}, fmt.Errorf("schemas: decode envelope: %w", err)
	}
	if e.ID == uuid.Nil || e.OrgID == "" || len(e.Payload) == 0 {
		return Envelope{}, errors.New("schemas: decode envelope: missing id, org or payload")
	}
	spec, ok := registry[e.Type]
	if !ok {
		return Envelope{}, fmt.Errorf("schemas: event %s type %q: %w", e.ID, e.Type, ErrUnknownEvent)
	}
	if e.Version < 1 || e.Version > spec.current {
		return Envelope{}, fmt.Errorf("schemas: event %s %s version %d (this build reads up to %d): %w",
			e.ID, e.Type, e.Version, spec.current, ErrUnknownEvent)
	}
	for e.Version < spec.current {
		up, ok := spec.upcasters[e.Version]
		if !ok {
			return Envelope{}, fmt.Errorf("schemas: event %s %s version %d has no upcaster: %w",
				e.ID, e.Type, e.Version, ErrUnknownEvent)
		}
		p, err := up(e.Payload)
		if err != nil {
			return Envelope{}, fmt.Errorf("schemas: upcast %s %s from version %d: %w", e.ID, e.Type, e.Version, err)
		}
		e.Payload, e.Version = p, e.Version+1
	}
	return e, nil
}

// strict decodes events as encoding/json did (case-insensitive names,
// duplicate names and invalid UTF-8 let through), unknown fields refused,
// with the faster decoder of JSON v2 (fewer allocations; it still checks
// a value before decoding it, for encoding/json's error semantics). One
// difference: encoding/json's Decoder ignored bytes after the first value;
// Unmarshal refuses them. Every publisher writes Envelope.Marshal's
// output, which has none. This is the projector's hottest path
// (BenchmarkDecodeResponse).
var strict = jsonv2.JoinOptions(jsonv1.DefaultOptionsV1(), jsonv2.RejectUnknownMembers(true))

// DecodePayload strictly decodes an envelope's payload into T, rejecting
// unknown fields, and checks that the envelope's type is want.
func DecodePayload[T any](e Envelope, want EventType) (T, error) {
	var p T
	if e.Type != want {
		return p, fmt.Errorf("schemas: event %s is %s, not %s", e.ID, e.Type, want)
	}
	if err := jsonv2.Unmarshal(e.Payload, &p, strict); err != nil {
		return p, fmt.Errorf("schemas: decode %s payload of %s: %w", e.Type, e.ID, err)
	}
	return p, nil
}
