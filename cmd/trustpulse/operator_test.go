package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/trustpulse/trustpulse/schemas"
)

// operatorRoster: six of Sales East in Berlin who started together, the
// only Sales person in Remote (issue 11, finding 5) and four engineers of
// one team in Lisbon with different tenures.
const operatorRoster = "" +
	"op-s1,s1@acme.example,S One,Sales,East,Berlin,,2022-03-01\n" +
	"op-s2,s2@acme.example,S Two,Sales,East,Berlin,,2022-03-02\n" +
	"op-s3,s3@acme.example,S Three,Sales,East,Berlin,,2022-03-03\n" +
	"op-s4,s4@acme.example,S Four,Sales,East,Berlin,,2022-03-04\n" +
	"op-s5,s5@acme.example,S Five,Sales,East,Berlin,,2022-03-05\n" +
	"op-s6,s6@acme.example,S Six,Sales,East,Berlin,,2022-03-06\n" +
	"op-r1,r1@acme.example,R One,Sales,East,Remote,,2022-03-01\n" +
	"op-e1,e1@acme.example,E One,Eng,core,Lisbon,,2019-01-01\n" +
	"op-e2,e2@acme.example,E Two,Eng,core,Lisbon,,2023-06-01\n" +
	"op-e3,e3@acme.example,E Three,Eng,core,Lisbon,,2025-09-01\n" +
	"op-e4,e4@acme.example,E Four,Eng,core,Lisbon,,2026-08-01\n"

// TestOperatorSeesNoSmallCohort reads, after a wave is sealed, everything an
// operator with the roster can: the people bucket, every event of the event
// stream and every row of every ClickHouse table with cohort columns. Every
// cohort stored with a response or a comment is one that at least k of the
// wave's invitations hold (counted from the InvitationIssued events, and
// again from ClickHouse's invitations table), and none is the own cohort of
// a person who is alone in it on the roster: the only Sales person in
// Remote answered, and no row carries Remote.
func TestOperatorSeesNoSmallCohort(t *testing.T) {
	m := mustMain(t, nil)
	ctx := context.Background()
	openWave(t, m)
	links := inviteByEmail(t, m, operatorRoster, 11)
	for i, link := range links {
		submitWithComments(t, m, link[strings.LastIndex(link, "/")+1:],
			map[string]int{"trust-a": 1 + i%5, "trust-b": 3, "auto": 2, "moti": 4, "enps": i % 11}, nil)
	}
	if err := m.Admin.CloseWave(ctx, "acme", "w1"); err != nil {
		t.Fatal(err)
	}
	waitScores(t, m, "")

	// The roster, as the operator reads it.
	people, err := m.Stack.JS.KeyValue(ctx, schemas.PeopleBucket)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := people.Keys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	type place struct{ dept, team, loc string }
	onRoster := map[place]int{}
	for _, key := range keys {
		e, err := people.Get(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		var p schemas.Person
		if err := json.Unmarshal(e.Value(), &p); err != nil {
			t.Fatal(err)
		}
		onRoster[place{p.Department, p.Team, p.Location}]++
	}
	if onRoster[place{"Sales", "East", "Remote"}] != 1 {
		t.Fatalf("roster: %v", onRoster)
	}

	invited := map[schemas.CohortKey]int{}
	var withAnswers []schemas.Cohort
	for _, msg := range streamMessages(t, m.Stack.JS, schemas.EventStream) {
		env, err := schemas.DecodeEnvelope(msg.Data)
		if err != nil {
			t.Fatal(err)
		}
		switch env.Type {
		case schemas.InvitationIssuedType:
			p, err := schemas.DecodePayload[schemas.InvitationIssued](env, env.Type)
			if err != nil {
				t.Fatal(err)
			}
			invited[p.Cohort.Key()]++
		case schemas.ResponseSubmittedType:
			p, err := schemas.DecodePayload[schemas.ResponseSubmitted](env, env.Type)
			if err != nil {
				t.Fatal(err)
			}
			withAnswers = append(withAnswers, p.Cohort)
		case schemas.CommentSubmittedType:
			p, err := schemas.DecodePayload[schemas.CommentSubmitted](env, env.Type)
			if err != nil {
				t.Fatal(err)
			}
			withAnswers = append(withAnswers, p.Cohort)
		}
	}
	if len(withAnswers) < len(links) {
		t.Fatalf("%d responses on the event stream, want %d", len(withAnswers), len(links))
	}

	// Every ClickHouse table with the four cohort columns.
	rows, err := m.Stack.CH.Query(ctx, "SELECT table FROM system.columns WHERE database = currentDatabase() AND name IN ('department', 'team', 'location', 'tenure_band') GROUP BY table HAVING count() = 4")
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			t.Fatal(err)
		}
		tables = append(tables, name)
	}
	rows.Close()
	chInvited := map[schemas.CohortKey]int{}
	stored := map[string][]schemas.Cohort{}
	for _, table := range tables {
		rows, err := m.Stack.CH.Query(ctx, fmt.Sprintf("SELECT department, team, location, tenure_band, managers, manager FROM %s WHERE org = 'acme'", table))
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var c schemas.Cohort
			if err := rows.Scan(&c.Department, &c.Team, &c.Location, &c.TenureBand, &c.Managers, &c.Manager); err != nil {
				t.Fatal(err)
			}
			if table == "invitations" {
				chInvited[c.Key()]++
			} else {
				stored[table] = append(stored[table], c)
			}
		}
		rows.Close()
	}
	if len(stored["answers"]) == 0 || len(chInvited) == 0 {
		t.Fatalf("ClickHouse tables with cohorts %v: answers %d rows, invitations %d cohorts", tables, len(stored["answers"]), len(chInvited))
	}
	stored["event stream"] = withAnswers
	for where, cohorts := range stored {
		for _, c := range cohorts {
			if invited[c.Key()] < threshold || chInvited[c.Key()] < threshold {
				t.Errorf("%s: cohort %+v is held by %d invitations (ClickHouse: %d), fewer than k=%d", where, c, invited[c.Key()], chInvited[c.Key()], threshold)
			}
			if onRoster[place{c.Department, c.Team, c.Location}] == 1 {
				t.Errorf("%s: cohort %+v is one person's on the roster", where, c)
			}
			if c.Location == "Remote" {
				t.Errorf("%s: a row carries Remote, where one person works", where)
			}
		}
	}
}
