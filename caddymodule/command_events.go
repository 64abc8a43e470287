package caddymodule

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/caddy-audit/caddy-audit/adminapi"
	"github.com/caddy-audit/caddy-audit/storage"
)

func init() { addAuditCommand(eventsCommand) }

// eventFilterFlags are the filters of GET /api/v1/events (and of the
// export) as flags: flag name, query parameter, help.
var eventFilterFlags = []struct{ flag, param, usage string }{
	{"from", "from", "start of the time range: RFC 3339, or a duration ago such as 15m, 2h, 7d"},
	{"to", "to", "end of the time range (exclusive): RFC 3339, or a duration ago"},
	{"user", "user", "events of this user"},
	{"workspace", "workspace", "events of this workspace"},
	{"request-id", "request_id", "the event(s) of one request, by X-Request-ID"},
	{"client-ip", "client_ip", "events from this client address"},
	{"method", "method", "HTTP method, such as DELETE"},
	{"status", "status", "response status code"},
	{"status-class", "status_class", "status class: 1-5 or 1xx-5xx"},
	{"path-prefix", "path_prefix", "paths starting with this, such as /api/"},
	{"kind", "kind", "http, admin or lifecycle"},
	{"stage", "stage", "request_received or response_complete"},
	{"risk-level", "risk_level", "low, medium, high or critical"},
	{"min-risk", "min_risk", "at least this risk score (0-100)"},
	{"suspicious", "suspicious", "true: only events scored suspicious; false: only the others"},
}

func addEventFilterFlags(cmd *cobra.Command) {
	for _, f := range eventFilterFlags {
		cmd.Flags().String(f.flag, "", f.usage)
	}
}

// eventFilterQuery turns the filter flags into query parameters; the API
// checks the values and says what it expects.
func eventFilterQuery(cmd *cobra.Command, now time.Time) (url.Values, error) {
	q := url.Values{}
	for _, f := range eventFilterFlags {
		if v, _ := cmd.Flags().GetString(f.flag); v != "" && f.flag != "from" && f.flag != "to" {
			q.Set(f.param, v)
		}
	}
	return q, setTimeParams(cmd, q, now, "from", "to")
}

// setTimeParams sets the query parameters of the time flags given (named
// as their parameters: from, to) that are set, read by parseWhen.
func setTimeParams(cmd *cobra.Command, q url.Values, now time.Time, names ...string) error {
	for _, name := range names {
		v, _ := cmd.Flags().GetString(name)
		if v == "" {
			continue
		}
		t, err := parseWhen(v, now)
		if err != nil {
			return fmt.Errorf("--%s: %v", name, err)
		}
		q.Set(name, t.UTC().Format(time.RFC3339Nano))
	}
	return nil
}

// parseWhen reads RFC 3339, or a duration before now ("90m", "7d").
func parseWhen(v string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t, nil
	}
	if days, ok := strings.CutSuffix(v, "d"); ok {
		if n, err := strconv.Atoi(days); err == nil && n >= 0 {
			return now.AddDate(0, 0, -n), nil
		}
	}
	if d, err := time.ParseDuration(v); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, errors.New("expects an RFC 3339 time (2025-05-01T12:00:00Z) or a duration ago (15m, 2h, 7d)")
}

func eventsCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "events [filters] [--limit N] [--cursor C] [--follow] [--json]",
		Short: "Search the audit trail, or follow it as it grows",
		Long: `
Searches the audit events (GET /api/v1/events), newest first, with the
API's filters as flags. --cursor continues where the previous page ended
(the command prints the next cursor on standard error).

--follow prints the newest events, then polls for new ones every
--interval and prints them oldest first as they are committed, until
Ctrl-C. With --json each event is one line of JSON (NDJSON). Its own polls,
which the admin API records as admin events, are left out.`,
		Example: `  caddy audit events --user alice --from 2h
  caddy audit events --kind http --status-class 4 --limit 20
  caddy audit events --follow --suspicious true`,
		RunE: runEvents,
	}
	addEventFilterFlags(cmd)
	cmd.Flags().Int("limit", 50, "events per page, 1-1000")
	cmd.Flags().String("cursor", "", "next_cursor of the previous page")
	cmd.Flags().BoolP("follow", "f", false, "keep polling for new events until Ctrl-C")
	cmd.Flags().Duration("interval", 2*time.Second, "how often --follow polls")
	cmd.Flags().Bool("json", false, "print JSON: the page, or with --follow one event per line")
	addAdminFlags(cmd)
	return cmd
}

