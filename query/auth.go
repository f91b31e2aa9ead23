package query

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/trustpulse/trustpulse/schemas"
)

// Principal is who a request acts for.
type Principal struct {
	Org     string
	TokenID string
	Role    schemas.Role
	// PersonID is the roster person a manager acts as (empty for other
	// roles).
	PersonID string
	// Reach holds, for a manager, the person ids of PersonID and everyone
	// below them in the roster's tree, as the server read it for this
	// request (Server.WithReach); a manager may filter by these only.
	Reach map[string]bool
}

const (
	sqlTokenByHash  = `SELECT org, token_id, role, person_id FROM api_tokens WHERE hash = ? LIMIT 1`
	sqlTokenRevoked = `SELECT count() FROM api_token_revocations WHERE token_id = ?`
)

// tokenCache keeps token look-ups for a few seconds; a revocation takes
// effect within that time (plus the projector's lag).
type tokenCache struct {
	mu      sync.Mutex
	entries map[string]tokenEntry
}

type tokenEntry struct {
	p       *Principal
	expires time.Time
}

const tokenCacheTTL = 5 * time.Second

// principal resolves a bearer token, or returns nil for an unknown or
// revoked one.
func (s *Store) principal(ctx context.Context, cache *tokenCache, token string) (*Principal, error) {
	sum := sha256.Sum256([]byte(token))
	hash := hex.EncodeToString(sum[:])
	cache.mu.Lock()
	if e, ok := cache.entries[hash]; ok && time.Now().Before(e.expires) {
		cache.mu.Unlock()
		return e.p, nil
	}
	cache.mu.Unlock()
	var p Principal
	var role string
	err := s.ch.QueryRow(ctx, sqlTokenByHash, hash).Scan(&p.Org, &p.TokenID, &role, &p.PersonID)
	var found *Principal
	if err == nil {
		var revoked uint64
		if err := s.ch.QueryRow(ctx, sqlTokenRevoked, p.TokenID).Scan(&revoked); err != nil {
			return nil, fmt.Errorf("query: token revocations: %w", err)
		}
		if revoked == 0 {
			p.Role = schemas.Role(role)
			found = &p
		}
	} else if !errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("query: token: %w", err)
	}
	if found != nil { // unknown tokens are not cached: a new one works at once
		cache.mu.Lock()
		cache.entries[hash] = tokenEntry{p: found, expires: time.Now().Add(tokenCacheTTL)}
		cache.mu.Unlock()
	}
	return found, nil
}

// wellFormedToken checks a token's shape before any look-up.
func wellFormedToken(t string) bool {
	rest, ok := strings.CutPrefix(t, "tp_")
	if !ok {
		return false
	}
	b, err := base64.RawURLEncoding.DecodeString(rest)
	return err == nil && len(b) == 32
}

var errUnauthenticated = schemas.Errorf(http.StatusUnauthorized, "unauthorized",
	"a valid API token is required (Authorization: Bearer tp_...); ask an admin of your organisation for one")

// authenticate resolves the bearer token and lets the request through only
// for the organisation it belongs to.
func (s *Server) authenticate(c *fiber.Ctx) error {
	if !schemas.ValidID(c.Params("org")) {
		return schemas.Errorf(http.StatusBadRequest, "invalid_id", "organisation id is malformed")
	}
	token, ok := strings.CutPrefix(c.Get(fiber.HeaderAuthorization), "Bearer ")
	if !ok || !wellFormedToken(token) {
		c.Set(fiber.HeaderWWWAuthenticate, `Bearer realm="trustpulse"`)
		return errUnauthenticated
	}
	ctx, cancel := context.WithTimeout(c.UserContext(), 5*time.Second)
	defer cancel()
	p, err := s.store.principal(ctx, &s.tokens, token)
	if err != nil {
		return err
	}
	if p == nil {
		c.Set(fiber.HeaderWWWAuthenticate, `Bearer realm="trustpulse", error="invalid_token"`)
		return errUnauthenticated
	}
	if p.Org != c.Params("org") {
		return schemas.Errorf(http.StatusForbidden, "forbidden", "this token does not give access to that organisation")
	}
	if p, err = s.WithReach(ctx, p); err != nil {
		return err
	}
	c.Locals("principal", p)
	return c.Next()
}

// Authenticate resolves an API token to its principal: nil for a
// malformed, unknown or revoked token.
func (s *Server) Authenticate(ctx context.Context, token string) (*Principal, error) {
	if !wellFormedToken(token) {
		return nil, nil
	}
	return s.store.principal(ctx, &s.tokens, token)
}

// TokenActive reports whether an API token (by id) has not been revoked.
func (s *Server) TokenActive(ctx context.Context, tokenID string) (bool, error) {
	var revoked uint64
	if err := s.store.ch.QueryRow(ctx, sqlTokenRevoked, tokenID).Scan(&revoked); err != nil {
		return false, fmt.Errorf("query: token revocations: %w", err)
	}
	return revoked == 0, nil
}

func principalOf(c *fiber.Ctx) *Principal {
	p, _ := c.Locals("principal").(*Principal)
	return p
}

// MayGroupBy refuses (403) a slice finer than the caller's role allows:
// leaders see organisation-wide and department results, analysts and
// admins every attribute.
func MayGroupBy(p *Principal, attr string) error { return mayGroupBy(p, attr) }

func mayGroupBy(p *Principal, attr string) error {
	if p.Role == schemas.RoleManager {
		// Their own team only; mayManagerSlice checks whom it names.
		if attr == "" || attr == "manager" || attr == ReportsTo {
			return nil
		}
		return schemas.Errorf(http.StatusForbidden, "forbidden", "a manager sees the organisation overall and their own team (manager= or reports_to=), not results by %s", attr)
	}
	if attr == "" || attr == "department" || p.Role == schemas.RoleAnalyst || p.Role == schemas.RoleAdmin {
		return nil
	}
	return schemas.Errorf(http.StatusForbidden, "forbidden", "the %s role sees organisation-wide and department results; ask an analyst for finer slices", p.Role)
}
