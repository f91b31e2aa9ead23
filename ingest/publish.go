package ingest

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/trustpulse/trustpulse/schemas"
)

// publish sends an event to the event stream durably: it returns once the
// stream has stored it, with its stream sequence.
func publish(ctx context.Context, js jetstream.JetStream, env schemas.Envelope) (uint64, error) {
	return publishTo(ctx, js, schemas.Subject(env.OrgID, env.Type), env)
}

// publishTo sends an event to a subject durably. The event id is the
// Nats-Msg-Id, so retries inside JetStream's duplicate window store it once.
func publishTo(ctx context.Context, js jetstream.JetStream, subject string, env schemas.Envelope) (uint64, error) {
	data, err := env.Marshal()
	if err != nil {
		return 0, err
	}
	return publishRaw(ctx, js, subject, env, data, env.ID.String())
}

// publishRaw publishes an event's data, as it is, under msgID as its
// Nats-Msg-Id, retrying for up to 5 s.
func publishRaw(ctx context.Context, js jetstream.JetStream, subject string, env schemas.Envelope, data []byte, msgID string) (uint64, error) {
	msg := &nats.Msg{Subject: subject, Data: data}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var lastErr error
	for attempt := 0; ctx.Err() == nil; attempt++ {
		ack, err := js.PublishMsg(ctx, msg, jetstream.WithMsgID(msgID))
		if err == nil {
			return ack.Sequence, nil
		}
		lastErr = err
		select {
		case <-ctx.Done():
		case <-time.After(time.Duration(50*(attempt+1)) * time.Millisecond):
		}
	}
	return 0, fmt.Errorf("ingest: publish %s %s: %w", env.Type, env.ID, lastErr)
}

// The headers of JetStream's atomic batch publish (nats-server 2.12 and
// later; nats.go has no client for it yet): every message names the batch
// and its place in it, the last one commits.
const (
	hdrBatchID     = "Nats-Batch-Id"
	hdrBatchSeq    = "Nats-Batch-Sequence"
	hdrBatchCommit = "Nats-Batch-Commit"
	// errCodeBatchDuplicate is the server's answer to a batch holding a
	// message id it already stored ("atomic publish batch contains duplicate
	// message id").
	errCodeBatchDuplicate = 10201
)

// publishBatch stores envs on subject all together or not at all, with
// JetStream's atomic batch publish: the server stages the batch and writes
// it to the stream only on the commit of its last message, in one step. The
// stream must allow atomic publish (schemas.PendingStreamConfig does).
//
// Retries are safe: every message keeps its event id as Nats-Msg-Id, so a
// retry of a batch whose commit was stored but whose acknowledgement was
// lost is refused by the server as holding a duplicate id, which (as the
// ids were only ever sent together) means the whole batch is stored. A
// batch cut short before its commit is dropped by the server.
//
// The batch headers stay on the pending messages only; the mixer republishes
// the data alone, so no batch id reaches the event stream.
//
// held, when set, turns each message into what the held stream stores
// and names it there (waveSealer: encrypted, padded, and under an id that
// only the seal key ties to the event's); without it messages are stored
// as they are under their event ids.
func publishBatch(ctx context.Context, js jetstream.JetStream, subject string, envs []schemas.Envelope, held heldCodec) error {
	data := make([][]byte, len(envs))
	ids := make([]string, len(envs))
	for i, env := range envs {
		b, err := env.Marshal()
		if err != nil {
			return err
		}
		ids[i] = env.ID.String()
		if held != nil {
			if b, err = held.Wrap(env, b); err != nil {
				return err
			}
			ids[i] = held.MsgID(env)
		}
		data[i] = b
	}
	if len(envs) == 1 {
		_, err := publishRaw(ctx, js, subject, envs[0], data[0], ids[0])
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var lastErr error
	for attempt := 0; ctx.Err() == nil; attempt++ {
		lastErr = sendBatch(ctx, js.Conn(), subject, ids, data)
		if lastErr == nil {
			return nil
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Duration(50*(attempt+1)) * time.Millisecond):
		}
	}
	return fmt.Errorf("ingest: publish batch of %d to %s: %w", len(envs), subject, lastErr)
}

// heldCodec turns a held event into what the held stream stores, and the
// Nats-Msg-Id it is stored under.
type heldCodec interface {
	Wrap(env schemas.Envelope, data []byte) ([]byte, error)
	MsgID(env schemas.Envelope) string
}

// batchReply is the server's answer to a message of an atomic batch: empty
// for a staged message, a PubAck or an error for the commit.
type batchReply struct {
	Stream string `json:"stream"`
	Seq    uint64 `json:"seq"`
	Count  int    `json:"count"`
	Error  *struct {
		Code        int    `json:"code"`
		ErrCode     int    `json:"err_code"`
		Description string `json:"description"`
	} `json:"error"`
}

// sendBatch makes one attempt at an atomic batch under a new batch id.
func sendBatch(ctx context.Context, nc *nats.Conn, subject string, ids []string, data [][]byte) error {
	batchID := uuid.NewString()
	for i, id := range ids {
		msg := nats.NewMsg(subject)
		msg.Data = data[i]
		msg.Header.Set(jetstream.MsgIDHeader, id)
		msg.Header.Set(hdrBatchID, batchID)
		msg.Header.Set(hdrBatchSeq, strconv.Itoa(i+1))
		last := i == len(ids)-1
		if last {
			msg.Header.Set(hdrBatchCommit, "1")
		}
		resp, err := nc.RequestMsgWithContext(ctx, msg)
		if err != nil {
			return err
		}
		if len(resp.Data) == 0 && !last {
			continue // staged
		}
		var r batchReply
		if err := json.Unmarshal(resp.Data, &r); err != nil {
			return fmt.Errorf("batch reply: %w", err)
		}
		switch {
		case r.Error != nil && r.Error.ErrCode == errCodeBatchDuplicate:
			return nil // stored by an earlier attempt
		case r.Error != nil:
			return fmt.Errorf("batch message %d: %s (%d)", i+1, r.Error.Description, r.Error.ErrCode)
		case !last:
			return fmt.Errorf("batch message %d: unexpected acknowledgement", i+1)
		case r.Count != len(ids):
			return fmt.Errorf("batch committed %d messages, want %d", r.Count, len(ids))
		}
	}
	return nil
}
