package metrics

import (
	"errors"

	"github.com/trustpulse/trustpulse/schemas"
)

// Submission counts one survey response: accepted when err is nil, else
// refused under the problem code of err (internal when it has none).
func (m *Metrics) Submission(err error) {
	if m == nil {
		return
	}
	if err == nil {
		m.submissionsAccepted.Inc()
		return
	}
	code := "internal"
	var appErr *schemas.Error
	if errors.As(err, &appErr) && appErr.Code != "" {
		code = appErr.Code
	}
	m.submissionsRefused.WithLabelValues(code).Inc()
}

// MailSent counts an email the relay took.
func (m *Metrics) MailSent() {
	if m != nil {
		m.mailSent.Inc()
	}
}

// MailFailed counts an email the relay did not take; permanent when it
// will not be tried again.
func (m *Metrics) MailFailed(permanent bool) {
	if m == nil {
		return
	}
	kind := "temporary"
	if permanent {
		kind = "permanent"
	}
	m.mailFailures.WithLabelValues(kind).Inc()
}

// WatchOutbox exports trustpulse_mail_outbox_messages, read from depth at
// every scrape (the emails waiting in the outbox stream).
func (m *Metrics) WatchOutbox(depth ReadFunc) {
	if m == nil {
		return
	}
	m.reg.MustRegister(newReadGauge(Namespace+"_mail_outbox_messages",
		"Emails waiting in the outbox to be sent (read from NATS at each scrape; absent when it cannot be read).", nil, depth))
}
