package detectors

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Duration is a time.Duration that reads and writes as a Go duration string
// ("10s", "1h30m") and also accepts "d" for days ("30d") and a bare number
// of nanoseconds, the way caddy.Duration does, so the Caddy module can
// unmarshal this config unchanged. YAML decoders that honour
// encoding.TextUnmarshaler (gopkg.in/yaml.v3 does) read it too.
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// MarshalText writes d as a Go duration string.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalText parses a Go duration string; a "d" suffix counts days.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := parseDuration(string(b))
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// UnmarshalJSON accepts a duration string or a number of nanoseconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		return d.UnmarshalText([]byte(s))
	}
	var n int64
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("duration: want a string such as \"10s\" or a number of nanoseconds: %w", err)
	}
	*d = Duration(n)
	return nil
}

func parseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.ParseFloat(n, 64)
		if err != nil {
			return 0, fmt.Errorf("duration %q: %w", s, err)
		}
		return time.Duration(days * float64(24*time.Hour)), nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("duration %q: %w", s, err)
	}
	return v, nil
}

// Bucket is a CrowdSec-style leaky bucket: it holds Capacity tokens, every
// matching event pours one in, one token leaks out every LeakSpeed of event
// time, and the event that would make it hold Capacity+1 overflows it (and
// raises the alert). After an overflow the bucket starts empty again.
type Bucket struct {
	// Capacity is how many events the bucket absorbs; the next one
	// overflows it. A negative capacity turns the rule off.
	Capacity int `json:"capacity,omitempty" yaml:"capacity,omitempty"`
	// LeakSpeed is how long it takes one token to leak out.
	LeakSpeed Duration `json:"leak_speed,omitempty" yaml:"leak_speed,omitempty"`
}

// Window counts events inside a sliding window of event time: the rule fires
// when Threshold events fall within Window.
type Window struct {
	// Threshold is the count that fires the rule. A negative threshold turns
	// the rule off.
	Threshold int `json:"threshold,omitempty" yaml:"threshold,omitempty"`
	// Window is the length of the sliding window.
	Window Duration `json:"window,omitempty" yaml:"window,omitempty"`
}

// BusinessHours is when a workspace normally works, for off-hours checks.
type BusinessHours struct {
	// Timezone is an IANA zone name such as "Europe/Berlin". Default "UTC".
	Timezone string `json:"timezone,omitempty" yaml:"timezone,omitempty"`
	// Days are the working days, as three-letter English names ("mon").
	// Default Monday to Friday.
	Days []string `json:"days,omitempty" yaml:"days,omitempty"`
	// Start is the local start of the working day, "HH:MM". Default "08:00".
	Start string `json:"start,omitempty" yaml:"start,omitempty"`
	// End is the local end of the working day, "HH:MM", exclusive. Default
	// "18:00".
	End string `json:"end,omitempty" yaml:"end,omitempty"`
}

// BruteForceConfig tunes the brute_force detector (failed logins).
type BruteForceConfig struct {
	// Enabled turns the detector off when false. Default true.
	Enabled *bool `json:"enabled,omitempty" yaml:"enabled,omitempty"`
	// Burst is the per client IP and per target user bucket of failed
	// logins. Default capacity 5 and one token back every 10s: the 6th
	// failure in a burst overflows (CrowdSec http-bf).
	Burst Bucket `json:"burst,omitempty" yaml:"burst,omitempty"`
	// Slow catches guessing paced under the burst bucket: failures from one
	// client IP in a sliding window. Default 30 in 1h.
	Slow Window `json:"slow,omitempty" yaml:"slow,omitempty"`
	// StuffingUsers is how many distinct users failing from one client IP
	// within StuffingWindow make credential stuffing. Default 10.
	StuffingUsers int `json:"stuffing_users,omitempty" yaml:"stuffing_users,omitempty"`
	// StuffingIPs is how many distinct client IPs failing for one user
	// within StuffingWindow make a distributed brute force. Default 10.
	StuffingIPs int `json:"stuffing_ips,omitempty" yaml:"stuffing_ips,omitempty"`
	// StuffingWindow is the window for the distinct counts. Default 10m.
	StuffingWindow Duration `json:"stuffing_window,omitempty" yaml:"stuffing_window,omitempty"`
	// SuccessWindow is how soon after the last failure a successful login
	// from the same source (or for the same user) makes the alert critical.
	// Default 10m.
	SuccessWindow Duration `json:"success_window,omitempty" yaml:"success_window,omitempty"`
	// Suppression overrides the global suppression window for this detector.
	Suppression Duration `json:"suppression,omitempty" yaml:"suppression,omitempty"`
}

