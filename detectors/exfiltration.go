package detectors

import (
	"fmt"
	"math"
	"time"

	"github.com/dustin/go-humanize"

	"github.com/caddy-audit/caddy-audit/storage"
)

// data_exfiltration accounts, per principal (user, else client IP), the
// response bytes of 2xx answers and the distinct records fetched by GET
// (paths ending in an id, such as /api/items/42) over a sliding window of
// event time (Window, in one-minute slots by default), so an attack that
// straddles a window boundary is not split in two. Rules, one family:
//
//   - bulk_download: above an absolute ceiling (MaxBytes or MaxRecords per
//     window, default 100 MiB or 500 records) is high, with or without a
//     baseline; above the principal's own baseline is medium. The baseline
//     is the mean and standard deviation of the principal's past active
//     windows (Welford), and needs MinWindows of them (default 15); the
//     window must exceed mean + Sigma standard deviations (default 3), the
//     floor (MinBytes or MinRecords, default 10 MiB or 100 records) and the
//     largest window the principal ever had, so a user who exports a big
//     report every week is not flagged for doing it again. Windows that
//     raised an alert are kept out of the baseline.
//   - enumeration: a run of SequentialIDs consecutive numeric ids in one
//     collection (default 50; 404s count, scrapers hit gaps) or of
//     SequentialPages consecutive pages of one listing (default 20). High.
//
// T1567 (Exfiltration Over Web Service): the data leaves through the
// application's own HTTPS API.
type exfiltration struct {
	e          *Engine
	principals *table[inWS[storage.Subject], exState]
}

type exState struct {
	// The sliding window is exSlots slots of Window/exSlots each (one
	// minute by default): the figure judged is the sum of the slots within
	// the last Window, exact to a slot, so a burst straddling a boundary is
	// not split. Distinct records are counted per slot, so a record
	// fetched in two different minutes counts twice; the baseline uses the
	// same measure.
	started bool
	cur     int64 // current slot index
	slots   [exSlots]exSlot
	curSet  hashSet // distinct records of the current slot
	recent  ring    // the latest counted events, for evidence

	// Tumbling windows feed the baseline (Welford over active windows).
	win               int64
	winBytes          int64
	winRecords        int
	winEvents         int
	alerted           bool // this window raised an alert: keep it out of the baseline
	n                 int
	meanB, m2B, peakB float64
	meanR, m2R, peakR float64

	// Runs of consecutive ids and pages.
	idColl, pageColl   uint64
	lastID, idStep     int64
	idRun              int
	idLast, idFirstNum int64
	lastPage, pageStep int64
	pageRun            int
	pageLast, pageFrom int64
	runIDs             ring // ids of the current run
	runFirstT          int64
}

type exSlot struct {
	idx     int64
	bytes   int64
	records int
	events  int
}

const exSlots = 5

// slotOf maps a slot index (negative before 1970) to its place in the ring.
func slotOf(idx int64) int { return int((idx%exSlots + exSlots) % exSlots) }

const exEvidence = storage.MaxFirstEvidence + storage.MaxLastEvidence

func newExfiltration(e *Engine, lim Limits) *exfiltration {
	return &exfiltration{e: e, principals: newTable[inWS[storage.Subject], exState](lim.MaxProfiles, int64(lim.BaselineTTL))}
}

