// Command trustbench measures trustpulse against its limits and against
// PostgreSQL, and writes docs/benchmarks.md: ingest through the real HTTP
// path beside raw JetStream publishes, projection of a backlog beside raw
// ClickHouse inserts, freshness, query latency through the API beside the
// same SQL run bare and beside PostgreSQL 15, growth with history, and the
// memory of each part. `make bench` runs it; it is not part of `make test`.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"github.com/trustpulse/trustpulse/schemas"
)

type config struct {
	out, bin, work string
	quick          bool
	rounds         int
	only           string
	natsSync       string // always or interval: the harness's NATS server's fsync
}

// syncAlways says whether the harness's NATS server syncs every write
// before it acknowledges it.
func (c config) syncAlways() bool { return c.natsSync == "always" }

func main() {
	var cfg config
	flag.StringVar(&cfg.out, "out", "docs/benchmarks.md", "where to write the results")
	flag.StringVar(&cfg.bin, "bin", "bin/trustpulse", "the trustpulse binary to run")
	flag.StringVar(&cfg.work, "work", "", "working directory for the servers' data (default: a temporary one, removed afterwards)")
	flag.BoolVar(&cfg.quick, "quick", false, "a small run that checks the harness (minutes, not the published sizes)")
	flag.IntVar(&cfg.rounds, "rounds", 3, "runs of each throughput figure; the report shows their median and spread")
	flag.StringVar(&cfg.only, "only", "", "run one benchmark alone: guard (the guard's decision; logs its figures, writes nothing), seal (the seal of a large wave), ingest (ingest closed-loop and under open-loop overload), projection (the insert limit and the first two growth stages' drains, the second profiled; logs its figures, saves the profile next to --out, writes no report) or partitions (the projection drained by 1, 2 and 3 partitions); seal, ingest and partitions log their figures and write their sections into the existing --out report, leaving the rest as it was")
	flag.StringVar(&cfg.natsSync, "nats-sync", "always", "the harness's NATS server's fsync, as serve's --nats-sync: always (before every acknowledgement) or interval (every 2 minutes, NATS's default)")
	flag.Parse()
	if cfg.natsSync != "always" && cfg.natsSync != "interval" {
		fmt.Fprintf(os.Stderr, "--nats-sync %q: want always or interval\n", cfg.natsSync)
		os.Exit(2)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, log); err != nil {
		log.Error("benchmark failed", "err", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, cfg config, log *slog.Logger) (err error) {
	started := time.Now()
	bin, err := filepath.Abs(cfg.bin)
	if err != nil {
		return err
	}
	if _, err := os.Stat(bin); err != nil {
		return fmt.Errorf("%s: build it first (make bench does)", cfg.bin)
	}
	dir := cfg.work
	if dir == "" {
		if dir, err = os.MkdirTemp("", "trustbench-"); err != nil {
			return err
		}
		// Kept when the run fails: the processes' logs are in it.
		defer func() {
			if err != nil {
				log.Error("the run failed; its servers' data and the processes' logs are kept", "dir", dir)
				return
			}
			os.RemoveAll(dir)
		}()
	}
	// PostgreSQL runs as its own user, which needs to reach its directory.
	if err := os.Chmod(dir, 0o755); err != nil {
		return err
	}
	sizes := fullSizes
	if cfg.quick {
		sizes = quickSizes
		cfg.rounds = 1
	}
	staffSize, respondedPerWave = sizes.staff, sizes.responded
	load0 := loadAverage()
	e, err := startEnv(ctx, dir, bin, cfg.syncAlways(), log)
	if err != nil {
		return err
	}
	e.profileDir = filepath.Dir(cfg.out)
	defer e.close()
	rep := &report{cfg: cfg, sizes: sizes, machine: machine(), clickhouse: e.versions(ctx), loadBefore: load0}
	if cfg.only == "guard" {
		res, err := benchGuard(ctx, e, sizes.guard, cfg.rounds)
		for _, r := range res {
			log.Info("guard", "results", r.results, "warm_p50", r.warmP50, "warm_p99", r.warmP99, "refine_p50", r.refineP50, "refine_p99", r.refineP99,
				"bytes", r.recordBytes, "atoms", r.atoms, "types", r.typesInAll, "decide_p50", r.decideP50, "decode_p50", r.decodeP50)
		}
		return err
	} else if cfg.only == "partitions" {
		if err := partitionStage(ctx, e, rep, sizes, cfg.rounds); err != nil {
			return err
		}
		if err := splicePartitions(cfg.out, rep); err != nil {
			return err
		}
		log.Info("partitions section written", "file", cfg.out, "took", time.Since(started).Round(time.Second))
		return nil
	} else if cfg.only != "" && cfg.only != "seal" && cfg.only != "ingest" && cfg.only != "projection" {
		return fmt.Errorf("--only %s: only guard, seal, ingest, projection or partitions can run alone", cfg.only)
	}

	s, err := survey()
	if err != nil {
		return err
	}
	if err := e.admin.PublishSurvey(ctx, benchOrg, s); err != nil {
		return err
	}
	if cfg.only == "seal" {
		if err := sealStage(ctx, e, rep, sizes.seal, cfg.rounds, true); err != nil {
			return err
		}
		if err := spliceSeal(cfg.out, rep); err != nil {
			return err
		}
		log.Info("seal section written", "file", cfg.out, "took", time.Since(started).Round(time.Second))
		return nil
	}
	if cfg.only == "projection" {
		return projectionAlone(ctx, e, sizes, cfg.rounds)
	}
	if cfg.only == "ingest" {
		if err := ingestStage(ctx, e, rep, sizes, cfg.rounds, true); err != nil {
			return err
		}
		if err := spliceIngest(cfg.out, rep); err != nil {
			return err
		}
		log.Info("ingest sections written", "file", cfg.out, "took", time.Since(started).Round(time.Second))
		return nil
	}
	token, _, err := e.admin.IssueToken(ctx, benchOrg, schemas.RoleAnalyst, "trustbench")
	if err != nil {
		return err
	}
	if _, err := e.start(ctx, "query"); err != nil {
		return err
	}

	log.Info("1/7 ingest")
	if err := ingestStage(ctx, e, rep, sizes, cfg.rounds, false); err != nil {
		return err
	}

	log.Info("2/7 insert limit")
	if rep.insertLimit, rep.insertRows, err = benchInsertLimit(ctx, e, cfg.rounds); err != nil {
		return fmt.Errorf("insert limit: %w", err)
	}

	log.Info("3/7 guard decision")
	if rep.guard, err = benchGuard(ctx, e, sizes.guard, cfg.rounds); err != nil {
		return fmt.Errorf("guard: %w", err)
	}

	pg, err := startPostgres(ctx, filepath.Join(dir, "postgres"))
	if err != nil {
		return err
	}
	defer pg.stop()
	rep.postgres = pg.version

	log.Info("4/7 projection, growth and queries")
	loaded := 0
	measure := func(st stage) ([]queryResult, error) {
		waves := benchWaves(st.waves)
		latest := waves[len(waves)-1]
		if !slices.Contains(sizes.queryAt, st.waves) {
			// Overview and heatmap only: the growth table.
			return benchQueries(ctx, e, token, latest, sizes.queryRuns, sizes.coldRuns, 2)
		}
		res, err := benchQueries(ctx, e, token, latest, sizes.queryRuns, sizes.coldRuns, 0)
		if err != nil {
			return nil, err
		}
		set := querySet{answerRows: st.totalRows, waves: st.waves, results: res}
		log.Info("first request after the seal", "wave", latest)
		if set.first, err = benchFirst(ctx, e, token, latest, cfg.rounds); err != nil {
			return nil, fmt.Errorf("first request: %w", err)
		}
		if st.waves == sizes.queryAt[len(sizes.queryAt)-1] {
			rep.loadPath = endpoints(latest)[1].path
			rep.loadRows = st.totalRows
			if rep.queryRSSBeforeLoad, err = e.procs["query"].peakRSS(); err != nil {
				return nil, err
			}
			log.Info("open-loop heatmap load", "path", rep.loadPath)
			if rep.load, err = benchOpenLoop(ctx, e, token, rep.loadPath, sizes.loadRates, sizes.loadFor, cfg.rounds); err != nil {
				return nil, fmt.Errorf("open loop: %w", err)
			}
		}
		log.Info("loading PostgreSQL", "waves", len(waves)-loaded)
		n, err := pg.load(ctx, e, waves[loaded:])
		if err != nil {
			return nil, err
		}
		loaded = len(waves)
		log.Info("loaded PostgreSQL", "rows", n)
		if err := pg.bench(ctx, latest, sizes.pgRuns, res); err != nil {
			return nil, err
		}
		rep.queries = append(rep.queries, set)
		return res[:2], nil
	}
	if rep.stages, rep.projectorRSS, err = benchProjection(ctx, e, sizes.stages, profiledStage(sizes.stages), measure); err != nil {
		return fmt.Errorf("projection: %w", err)
	}
	if rep.queryRSS, err = e.procs["query"].peakRSS(); err != nil {
		return err
	}

	log.Info("5/7 freshness")
	best := 0.0
	for _, r := range rep.ingest {
		best = max(best, r.rate.median())
	}
	rep.freshRate = best / 2
	if rep.freshness, err = benchFreshness(ctx, e, rep.freshRate, sizes.freshFor); err != nil {
		return fmt.Errorf("freshness: %w", err)
	}

	log.Info("6/7 seal")
	if err := sealStage(ctx, e, rep, sizes.seal, cfg.rounds, false); err != nil {
		return fmt.Errorf("seal: %w", err)
	}

	log.Info("7/7 report")
	rep.took = time.Since(started)
	rep.loadAfter = loadAverage()
	if err := os.MkdirAll(filepath.Dir(cfg.out), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(cfg.out, []byte(rep.markdown()), 0o644); err != nil {
		return err
	}
	log.Info("written", "file", cfg.out, "took", rep.took.Round(time.Second))
	return nil
}

// sizes are a run's dataset and repetitions.
type sizes struct {
	name                      string
	staff, responded          int   // per wave
	stages                    []int // waves projected after each stage
	queryAt                   []int // stages with the full query comparison
	levels                    []int // ingest concurrency
	perRun, queryRuns, pgRuns int
	coldRuns                  int
	freshFor                  time.Duration
	guard                     guardSizes
	loadRates                 []int // open-loop heatmap requests/s
	loadFor                   time.Duration
	seal                      []int         // responses of each sealed wave
	partitioned               int           // responses drained per partition count
	overload                  []float64     // open-loop ingest rates, as multiples of the closed-loop capacity
	overloadFor               time.Duration // each rate's duration
}

var (
	fullSizes = sizes{name: "full", staff: 105_000, responded: 100_000, stages: []int{1, 2, 4, 8, 10}, queryAt: []int{1, 10},
		levels: []int{1, 4, 16, 64}, perRun: 3000, queryRuns: 40, coldRuns: 8, pgRuns: 5, freshFor: 20 * time.Second,
		guard: fullGuard, loadRates: []int{100, 200, 300, 400, 600}, loadFor: 10 * time.Second,
		seal: []int{100_000, 1_000_000}, overload: []float64{0.5, 1, 2, 4}, overloadFor: 12 * time.Second, partitioned: 96_000}
	quickSizes = sizes{name: "quick", staff: 5500, responded: 5000, stages: []int{1, 2}, queryAt: []int{1, 2},
		levels: []int{1, 16}, perRun: 400, queryRuns: 10, coldRuns: 3, pgRuns: 2, freshFor: 4 * time.Second,
		guard: quickGuard, loadRates: []int{100, 300}, loadFor: 2 * time.Second,
		seal: []int{5_000, 20_000}, overload: []float64{0.5, 2}, overloadFor: 2 * time.Second, partitioned: 6_000}
	respondedPerWave = fullSizes.responded
)

// sealStage seals a wave of each size (benchSeal) into the report.
// Then it takes rounds waves of the smallest size from the close to the
// first served overview (benchCloseToServed).
func sealStage(ctx context.Context, e *env, rep *report, sizes []int, rounds int, alone bool) error {
	load0 := loadAverage()
	res, err := benchSeal(ctx, e, sizes)
	rep.seal = sealRun{results: res, stageRun: stageRun{alone: alone}}
	if err == nil {
		e.log.Info("close to served", "responses", sizes[0], "rounds", rounds)
		rep.seal.e2e, err = benchCloseToServed(ctx, e, sizes[0], rounds)
	}
	rep.seal.stamp(load0)
	return err
}

// partitionStage drains the partitioned backlog (benchPartitions) into the
// report.
func partitionStage(ctx context.Context, e *env, rep *report, sizes sizes, rounds int) error {
	load0 := loadAverage()
	res, err := benchPartitions(ctx, e, []int{1, 2, 3}, sizes.partitioned, rounds)
	rep.partitions = partitionRun{results: res, stageRun: stageRun{alone: true}}
	rep.partitions.stamp(load0)
	return err
}

// ingestStage measures ingest closed-loop (benchIngest) and then under an
// open-loop overload (benchOverload) into the report, each in an ingest
// process of its own, so that each peak RSS is its own.
func ingestStage(ctx context.Context, e *env, rep *report, sizes sizes, rounds int, alone bool) (err error) {
	load0 := loadAverage()
	if _, err := e.start(ctx, "ingest"); err != nil {
		return err
	}
	if rep.ingest, err = benchIngest(ctx, e, sizes.levels, sizes.perRun, rounds); err != nil {
		return fmt.Errorf("ingest: %w", err)
	}
	if rep.ingestRSS, err = e.procs["ingest"].peakRSS(); err != nil {
		return err
	}
	// The ingest process runs the mixer, which closes and seals overdue
	// waves by itself: the benchmark's waves (dated in the past) would be
	// sealed, empty, before the harness has published their responses.
	e.stop("ingest")
	best, _ := rep.bestIngest()
	if rep.overload, err = benchOverload(ctx, e, best.rate.median(), sizes.overload, sizes.overloadFor); err != nil {
		return fmt.Errorf("ingest overload: %w", err)
	}
	rep.ingestRun = stageRun{alone: alone}
	rep.ingestRun.stamp(load0)
	return nil
}
