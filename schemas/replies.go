package schemas

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"
	"unicode"
)

// Replies to anonymous comments. When a response carries comments, ingest
// draws one random reply capability per comment and shows them to the
// submitter only, as one private reply link <dashboard-url>/r/<cap1>.<cap2>.
// The stores hold only each capability's hash, beside its comment
// (CommentSubmitted.ReplyHash, the comments table's reply_hash): nothing
// ties a hash to a person, an invitation or another comment of the same
// response. Whoever holds the link reads the replies to those comments and
// may answer back; nobody else can tell whether anyone holds it.

// ReplyCapabilityBytes is the randomness of one capability: 160 bits.
const ReplyCapabilityBytes = 20

// MaxReplyCapabilities bounds the capabilities of one reply link: one per
// comment question a survey may ask.
const MaxReplyCapabilities = 20

// MaxReplyLen bounds a reply's and an answer-back's characters.
const MaxReplyLen = MaxCommentLen

// NewReplyCapability draws a fresh capability from crypto/rand: 20 random
// bytes, base64url without padding (27 characters).
func NewReplyCapability() (string, error) {
	b := make([]byte, ReplyCapabilityBytes)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// ReplyHash is what the stores keep of a capability: its hex SHA-256.
func ReplyHash(capability string) string {
	sum := sha256.Sum256([]byte(capability))
	return hex.EncodeToString(sum[:])
}

// ReplyLinkPath is the path of the reply link for caps: /r/<cap1>.<cap2>...
func ReplyLinkPath(caps []string) string { return "/r/" + strings.Join(caps, ".") }

// ErrReplyLink is returned for a reply link that is not one of ours.
var ErrReplyLink = errors.New("not a reply link")

// ParseReplyLink splits the last part of a reply link into its
// capabilities, checking each one's shape. It returns ErrReplyLink for
// anything else (empty, too many, a malformed or repeated capability).
func ParseReplyLink(s string) ([]string, error) {
	caps := strings.Split(s, ".")
	if s == "" || len(caps) > MaxReplyCapabilities {
		return nil, ErrReplyLink
	}
	seen := map[string]bool{}
	for _, c := range caps {
		b, err := base64.RawURLEncoding.DecodeString(c)
		if err != nil || len(b) != ReplyCapabilityBytes || seen[c] {
			return nil, ErrReplyLink
		}
		seen[c] = true
	}
	return caps, nil
}

// CleanText trims words written by a person and drops control characters
// other than line breaks and tabs; invalid UTF-8 becomes U+FFFD (what
// ingest does to comments).
func CleanText(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) && r != '\n' && r != '\t' {
			return -1
		}
		return r
	}, strings.ReplaceAll(s, "\r\n", "\n"))
	return strings.TrimSpace(s)
}

// CommentReplied is a reply to a comment, written on the dashboard or
// through the API by people-ops (an analyst or admin) or by the manager
// responsible for the comment's group. It is not anonymous: it names the
// token that wrote it.
type CommentReplied struct {
	// CommentID is the comment's handle: the event id of its
	// CommentSubmitted.
	CommentID string `json:"comment_id"`
	ReplyID   string `json:"reply_id"`
	WaveID    string `json:"wave_id"`
	Text      string `json:"text"`
	TokenID   string `json:"token_id"`
	Role      Role   `json:"role"`
	// PersonID is the replying manager's person id; empty for other roles.
	PersonID string `json:"person_id,omitempty"`
}

// CommentAnswered is the comment's writer answering back through the reply
// link. It carries no author: whoever holds the link wrote it, and nothing
// about them is known.
type CommentAnswered struct {
	CommentID string `json:"comment_id"`
	AnswerID  string `json:"answer_id"`
	WaveID    string `json:"wave_id"`
	Text      string `json:"text"`
}
