// Command plain is stock Caddy with its standard modules, built from this
// go.mod so that it is exactly the Caddy version the audit build uses. The
// load harness (loadtest) measures the audit module against it.
//
//	go build -o caddy-plain ./internal/caddybin/plain
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	_ "github.com/caddyserver/caddy/v2/modules/standard"
)

func main() {
	caddycmd.Main()
}