func (x *exfiltration) process(c *evctx) {
	ev := c.ev
	get := ev.Method == "GET" || ev.Method == "HEAD"
	if !c.ok && !(get && ev.Status == 404) {
		return
	}
	cfg := &c.s.DataExfiltration
	W := int64(cfg.Window)
	if W <= 0 {
		return
	}
	subj := principal(ev)
	st := x.principals.upsert(scoped(c, subj), x.e.now)
	x.roll(st, c.t, W)

	if get {
		x.enumeration(c, st, subj)
	}
	if !c.ok {
		return
	}
	// A late event counts in its own slot while that slot is still in the
	// window, and in the baseline while its window is the current one;
	// older than that, it can no longer change what is judged.
	slotLen := max(1, W/exSlots)
	slot := &st.slots[slotOf(c.t/slotLen)]
	if slot.idx != c.t/slotLen {
		return
	}
	current := slot.idx == st.cur
	inWindow := c.t/W == st.win
	slot.events++
	if inWindow {
		st.winEvents++
	}
	if ev.BytesOut > 0 {
		slot.bytes += ev.BytesOut
		if inWindow {
			st.winBytes += ev.BytesOut
		}
	}
	if get && current {
		if _, rec, _, _, ok := recordRef(ev.Path); ok && st.curSet.n <= cfg.MaxRecords && st.curSet.add(rec) {
			slot.records++
			if inWindow {
				st.winRecords++
			}
		}
	}
	st.recent.push(stamp{t: c.t, id: ev.ID}, exEvidence)

	var sumB int64
	sumR, events := 0, 0
	for i := range st.slots {
		if sl := &st.slots[i]; sl.idx > st.cur-exSlots && sl.idx <= st.cur {
			sumB += sl.bytes
			sumR += sl.records
			events += sl.events
		}
	}
	estB, estR := float64(sumB), float64(sumR)

	sev := ""
	var why string
	switch {
	case cfg.MaxBytes > 0 && estB > float64(cfg.MaxBytes):
		sev, why = storage.SeverityHigh, fmt.Sprintf("above the ceiling of %s", humanize.IBytes(uint64(cfg.MaxBytes)))
	case cfg.MaxRecords > 0 && estR > float64(cfg.MaxRecords):
		sev, why = storage.SeverityHigh, fmt.Sprintf("above the ceiling of %d records", cfg.MaxRecords)
	case st.n >= cfg.MinWindows:
		sdB, sdR := st.sd(st.m2B), st.sd(st.m2R)
		if estB >= float64(cfg.MinBytes) && estB > st.meanB+cfg.Sigma*sdB && estB > st.peakB {
			sev, why = storage.SeverityMedium, fmt.Sprintf("above this principal's baseline (mean %s + %.0f sigma = %s, largest window %s)",
				humanize.IBytes(uint64(st.meanB)), cfg.Sigma, humanize.IBytes(uint64(st.meanB+cfg.Sigma*sdB)), humanize.IBytes(uint64(st.peakB)))
		} else if estR >= float64(cfg.MinRecords) && estR > st.meanR+cfg.Sigma*sdR && estR > st.peakR {
			sev, why = storage.SeverityMedium, fmt.Sprintf("above this principal's baseline (mean %.0f + %.0f sigma = %.0f records, largest window %.0f)",
				st.meanR, cfg.Sigma, st.meanR+cfg.Sigma*sdR, st.peakR)
		}
	}
	if sev == "" {
		return
	}
	st.alerted = true
	x.e.raise(c, &finding{
		detector: DetectorDataExfiltration, rule: ruleBulkDownload, family: famExfiltration,
		subject: subj, severity: sev, evidence: recentEvidence(&st.recent, exEvidence), count: events, refresh: true,
		figures: map[string]float64{
			"bytes": math.Round(estB), "records": math.Round(estR), "window_s": seconds(cfg.Window),
			"max_bytes": float64(cfg.MaxBytes), "max_records": float64(cfg.MaxRecords),
			"baseline_windows": float64(st.n), "baseline_mean_bytes": math.Round(st.meanB),
			"baseline_sd_bytes": math.Round(st.sd(st.m2B)), "baseline_mean_records": math.Round(st.meanR),
			"baseline_sd_records": math.Round(st.sd(st.m2R)), "sigma": cfg.Sigma,
		},
		summary: fmt.Sprintf("%s fetched %s in %d distinct records within %s, %s",
			describe(subj), humanize.IBytes(uint64(estB)), int(estR), time.Duration(cfg.Window), why),
		actions: exfilActions(subj, c),
		mitre:   mitreExfilWeb,
	})
}

const (
	ruleBulkDownload = "bulk_download"
	ruleEnumeration  = "enumeration"
	famExfiltration  = "exfiltration"
)

func exfilActions(subj storage.Subject, c *evctx) []string {
	since := c.time().Add(-time.Duration(c.s.DataExfiltration.Window)).Format(time.RFC3339)
	out := []string{
		"Review what " + describe(subj) + " downloaded since " + since + " (the evidence lists the events; search events by " + subj.Kind + ")",
	}
	if subj.Kind == storage.SubjectUser {
		out = append(out,
			"Suspend the sessions and API tokens of user "+subj.Value+" until the download is explained",
			"Confirm with the data owner whether an export of this size by "+subj.Value+" was approved")
	} else {
		out = append(out, blockIP(subj.Value),
			"Requests without an identity fetched these records: check the application's authentication on "+c.ev.Path)
	}
	return out
}

func (st *exState) sd(m2 float64) float64 {
	if st.n < 2 {
		return 0
	}
	return math.Sqrt(m2 / float64(st.n-1))
}

