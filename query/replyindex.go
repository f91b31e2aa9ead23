package query

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/trustpulse/trustpulse/schemas"
)

// Opening a reply link must tell ClickHouse nothing about the link: not
// its hashes, and not which comments it holds (a link of several
// capabilities would say that those comments share a writer). A server
// logging at debug level or finer writes every query's text to its log,
// whatever log_queries says, so no query of a holder's request may name
// a hash or a comment. The query process keeps the index from reply hash
// to comment itself, read by a query that names nothing but the table,
// and reads a holder's threads as the whole organisation's.

// replyIndexTTL is how long the index is trusted without a reload; a
// comment removed by retention leaves it within that time.
const replyIndexTTL = 10 * time.Minute

// replyIndexMinReload spaces reloads: a hash missing from the index (a
// new comment, or a guess, which the failure budget limits) reloads it at
// most this often.
const replyIndexMinReload = 2 * time.Second

const (
	sqlReplyIndex = `SELECT reply_hash, org, wave_id, survey_id, question_id, comment_id, seq
FROM comments WHERE reply_hash != ''`
	sqlOrgComments = `SELECT comment_id, text FROM comments WHERE org = ? AND wave_id = ?`
	sqlOrgThreads  = `SELECT comment_id, entry_id, kind, text, role, day FROM comment_thread
WHERE org = ? ORDER BY comment_id, seq`
)

// indexedComment is where a reply hash's comment is.
type indexedComment struct {
	org, waveID, surveyID, questionID, id string
	seq                                   uint64
}

// replyIndex maps reply hashes to their comments.
type replyIndex struct {
	mu     sync.Mutex
	byHash map[string]indexedComment
	loaded time.Time
}

// lookup returns the comments of hashes that the index holds, reloading
// it when it is stale or a hash is missing (at most every
// replyIndexMinReload).
func (x *replyIndex) lookup(ctx context.Context, s *Store, hashes []string) ([]indexedComment, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	missing := false
	for _, h := range hashes {
		if _, ok := x.byHash[h]; !ok {
			missing = true
		}
	}
	age := time.Since(x.loaded)
	if x.byHash == nil || age > replyIndexTTL || missing && age > replyIndexMinReload {
		idx, err := s.loadReplyIndex(ctx)
		if err != nil {
			return nil, err
		}
		x.byHash, x.loaded = idx, time.Now()
	}
	var out []indexedComment
	for _, h := range hashes {
		if c, ok := x.byHash[h]; ok {
			out = append(out, c)
		}
	}
	return out, nil
}

// quiet keeps a holder's queries out of ClickHouse's query log; its server
// log is what the index is for.
func quiet(ctx context.Context) context.Context {
	return clickhouse.Context(ctx, clickhouse.WithSettings(clickhouse.Settings{"log_queries": 0}))
}

func (s *Store) loadReplyIndex(ctx context.Context) (map[string]indexedComment, error) {
	rows, err := s.ch.Query(quiet(ctx), sqlReplyIndex)
	if err != nil {
		return nil, fmt.Errorf("query: reply index: %w", err)
	}
	defer rows.Close()
	out := map[string]indexedComment{}
	for rows.Next() {
		var h string
		var c indexedComment
		if err := rows.Scan(&h, &c.org, &c.waveID, &c.surveyID, &c.questionID, &c.id, &c.seq); err != nil {
			return nil, err
		}
		out[h] = c
	}
	return out, rows.Err()
}

// waveCommentTexts reads the words of every comment of a wave, by comment
// id: a holder's comments are picked from them here, not named to
// ClickHouse.
func (s *Store) waveCommentTexts(ctx context.Context, org, waveID string) (map[string]string, error) {
	rows, err := s.ch.Query(quiet(ctx), sqlOrgComments, org, waveID)
	if err != nil {
		return nil, fmt.Errorf("query: comments of %s: %w", waveID, err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var id, text string
		if err := rows.Scan(&id, &text); err != nil {
			return nil, err
		}
		out[id] = text
	}
	return out, rows.Err()
}

// orgThreads reads every thread of an organisation, by comment id.
func (s *Store) orgThreads(ctx context.Context, org string) (map[string][]ThreadEntry, error) {
	rows, err := s.ch.Query(quiet(ctx), sqlOrgThreads, org)
	if err != nil {
		return nil, fmt.Errorf("query: comment threads: %w", err)
	}
	defer rows.Close()
	out := map[string][]ThreadEntry{}
	for rows.Next() {
		var id string
		var e ThreadEntry
		var day time.Time
		if err := rows.Scan(&id, &e.ID, &e.Kind, &e.Text, &e.Role, &day); err != nil {
			return nil, err
		}
		e.Date = day.Format(schemas.DateLayout)
		out[id] = append(out[id], e)
	}
	return out, rows.Err()
}
