package main

import (
	"bytes"
	"context"
	"io"
	"math"
	"math/bits"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// histogram is a log-linear latency histogram: 32 sub-buckets per power of
// two, so a quantile is off by at most 1/32 (3%) whatever the run length,
// in constant memory (a 10-minute soak does not keep every sample).
type histogram struct {
	counts [64 * 32]int64
	n      int64
}

func bucketOf(ns int64) int {
	v := uint64(max(ns, 0))
	if v < 32 {
		return int(v)
	}
	e := bits.Len64(v) - 1
	return e*32 + int((v>>(e-5))&31)
}

// bucketValue is the upper edge of bucket i, in ns.
func bucketValue(i int) int64 {
	if i < 32 {
		return int64(i)
	}
	e, m := i/32, i%32
	return int64((uint64(32+m+1) << (e - 5)) - 1)
}

func (h *histogram) add(d time.Duration) {
	h.counts[bucketOf(int64(d))]++
	h.n++
}

func (h *histogram) merge(o *histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
}

// quantile returns the latency below which a share q of samples fall.
func (h *histogram) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := int64(math.Ceil(q * float64(h.n)))
	var seen int64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return time.Duration(bucketValue(i))
		}
	}
	return time.Duration(bucketValue(len(h.counts) - 1))
}

// outcome is what the generator tells a test about each request.
type outcome struct {
	id     string
	status int  // 0 when no response arrived
	fromUp bool // the response came from the upstream (X-Upstream: 1)
	err    error
}

// loadOpts configures one load run.
type loadOpts struct {
	target   string // http://host:port
	conns    int
	duration time.Duration
	rate     float64 // requests per second overall; 0 = as fast as the connections go
	mix      []template
	idPrefix string
	// onDone, if set, is called for every request (from many goroutines).
	onDone func(outcome)
	// stop, if set, ends the run early when closed.
	stop <-chan struct{}
}

// loadResult is what a load run measured.
type loadResult struct {
	requests int64 // responses received
	errors   int64 // requests without a response (transport errors)
	byClass  [6]int64
	elapsed  time.Duration
	lat      histogram
}

func (r *loadResult) rps() float64 { return float64(r.requests) / r.elapsed.Seconds() }

// newClient is an HTTP/1.1 client that keeps exactly conns connections.
func newClient(conns int) *http.Client {
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		MaxConnsPerHost:     conns,
		IdleConnTimeout:     time.Minute,
		DisableCompression:  true,
	}
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

// runLoad drives opts.target with opts.conns closed-loop workers (each
// sends its next request when the previous answer is read) for
// opts.duration, or at opts.rate requests per second spread over them.
func runLoad(ctx context.Context, opts loadOpts) *loadResult {
	client := newClient(opts.conns)
	defer client.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(ctx, opts.duration)
	defer cancel()
	if opts.stop != nil {
		go func() {
			select {
			case <-opts.stop:
				cancel()
			case <-ctx.Done():
			}
		}()
	}
	var tick <-chan time.Time
	if opts.rate > 0 {
		// One shared pacer: a ticker at the overall rate, in batches so
		// that high rates do not need sub-millisecond ticks.
		per := time.Duration(float64(time.Second) / opts.rate)
		batch := 1
		for per*time.Duration(batch) < time.Millisecond {
			batch *= 2
		}
		tokens := make(chan time.Time, opts.conns)
		t := time.NewTicker(per * time.Duration(batch))
		go func() {
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case now := <-t.C:
					for range batch {
						select {
						case tokens <- now:
						default: // workers are behind: the token is lost, like an open-loop client giving up
						}
					}
				}
			}
		}()
		tick = tokens
	}
	res := &loadResult{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	var seq atomic.Int64
	start := time.Now()
	for w := range opts.conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := &loadResult{}
			i := w * 7919 // workers start at different points of the mix
			for ctx.Err() == nil {
				if tick != nil {
					select {
					case <-tick:
					case <-ctx.Done():
						continue
					}
				}
				t := &opts.mix[i%len(opts.mix)]
				i++
				id := opts.idPrefix + strconv.FormatInt(seq.Add(1), 10)
				o := doRequest(ctx, client, opts.target, t, id, local)
				if o.err != nil {
					if ctx.Err() != nil {
						break // cut short by the end of the run: not an error
					}
					local.errors++
				}
				if opts.onDone != nil {
					opts.onDone(o)
				}
			}
			mu.Lock()
			res.requests += local.requests
			res.errors += local.errors
			for c, n := range local.byClass {
				res.byClass[c] += n
			}
			res.lat.merge(&local.lat)
			mu.Unlock()
		}()
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	return res
}

func doRequest(ctx context.Context, client *http.Client, target string, t *template, id string, res *loadResult) outcome {
	var body io.Reader
	if t.body != nil {
		body = bytes.NewReader(t.body)
	}
	req, err := http.NewRequestWithContext(ctx, t.method, target+t.path, body)
	if err != nil {
		return outcome{id: id, err: err}
	}
	req.Header = t.header.Clone()
	req.Header["X-Request-Id"] = []string{id}
	begin := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		return outcome{id: id, err: err}
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		return outcome{id: id, status: resp.StatusCode, err: err}
	}
	res.lat.add(time.Since(begin))
	res.requests++
	res.byClass[min(resp.StatusCode/100, 5)]++
	return outcome{id: id, status: resp.StatusCode, fromUp: resp.Header.Get("X-Upstream") == "1"}
}