// UnusualAccessConfig tunes the unusual_access detector (per-user baseline).
type UnusualAccessConfig struct {
	// Enabled turns the detector off when false. Default true.
	Enabled *bool `json:"enabled,omitempty" yaml:"enabled,omitempty"`
	// MinEvents is the history a user needs before anything is unusual for
	// them. Default 50.
	MinEvents int `json:"min_events,omitempty" yaml:"min_events,omitempty"`
	// MinDays is how many distinct (UTC) days that history must cover.
	// Default 3.
	MinDays int `json:"min_days,omitempty" yaml:"min_days,omitempty"`
	// RareShare is the share of a user's history below which an off-hours
	// hour of the day (or a non-working day) is rare for them. A user who
	// habitually works late is not flagged for it. Default 0.01 (Elastic's
	// rare-share idea).
	RareShare float64 `json:"rare_share,omitempty" yaml:"rare_share,omitempty"`
	// IPv4Prefix is the prefix length at which client IPv4 addresses are
	// compared: addresses within one /24 are one network, so DHCP churn at a
	// user's provider is not a new IP. 32 compares exact addresses.
	// Default 24.
	IPv4Prefix int `json:"ipv4_prefix,omitempty" yaml:"ipv4_prefix,omitempty"`
	// IPv6Prefix is the same for IPv6. Default 64 (privacy addresses rotate
	// inside a /64).
	IPv6Prefix int `json:"ipv6_prefix,omitempty" yaml:"ipv6_prefix,omitempty"`
	// PeerUsers: a network or user agent already used by this many other
	// users of the same workspace is not new for a user (peer baseline: a
	// user moving to the office network or the company browser is normal).
	// Default 3, at most 7. A negative value turns peer knowledge off.
	PeerUsers int `json:"peer_users,omitempty" yaml:"peer_users,omitempty"`
	// Checks lists the novelty kinds to report: new_ip, new_user_agent,
	// off_hours, new_workspace. Default all four.
	Checks []string `json:"checks,omitempty" yaml:"checks,omitempty"`
	// Suppression overrides the global suppression window for this detector.
	// Default 1h: a novel session raises one alert per user, not one per
	// request.
	Suppression Duration `json:"suppression,omitempty" yaml:"suppression,omitempty"`
}

// DataExfiltrationConfig tunes the data_exfiltration detector.
type DataExfiltrationConfig struct {
	// Enabled turns the detector off when false. Default true.
	Enabled *bool `json:"enabled,omitempty" yaml:"enabled,omitempty"`
	// Window is the sliding accounting window for bytes and distinct
	// records per principal, kept in five slots (one minute each by
	// default), so an attack straddling a boundary is not split in two. The
	// baseline learns from whole (tumbling) windows. Default 5m.
	Window Duration `json:"window,omitempty" yaml:"window,omitempty"`
	// Sigma is how many standard deviations above the principal's mean
	// window an observation must be. Default 3.
	Sigma float64 `json:"sigma,omitempty" yaml:"sigma,omitempty"`
	// MinWindows is how many prior active windows the baseline needs
	// before the relative rule fires (Splunk: more than 15). Default 15.
	MinWindows int `json:"min_windows,omitempty" yaml:"min_windows,omitempty"`
	// MinBytes is the floor under the relative byte rule: a window below it
	// is never anomalous, however small the baseline. Default 10 MiB.
	MinBytes int64 `json:"min_bytes,omitempty" yaml:"min_bytes,omitempty"`
	// MinRecords is the same floor for distinct records. Default 100.
	MinRecords int `json:"min_records,omitempty" yaml:"min_records,omitempty"`
	// MaxBytes is the absolute ceiling of response bytes per window, with or
	// without a baseline. Default 100 MiB.
	MaxBytes int64 `json:"max_bytes,omitempty" yaml:"max_bytes,omitempty"`
	// MaxRecords is the absolute ceiling of distinct records (paths ending
	// in an id) fetched per window. Default 500.
	MaxRecords int `json:"max_records,omitempty" yaml:"max_records,omitempty"`
	// SequentialIDs is the run of consecutive numeric ids in one collection
	// that makes an enumeration. Default 50.
	SequentialIDs int `json:"sequential_ids,omitempty" yaml:"sequential_ids,omitempty"`
	// SequentialPages is the run of consecutive page numbers (or evenly
	// stepped offsets) of one listing that makes an enumeration. Default 20.
	SequentialPages int `json:"sequential_pages,omitempty" yaml:"sequential_pages,omitempty"`
	// Suppression overrides the global suppression window for this detector.
	Suppression Duration `json:"suppression,omitempty" yaml:"suppression,omitempty"`
}

