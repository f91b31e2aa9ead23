// Package natsrv runs an embedded NATS server with JetStream in-process: the
// single-machine default of trustpulse and the test harness's server. It is a
// real nats-server, not a mock; clients connect to it over loopback.
package natsrv

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Options for Start.
type Options struct {
	// StoreDir holds JetStream's file storage.
	StoreDir string
	// Listen is host:port for clients; port -1 picks a free one.
	Listen string
	// ServerName names the server (and its JetStream node); unique in a cluster.
	ServerName string
	// Cluster, when set, joins the server to a JetStream cluster.
	Cluster *Cluster
	// SyncAlways makes JetStream fsync every write before it acknowledges
	// it, so an acknowledged message survives a power cut; otherwise it
	// syncs every two minutes (NATS's default), and a power cut can lose
	// what was acknowledged since.
	SyncAlways bool
}

// Cluster configures clustering: the cluster's name, this server's route
// listen address (host:port) and the route URLs of all members
// (nats-route://host:port).
type Cluster struct {
	Name   string
	Listen string
	Routes []string
}

// Server is a running embedded NATS server.
type Server struct {
	*server.Server
}

// Start starts the server and waits until it accepts clients.
func Start(opt Options) (*Server, error) {
	host, portStr, err := net.SplitHostPort(opt.Listen)
	if err != nil {
		return nil, fmt.Errorf("natsrv: listen address %q: %w", opt.Listen, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("natsrv: listen port %q: %w", portStr, err)
	}
	name := opt.ServerName
	if name == "" {
		name = "trustpulse"
	}
	so := &server.Options{
		ServerName: name,
		Host:       host,
		Port:       port,
		JetStream:  true,
		StoreDir:   opt.StoreDir,
		NoSigs:     true,
		NoLog:      true,
		SyncAlways: opt.SyncAlways,
	}
	if c := opt.Cluster; c != nil {
		chost, cport, err := net.SplitHostPort(c.Listen)
		if err != nil {
			return nil, fmt.Errorf("natsrv: cluster listen address %q: %w", c.Listen, err)
		}
		so.Cluster.Name, so.Cluster.Host = c.Name, chost
		if so.Cluster.Port, err = strconv.Atoi(cport); err != nil {
			return nil, fmt.Errorf("natsrv: cluster port %q: %w", cport, err)
		}
		so.Routes = server.RoutesFromStr(strings.Join(c.Routes, ","))
	}
	ns, err := server.NewServer(so)
	if err != nil {
		return nil, fmt.Errorf("natsrv: %w", err)
	}
	ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		return nil, errors.New("natsrv: server not ready within 10s (is " + opt.Listen + " in use, or the store locked by another trustpulse?)")
	}
	return &Server{ns}, nil
}

// URL is the client URL.
func (s *Server) URL() string { return s.ClientURL() }

// Stop shuts the server down and waits for it.
func (s *Server) Stop() {
	s.Shutdown()
	s.WaitForShutdown()
}
