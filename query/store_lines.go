package query

import (
	"context"
	"fmt"
	"time"
)

// sqlLineRespondents counts a wave's respondents per person in their
// stored reporting line: everyone below each manager, at any depth.
const sqlLineRespondents = `SELECT m, uniqExact(response_id) AS n
FROM answers ARRAY JOIN managers AS m
WHERE org = ? AND wave_id = ? AND seq < ?
GROUP BY m`

// LineRespondents returns, per manager's person id, how many respondents
// of a released wave have them in their reporting line. It is a count
// before the guard, never served: the notifier uses it to ask the guard
// only about subtrees that could be served.
func (s *Store) LineRespondents(ctx context.Context, org string, w WaveInfo) (map[string]int, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	rows, err := s.ch.Query(ctx, sqlLineRespondents, org, w.ID, w.SealSeq)
	if err != nil {
		return nil, fmt.Errorf("query: respondents per manager of %s: %w", w.ID, err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var m string
		var n uint64
		if err := rows.Scan(&m, &n); err != nil {
			return nil, err
		}
		out[m] = int(n)
	}
	return out, rows.Err()
}