// PrivilegeEscalationConfig tunes the privilege_escalation detector. The
// privileged routes themselves are Routes.Admin and Routes.RoleChange.
type PrivilegeEscalationConfig struct {
	// Enabled turns the detector off when false. Default true.
	Enabled *bool `json:"enabled,omitempty" yaml:"enabled,omitempty"`
	// DeniedWindow is how long a 403 on a privileged route is remembered for
	// the "denied, then allowed" rule. Default 1h.
	DeniedWindow Duration `json:"denied_window,omitempty" yaml:"denied_window,omitempty"`
	// Suppression overrides the global suppression window for this detector.
	Suppression Duration `json:"suppression,omitempty" yaml:"suppression,omitempty"`
}

// MassDeletionConfig tunes the mass_deletion detector.
type MassDeletionConfig struct {
	// Enabled turns the detector off when false. Default true.
	Enabled *bool `json:"enabled,omitempty" yaml:"enabled,omitempty"`
	// Deletes is how many successful DELETEs by one principal within the
	// window fire the rule. Default 20 in 5m.
	Deletes Window `json:"deletes,omitempty" yaml:"deletes,omitempty"`
	// CriticalFactor: the alert becomes critical when the deletes within one
	// window reach this multiple of the threshold. Default 5.
	CriticalFactor int `json:"critical_factor,omitempty" yaml:"critical_factor,omitempty"`
	// CriticalResourceTypes: the alert becomes critical when the deletes
	// within the window span this many resource types (the first path
	// segment after a Routes.ResourcePrefixes prefix). Default 3.
	CriticalResourceTypes int `json:"critical_resource_types,omitempty" yaml:"critical_resource_types,omitempty"`
	// Suppression overrides the global suppression window for this detector.
	Suppression Duration `json:"suppression,omitempty" yaml:"suppression,omitempty"`
}

// UnauthorizedAccessConfig tunes the unauthorized_access detector.
type UnauthorizedAccessConfig struct {
	// Enabled turns the detector off when false. Default true.
	Enabled *bool `json:"enabled,omitempty" yaml:"enabled,omitempty"`
	// Denied is the per principal (user, else client IP) bucket of 401 and
	// 403 answers outside the login routes (failed logins belong to
	// brute_force). Default capacity 10, leak 10s.
	Denied Bucket `json:"denied,omitempty" yaml:"denied,omitempty"`
	// Probing is the per client IP bucket of distinct paths answered 400,
	// 403 or 404 (static assets excluded). Default capacity 10, leak 10s
	// (CrowdSec http-probing).
	Probing Bucket `json:"probing,omitempty" yaml:"probing,omitempty"`
	// SensitiveFiles is the per client IP bucket of distinct
	// SensitivePaths answered 4xx. Default capacity 4, leak 5s (CrowdSec
	// http-sensitive-files).
	SensitiveFiles Bucket `json:"sensitive_files,omitempty" yaml:"sensitive_files,omitempty"`
	// AdminProbing is the per client IP bucket of distinct
	// AdminInterfacePaths answered 4xx. Default capacity 2, leak 10s
	// (CrowdSec http-admin-interface-probing).
	AdminProbing Bucket `json:"admin_probing,omitempty" yaml:"admin_probing,omitempty"`
	// ErrorRatio catches slow scanners: per principal, within one window,
	// at least MinRequests requests of which at least MinRatio got a 4xx,
	// over at least MinPaths distinct paths.
	ErrorRatio ErrorRatio `json:"error_ratio,omitempty" yaml:"error_ratio,omitempty"`
	// Unauthenticated is the per client IP bucket of 2xx answers to
	// requests without a user on Routes.Authenticated: the application
	// served a protected route to nobody. Default capacity 5, leak 60s.
	Unauthenticated Bucket `json:"unauthenticated,omitempty" yaml:"unauthenticated,omitempty"`
	// SensitivePaths are path prefixes (case-insensitive) that scanners look
	// for: secrets, VCS metadata, backups, server internals.
	SensitivePaths []string `json:"sensitive_paths,omitempty" yaml:"sensitive_paths,omitempty"`
	// AdminInterfacePaths are path prefixes (case-insensitive) of
	// well-known administration interfaces.
	AdminInterfacePaths []string `json:"admin_interface_paths,omitempty" yaml:"admin_interface_paths,omitempty"`
	// StaticExtensions are file extensions whose 404s are broken assets,
	// not probes.
	StaticExtensions []string `json:"static_extensions,omitempty" yaml:"static_extensions,omitempty"`
	// Suppression overrides the global suppression window for this detector.
	Suppression Duration `json:"suppression,omitempty" yaml:"suppression,omitempty"`
}

