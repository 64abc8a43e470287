#!/usr/bin/env bash
# Build Caddy with this module from this checkout, and optionally run it.
#
#   ./xcaddy.sh                  build ./caddy
#   ./xcaddy.sh build [flags]    the same; extra flags go to `xcaddy build`,
#                                e.g. --with github.com/other/plugin
#   ./xcaddy.sh run [flags]      build, then run Caddyfile.example
#   ./xcaddy.sh <caddy args>     build, then run ./caddy <caddy args>,
#                                e.g. ./xcaddy.sh list-modules
set -euo pipefail

CADDY_VERSION=v2.11.9 # keep in step with go.mod
XCADDY_VERSION=v0.4.5
MODULE=github.com/caddy-audit/caddy-audit

cd "$(dirname "${BASH_SOURCE[0]}")"

case "${1:-}" in
-h | --help | help)
	sed -n '2,9p' "$(basename "${BASH_SOURCE[0]}")" | sed 's/^# \{0,1\}//'
	exit 0
	;;
esac

command -v go >/dev/null || {
	echo "xcaddy.sh: needs Go (go.mod says which version), see https://go.dev/dl/" >&2
	exit 1
}

# Our module path is not published. xcaddy runs `go get` for it before the
# local replacement takes over, and a proxy that answers 403 (not 404) for an
# unknown module stops the default GOPROXY (https://proxy.golang.org,direct).
# With "|" the go command falls through on any error to "off", which counts
# as "not found", and the replacement is used. A proxy you chose yourself
# (in the environment or with go env -w) is kept as it is.
goproxy=$(go env GOPROXY)
case "$goproxy" in
"" | https://proxy.golang.org,direct | https://proxy.golang.org)
	export GOPROXY='https://proxy.golang.org|off'
	;;
*) export GOPROXY="$goproxy" ;;
esac

# Pinned xcaddy, installed into $(go env GOPATH)/bin (its first entry) when
# missing or of another version.
gobin="$(go env GOPATH | cut -d: -f1)/bin"
xcaddy="$gobin/xcaddy"
if [[ "$("$xcaddy" version 2>/dev/null | cut -d' ' -f1)" != "$XCADDY_VERSION" ]]; then
	echo "xcaddy.sh: installing xcaddy $XCADDY_VERSION into $gobin" >&2
	GOBIN="$gobin" go install "github.com/caddyserver/xcaddy/cmd/xcaddy@$XCADDY_VERSION"
fi

# Remove xcaddy's temporary build folder afterwards. xcaddy's default go build
# flags already include -trimpath (and -ldflags '-w -s'), so the binary embeds
# no local paths; setting XCADDY_GO_BUILD_FLAGS would replace those defaults.
export XCADDY_SKIP_CLEANUP=0

build() {
	if ! "$xcaddy" build "$CADDY_VERSION" --output ./caddy --with "$MODULE=." "$@"; then
		echo "xcaddy.sh: build failed (GOPROXY=$GOPROXY)" >&2
		if [[ "$GOPROXY" != *"|"* && "$GOPROXY" != off ]]; then
			echo "xcaddy.sh: if go failed to look up $MODULE, try GOPROXY='<your proxy>|off'" >&2
		fi
		exit 1
	fi
	echo "xcaddy.sh: built $PWD/caddy ($(./caddy version | cut -d' ' -f1) with $MODULE)" >&2
}

case "${1:-build}" in
build)
	shift $(($# > 0 ? 1 : 0))
	build "$@"
	;;
run)
	shift
	build
	echo "xcaddy.sh: running Caddyfile.example: proxy :8080, app 127.0.0.1:9000, admin API 127.0.0.1:9180" >&2
	echo "xcaddy.sh: the admin API key is in ${AUDIT_DATA_DIR:-./data}/bootstrap-admin.key (written on first start)" >&2
	exec ./caddy run --config Caddyfile.example --adapter caddyfile "$@"
	;;
*)
	build
	exec ./caddy "$@"
	;;
esac
