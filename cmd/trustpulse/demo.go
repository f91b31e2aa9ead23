package main

import (
	"context"
	"io"
)

func demoCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return nil
}