// ErrorRatio is the slow-scanner rule of unauthorized_access.
type ErrorRatio struct {
	// Window is the tumbling window. Default 5m.
	Window Duration `json:"window,omitempty" yaml:"window,omitempty"`
	// MinRequests is the least traffic the ratio is judged on. Default 20.
	MinRequests int `json:"min_requests,omitempty" yaml:"min_requests,omitempty"`
	// MinRatio is the share of 4xx answers that fires. Default 0.5.
	MinRatio float64 `json:"min_ratio,omitempty" yaml:"min_ratio,omitempty"`
	// MinPaths is how many distinct paths must have failed. Default 15. A
	// negative value turns the rule off.
	MinPaths int `json:"min_paths,omitempty" yaml:"min_paths,omitempty"`
}

// Settings are the detector settings that can differ per workspace. In
// Config.Workspaces every zero field inherits the global value, so an
// override names only what it changes.
type Settings struct {
	// Suppression is how long after an alert's last event a repeat (same
	// workspace, detector, rule family and subject) updates the open alert instead of
	// opening a new one: the blackhole of CrowdSec. Default 15m.
	Suppression Duration `json:"suppression,omitempty" yaml:"suppression,omitempty"`
	// BusinessHours are the working hours for off-hours checks.
	BusinessHours BusinessHours `json:"business_hours,omitempty" yaml:"business_hours,omitempty"`
	// AdminUsers are the principals allowed on admin routes. The event
	// carries no role, so this list is how the detectors know an admin;
	// when it is empty, privilege_escalation falls back to "denied, then
	// allowed". A workspace's list adds to the global one.
	AdminUsers []string `json:"admin_users,omitempty" yaml:"admin_users,omitempty"`

	// BruteForce tunes brute_force.
	BruteForce BruteForceConfig `json:"brute_force,omitempty" yaml:"brute_force,omitempty"`
	// UnusualAccess tunes unusual_access.
	UnusualAccess UnusualAccessConfig `json:"unusual_access,omitempty" yaml:"unusual_access,omitempty"`
	// DataExfiltration tunes data_exfiltration.
	DataExfiltration DataExfiltrationConfig `json:"data_exfiltration,omitempty" yaml:"data_exfiltration,omitempty"`
	// PrivilegeEscalation tunes privilege_escalation.
	PrivilegeEscalation PrivilegeEscalationConfig `json:"privilege_escalation,omitempty" yaml:"privilege_escalation,omitempty"`
	// MassDeletion tunes mass_deletion.
	MassDeletion MassDeletionConfig `json:"mass_deletion,omitempty" yaml:"mass_deletion,omitempty"`
	// UnauthorizedAccess tunes unauthorized_access.
	UnauthorizedAccess UnauthorizedAccessConfig `json:"unauthorized_access,omitempty" yaml:"unauthorized_access,omitempty"`
}

