package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// variant is one configuration the harness compares.
type variant struct {
	name  string // a, b, c, ...
	title string
	audit bool   // needs the audit build
	level string // audit level; "" = no audit handler
	mode  string // best_effort or strict
	log   bool   // Caddy's JSON access log to a file
}

// The variants of issue 8. (c) is the production profile as that profile
// is specified (level metadata, best_effort); it is written out here
// rather than referenced by name so that the harness runs on builds
// without profiles.
var allVariants = []variant{
	{name: "a", title: "reverse_proxy"},
	{name: "b", title: "reverse_proxy + JSON access log", log: true},
	{name: "c", title: "audit metadata best_effort", audit: true, level: "metadata", mode: "best_effort"},
	{name: "d", title: "audit metadata strict", audit: true, level: "metadata", mode: "strict"},
	{name: "e", title: "audit body best_effort (4 KiB JSON)", audit: true, level: "body", mode: "best_effort"},
}

// siteConfig describes one Caddy instance for a variant.
type siteConfig struct {
	adminPort, proxyPort, auditAdminPort int
	upstream                             string // host:port
	dataDir, logPath                     string
	// Extra lines at the top of the proxy site (reload tests change them).
	extra string
	// Extra global options, such as a servers block.
	global string
	// App-level audit options, one per line (max_db_size, ...).
	appOptions []string
	user       string // the audit handler's user source; default header X-User-ID
}

// caddyfile renders the config of v.
func (v variant) caddyfile(c siteConfig) string {
	var b strings.Builder
	fmt.Fprintf(&b, "{\n\tadmin 127.0.0.1:%d\n\tauto_https off\n\tpersist_config off\n\tgrace_period 10s\n", c.adminPort)
	if c.global != "" {
		b.WriteString(c.global + "\n")
	}
	if v.audit {
		fmt.Fprintf(&b, "\taudit {\n\t\tdata_dir %s\n", c.dataDir)
		for _, o := range c.appOptions {
			fmt.Fprintf(&b, "\t\t%s\n", o)
		}
		b.WriteString("\t}\n")
	}
	b.WriteString("}\n\n")
	fmt.Fprintf(&b, ":%d {\n\tbind 127.0.0.1\n", c.proxyPort)
	if c.extra != "" {
		b.WriteString(c.extra + "\n")
	}
	if v.log {
		fmt.Fprintf(&b, "\tlog {\n\t\toutput file %s\n\t\tformat json\n\t}\n", c.logPath)
	}
	if v.audit {
		user := c.user
		if user == "" {
			user = "header X-User-ID"
		}
		fmt.Fprintf(&b, "\taudit {\n\t\tlevel %s\n\t\tfailure_mode %s\n\t\tuser %s\n\t\tworkspace header X-Workspace-ID\n\t}\n", v.level, v.mode, user)
	}
	fmt.Fprintf(&b, "\treverse_proxy %s\n}\n", c.upstream)
	if v.audit {
		fmt.Fprintf(&b, "\n:%d {\n\tbind 127.0.0.1\n\taudit_admin\n}\n", c.auditAdminPort)
	}
	return b.String()
}

// instance is a variant's Caddy, running, with its ports and paths.
type instance struct {
	v    variant
	cfg  siteConfig
	dir  string
	proc *caddyProc
}

func (in *instance) proxyURL() string { return fmt.Sprintf("http://127.0.0.1:%d", in.cfg.proxyPort) }
func (in *instance) auditAdminURL() string {
	return fmt.Sprintf("http://127.0.0.1:%d", in.cfg.auditAdminPort)
}
func (in *instance) adminURL() string { return "http://" + in.proc.admin }

// writeConfig renders the current config into dir/Caddyfile.
func (in *instance) writeConfig() (string, error) {
	path := filepath.Join(in.dir, "Caddyfile")
	return path, os.WriteFile(path, []byte(in.v.caddyfile(in.cfg)), 0o644)
}

// newInstance prepares dir and ports for v; mutate cfg before start.
func newInstance(v variant, dir, upstreamAddr string) (*instance, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	in := &instance{v: v, dir: dir}
	for _, p := range []*int{&in.cfg.adminPort, &in.cfg.proxyPort, &in.cfg.auditAdminPort} {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		*p = port
	}
	in.cfg.upstream = upstreamAddr
	in.cfg.dataDir = filepath.Join(dir, "data")
	in.cfg.logPath = filepath.Join(dir, "access.log")
	return in, nil
}

// start writes the config and runs the right build for the variant.
func (in *instance) start(bins binaries) error {
	path, err := in.writeConfig()
	if err != nil {
		return err
	}
	bin := bins.plain
	if in.v.audit {
		bin = bins.audit
	}
	ready := in.proxyURL() + "/healthz-probe"
	p, err := startCaddy(bin, path, in.dir, fmt.Sprintf("127.0.0.1:%d", in.cfg.adminPort), ready)
	if err != nil {
		return err
	}
	in.proc = p
	return nil
}
