package localch

import (
	"fmt"
	"path/filepath"
)

// configXML is a self-contained server config: loopback only, one default
// user without password, everything under dir. It works on ClickHouse 18.16
// (Debian's package) and on current releases. extra is inserted as more
// top-level sections (a cluster node's, see Cluster); level is the server
// log's level ("" for information).
func configXML(dir string, tcpPort, httpPort int, extra, level string) string {
	p := func(sub string) string { return filepath.Join(dir, sub) + "/" }
	if level == "" {
		level = "information"
	}
	return fmt.Sprintf(`<?xml version="1.0"?>
<yandex>
    <logger>
        <level>%[9]s</level>
        <log>%[1]sclickhouse-server.log</log>
        <errorlog>%[1]sclickhouse-server.err.log</errorlog>
        <size>100M</size>
        <count>3</count>
    </logger>
    <listen_host>127.0.0.1</listen_host>
    <tcp_port>%[2]d</tcp_port>
    <http_port>%[3]d</http_port>
    <path>%[4]s</path>
    <tmp_path>%[5]s</tmp_path>
    <user_files_path>%[6]s</user_files_path>
    <format_schema_path>%[7]s</format_schema_path>
    <mark_cache_size>268435456</mark_cache_size>
    <max_concurrent_queries>100</max_concurrent_queries>
    <users>
        <default>
            <password></password>
            <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
            <profile>default</profile>
            <quota>default</quota>
        </default>
    </users>
    <profiles>
        <default>
            <max_memory_usage>4000000000</max_memory_usage>
            <log_queries>0</log_queries>
        </default>
    </profiles>
    <quotas>
        <default>
            <interval><duration>3600</duration><queries>0</queries><errors>0</errors><result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time></interval>
        </default>
    </quotas>
%[8]s</yandex>
`, p("log"), tcpPort, httpPort, p("data"), p("tmp"), p("user_files"), p("format_schemas"), extra, level)
}
