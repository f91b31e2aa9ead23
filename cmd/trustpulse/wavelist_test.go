package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/trustpulse/trustpulse/query"
	"github.com/trustpulse/trustpulse/schemas"
)

// pausingConn runs pause once, before the at-th statement after the
// first one that reads the wave list or the projector's checkpoint: what
// lands in ClickHouse then lands between two reads of one refresh of the
// list.
type pausingConn struct {
	driver.Conn
	at    int
	mu    sync.Mutex
	after int // statements since the first list read; -1 before it
	pause func()
	// cpLate says the checkpoint was read after the pause: it covers
	// what landed in the pause.
	cpLate bool
}

func (p *pausingConn) before(sql string) {
	p.mu.Lock()
	if p.after < 0 && (strings.Contains(sql, "projector_checkpoint") || strings.Contains(sql, "FROM waves WHERE org")) {
		p.after = 0
	} else if p.after >= 0 {
		p.after++
	}
	now := p.after == p.at
	p.cpLate = p.cpLate || p.after > p.at && strings.Contains(sql, "projector_checkpoint")
	p.mu.Unlock()
	if now {
		p.pause()
	}
}

func (p *pausingConn) Query(ctx context.Context, sql string, args ...any) (driver.Rows, error) {
	p.before(sql)
	return p.Conn.Query(ctx, sql, args...)
}

func (p *pausingConn) QueryRow(ctx context.Context, sql string, args ...any) driver.Row {
	p.before(sql)
	return p.Conn.QueryRow(ctx, sql, args...)
}

// A wave whose close the query service's checkpoint covers is never
// served as still open, whenever the close lands during the read of the
// list: the checkpoint is read before the waves, so every event it covers
// is in the tables read after it. (Read the other way round, the
// checkpoint could cover a close that the earlier read of the closes had
// missed, and a released wave was answered 409 wave_open; the benchmark
// met it after a projector drain.)
func TestWaveListReadsCheckpointFirst(t *testing.T) {
	m := mustMain(t, nil)
	ctx := context.Background()
	if err := m.Admin.PublishSurvey(ctx, "acme", e2eSurvey); err != nil {
		t.Fatal(err)
	}
	analyst := authorize(t, m, schemas.RoleAnalyst)
	// The refresh reads five statements: the checkpoint, the waves, their
	// closes, seals and thresholds. The close and seal land before each
	// but the first in turn, each time on a wave of its own.
	for at := 1; at <= 4; at++ {
		wave := fmt.Sprintf("w%d", at)
		if err := m.Admin.OpenWave(ctx, "acme", schemas.WaveOpened{WaveID: wave, SurveyID: "pulse", OpensAt: time.Now().Add(-time.Hour), ClosesAt: time.Now().Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		c := schemas.Cohort{Department: "Sales", Team: "s", Location: "Lisbon", TenureBand: "<1y"}
		tokens, err := m.Admin.IssueInvitations(ctx, "acme", wave, cohortsOf(c, 6))
		if err != nil {
			t.Fatal(err)
		}
		for i, tok := range tokens {
			submit(t, m, tok, steady(i))
		}
		released := func() bool {
			var n uint64
			err := m.Stack.CH.QueryRow(ctx, `SELECT count() FROM wave_seals WHERE org = 'acme' AND wave_id = ?
AND seq <= (SELECT max(seq) FROM projector_checkpoint WHERE consumer = ?)`, wave, schemas.ProjectorConsumer).Scan(&n)
			return err == nil && n > 0
		}
		conn := &pausingConn{Conn: m.Stack.CH, at: at, after: -1, pause: func() {
			if err := m.Admin.CloseWave(ctx, "acme", wave); err != nil {
				t.Error(err)
				return
			}
			for deadline := time.Now().Add(time.Minute); !released(); time.Sleep(50 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Errorf("%s was not sealed and projected within a minute", wave)
					return
				}
			}
		}}
		url := servedBy(t, m, conn) + "/v1/orgs/acme/waves/" + wave + "/scores"
		status, body := getAs(t, analyst, url)
		if !released() {
			t.Fatalf("before statement %d: the pause did not run", at)
		}
		switch {
		case status == http.StatusConflict && conn.cpLate:
			t.Fatalf("closed before statement %d of the list's read and covered by the checkpoint read, served as open: %d %s", at, status, body)
		case status == http.StatusOK,
			status == http.StatusConflict && strings.Contains(body, "wave_open"),
			status == http.StatusServiceUnavailable && strings.Contains(body, "results_pending"):
		default:
			t.Fatalf("closed before statement %d of the list's read: %d %s", at, status, body)
		}
		// Once the kept list expires, the wave is served.
		for deadline := time.Now().Add(10 * time.Second); status != http.StatusOK; time.Sleep(200 * time.Millisecond) {
			if status, body = getAs(t, analyst, url); status != http.StatusOK && time.Now().After(deadline) {
				t.Fatalf("after the list's expiry: %d %s, want 200", status, body)
			}
		}
	}
}

// servedBy starts a query service over conn and m's NATS, as a
// `--target query` process would be, and returns its URL.
func servedBy(t *testing.T, m *Main, conn driver.Conn) string {
	t.Helper()
	srv := query.NewServer(query.NewStore(conn), m.Config.Threshold, schemas.ProjectorConsumer, m.Log)
	srv.SetLive(query.NewLiveCounts(m.Stack.JS))
	srv.SetRecordStore(query.NewRecordStore(m.Stack.JS))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	app := srv.App()
	go func() { _ = app.Listener(ln) }()
	t.Cleanup(func() { _ = app.Shutdown() })
	return "http://" + ln.Addr().String()
}
