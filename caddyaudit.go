// Package caddyaudit plugs caddy-audit into Caddy. Importing it registers the
// `audit` app and the `audit` and `audit_admin` HTTP handlers, which is what
// `xcaddy build --with github.com/caddy-audit/caddy-audit` does.
//
// The code lives in caddymodule (Caddy glue), storage, policy, detectors and
// adminapi; this file only gives the module root something to import.
package caddyaudit

import (
	// Registers the Caddy modules in its init functions.
	_ "github.com/caddy-audit/caddy-audit/caddymodule"
)
