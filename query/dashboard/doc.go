// Package dashboard serves the leadership overview and the analyst
// explorer: pages rendered on the server from the query service's guarded
// results (query.Server's Scores, Trends, Drivers, Participation,
// Retention, LiveParticipation), so that every number on a page has passed
// the same guard as the API's. The pages load no script and no data of
// their own: charts are inline SVG drawn here, each with a table beside it,
// and a suppressed cell is a "not enough responses" mark with no number in
// its text, its attributes or anywhere else on the page.
//
// People sign in with an API token of their organisation (trustpulse token
// issue); the token is exchanged for a signed, HttpOnly, SameSite session
// cookie (Secure over HTTPS) that names the token's id, never the token.
// Forms carry a CSRF token bound to the session.
package dashboard
