// Package deploy is how trustpulse reaches its servers: it connects to an
// external NATS or ClickHouse when given their addresses and otherwise runs
// the single-machine defaults itself (an embedded NATS server, package
// natsrv; a local ClickHouse server process, package localch). On a
// ClickHouse cluster (ClickHouseConfig.Cluster) it creates the database ON
// CLUSTER and makes Distributed inserts synchronous; localch can run a
// cluster's nodes and package zookeeper its coordinator, for tests.
//
// Compose files and cluster manifests for users live beside this package
// (Dockerfile, compose/, the Helm chart in helm/trustpulse); the tests here
// render and check them (compose_test.go, helm_test.go), and package testenv
// reads them for the flag check in cmd/trustpulse.
package deploy
