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
	if !role.Valid() {
		return "", "", fmt.Errorf("role %q: want admin, analyst or leader", role)
	}
	if len(name) > schemas.MaxAttrLen || schemas.HasControl(name) {
		return "", "", fmt.Errorf("token name: at most %d characters, no control characters", schemas.MaxAttrLen)
	}
	token, tokenID = APITokenPrefix+NewToken(), uuid.NewString()
	if err := a.publishAndWait(ctx, schemas.TokenIssuedType, org, schemas.TokenIssued{
		TokenID: tokenID, Role: role, Name: name, Hash: TokenHash(token)}); err != nil {
		return "", "", err
	}
	return token, tokenID, nil
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
