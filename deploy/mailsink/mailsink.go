// Package mailsink is trustpulse's development mail server: a real SMTP
// server on loopback (github.com/emersion/go-smtp) that accepts every
// message, stores it as an .eml file in a directory and logs where it put
// it with the survey link it carries. It is the default when no SMTP relay
// is configured, and the tests' mail server. It is for development: its
// files and log lines hold addresses and links, which a real relay would
// deliver instead.
package mailsink

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"
)

// Sink is a running development mail server.
type Sink struct {
	// Host and Port are where it listens.
	Host string
	Port int
	// Dir is where messages are stored, one .eml file each.
	Dir string

	// Reject, when set, is asked about each recipient; a non-nil error
	// refuses it (tests use it for permanent and temporary failures).
	Reject func(rcpt string) *smtp.SMTPError

	srv *smtp.Server
	log *slog.Logger
	n   atomic.Int64
	mu  sync.Mutex
}

// Start listens on listen (host:port; port 0 picks one) and stores messages
// under dir.
func Start(dir, listen string, log *slog.Logger) (*Sink, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("mailsink: %w", err)
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, fmt.Errorf("mailsink: listen %s: %w", listen, err)
	}
	addr := ln.Addr().(*net.TCPAddr)
	s := &Sink{Host: addr.IP.String(), Port: addr.Port, Dir: dir, log: log.With("component", "mailsink")}
	s.srv = smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return &session{sink: s}, nil }))
	s.srv.Domain = "localhost"
	s.srv.ReadTimeout, s.srv.WriteTimeout = 30*time.Second, 30*time.Second
	s.srv.MaxMessageBytes = 1 << 20
	s.srv.AllowInsecureAuth = true
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

// Addr is host:port.
func (s *Sink) Addr() string { return net.JoinHostPort(s.Host, strconv.Itoa(s.Port)) }

// Close stops the server.
func (s *Sink) Close() error { return s.srv.Close() }

// Messages returns the stored message files, oldest first.
func (s *Sink) Messages() ([]string, error) {
	files, err := filepath.Glob(filepath.Join(s.Dir, "*.eml"))
	sort.Strings(files)
	return files, err
}

var linkPattern = regexp.MustCompile(`https?://[^\s"<>]+/s/[A-Za-z0-9_-]{43}`)

// Link returns the first survey link in a message.
func Link(message []byte) string { return string(linkPattern.Find(message)) }

var signInPattern = regexp.MustCompile(`https?://[^\s"<>]+/dashboard/signin/[A-Za-z0-9_-]{43}`)

// SignInLink returns the first manager's sign-in link in a message.
func SignInLink(message []byte) string { return string(signInPattern.Find(message)) }

func (s *Sink) store(from string, to []string, data []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	name := fmt.Sprintf("%s-%06d.eml", time.Now().UTC().Format("20060102T150405.000000000"), s.n.Add(1))
	path := filepath.Join(s.Dir, name)
	if err := os.WriteFile(path+".part", data, 0o640); err != nil {
		return err
	}
	if err := os.Rename(path+".part", path); err != nil {
		return err
	}
	s.log.Info("dev mail sink stored a message", "file", path, "to", to, "survey_link", Link(data))
	return nil
}

type session struct {
	sink *Sink
	from string
	to   []string
}

func (s *session) Reset()        { s.from, s.to = "", nil }
func (s *session) Logout() error { return nil }

func (s *session) Mail(from string, _ *smtp.MailOptions) error {
	s.from = from
	return nil
}

func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if s.sink.Reject != nil {
		if err := s.sink.Reject(to); err != nil {
			return err
		}
	}
	s.to = append(s.to, to)
	return nil
}

func (s *session) Data(r io.Reader) error {
	var buf bytes.Buffer
	if _, err := io.Copy(&buf, r); err != nil {
		return err
	}
	if len(s.to) == 0 {
		return errors.New("mailsink: no recipients")
	}
	return s.sink.store(s.from, s.to, buf.Bytes())
}
