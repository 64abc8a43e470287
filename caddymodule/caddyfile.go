package caddymodule

import (
	"strconv"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/dustin/go-humanize"
)

func init() {
	httpcaddyfile.RegisterGlobalOption("audit", parseGlobalOption)
	httpcaddyfile.RegisterHandlerDirective("audit", parseHandler)
	httpcaddyfile.RegisterHandlerDirective("audit_admin", parseAdminHandler)
	// Before header: early enough to see the 401s that basic_auth and
	// forward_auth send, and the original path before rewrite.
	httpcaddyfile.RegisterDirectiveOrder("audit", httpcaddyfile.Before, "header")
	httpcaddyfile.RegisterDirectiveOrder("audit_admin", httpcaddyfile.Before, "reverse_proxy")
}

func parseGlobalOption(d *caddyfile.Dispenser, _ any) (any, error) {
	app := new(App)
	if err := app.UnmarshalCaddyfile(d); err != nil {
		return nil, err
	}
	return httpcaddyfile.App{Name: "audit", Value: caddyconfig.JSON(app, nil)}, nil
}

// UnmarshalCaddyfile sets up the audit app from the global option:
//
//	audit {
//		data_dir             <path>
//		queue_size           <events>
//		max_batch            <events>
//		commit_delay         <duration>|off # best-effort group commit window, default 20ms
//		max_db_size          <size>      # such as 2GiB
//		lock_timeout         <duration>
//		retention_days       <days>      # 0: keep forever
//		retention_floor_days <days>      # no workspace keeps less
//		retention_interval   <duration>
//		checkpoint_interval  <duration>
//		sweep_interval       <duration>  # detector sweep, default 5m
//		detector_history     <duration>  # replayed on start, default 72h
//		detectors_file       <path.yaml> # detector and risk settings
//		policy_file          <path.yaml> # audit policy: levels, redaction, profile
//	}
func (a *App) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // option name
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		switch d.Val() {
		case "data_dir":
			if !d.AllArgs(&a.DataDir) {
				return d.ArgErr()
			}
		case "queue_size":
			n, err := intArg(d)
			if err != nil {
				return err
			}
			a.QueueSize = n
		case "max_batch":
			n, err := intArg(d)
			if err != nil {
				return err
			}
			a.MaxBatch = n
		case "commit_delay":
			if d.NextArg() {
				if d.Val() == "off" {
					if d.NextArg() {
						return d.ArgErr()
					}
					a.CommitDelay = -1
					break
				}
				d.Prev() // back to the option name, for durationArg
			}
			if err := durationArg(d, &a.CommitDelay); err != nil {
				return err
			}
		case "max_db_size":
			var s string
			if !d.AllArgs(&s) {
				return d.ArgErr()
			}
			n, err := humanize.ParseBytes(s)
			if err != nil {
				return d.Errf("max_db_size: %v", err)
			}
			a.MaxDBSize = int64(n)
		case "lock_timeout":
			if err := durationArg(d, &a.LockTimeout); err != nil {
				return err
			}
		case "retention_interval":
			if err := durationArg(d, &a.RetentionInterval); err != nil {
				return err
			}
		case "checkpoint_interval":
			if err := durationArg(d, &a.CheckpointInterval); err != nil {
				return err
			}
		case "sweep_interval":
			if err := durationArg(d, &a.SweepInterval); err != nil {
				return err
			}
		case "detector_history":
			if err := durationArg(d, &a.DetectorHistory); err != nil {
				return err
			}
		case "detectors_file":
			if !d.AllArgs(&a.DetectorsFile) {
				return d.ArgErr()
			}
		case "policy_file":
			if !d.AllArgs(&a.PolicyFile) {
				return d.ArgErr()
			}
		case "retention_days":
			n, err := intArg(d)
			if err != nil {
				return err
			}
			a.RetentionDays = n
		case "retention_floor_days":
			n, err := intArg(d)
			if err != nil {
				return err
			}
			a.RetentionFloorDays = n
		default:
			return d.Errf("unknown audit option %q", d.Val())
		}
	}
	return nil
}

