package ingest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	htmltemplate "html/template"
	"log/slog"
	"strings"
	texttemplate "text/template"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/wneessen/go-mail"
	"golang.org/x/time/rate"

	"github.com/trustpulse/trustpulse/deploy/metrics"
	"github.com/trustpulse/trustpulse/schemas"
)

// SMTPConfig is how the postman reaches the mail relay.
type SMTPConfig struct {
	Host     string
	Port     int
	TLS      string // "none", "starttls" or "tls" (implicit TLS)
	Username string
	Password string
	// From is the sender address; FromName its display name.
	From, FromName string
	// Rate bounds messages per second.
	Rate float64
	// MaxAttempts before a temporarily failing email counts as failed.
	MaxAttempts int
	// RetryBase is the first retry delay; each next one doubles, up to 30 minutes.
	RetryBase time.Duration
}

// Postman sends the outbox: one email at a time, at a bounded rate,
// retrying temporary failures with backoff and recording permanent ones in
// the mail failure bucket, where admins see them. An email leaves the outbox
// only once it is sent or has finally failed, so a relay that is down loses
// nothing.
type Postman struct {
	js      jetstream.JetStream
	cfg     SMTPConfig
	log     *slog.Logger
	limiter *rate.Limiter
	// Metrics, when set, counts emails sent and failed. Set it before Run.
	Metrics *metrics.Metrics
}

// NewPostman returns a postman for cfg (zero values get defaults: 10/s,
// 8 attempts, first retry after 30s).
func NewPostman(js jetstream.JetStream, cfg SMTPConfig, log *slog.Logger) *Postman {
	if cfg.Rate <= 0 {
		cfg.Rate = 10
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 8
	}
	if cfg.RetryBase <= 0 {
		cfg.RetryBase = 30 * time.Second
	}
	if cfg.FromName == "" {
		cfg.FromName = "trustpulse"
	}
	return &Postman{js: js, cfg: cfg, log: log.With("component", "postman"), limiter: rate.NewLimiter(rate.Limit(cfg.Rate), 1)}
}

// enqueue puts a letter in the outbox.
func enqueue(ctx context.Context, js jetstream.JetStream, l schemas.Letter) error {
	data, err := json.Marshal(l)
	if err != nil {
		return err
	}
	if _, err := js.Publish(ctx, schemas.OutboxSubject(l.Org, l.WaveID), data); err != nil {
		return fmt.Errorf("mail: queue email: %w", err)
	}
	return nil
}

// Run sends the outbox until ctx ends.
func (p *Postman) Run(ctx context.Context) error {
	cons, err := p.js.CreateOrUpdateConsumer(ctx, schemas.OutboxStream, jetstream.ConsumerConfig{
		Durable:       schemas.PostmanConsumer,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       2 * time.Minute,
		MaxDeliver:    -1, // the postman decides when to give up
		MaxAckPending: 16,
	})
	if err != nil {
		return fmt.Errorf("mail: outbox consumer: %w", err)
	}
	for ctx.Err() == nil {
		msgs, err := cons.Fetch(8, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			p.log.Error("outbox fetch failed", "err", err)
			sleep(ctx, time.Second)
			continue
		}
		for m := range msgs.Messages() {
			p.handle(ctx, m)
		}
	}
	return nil
}

// handle sends one letter and decides, in this one place, whether the
// outbox message is acked (sent, or finally failed) or retried later.
func (p *Postman) handle(ctx context.Context, m jetstream.Msg) {
	var l schemas.Letter
	if err := json.Unmarshal(m.Data(), &l); err != nil {
		p.log.Error("dropping unreadable outbox message", "err", err)
		_ = m.Term()
		return
	}
	md, err := m.Metadata()
	if err != nil {
		_ = m.Nak()
		return
	}
	if err := p.limiter.Wait(ctx); err != nil {
		_ = m.Nak()
		return
	}
	err = p.send(ctx, l)
	attempt := int(md.NumDelivered)
	var sendErr *mail.SendError
	temporary := err != nil && (!errors.As(err, &sendErr) || sendErr.IsTemp())
	switch {
	case err == nil:
		p.Metrics.MailSent()
		_ = m.Ack()
	case temporary && attempt < p.cfg.MaxAttempts:
		p.Metrics.MailFailed(false)
		delay := min(p.cfg.RetryBase<<(attempt-1), 30*time.Minute)
		p.log.Warn("email not sent; will retry", "org", l.Org, "wave", l.WaveID, "attempt", attempt, "retry_in", delay, "err", redact(err, l))
		_ = m.NakWithDelay(delay)
	default:
		p.Metrics.MailFailed(true)
		p.log.Error("email failed permanently; recorded for admins", "org", l.Org, "wave", l.WaveID, "attempt", attempt, "err", redact(err, l))
		if rerr := p.recordFailure(ctx, l, redact(err, l)); rerr != nil {
			p.log.Error("could not record failed email; will retry", "err", rerr)
			_ = m.NakWithDelay(p.cfg.RetryBase)
			return
		}
		_ = m.Ack()
	}
}

