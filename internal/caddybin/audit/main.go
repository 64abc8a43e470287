// Command audit is Caddy with its standard modules plus this module: what
// `xcaddy build --with github.com/caddy-audit/caddy-audit=.` produces, but
// built by `go build` from this go.mod, so the plain and audit builds the
// load harness compares share every dependency version.
//
//	go build -o caddy-audit ./internal/caddybin/audit
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/caddy-audit/caddy-audit"
)

func main() {
	caddycmd.Main()
}