// Routes names the application's routes the detectors care about. A
// pattern is "[METHODS ]PATH": METHODS is a comma-separated list (or "*",
// or absent for any method); PATH is matched case-insensitively, a "*"
// matches any run of characters including "/", and a PATH without "*"
// matches itself and everything below it ("/admin" matches "/admin/users"
// but not "/administrator").
type Routes struct {
	// Login are the routes where credentials are checked. A 4xx other than
	// 404 there is a failed login, a 2xx a successful one. A 401 anywhere
	// also counts as a failed login.
	Login []string `json:"login,omitempty" yaml:"login,omitempty"`
	// Admin are the privileged (administration) routes. Default "/admin".
	Admin []string `json:"admin,omitempty" yaml:"admin,omitempty"`
	// RoleChange are the calls that change roles or permissions. Default
	// POST, PUT, PATCH and DELETE on */roles*, */permissions*,
	// */privileges* and */grants*.
	RoleChange []string `json:"role_change,omitempty" yaml:"role_change,omitempty"`
	// Authenticated are the routes that need an identity. Default "/api".
	Authenticated []string `json:"authenticated,omitempty" yaml:"authenticated,omitempty"`
	// Public are exceptions inside Authenticated (health checks, login).
	Public []string `json:"public,omitempty" yaml:"public,omitempty"`
	// ResourcePrefixes are stripped (with a following version segment such
	// as "v1") to find a path's resource type: "/api/v1/items/7" is of type
	// "items". Default "/api".
	ResourcePrefixes []string `json:"resource_prefixes,omitempty" yaml:"resource_prefixes,omitempty"`
}

// Limits bound the engine's memory. Each table of per-key state (per client
// IP, per user, per principal) is an LRU ordered by event time: a key idle
// for longer than its table's longest window is dropped, and when a table
// holds MaxKeys keys the least recently seen is dropped to make room.
//
// Keys are per workspace (one tenant's alerts never count another's
// events), so an IP or user active in n workspaces takes n keys, and the
// caps are shared by all workspaces: a flood in one tenant can evict
// another tenant's state. Size MaxKeys and MaxProfiles for keys times
// workspaces; Stats.Evictions shows when they are too small.
type Limits struct {
	// MaxKeys caps every short-window state table (one per detector and key
	// kind). Default 100000; at about 150-600 bytes a key this is at most
	// about 60 MB per table under a flood of distinct client IPs.
	MaxKeys int `json:"max_keys,omitempty" yaml:"max_keys,omitempty"`
	// MaxProfiles caps each table of long-lived baselines: unusual_access
	// per workspace and user profiles, unusual_access per user habits
	// (across workspaces) and data_exfiltration per workspace and
	// principal baselines. Default 50000; a profile is at most about 2 KB.
	MaxProfiles int `json:"max_profiles,omitempty" yaml:"max_profiles,omitempty"`
	// BaselineTTL is how long a baseline survives without events. Default
	// 30d.
	BaselineTTL Duration `json:"baseline_ttl,omitempty" yaml:"baseline_ttl,omitempty"`
	// MaxAlerts caps the open alerts kept for suppression. Default 10000;
	// the oldest is closed (and its last update emitted) to make room.
	MaxAlerts int `json:"max_alerts,omitempty" yaml:"max_alerts,omitempty"`
}

// RiskConfig tunes the stateless per-event risk score.
type RiskConfig struct {
	// LargeResponseBytes is the response size from which an event gets the
	// large_response factor. Default 10 MiB. A negative value turns the
	// factor off.
	LargeResponseBytes int64 `json:"large_response_bytes,omitempty" yaml:"large_response_bytes,omitempty"`
}

// Config configures the detection engine. Zero fields take the defaults of
// DefaultConfig, so Config{} is a working configuration.
type Config struct {
	// Settings are the global detector settings.
	Settings `yaml:",inline"`
	// UpdateInterval throttles updates of an open alert: a repeat emits an
	// update at most once per interval of event time (a new alert or a
	// severity change is emitted at once; Flush emits the rest). Default 1m.
	UpdateInterval Duration `json:"update_interval,omitempty" yaml:"update_interval,omitempty"`
	// Routes names the routes the detectors care about.
	Routes Routes `json:"routes,omitempty" yaml:"routes,omitempty"`
	// Limits bound the engine's memory.
	Limits Limits `json:"limits,omitempty" yaml:"limits,omitempty"`
	// Risk tunes the per-event risk score.
	Risk RiskConfig `json:"risk,omitempty" yaml:"risk,omitempty"`
	// Workspaces override Settings per workspace (keyed by the event's
	// workspace). Zero fields inherit the global value. State is kept per
	// client IP or user across workspaces; each event is judged with the
	// settings of its own workspace.
	Workspaces map[string]Settings `json:"workspaces,omitempty" yaml:"workspaces,omitempty"`
}

