// Package detectors judges audit events. It has two halves.
//
// Score (and a configured Scorer) gives one event a 0-100 risk score from
// explainable, stateless factors, CRS style. It runs on the request path, so
// it is cheap and does not allocate on benign requests.
//
// Engine runs the six threat detectors over the stream of stored events, in
// event time, and returns alerts as AlertUpdate values:
//
//	brute_force           failed logins per client IP and per user (leaky
//	                      bucket 5 / 10s), slow guessing (30 / 1h),
//	                      credential stuffing (10 users from one IP in 10m),
//	                      distributed guessing (one user from 10 IPs);
//	                      critical when a login then succeeds
//	unusual_access        per-user baseline (50 events over 3 days): new
//	                      network, new user agent family, rare off-hours
//	                      time, first access to a workspace
//	data_exfiltration     bytes and distinct records per principal over 5m
//	                      against the principal's baseline (mean + 3 sigma,
//	                      15 windows) and absolute ceilings (100 MiB, 500
//	                      records); enumeration of consecutive ids or pages
//	privilege_escalation  non-admins served on admin routes, 403 then 2xx on
//	                      the same privileged route, role and permission
//	                      changes (critical on one's own)
//	mass_deletion         20 successful DELETEs in 5m; critical at 5x or
//	                      across 3 resource types
//	unauthorized_access   401/403 bursts, probing of paths, sensitive files
//	                      and admin interfaces (CrowdSec's buckets), high 4xx
//	                      ratios, 2xx to requests without an identity on
//	                      authenticated routes
//
// The defaults are in DefaultConfig; every threshold can be tuned per
// workspace through Config.Workspaces.
//
// # Event time and replays
//
// Nothing reads the wall clock. Buckets leak, windows slide and state
// expires by the events' own timestamps, and alert ids are derived from the
// workspace, detector, rule family, subject and first event, so replaying the same
// events into a fresh Engine (a restart, a backfill, a test) gives the same
// alerts, byte for byte. Events should arrive roughly in time order; a late
// event is judged at its own time and never moves state backwards (it
// counts only where it still belongs: what is left of its bucket token, its
// own slot of a sliding window).
//
// # Alerts, suppression and updates
//
// An alert is keyed by workspace, detector, rule family and subject (two
// tenants never share an alert, nor its counts). While it is open
// (until its suppression window, default 15m, passes without a repeat) the
// events that would raise it again are counted into it instead, and a
// stronger finding raises its severity. Most rules are their own family;
// related rules share one so that one attack is one alert: login_burst and
// slow_brute_force ("password_guessing"); bulk_download and enumeration
// ("exfiltration"); the probing rules and denied_burst and error_ratio
// ("probing"); admin_route_access and denied_then_allowed ("admin_access");
// all novelty kinds of unusual_access ("novelty", one alert per user per
// hour). Process emits an update when an alert opens or escalates and at
// most once per UpdateInterval for repeats; Flush emits the rest.
//
// The alert record (storage.Alert with its Subject, Evidence and Mitre) is
// storage's, which owns the record types; this package fills it in.
// Status changes are the admin API's: the engine always reports status
// open and knows nothing of acknowledgements, so persistence
// (storage.Store.PutAlert) keeps the stored status fields when it applies
// an update, and the integration calls Release when an analyst resolves an
// alert so that the next repeat opens a new one.
// storage.ValidTransition tells which status changes are allowed.
//
// # Stateful risk factors
//
// Off-hours access and a first-seen network or user agent for an
// established user need history, and the event is committed (with its
// score) before the engine sees it. Rather than rewrite stored scores, the
// engine reports them as unusual_access alerts, which carry the same
// evidence. Process never modifies the event.
//
// # Memory
//
// Per-key state lives in LRU tables ordered by event time (see Limits).
// Every key includes the event's workspace, as every alert does, so a
// tenant's alert only holds that tenant's events and figures; a subject
// active in several workspaces takes a key in each, under the same caps.
// Short-window tables (per IP, user or principal, one per detector and key
// kind) hold at most Limits.MaxKeys keys each (default 100000) and drop a
// key once it has been idle for the detector's longest window; a key costs
// about 150 to 600 bytes, more only while it is attacking (the evidence
// rings are bounded: 256 failures per IP, 1024 deletes per principal, 25
// event ids per window). User baselines (unusual_access per workspace
// profiles and per user habits, about 1 KB each with their bounded sets of
// 32 networks, 16 user agents and 32 workspaces, and data_exfiltration
// baselines) hold at most
// Limits.MaxProfiles keys (default 50000) for Limits.BaselineTTL (30d).
// Peer knowledge is capped at 256 workspaces of 1024 values. Open alerts are
// capped at Limits.MaxAlerts (10000). Stats reports the keys held and the
// evictions forced by the caps.
//
// # Concurrency
//
// An Engine is not safe for concurrent use: one goroutine (the detector
// worker) calls Process, Flush, Release and Stats. Score and Scorer are
// safe for concurrent use.
package detectors