func parseHandler(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	m := new(Handler)
	err := m.UnmarshalCaddyfile(h.Dispenser)
	return m, err
}

// UnmarshalCaddyfile sets up the audit handler:
//
//	audit [<matcher>] {
//		level          none|metadata|headers|body   # not with a policy_file
//		failure_mode   best_effort|strict           # not with a policy_file
//		strict_timeout <duration>
//		user           header <name> | jwt [<claim>] | basic_auth | placeholder <placeholder>
//		workspace      header <name> | jwt [<claim>] | placeholder <placeholder> | host | path_segment <n>
//		jwt_secret     <secret>
//		jwt_key_file   <pem file>
//		redact_headers <name...>
//		redact_query   <name...>
//	}
//
// All subdirectives are optional; `audit` alone records metadata of every
// request, best effort.
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		switch d.Val() {
		case "level":
			if !d.AllArgs(&h.Level) {
				return d.ArgErr()
			}
		case "failure_mode":
			if !d.AllArgs(&h.FailureMode) {
				return d.ArgErr()
			}
		case "strict_timeout":
			if err := durationArg(d, &h.StrictTimeout); err != nil {
				return err
			}
		case "user":
			src, err := identityArgs(d, userSources)
			if err != nil {
				return err
			}
			h.User = src
		case "workspace":
			src, err := identityArgs(d, workspaceSources)
			if err != nil {
				return err
			}
			h.Workspace = src
		case "jwt_secret":
			if !d.AllArgs(&h.JWTSecret) {
				return d.ArgErr()
			}
		case "jwt_key_file":
			if !d.AllArgs(&h.JWTKeyFile) {
				return d.ArgErr()
			}
		case "redact_headers":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.ArgErr()
			}
			h.RedactHeaders = append(h.RedactHeaders, args...)
		case "redact_query":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.ArgErr()
			}
			h.RedactQuery = append(h.RedactQuery, args...)
		default:
			return d.Errf("unknown audit subdirective %q", d.Val())
		}
	}
	return nil
}

// identityArgs reads "<source> [<name>]" for user and workspace, checked
// by the same rules Provision applies (on a copy: the JSON keeps what was
// written).
func identityArgs(d *caddyfile.Dispenser, allowed []string) (*IdentitySource, error) {
	what := d.Val()
	args := d.RemainingArgs()
	if len(args) == 0 || len(args) > 2 {
		return nil, d.ArgErr()
	}
	src := &IdentitySource{Source: args[0]}
	if len(args) == 2 {
		src.Name = args[1]
	}
	check := *src
	if err := check.validate(what, allowed...); err != nil {
		return nil, d.Err(err.Error())
	}
	return src, nil
}

// durationArg reads one duration argument ("5s", "1h") into dst.
func durationArg(d *caddyfile.Dispenser, dst *caddy.Duration) error {
	name := d.Val()
	var s string
	if !d.AllArgs(&s) {
		return d.ArgErr()
	}
	dur, err := caddy.ParseDuration(s)
	if err != nil {
		return d.Errf("%s: %v", name, err)
	}
	*dst = caddy.Duration(dur)
	return nil
}

func intArg(d *caddyfile.Dispenser) (int, error) {
	name := d.Val() // AllArgs moves the dispenser on to the value
	var s string
	if !d.AllArgs(&s) {
		return 0, d.ArgErr()
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, d.Errf("%s: want a non-negative integer, got %q", name, s)
	}
	return n, nil
}

func parseAdminHandler(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	m := new(AdminHandler)
	err := m.UnmarshalCaddyfile(h.Dispenser)
	return m, err
}

// UnmarshalCaddyfile sets up the admin API handler. It takes no arguments:
//
//	audit_admin
func (h *AdminHandler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	if d.NextBlock(0) {
		return d.Errf("audit_admin takes no options")
	}
	return nil
}

// Interface guards
var (
	_ caddyfile.Unmarshaler = (*App)(nil)
	_ caddyfile.Unmarshaler = (*Handler)(nil)
	_ caddyfile.Unmarshaler = (*AdminHandler)(nil)
)