func on() *bool { b := true; return &b }

// DefaultConfig returns the documented defaults. The thresholds follow
// CrowdSec's HTTP scenarios where they exist and the examples
// elsewhere.
func DefaultConfig() Config {
	const mib = 1 << 20
	bucket := func(capacity int, leak time.Duration) Bucket {
		return Bucket{Capacity: capacity, LeakSpeed: Duration(leak)}
	}
	return Config{
		Settings: Settings{
			Suppression: Duration(15 * time.Minute),
			BusinessHours: BusinessHours{
				Timezone: "UTC",
				Days:     []string{"mon", "tue", "wed", "thu", "fri"},
				Start:    "08:00",
				End:      "18:00",
			},
			AdminUsers: []string{},
			BruteForce: BruteForceConfig{
				Enabled:        on(),
				Burst:          bucket(5, 10*time.Second),
				Slow:           Window{Threshold: 30, Window: Duration(time.Hour)},
				StuffingUsers:  10,
				StuffingIPs:    10,
				StuffingWindow: Duration(10 * time.Minute),
				SuccessWindow:  Duration(10 * time.Minute),
			},
			UnusualAccess: UnusualAccessConfig{
				Enabled:     on(),
				MinEvents:   50,
				MinDays:     3,
				RareShare:   0.01,
				IPv4Prefix:  24,
				IPv6Prefix:  64,
				PeerUsers:   3,
				Checks:      []string{NoveltyNewIP, NoveltyNewUserAgent, NoveltyOffHours, NoveltyNewWorkspace},
				Suppression: Duration(time.Hour),
			},
			DataExfiltration: DataExfiltrationConfig{
				Enabled:         on(),
				Window:          Duration(5 * time.Minute),
				Sigma:           3,
				MinWindows:      15,
				MinBytes:        10 * mib,
				MinRecords:      100,
				MaxBytes:        100 * mib,
				MaxRecords:      500,
				SequentialIDs:   50,
				SequentialPages: 20,
			},
			PrivilegeEscalation: PrivilegeEscalationConfig{
				Enabled:      on(),
				DeniedWindow: Duration(time.Hour),
			},
			MassDeletion: MassDeletionConfig{
				Enabled:               on(),
				Deletes:               Window{Threshold: 20, Window: Duration(5 * time.Minute)},
				CriticalFactor:        5,
				CriticalResourceTypes: 3,
			},
			UnauthorizedAccess: UnauthorizedAccessConfig{
				Enabled:         on(),
				Denied:          bucket(10, 10*time.Second),
				Probing:         bucket(10, 10*time.Second),
				SensitiveFiles:  bucket(4, 5*time.Second),
				AdminProbing:    bucket(2, 10*time.Second),
				ErrorRatio:      ErrorRatio{Window: Duration(5 * time.Minute), MinRequests: 20, MinRatio: 0.5, MinPaths: 15},
				Unauthenticated: bucket(5, time.Minute),
				SensitivePaths: []string{
					"/.env", "/.git", "/.svn", "/.hg", "/.ds_store", "/.htaccess", "/.htpasswd",
					"/.aws", "/.ssh", "/.docker", "/.npmrc", "/.vscode", "/id_rsa", "/etc/passwd",
					"/wp-config", "/config.php", "/configuration.php", "/web.config", "/config.json",
					"/config.yml", "/settings.py", "/database.yml", "/credentials", "/secrets",
					"/backup", "/dump.sql", "/db.sql", "/server-status", "/server-info",
					"/phpinfo", "/.well-known/security.txt.bak", "/debug", "/trace.axd", "/elmah.axd",
				},
				AdminInterfacePaths: []string{
					"/admin", "/administrator", "/wp-admin", "/wp-login", "/phpmyadmin", "/pma",
					"/adminer", "/manager/html", "/console", "/actuator", "/jenkins", "/_admin",
					"/cpanel", "/webadmin", "/admin.php", "/login.php", "/user/login", "/solr/admin",
				},
				StaticExtensions: []string{
					".js", ".css", ".map", ".png", ".jpg", ".jpeg", ".gif", ".svg", ".ico",
					".webp", ".woff", ".woff2", ".ttf", ".eot",
				},
			},
		},
		UpdateInterval: Duration(time.Minute),
		Routes: Routes{
			Login: []string{
				"POST /login", "POST /signin", "POST /auth/login", "POST /api/login",
				"POST /api/auth/login", "POST /api/session", "POST /oauth/token",
			},
			Admin: []string{"/admin"},
			RoleChange: []string{
				"POST,PUT,PATCH,DELETE */roles*",
				"POST,PUT,PATCH,DELETE */permissions*",
				"POST,PUT,PATCH,DELETE */privileges*",
				"POST,PUT,PATCH,DELETE */grants*",
			},
			Authenticated:    []string{"/api"},
			Public:           []string{"/api/health", "/api/status", "/api/public", "/api/login", "/api/auth", "/api/session"},
			ResourcePrefixes: []string{"/api"},
		},
		Limits: Limits{
			MaxKeys:     100000,
			MaxProfiles: 50000,
			BaselineTTL: Duration(30 * 24 * time.Hour),
			MaxAlerts:   10000,
		},
		Risk: RiskConfig{LargeResponseBytes: 10 * mib},
	}
}