// roll moves the state to the slot and window of t, folding a finished
// window into the baseline. A late event (an earlier slot) does not move it:
// state never goes back in time.
func (x *exfiltration) roll(st *exState, t, W int64) {
	slotLen := max(1, W/exSlots)
	idx := t / slotLen
	if st.started && idx <= st.cur {
		return
	}
	if w := t / W; !st.started || w > st.win {
		if st.winEvents > 0 && !st.alerted {
			st.n++
			b, r := float64(st.winBytes), float64(st.winRecords)
			d := b - st.meanB
			st.meanB += d / float64(st.n)
			st.m2B += d * (b - st.meanB)
			d = r - st.meanR
			st.meanR += d / float64(st.n)
			st.m2R += d * (r - st.meanR)
			st.peakB = max(st.peakB, b)
			st.peakR = max(st.peakR, r)
		}
		st.win = w
		st.winBytes, st.winRecords, st.winEvents, st.alerted = 0, 0, 0, false
	}
	// Slots skipped over (a quiet stretch) must not keep old counts under
	// an index that a late event could match.
	for i := max(st.cur+1, idx-exSlots+1); st.started && i < idx; i++ {
		st.slots[slotOf(i)] = exSlot{idx: i}
	}
	st.cur, st.started = idx, true
	st.slots[slotOf(idx)] = exSlot{idx: idx}
	st.curSet.reset()
}

// enumeration follows runs of consecutive ids and pages.
func (x *exfiltration) enumeration(c *evctx, st *exState, subj storage.Subject) {
	ev, cfg := c.ev, &c.s.DataExfiltration
	gap := int64(cfg.Window) // a pause longer than a window ends a run
	if coll, _, num, numeric, ok := recordRef(ev.Path); ok && numeric && cfg.SequentialIDs > 0 {
		step := num - st.lastID
		switch {
		case coll == st.idColl && step == 0:
			return // the same record again
		case coll == st.idColl && c.t-st.idLast <= gap && (step == 1 || step == -1) && (st.idRun == 1 || step == st.idStep):
			st.idRun++
			st.idStep = step
		default:
			st.idColl, st.idRun, st.idFirstNum = coll, 1, num
			st.runIDs.reset()
			st.runFirstT = c.t
		}
		st.lastID, st.idLast = num, c.t
		st.runIDs.push(stamp{t: c.t, id: ev.ID}, exEvidence)
		if st.idRun >= cfg.SequentialIDs {
			x.raiseEnumeration(c, st, subj, "ids", st.idRun, cfg.SequentialIDs, st.idFirstNum, num)
		}
		return
	}
	name, page, ok := queryInt(ev.Query, "page", "p", "offset", "start")
	if !ok || cfg.SequentialPages <= 0 {
		return
	}
	coll := hashFold(ev.Path) ^ hashString(name)
	step := page - st.lastPage
	switch {
	case coll == st.pageColl && step == 0:
		return
	case coll == st.pageColl && c.t-st.pageLast <= gap && step > 0 && (st.pageRun == 1 || step == st.pageStep):
		st.pageRun++
		st.pageStep = step
	default:
		st.pageColl, st.pageRun, st.pageFrom = coll, 1, page
		st.runIDs.reset()
		st.runFirstT = c.t
	}
	st.lastPage, st.pageLast = page, c.t
	st.runIDs.push(stamp{t: c.t, id: ev.ID}, exEvidence)
	if st.pageRun >= cfg.SequentialPages {
		x.raiseEnumeration(c, st, subj, "pages", st.pageRun, cfg.SequentialPages, st.pageFrom, page)
	}
}

func (x *exfiltration) raiseEnumeration(c *evctx, st *exState, subj storage.Subject, what string, run, threshold int, from, to int64) {
	ev := c.ev
	evd := recentEvidence(&st.runIDs, exEvidence)
	evd.first = min(evd.first, st.runFirstT)
	x.e.raise(c, &finding{
		detector: DetectorDataExfiltration, rule: ruleEnumeration, family: famExfiltration,
		subject: subj, severity: storage.SeverityHigh, evidence: evd, count: run, refresh: true,
		figures: map[string]float64{
			"sequential_" + what: float64(run), "threshold": float64(threshold),
			"first_" + what[:len(what)-1]: float64(from), "last_" + what[:len(what)-1]: float64(to),
		},
		observed: map[string]string{"collection": collectionOf(ev.Path, what)},
		summary: fmt.Sprintf("%s walked %d consecutive %s of %s (%d to %d): bulk enumeration",
			describe(subj), run, what, collectionOf(ev.Path, what), from, to),
		actions: exfilActions(subj, c),
		mitre:   mitreExfilWeb,
	})
}

func collectionOf(path, what string) string {
	if what == "ids" {
		if i := lastSlash(path); i > 0 {
			return path[:i]
		}
	}
	return path
}

func lastSlash(p string) int {
	for i := len(p) - 1; i >= 0; i-- {
		if p[i] == '/' {
			return i
		}
	}
	return -1
}
