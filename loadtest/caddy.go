package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/caddy-audit/caddy-audit/storage"
)

// binaries are the two Caddy builds under test, from this go.mod.
type binaries struct {
	plain, audit string
}

// moduleRoot finds the directory of this module's go.mod.
func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("not inside the caddy-audit module: run from the checkout")
	}
	return filepath.Dir(mod), nil
}

// buildBinaries builds plain Caddy and Caddy with this module into dir with
// `go build`: the same Caddy version and dependency versions by
// construction, since both come from this go.mod.
func buildBinaries(dir string) (binaries, error) {
	root, err := moduleRoot()
	if err != nil {
		return binaries{}, err
	}
	b := binaries{plain: filepath.Join(dir, "caddy-plain"), audit: filepath.Join(dir, "caddy-audit")}
	for bin, pkg := range map[string]string{b.plain: "./internal/caddybin/plain", b.audit: "./internal/caddybin/audit"} {
		cmd := exec.Command("go", "build", "-o", bin, pkg)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			return binaries{}, fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
		}
	}
	return b, nil
}

// freePort asks the kernel for an unused TCP port on loopback.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// caddyProc is one Caddy process started by the harness.
type caddyProc struct {
	bin        string
	configPath string
	dir        string // its working directory: logs, XDG dirs
	admin      string // host:port of Caddy's admin endpoint
	cmd        *exec.Cmd
	exited     chan struct{}
	log        *os.File
}

// startCaddy runs bin with the Caddyfile at configPath and waits until the
// admin endpoint and the site at readyURL answer.
func startCaddy(bin, configPath, dir, admin, readyURL string) (*caddyProc, error) {
	logf, err := os.OpenFile(filepath.Join(dir, "caddy.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "run", "--config", configPath, "--adapter", "caddyfile")
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = logf, logf
	// Keep Caddy's own state (autosave.json, certificates) in the run's
	// directory, not in the user's home.
	cmd.Env = append(os.Environ(), "XDG_DATA_HOME="+filepath.Join(dir, "xdg-data"), "XDG_CONFIG_HOME="+filepath.Join(dir, "xdg-config"))
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	p := &caddyProc{bin: bin, configPath: configPath, dir: dir, admin: admin, cmd: cmd, exited: make(chan struct{}), log: logf}
	go func() { _ = cmd.Wait(); close(p.exited) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-p.exited:
			logf.Close()
			return nil, fmt.Errorf("caddy exited during start-up; see %s:\n%s", logf.Name(), tail(logf.Name(), 20))
		default:
		}
		if httpOK("http://"+admin+"/config/") && (readyURL == "" || httpStatus(readyURL) != 0) {
			return p, nil
		}
		if time.Now().After(deadline) {
			p.kill()
			return nil, fmt.Errorf("caddy not ready after 30s; see %s:\n%s", logf.Name(), tail(logf.Name(), 20))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// httpStatus is the status of a GET of url, 0 when none came back.
func httpStatus(url string) int {
	resp, err := http.Get(url)
	if err != nil {
		return 0
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func httpOK(url string) bool { return httpStatus(url) == http.StatusOK }

func tail(path string, n int) string {
	data, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func (p *caddyProc) pid() int { return p.cmd.Process.Pid }

// stop asks Caddy to shut down gracefully (SIGTERM flushes the audit queue)
// and waits for it; SIGKILL after timeout.
func (p *caddyProc) stop(timeout time.Duration) error {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(timeout):
		p.kill()
		p.log.Close()
		return fmt.Errorf("caddy did not stop within %s; killed", timeout)
	}
	p.log.Close()
	return nil
}

// kill is kill -9: no flush, no cleanup.
func (p *caddyProc) kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.exited
}

// alive reports whether the process is still running.
func (p *caddyProc) alive() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// reload runs `caddy reload` against the running process's admin endpoint.
func (p *caddyProc) reload(configPath string) error {
	cmd := exec.Command(p.bin, "reload", "--config", configPath, "--adapter", "caddyfile", "--address", p.admin, "--force")
	cmd.Dir = p.dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("caddy reload: %v\n%s", err, out)
	}
	return nil
}

// cpuTicks is utime+stime of pid in clock ticks (/proc/<pid>/stat fields
// 14 and 15).
func cpuTicks(pid int) (int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces; fields after it start
	// after the last ')'.
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("unexpected /proc/%d/stat", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("unexpected /proc/%d/stat", pid)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return ut + st, nil
}

// clockTick is USER_HZ. It is 100 on every Linux architecture Go supports.
const clockTick = 100

// procStatusKB reads a "Vm...:  N kB" line of /proc/<pid>/status.
func procStatusKB(pid int, field string) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("/proc/%d/status has no %s", pid, field)
}

// promValues scrapes a Prometheus text endpoint and sums each metric
// family's samples across labels (name -> sum), plus the labelled samples
// under their full text ("name{labels}").
func promValues(url string) (map[string]float64, error) {
	resp, err := http.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	vals := make(map[string]float64)
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		sp := strings.LastIndexByte(line, ' ')
		if sp < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[sp+1:], 64)
		if err != nil {
			continue
		}
		series := line[:sp]
		name := series
		if i := strings.IndexByte(series, '{'); i >= 0 {
			name = series[:i]
			vals[series] = v
		}
		vals[name] += v
	}
	return vals, sc.Err()
}

// adminClient talks to the audit admin API with the bootstrap key.
type adminClient struct {
	base string // http://host:port
	key  string
}

func newAdminClient(base, dataDir string) (*adminClient, error) {
	key, err := os.ReadFile(filepath.Join(dataDir, "bootstrap-admin.key"))
	if err != nil {
		return nil, err
	}
	return &adminClient{base: base, key: strings.TrimSpace(string(key))}, nil
}

func (c *adminClient) do(ctx context.Context, method, path string, body []byte) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.key)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return http.DefaultClient.Do(req)
}

// exportEvents streams the full NDJSON export.
func (c *adminClient) exportEvents(ctx context.Context) ([]storage.Event, error) {
	resp, err := c.do(ctx, http.MethodGet, "/api/v1/events/export?format=ndjson", nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return nil, fmt.Errorf("export: %s: %s", resp.Status, b)
	}
	var evs []storage.Event
	dec := json.NewDecoder(resp.Body)
	for {
		var ev storage.Event
		if err := dec.Decode(&ev); err == io.EOF {
			break
		} else if err != nil {
			return nil, fmt.Errorf("export: decoding event %d: %w", len(evs)+1, err)
		}
		evs = append(evs, ev)
	}
	return evs, nil
}

func (c *adminClient) verify(ctx context.Context) (storage.VerifyReport, error) {
	var rep storage.VerifyReport
	resp, err := c.do(ctx, http.MethodPost, "/api/v1/integrity/verify", nil)
	if err != nil {
		return rep, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return rep, fmt.Errorf("verify: %s: %s", resp.Status, body)
	}
	if err := json.Unmarshal(body, &rep); err != nil {
		return rep, fmt.Errorf("verify: %w: %s", err, body)
	}
	if !rep.OK {
		return rep, fmt.Errorf("verify: chain does not verify: %s", body)
	}
	return rep, nil
}
