package schemas

import (
	"fmt"
	"hash/fnv"
	"regexp"
	"strconv"

	"github.com/nats-io/nats.go/jetstream"
)

// Partitions of the event stream. With N > 1 partitions the stream maps every
// event subject trustpulse.events.<org>.<type>, as it is stored, to
// trustpulse.part.<p>.<org>.<type>, where p is JetStream's own
// partition(N, org) (an FNV-1a hash of the organisation id, modulo N). An
// organisation's events therefore all land in one partition, in stream
// order, and one projector worker per partition reads them through a
// consumer filtered on it. With one partition (the default, and every store
// created before partitions) there is no mapping and subjects are stored as
// published.
const (
	// PartitionPrefix starts the stored subject of a partitioned stream's
	// events: trustpulse.part.<p>.<org>.<type>.
	PartitionPrefix = "trustpulse.part"
	// MaxPartitions bounds the partition count (proj_part is a UInt16, and
	// each partition is a consumer, a lease and a worker).
	MaxPartitions = 256
)

// partitionDest matches the subject transform destination StreamConfig
// writes, and captures its partition count.
var partitionDest = regexp.MustCompile(`^` + regexp.QuoteMeta(PartitionPrefix) + `\.\{\{partition\((\d+),1\)\}\}\.\{\{wildcard\(1\)\}\}\.\{\{wildcard\(2\)\}\}$`)

// partitionTransform is the event stream's subject transform for n > 1
// partitions.
func partitionTransform(n int) *jetstream.SubjectTransformConfig {
	return &jetstream.SubjectTransformConfig{
		Source:      SubjectPrefix + ".*.*",
		Destination: fmt.Sprintf("%s.{{partition(%d,1)}}.{{wildcard(1)}}.{{wildcard(2)}}", PartitionPrefix, n),
	}
}

// StreamPartitions returns the partition count of an event stream's
// configuration: 1 without a subject transform, else the N of its
// partition(N,1). Any other transform is an error: this code did not write it.
func StreamPartitions(cfg jetstream.StreamConfig) (int, error) {
	if cfg.SubjectTransform == nil || cfg.SubjectTransform.Destination == "" {
		return 1, nil
	}
	m := partitionDest.FindStringSubmatch(cfg.SubjectTransform.Destination)
	if m == nil || cfg.SubjectTransform.Source != SubjectPrefix+".*.*" {
		return 0, fmt.Errorf("schemas: stream %s has a subject transform trustpulse does not know (%s -> %s)",
			cfg.Name, cfg.SubjectTransform.Source, cfg.SubjectTransform.Destination)
	}
	n, err := strconv.Atoi(m[1])
	if err != nil || n < 2 {
		return 0, fmt.Errorf("schemas: stream %s: bad partition count in %s", cfg.Name, cfg.SubjectTransform.Destination)
	}
	return n, nil
}

// PartitionOf is the partition of n that JetStream's partition(n, …) maps
// an organisation's events to: FNV-1a (32 bits) of the organisation id,
// modulo n. A test checks it against the server's own mapping.
func PartitionOf(org string, n int) int {
	if n <= 1 {
		return 0
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(org))
	return int(h.Sum32() % uint32(n))
}

// PartitionFilter is the subject filter of partition p of n: empty (the
// whole stream) for n = 1.
func PartitionFilter(p, n int) string {
	if n <= 1 {
		return ""
	}
	return fmt.Sprintf("%s.%d.>", PartitionPrefix, p)
}

// PartitionConsumer names partition p's durable consumer, lease and
// checkpoint, from the base name (ProjectorConsumer): the base itself for
// n = 1, so that stores from before partitions keep their checkpoint, and
// base-p<p> otherwise.
func PartitionConsumer(base string, p, n int) string {
	if n <= 1 {
		return base
	}
	return fmt.Sprintf("%s-p%d", base, p)
}

// EventFilters returns subject filters matching the stored events of type t
// of every organisation, partitioned or not.
func EventFilters(t EventType) []string {
	return []string{SubjectFilter(t), fmt.Sprintf("%s.*.*.%s", PartitionPrefix, t)}
}
