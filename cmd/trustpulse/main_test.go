package main

import (
	"os"
	"testing"

	"github.com/trustpulse/trustpulse/deploy/testenv"
)

// runMainEnv makes the test binary run the program itself (main) instead
// of the tests: the process tests start `serve` this way, as a real
// process they can kill.
const runMainEnv = "TRUSTPULSE_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(runMainEnv) == "1" {
		main()
		os.Exit(0)
	}
	testenv.Main(m)
}