// WithDefaults returns c with every zero field filled from DefaultConfig
// and every workspace override filled from the resolved global settings.
func (c Config) WithDefaults() Config {
	def := DefaultConfig()
	out := c
	fillZero(reflect.ValueOf(&out).Elem(), reflect.ValueOf(def))
	if len(c.Workspaces) > 0 {
		out.Workspaces = make(map[string]Settings, len(c.Workspaces))
		for name, ws := range c.Workspaces {
			fillZero(reflect.ValueOf(&ws).Elem(), reflect.ValueOf(out.Settings))
			out.Workspaces[name] = ws
		}
	}
	return out
}

// fillZero sets every zero leaf of dst to the value in src, descending into
// nested structs. Maps are left alone (Workspaces are resolved separately),
// and a non-nil empty slice counts as set, so "[]" in JSON means "none".
func fillZero(dst, src reflect.Value) {
	for i := range dst.NumField() {
		f, s := dst.Field(i), src.Field(i)
		switch f.Kind() {
		case reflect.Struct:
			fillZero(f, s)
		case reflect.Map:
		default:
			if f.IsZero() {
				f.Set(s)
			}
		}
	}
}

// Validate reports every configuration error at once: unknown time zones,
// malformed hours, days, route patterns and check names, and negative
// durations or limits. NewEngine does not fail on these; it replaces a bad
// value with its default, so call Validate when provisioning.
func (c Config) Validate() error {
	var errs []error
	r := c.WithDefaults()
	check := func(where string, s Settings) {
		if _, err := compileBusinessHours(s.BusinessHours); err != nil {
			for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
				errs = append(errs, fmt.Errorf("%sbusiness_hours: %w", where, e))
			}
		}
		for _, name := range s.UnusualAccess.Checks {
			switch name {
			case NoveltyNewIP, NoveltyNewUserAgent, NoveltyOffHours, NoveltyNewWorkspace:
			default:
				errs = append(errs, fmt.Errorf("%sunusual_access.checks: unknown check %q (want new_ip, new_user_agent, off_hours or new_workspace)", where, name))
			}
		}
		if p := s.UnusualAccess.IPv4Prefix; p < 0 || p > 32 {
			errs = append(errs, fmt.Errorf("%sunusual_access.ipv4_prefix: %d is not between 1 and 32", where, p))
		}
		if p := s.UnusualAccess.IPv6Prefix; p < 0 || p > 128 {
			errs = append(errs, fmt.Errorf("%sunusual_access.ipv6_prefix: %d is not between 1 and 128", where, p))
		}
		if v := s.UnusualAccess.RareShare; v < 0 || v >= 1 {
			errs = append(errs, fmt.Errorf("%sunusual_access.rare_share: %v is not in [0, 1)", where, v))
		}
		if v := s.UnauthorizedAccess.ErrorRatio.MinRatio; v < 0 || v > 1 {
			errs = append(errs, fmt.Errorf("%sunauthorized_access.error_ratio.min_ratio: %v is not in [0, 1]", where, v))
		}
		negativeDurations(where, reflect.ValueOf(s), &errs)
	}
	check("", r.Settings)
	names := make([]string, 0, len(r.Workspaces))
	for name := range r.Workspaces {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		check(fmt.Sprintf("workspaces[%q].", name), r.Workspaces[name])
	}
	for _, f := range []struct {
		field string
		pats  []string
	}{
		{"routes.login", r.Routes.Login}, {"routes.admin", r.Routes.Admin}, {"routes.role_change", r.Routes.RoleChange},
		{"routes.authenticated", r.Routes.Authenticated}, {"routes.public", r.Routes.Public},
	} {
		for _, p := range f.pats {
			if _, err := compileRoute(p); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", f.field, err))
			}
		}
	}
	if r.UpdateInterval < 0 {
		errs = append(errs, errors.New("update_interval: negative"))
	}
	if r.Limits.MaxKeys < 0 || r.Limits.MaxProfiles < 0 || r.Limits.MaxAlerts < 0 || r.Limits.BaselineTTL < 0 {
		errs = append(errs, errors.New("limits: negative values are not allowed"))
	}
	return errors.Join(errs...)
}

