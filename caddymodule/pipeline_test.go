package caddymodule

import (
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-audit/caddy-audit/storage"
)

// TestRejectedReloadRevertsSettings: a config that started and was then
// unloaded while the older one keeps running (a reload that failed after
// the audit app started) must not leave its settings in force.
func TestRejectedReloadRevertsSettings(t *testing.T) {
	dir := t.TempDir()
	newApp := func(retentionDays int) *App {
		return &App{DataDir: dir, QueueSize: 1024, MaxBatch: 64, RetentionDays: retentionDays, logger: zap.NewNop(),
			dbPath: filepath.Join(dir, "audit.db"), keyPath: filepath.Join(dir, "hmac.key")}
	}
	running := newApp(400)
	p, err := openPipeline(running)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = p.Destruct() }()
	running.usePipeline(p)
	p.adopt(running)

	rejected := newApp(7)
	rejected.usePipeline(p)
	p.adopt(rejected)
	if got := p.maintenance.current().retention.DefaultDays; got != 7 {
		t.Fatalf("the started config's retention is not in force: %d", got)
	}
	p.abandon(rejected)
	if got := p.maintenance.current().retention.DefaultDays; got != 400 {
		t.Fatalf("after the newer config was unloaded, retention is %d days, want the running config's 400", got)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		page, err := p.store.Query(storage.Filter{Kind: storage.KindLifecycle}, 10, "")
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, ev := range page.Events {
			found = found || ev.Action == "config_reverted"
		}
		if found {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the revert is not in the trail")
		}
		time.Sleep(10 * time.Millisecond)
	}

	// A normal reload: the old config is cleaned up after the new one
	// started; the new settings stay.
	next := newApp(90)
	next.usePipeline(p)
	p.adopt(next)
	p.abandon(running)
	if got := p.maintenance.current().retention.DefaultDays; got != 90 {
		t.Fatalf("after a normal reload, retention is %d days, want 90", got)
	}
}
