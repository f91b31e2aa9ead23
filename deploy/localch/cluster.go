package localch

import (
	"fmt"
	"net"
	"strings"
)

// Cluster makes a server one node of a replicated, sharded ClickHouse
// cluster: the cluster's layout (remote_servers), the ZooKeeper ensemble
// that coordinates replication and ON CLUSTER DDL, and the node's macros,
// which Replicated* engines expand in their ZooKeeper paths and replica
// names.
type Cluster struct {
	// Name is the cluster's name in remote_servers (what ON CLUSTER and
	// Distributed name).
	Name string
	// Shards lists each shard's replicas as native host:port addresses.
	// Replication within a shard is the tables' own
	// (internal_replication), so a Distributed insert writes one replica
	// and ReplicatedMergeTree copies it.
	Shards [][]string
	// ZooKeeper is the ensemble, host:port each.
	ZooKeeper []string
	// Shard and Replica are this node's {shard} and {replica} macros;
	// Replica must be unique in the cluster.
	Shard, Replica string
	// InterserverPort is the port on which replicas fetch parts from
	// this node; 0 picks a free one.
	InterserverPort int
}

// clusterXML is the config section of c: remote_servers, zookeeper,
// macros, the interserver port and the distributed DDL queue. Settings of
// 18.16 that current releases keep.
func clusterXML(c *Cluster, interserverPort int) (string, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "    <interserver_http_host>127.0.0.1</interserver_http_host>\n    <interserver_http_port>%d</interserver_http_port>\n", interserverPort)
	fmt.Fprintf(&b, "    <remote_servers>\n        <%s>\n", c.Name)
	for _, shard := range c.Shards {
		b.WriteString("            <shard>\n                <internal_replication>true</internal_replication>\n")
		for _, addr := range shard {
			host, port, err := net.SplitHostPort(addr)
			if err != nil {
				return "", fmt.Errorf("localch: cluster replica %q: %w", addr, err)
			}
			fmt.Fprintf(&b, "                <replica><host>%s</host><port>%s</port></replica>\n", host, port)
		}
		b.WriteString("            </shard>\n")
	}
	fmt.Fprintf(&b, "        </%s>\n    </remote_servers>\n    <zookeeper>\n", c.Name)
	for i, addr := range c.ZooKeeper {
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			return "", fmt.Errorf("localch: zookeeper %q: %w", addr, err)
		}
		fmt.Fprintf(&b, "        <node index=\"%d\"><host>%s</host><port>%s</port></node>\n", i+1, host, port)
	}
	b.WriteString("        <session_timeout_ms>10000</session_timeout_ms>\n    </zookeeper>\n")
	fmt.Fprintf(&b, "    <macros>\n        <shard>%s</shard>\n        <replica>%s</replica>\n    </macros>\n", c.Shard, c.Replica)
	b.WriteString("    <distributed_ddl>\n        <path>/clickhouse/task_queue/ddl</path>\n    </distributed_ddl>\n")
	// A replica killed while it commits a part finds the part on disk
	// but not in ZooKeeper when it starts again ("unexpected"; it was
	// never acknowledged). ClickHouse detaches such parts unless they
	// hold more than this share of the table's rows, and otherwise
	// refuses to start; on the small tables of a test one part is all of
	// them (seen on 18.16 after a SIGKILL).
	b.WriteString("    <merge_tree>\n        <replicated_max_ratio_of_wrong_parts>1</replicated_max_ratio_of_wrong_parts>\n    </merge_tree>\n")
	return b.String(), nil
}
