// Package query serves aggregate views of the ClickHouse projections over
// HTTP. Every number passes through the guard (guard.go) before it leaves
// the process: cells of fewer than the threshold of distinct respondents,
// cells that differ from their parent by fewer than the threshold, and the
// complement that would give a hidden group away are all suppressed.
//
// Scores of a wave are released only after the wave has closed, the mixer
// has published its held responses and sealed it, and the projector has
// caught up with the seal, so a released result never changes; nothing
// published after the seal counts.
package query
