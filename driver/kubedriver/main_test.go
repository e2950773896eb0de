package kubedriver

import (
	"os"
	"testing"

	"github.com/rs/zerolog"
)

// client-go's own log lines go to one logger for the whole process (the
// first New's, see quietKlog). Given a test's writer, client-go's
// background goroutines (a websocket's ping) would write to it after the
// test ended, which panics; the tests' process gives it stderr instead,
// which go test shows when the package fails.
func TestMain(m *testing.M) {
	quietKlog(zerolog.New(zerolog.ConsoleWriter{Out: os.Stderr}).Level(zerolog.DebugLevel))
	os.Exit(m.Run())
}
