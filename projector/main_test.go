package projector_test

import (
	"testing"

	"github.com/trustpulse/trustpulse/deploy/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }
