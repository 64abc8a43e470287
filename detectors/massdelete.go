package detectors

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/caddy-audit/caddy-audit/storage"
)

// mass_deletion counts successful (2xx) DELETEs per principal (user, else
// client IP) in a sliding window of event time. Rule bulk_delete: Deletes
// (default 20 within 5m) is high; CriticalFactor times that (default 100)
// or deletes spread over CriticalResourceTypes resource types (default 3,
// the first path segment after a Routes.ResourcePrefixes prefix) within the
// window is critical. Every further delete in the window counts into the
// alert. T1485.
type massDeletion struct {
	e          *Engine
	principals *table[inWS[storage.Subject], mdState]
}

type mdState struct {
	recent ring       // deletes; h is the resource type
	types  []typeName // names of the resource types seen lately
}

type typeName struct {
	h    uint64
	name string
	last int64
}

const (
	ruleBulkDelete  = "bulk_delete"
	maxDeleteStamps = 1024
	maxDeleteTypes  = 16
)

func newMassDeletion(e *Engine, lim Limits) *massDeletion {
	ttl := e.maxOver(func(s *settings) int64 { return int64(s.MassDeletion.Deletes.Window) })
	return &massDeletion{e: e, principals: newTable[inWS[storage.Subject], mdState](lim.MaxKeys, ttl)}
}

func (m *massDeletion) process(c *evctx) {
	ev := c.ev
	if !c.ok || ev.Method != "DELETE" {
		return
	}
	cfg := &c.s.MassDeletion
	th := cfg.Deletes.Threshold
	if th <= 0 {
		return
	}
	subj := principal(ev)
	st := m.principals.upsert(scoped(c, subj), m.e.now)
	rt := resourceType(ev.Path, m.e.routes.resources)
	h := hashFold(rt)
	st.recent.push(stamp{t: c.t, id: ev.ID, h: h}, min(maxDeleteStamps, th*max(1, cfg.CriticalFactor)))
	st.learnType(h, rt, c.t)
	cutoff := c.t - int64(cfg.Deletes.Window)
	n := st.recent.since(cutoff)
	if n < th {
		return
	}
	types := st.recent.distinctHashes(n)
	sev := storage.SeverityHigh
	var why []string
	if cfg.CriticalFactor > 0 && n >= th*cfg.CriticalFactor {
		sev = storage.SeverityCritical
		why = append(why, fmt.Sprintf("%d times the threshold", cfg.CriticalFactor))
	}
	if cfg.CriticalResourceTypes > 0 && types >= cfg.CriticalResourceTypes {
		sev = storage.SeverityCritical
		why = append(why, fmt.Sprintf("across %d resource types", types))
	}
	summary := fmt.Sprintf("%s deleted %d records within %s (threshold %d)",
		describe(subj), n, time.Duration(cfg.Deletes.Window), th)
	if len(why) > 0 {
		summary += ": " + strings.Join(why, " and ")
	}
	names := st.typeNames(cutoff)
	m.e.raise(c, &finding{
		detector: DetectorMassDeletion, rule: ruleBulkDelete, subject: subj, severity: sev,
		evidence: recentEvidence(&st.recent, n), count: n, refresh: true,
		figures: map[string]float64{
			"deletes": float64(n), "threshold": float64(th), "window_s": seconds(cfg.Deletes.Window),
			"resource_types": float64(types), "critical_resource_types": float64(cfg.CriticalResourceTypes),
			"critical_deletes": math.Max(0, float64(th*cfg.CriticalFactor)),
		},
		observed: map[string]string{"resource_types": strings.Join(names, ", ")},
		summary:  summary,
		actions: []string{
			"Suspend write and delete access of " + describe(subj) + " until the deletions are explained",
			"Restore the deleted records from backup: the evidence and a search of DELETE events by " + subj.Kind + " list them",
			"Confirm with the owner of workspace " + quote(ev.Workspace) + " whether a bulk deletion was planned",
		},
		mitre: mitreDataDestruction,
	})
}

func (st *mdState) learnType(h uint64, name string, t int64) {
	for i := range st.types {
		if st.types[i].h == h {
			st.types[i].last = max(st.types[i].last, t)
			return
		}
	}
	if len(st.types) >= maxDeleteTypes {
		oldest := 0
		for i := range st.types {
			if st.types[i].last < st.types[oldest].last {
				oldest = i
			}
		}
		st.types[oldest] = typeName{h, strings.Clone(name), t}
		return
	}
	// Clone: the name is a slice of the event's path, which should not stay
	// alive for it.
	st.types = append(st.types, typeName{h, strings.Clone(name), t})
}

func (st *mdState) typeNames(cutoff int64) []string {
	var out []string
	for _, t := range st.types {
		if t.last > cutoff {
			out = append(out, t.name)
		}
	}
	sort.Strings(out)
	return out
}