func negativeDurations(where string, v reflect.Value, errs *[]error) {
	t := v.Type()
	for i := range v.NumField() {
		f := v.Field(i)
		name := strings.Split(t.Field(i).Tag.Get("json"), ",")[0]
		switch {
		case f.Type() == reflect.TypeFor[Duration]():
			if f.Int() < 0 {
				*errs = append(*errs, fmt.Errorf("%s%s: negative duration", where, name))
			}
		case f.Kind() == reflect.Struct:
			negativeDurations(where+name+".", f, errs)
		}
	}
}

// ValidateBusinessHours checks working hours as the engine reads them,
// with empty fields taken from the defaults (a workspace override names
// only what it changes): a known IANA time zone, day names, and HH:MM
// start and end. Each error starts with the field's name (timezone, day,
// start, end); the admin API checks stored workspace hours with it.
func ValidateBusinessHours(b BusinessHours) error {
	def := DefaultConfig().BusinessHours
	fillZero(reflect.ValueOf(&b).Elem(), reflect.ValueOf(def))
	_, err := compileBusinessHours(b)
	return err
}

// businessHours is BusinessHours compiled for the hot path.
type businessHours struct {
	loc        *time.Location
	days       [7]bool
	start, end int // minutes after local midnight
}

func (b *businessHours) within(t time.Time) bool { return b.withinLocal(t.In(b.loc)) }

var dayNames = map[string]time.Weekday{
	"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday, "wed": time.Wednesday,
	"thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday,
}

func compileBusinessHours(c BusinessHours) (businessHours, error) {
	var b businessHours
	var errs []error
	loc, err := time.LoadLocation(c.Timezone)
	if err != nil {
		errs = append(errs, fmt.Errorf("timezone %q: %w", c.Timezone, err))
		loc = time.UTC
	}
	b.loc = loc
	for _, d := range c.Days {
		key := strings.ToLower(strings.TrimSpace(d))
		if len(key) > 3 {
			key = key[:3] // "monday" reads as "mon"
		}
		wd, ok := dayNames[key]
		if !ok {
			errs = append(errs, fmt.Errorf("day %q: want mon, tue, wed, thu, fri, sat or sun", d))
			continue
		}
		b.days[wd] = true
	}
	if b.start, err = parseClock(c.Start); err != nil {
		errs = append(errs, fmt.Errorf("start: %w", err))
		b.start = 8 * 60
	}
	if b.end, err = parseClock(c.End); err != nil {
		errs = append(errs, fmt.Errorf("end: %w", err))
		b.end = 18 * 60
	}
	return b, errors.Join(errs...)
}

func parseClock(s string) (int, error) {
	h, m, ok := strings.Cut(strings.TrimSpace(s), ":")
	hh, err1 := strconv.Atoi(h)
	mm, err2 := strconv.Atoi(m)
	if !ok || err1 != nil || err2 != nil || hh < 0 || hh > 24 || mm < 0 || mm > 59 || hh*60+mm > 24*60 {
		return 0, fmt.Errorf("%q is not a time of day HH:MM", s)
	}
	return hh*60 + mm, nil
}
