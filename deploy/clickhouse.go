package deploy

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/trustpulse/trustpulse/schemas"
)

// ClickHouseConfig says where ClickHouse is and which database trustpulse owns.
type ClickHouseConfig struct {
	Addr     string // host:port of the native protocol
	Database string
	User     string
	Password string
	// Cluster, when set, names the ClickHouse cluster the database and
	// tables are created on (schemas.Cluster); Addr may then list several
	// nodes, comma-separated, tried in order.
	Cluster string
}

// addrs splits Addr's comma-separated list.
func (cfg ClickHouseConfig) addrs() []string {
	var out []string
	for _, a := range strings.Split(cfg.Addr, ",") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	return out
}

// SchemaCluster is the cluster form of the schema, or nil on one server.
func (cfg ClickHouseConfig) SchemaCluster() *schemas.Cluster {
	if cfg.Cluster == "" {
		return nil
	}
	return &schemas.Cluster{Name: cfg.Cluster, Database: cfg.Database}
}

// OpenClickHouse connects over the native protocol (the HTTP protocol of
// clickhouse-go does not work with ClickHouse 18.16), creates the database if
// it is missing and returns a connection that uses it. On a cluster it
// creates the database ON CLUSTER, after checking that the server knows
// the cluster, and every insert through a Distributed table is synchronous
// (insert_distributed_sync=1): it returns once each shard has the rows,
// not once they are queued on the node written to.
func OpenClickHouse(ctx context.Context, cfg ClickHouseConfig) (driver.Conn, error) {
	open := func(db string) (driver.Conn, error) {
		var settings clickhouse.Settings
		if cfg.Cluster != "" {
			settings = clickhouse.Settings{"insert_distributed_sync": 1}
		}
		return clickhouse.Open(&clickhouse.Options{
			Addr:             cfg.addrs(),
			Settings:         settings,
			Auth:             clickhouse.Auth{Database: db, Username: cfg.User, Password: cfg.Password},
			Protocol:         clickhouse.Native,
			DialTimeout:      5 * time.Second,
			ReadTimeout:      60 * time.Second,
			MaxOpenConns:     16,
			MaxIdleConns:     4,
			ConnMaxLifetime:  time.Hour,
			ConnOpenStrategy: clickhouse.ConnOpenInOrder,
		})
	}
	boot, err := open("default")
	if err != nil {
		return nil, fmt.Errorf("deploy: clickhouse %s: %w", cfg.Addr, err)
	}
	defer boot.Close()
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := boot.Ping(pctx); err != nil {
		return nil, fmt.Errorf("deploy: clickhouse %s not reachable: %w", cfg.Addr, err)
	}
	create := "CREATE DATABASE IF NOT EXISTS " + quoteIdent(cfg.Database)
	if c := cfg.SchemaCluster(); c != nil {
		if err := c.Check(pctx, boot); err != nil {
			return nil, err
		}
		create += " ON CLUSTER " + c.Name
		// ON CLUSTER waits until every node has run it (a node just
		// started takes a few seconds to join ZooKeeper's DDL queue).
		cancel()
		pctx, cancel = context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
	}
	if err := boot.Exec(pctx, create); err != nil {
		return nil, fmt.Errorf("deploy: create database %s: %w", cfg.Database, err)
	}
	conn, err := open(cfg.Database)
	if err != nil {
		return nil, fmt.Errorf("deploy: clickhouse %s: %w", cfg.Addr, err)
	}
	return conn, nil
}

// quoteIdent quotes a ClickHouse identifier with backquotes.
func quoteIdent(s string) string {
	out := []byte{'`'}
	for i := 0; i < len(s); i++ {
		if s[i] == '`' || s[i] == '\\' {
			out = append(out, '\\')
		}
		out = append(out, s[i])
	}
	return string(append(out, '`'))
}