// Depth is how many emails wait in the outbox: a sent or finally failed
// one leaves it. It reads NATS; its error comes back wrapped.
func (p *Postman) Depth(ctx context.Context) (uint64, error) {
	st, err := p.js.Stream(ctx, schemas.OutboxStream)
	if err != nil {
		return 0, fmt.Errorf("mail: outbox: %w", err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("mail: outbox: %w", err)
	}
	return info.State.Msgs, nil
}

// redact keeps the link, the token on its own and the address out of
// logged errors (a relay may quote what it refused).
func redact(err error, l schemas.Letter) string {
	s := err.Error()
	token := ""
	if i := strings.LastIndex(l.Link, "/"); i >= 0 {
		token = l.Link[i+1:] // a survey link's /s/<token>, a sign-in link's /signin/<token>
	}
	for _, secret := range []string{l.Link, token, l.To} {
		if secret != "" {
			s = strings.ReplaceAll(s, secret, "[redacted]")
		}
	}
	return s
}

func (p *Postman) recordFailure(ctx context.Context, l schemas.Letter, reason string) error {
	kv, err := p.js.KeyValue(ctx, schemas.MailFailureBucket)
	if err != nil {
		return err
	}
	h := sha256.Sum256([]byte(l.To))
	val, _ := json.Marshal(schemas.MailFailure{WaveID: l.WaveID, To: l.To, Reason: reason, At: time.Now().UTC()})
	_, err = kv.Put(ctx, fmt.Sprintf("%s.%s.%s", l.Org, l.WaveID, hex.EncodeToString(h[:8])), val)
	return err
}

// MailFailures lists an organisation's undeliverable emails.
func (a *Admin) MailFailures(ctx context.Context, org string) ([]schemas.MailFailure, error) {
	kv, err := a.js.KeyValue(ctx, schemas.MailFailureBucket)
	if err != nil {
		return nil, err
	}
	entries, err := readBucket(ctx, kv, org+".>")
	if err != nil {
		return nil, err
	}
	var out []schemas.MailFailure
	for _, v := range entries {
		var f schemas.MailFailure
		if err := json.Unmarshal(v, &f); err == nil {
			out = append(out, f)
		}
	}
	return out, nil
}

func (p *Postman) send(ctx context.Context, l schemas.Letter) error {
	msg, err := compose(p.cfg, l)
	if err != nil {
		return &mail.SendError{Reason: mail.ErrGetSender} // a bad address never gets better
	}
	opts := []mail.Option{mail.WithPort(p.cfg.Port), mail.WithTimeout(30 * time.Second)}
	switch p.cfg.TLS {
	case "tls":
		opts = append(opts, mail.WithSSL())
	case "starttls":
		opts = append(opts, mail.WithTLSPolicy(mail.TLSMandatory))
	default:
		opts = append(opts, mail.WithTLSPolicy(mail.NoTLS))
	}
	if p.cfg.Username != "" {
		opts = append(opts, mail.WithSMTPAuth(mail.SMTPAuthAutoDiscover), mail.WithUsername(p.cfg.Username), mail.WithPassword(p.cfg.Password))
	}
	c, err := mail.NewClient(p.cfg.Host, opts...)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	return c.DialAndSendWithContext(ctx, msg)
}

var (
	letterText = texttemplate.Must(texttemplate.New("text").Parse(`Hello {{.Name}},

a short pulse survey is open: about a minute, 5 to 12 questions on trust,
empowerment and motivation at work.

Your personal link (it works once, until {{.Closes}}):
{{.Link}}

Your answers are anonymous: they are stored with your department, team,
location and tenure band, never with your name, email or this link, and
results are only shown for groups large enough that no one can tell who
answered what.
{{with .Plan}}
Your team's action plan (from the results of {{.WaveID}}):
Focus: {{range $i, $d := .FocusDrivers}}{{if $i}}, {{end}}{{$d}}{{end}}
{{range .Commitments}}- {{.}}
{{end}}{{end}}
Thank you for taking part.
`))
	resultsText = texttemplate.Must(texttemplate.New("text").Parse(`Hello {{.Name}},

your team's results of the latest pulse survey are ready: enough of the
people in your team answered for them to be shown.

Sign in to see them (the link works once, until {{.Closes}}):
{{.Link}}

You see your team's results as groups, never anyone's own answers.
`))
	resultsHTML = htmltemplate.Must(htmltemplate.New("html").Parse(`<!doctype html>
<html lang="en"><body style="font-family:system-ui,sans-serif;color:#1f2328;line-height:1.5;max-width:36rem">
<p>Hello {{.Name}},</p>
<p>your team's results of the latest pulse survey are ready: enough of the people in your team answered for them to be shown.</p>
<p><a href="{{.Link}}" style="display:inline-block;background:#0b5cad;color:#fff;padding:.6rem 1.2rem;border-radius:.4rem;text-decoration:none;font-weight:600">See your team's results</a></p>
<p>The link is yours alone and works once, until {{.Closes}}.</p>
<p style="color:#57606a">You see your team's results as groups, never anyone's own answers.</p>
</body></html>`))
	letterHTML = htmltemplate.Must(htmltemplate.New("html").Parse(`<!doctype html>
<html lang="en"><body style="font-family:system-ui,sans-serif;color:#1f2328;line-height:1.5;max-width:36rem">
<p>Hello {{.Name}},</p>
<p>a short pulse survey is open: about a minute, 5 to 12 questions on trust, empowerment and motivation at work.</p>
<p><a href="{{.Link}}" style="display:inline-block;background:#0b5cad;color:#fff;padding:.6rem 1.2rem;border-radius:.4rem;text-decoration:none;font-weight:600">Answer the survey</a></p>
<p>The link is yours alone and works once, until {{.Closes}}.</p>
<p style="color:#57606a">Your answers are anonymous: they are stored with your department, team, location and tenure band, never with your name, email or this link, and results are only shown for groups large enough that no one can tell who answered what.</p>
{{with .Plan}}<h2 style="font-size:1.1rem">Your team's action plan</h2>
<p>From the results of {{.WaveID}}, your team focuses on {{range $i, $d := .FocusDrivers}}{{if $i}}, {{end}}<strong>{{$d}}</strong>{{end}} and commits to:</p>
<ul>{{range .Commitments}}<li>{{.}}</li>{{end}}</ul>{{end}}
</body></html>`))
)

// compose renders a letter as a multipart text and HTML message.
func compose(cfg SMTPConfig, l schemas.Letter) (*mail.Msg, error) {
	m := mail.NewMsg(mail.WithEncoding(mail.NoEncoding))
	fromName := cfg.FromName
	if l.FromName != "" {
		fromName = l.FromName
	}
	if err := m.FromFormat(fromName, cfg.From); err != nil {
		return nil, err
	}
	if err := m.AddToFormat(l.Name, l.To); err != nil {
		return nil, err
	}
	subject, textT, htmlT := "A one-minute pulse survey: how are trust and autonomy at work?", letterText, letterHTML
	if l.Kind == schemas.LetterResultsReady {
		subject, textT, htmlT = "Your team's results are ready", resultsText, resultsHTML
	}
	m.Subject(subject)
	m.SetDate()
	m.SetMessageID()
	data := map[string]any{"Name": l.Name, "Link": l.Link, "Closes": l.ClosesAt.UTC().Format("Monday 2 January 2006, 15:04 UTC"), "Plan": l.Plan}
	var text, html bytes.Buffer
	if err := textT.Execute(&text, data); err != nil {
		return nil, err
	}
	if err := htmlT.Execute(&html, data); err != nil {
		return nil, err
	}
	m.SetBodyString(mail.TypeTextPlain, text.String())
	m.AddAlternativeString(mail.TypeTextHTML, html.String())
	return m, nil
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