func runEvents(cmd *cobra.Command, _ []string) error {
	q, err := eventFilterQuery(cmd, time.Now())
	if err != nil {
		return err
	}
	limit, _ := cmd.Flags().GetInt("limit")
	cursor, _ := cmd.Flags().GetString("cursor")
	follow, _ := cmd.Flags().GetBool("follow")
	asJSON, _ := cmd.Flags().GetBool("json")
	q.Set("limit", strconv.Itoa(limit))
	client, err := newAdminClient(cmd)
	if err != nil {
		return err
	}
	if follow {
		if cursor != "" {
			return errors.New("--follow starts at the newest events; leave out --cursor")
		}
		interval, _ := cmd.Flags().GetDuration("interval")
		ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		err := followEvents(ctx, client, q, interval, eventPrinter(cmd.OutOrStdout(), asJSON))
		if errors.Is(err, context.Canceled) {
			return nil
		}
		return err
	}
	if cursor != "" {
		q.Set("cursor", cursor)
	}
	var page adminapi.EventsPage
	if err := client.do(cmd.Context(), http.MethodGet, "/api/v1/events?"+q.Encode(), nil, &page); err != nil {
		return err
	}
	if asJSON {
		return printJSON(cmd.OutOrStdout(), page)
	}
	t := newTable(cmd.OutOrStdout(), eventColumns...)
	for i := range page.Events {
		t.row(eventRow(&page.Events[i])...)
	}
	t.flush()
	if len(page.Events) == 0 {
		fmt.Fprintln(cmd.ErrOrStderr(), "no events match")
	}
	if page.NextCursor != "" {
		fmt.Fprintf(cmd.ErrOrStderr(), "more: add --cursor %s\n", page.NextCursor)
	}
	return nil
}

var eventColumns = []string{"TIME", "KIND", "REQUEST", "STATUS", "USER", "WORKSPACE", "CLIENT", "RISK"}

func eventRow(e *storage.Event) []string {
	what := e.Method + " " + e.Path
	if e.Kind != storage.KindHTTP && e.Action != "" {
		what = e.Action
	}
	status := ""
	if e.Status != 0 {
		status = strconv.Itoa(e.Status)
	}
	risk := ""
	if e.RiskLevel != "" {
		risk = fmt.Sprintf("%d %s", e.RiskScore, e.RiskLevel)
	}
	return []string{shortTime(e.Time), e.Kind, what, status, e.User, e.Workspace, e.ClientIP, risk}
}

// eventPrinter prints followed events: one JSON line each, or table rows
// that stay aligned by padding to fixed widths.
func eventPrinter(w io.Writer, asJSON bool) func([]storage.Event) error {
	if asJSON {
		return func(evs []storage.Event) error {
			for i := range evs {
				if err := printJSONLine(w, &evs[i]); err != nil {
					return err
				}
			}
			return nil
		}
	}
	widths := []int{19, 9, 40, 6, 16, 12, 15, 11}
	line := func(cells []string) {
		var b strings.Builder
		for i, c := range cells {
			c = cleanCell(c)
			if i < len(cells)-1 {
				c = fmt.Sprintf("%-*s ", widths[i], c)
			}
			b.WriteString(c)
		}
		fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
	}
	line(slices.Clone(eventColumns))
	return func(evs []storage.Event) error {
		for i := range evs {
			line(eventRow(&evs[i]))
		}
		return nil
	}
}

// followLag is how far back each poll looks again: an event is stamped
// when its request starts or ends but committed a little later, so a poll
// from exactly the newest time seen could miss one. Commit order (seq)
// then says which of the events read again are new.
const followLag = 10 * time.Second

// followEvents prints the newest page, then polls for events committed
// since (a seq above the highest seen, among those stamped at most
// followLag before the newest) until ctx ends.
func followEvents(ctx context.Context, c *adminClient, q url.Values, interval time.Duration, print func([]storage.Event) error) error {
	c.agent = "caddy-audit-cli/events-follow"
	own := func(e *storage.Event) bool { return e.Kind == storage.KindAdmin && e.UserAgent == c.agent }
	var page adminapi.EventsPage
	if err := c.do(ctx, http.MethodGet, "/api/v1/events?"+q.Encode(), nil, &page); err != nil {
		return err
	}
	var maxSeq uint64
	newest := time.Now()
	var first []storage.Event
	for _, e := range page.Events {
		maxSeq = max(maxSeq, e.Seq)
		if !own(&e) {
			first = append(first, e)
		}
	}
	if len(page.Events) > 0 {
		newest = page.Events[0].Time
	}
	slices.Reverse(first) // oldest first, as a tail does
	if err := print(first); err != nil {
		return err
	}
	from, _ := time.Parse(time.RFC3339Nano, q.Get("from"))
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(interval):
		}
		pq := url.Values{}
		for k, v := range q {
			pq[k] = v
		}
		pq.Set("limit", strconv.Itoa(storage.MaxPageSize))
		if since := newest.Add(-followLag); since.After(from) {
			pq.Set("from", since.UTC().Format(time.RFC3339Nano))
		}
		var fresh []storage.Event
		seqBefore := maxSeq
		for {
			var page adminapi.EventsPage
			if err := c.do(ctx, http.MethodGet, "/api/v1/events?"+pq.Encode(), nil, &page); err != nil {
				return err
			}
			for _, e := range page.Events {
				if e.Seq <= seqBefore {
					continue
				}
				maxSeq = max(maxSeq, e.Seq)
				if e.Time.After(newest) {
					newest = e.Time
				}
				if !own(&e) {
					fresh = append(fresh, e)
				}
			}
			if page.NextCursor == "" {
				break
			}
			pq.Set("cursor", page.NextCursor)
		}
		slices.SortFunc(fresh, func(a, b storage.Event) int { return cmp.Compare(a.Seq, b.Seq) })
		if err := print(fresh); err != nil {
			return err
		}
	}
}
