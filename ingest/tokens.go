package ingest

import (
	"context"
	"fmt"

	"github.com/google/uuid"

	"github.com/trustpulse/trustpulse/schemas"
)

// APITokenPrefix starts every API token, so that one found in a log or a
// repository is recognised for what it is.
const APITokenPrefix = "tp_"

// IssueToken creates an API token of a role for an organisation. The token
// is returned once; only its SHA-256 is recorded (TokenIssued).
func (a *Admin) IssueToken(ctx context.Context, org string, role schemas.Role, name string) (token, tokenID string, err error) {
	if err := checkOrg(org); err != nil {
		return "", "", err
	}
	switch {
	case role == schemas.RoleManager:
		return "", "", fmt.Errorf("a manager's token is bound to one employee of the roster: give the employee (trustpulse token issue --role manager --employee ID)")
	case !role.Valid():
		return "", "", fmt.Errorf("role %q: want admin, analyst, leader or manager", role)
	}
	return a.issueToken(ctx, org, schemas.TokenIssued{Role: role, Name: name})
}

// IssueManagerToken issues a manager's API token, bound to the roster's
// employee employeeID: its results are limited to that person's subtree
// (and the organisation overall). The employee must be on the roster and
// not have left. It returns the token, its id and the person's name.
func (a *Admin) IssueManagerToken(ctx context.Context, org, employeeID, name string) (token, tokenID, who string, err error) {
	if err := checkOrg(org); err != nil {
		return "", "", "", err
	}
	people, err := a.People(ctx, org)
	if err != nil {
		return "", "", "", err
	}
	p, ok := people[employeeID]
	switch {
	case !ok:
		return "", "", "", fmt.Errorf("employee %q is not on the roster of %s (import it first: trustpulse roster import)", employeeID, org)
	case p.LeftOn != "":
		return "", "", "", fmt.Errorf("employee %q left %s on %s; a manager's token is only for current employees", employeeID, org, p.LeftOn)
	case p.PersonID == "":
		return "", "", "", fmt.Errorf("employee %q has no person id; re-import the roster", employeeID)
	}
	token, tokenID, err = a.issueToken(ctx, org, schemas.TokenIssued{Role: schemas.RoleManager, Name: name, PersonID: p.PersonID})
	return token, tokenID, p.Name, err
}

// issueToken draws a token for t (its role, name and person) and publishes
// TokenIssued with its hash.
func (a *Admin) issueToken(ctx context.Context, org string, t schemas.TokenIssued) (token, tokenID string, err error) {
	if len(t.Name) > schemas.MaxAttrLen || schemas.HasControl(t.Name) {
		return "", "", fmt.Errorf("token name: at most %d characters, no control characters", schemas.MaxAttrLen)
	}
	token, t.TokenID = APITokenPrefix+NewToken(), uuid.NewString()
	t.Hash = TokenHash(token)
	if err := a.publishAndWait(ctx, schemas.TokenIssuedType, org, t); err != nil {
		return "", "", err
	}
	return token, t.TokenID, nil
}

// RevokeToken withdraws an API token by id.
func (a *Admin) RevokeToken(ctx context.Context, org, tokenID string) error {
	if err := checkOrg(org); err != nil {
		return err
	}
	if _, err := uuid.Parse(tokenID); err != nil {
		return fmt.Errorf("token id %q: want the id printed when it was issued", tokenID)
	}
	return a.publishAndWait(ctx, schemas.TokenRevokedType, org, schemas.TokenRevoked{TokenID: tokenID})
}
