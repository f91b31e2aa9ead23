package deploy

import (
	"context"
	"fmt"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// ClickHouseConfig says where ClickHouse is and which database trustpulse owns.
type ClickHouseConfig struct {
	Addr     string // host:port of the native protocol
	Database string
	User     string
	Password string
}

// OpenClickHouse connects over the native protocol (the HTTP protocol of
// clickhouse-go does not work with ClickHouse 18.16), creates the database if
// it is missing and returns a connection that uses it.
func OpenClickHouse(ctx context.Context, cfg ClickHouseConfig) (driver.Conn, error) {
	open := func(db string) (driver.Conn, error) {
		return clickhouse.Open(&clickhouse.Options{
			Addr:             []string{cfg.Addr},
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
	if err := boot.Exec(pctx, "CREATE DATABASE IF NOT EXISTS "+quoteIdent(cfg.Database)); err != nil {
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
