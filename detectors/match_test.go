package detectors

import (
	"slices"
	"testing"
)

func TestRoutes(t *testing.T) {
	for _, tc := range []struct {
		pattern, method, path string
		want                  bool
	}{
		{"/admin", "GET", "/admin", true},
		{"/admin", "GET", "/ADMIN/users", true},
		{"/admin", "GET", "/admin/", true},
		{"/admin", "GET", "/administrator", false},
		{"/admin/", "GET", "/admin/x", true},
		{"POST /login", "POST", "/login", true},
		{"POST /login", "post", "/login", true},
		{"POST /login", "GET", "/login", false},
		{"POST,PUT */roles*", "PUT", "/api/users/7/roles", true},
		{"POST,PUT */roles*", "PUT", "/api/roles", true},
		{"POST,PUT */roles*", "DELETE", "/api/roles", false},
		{"* /api/*/export", "GET", "/api/v1/items/export", true},
		{"* /api/*/export", "GET", "/api/v1/items/export/x", false},
		{"*/roles*", "GET", "/roles", true},
		{"/a*b*c", "GET", "/aXXbYYc", true},
		{"/a*b*c", "GET", "/aXXbYY", false},
	} {
		r, err := compileRoute(tc.pattern)
		if err != nil {
			t.Fatalf("%s: %v", tc.pattern, err)
		}
		if got := r.match(tc.method, tc.path); got != tc.want {
			t.Errorf("%q matches %s %s: %v", tc.pattern, tc.method, tc.path, got)
		}
	}
	for _, bad := range []string{"", "POST login", ", /x", "GET  "} {
		if _, err := compileRoute(bad); err == nil {
			t.Errorf("%q compiled", bad)
		}
	}
}

func TestPathHelpers(t *testing.T) {
	for _, tc := range []struct {
		seg  string
		want bool
	}{
		{"42", true}, {"0", true}, {"550e8400-e29b-41d4-a716-446655440000", true}, {"01HV6Z3K9Q2W8E4R5T6Y7U8I9O", true},
		{"items", false}, {"v1", false}, {"v2beta1", false}, {"", false}, {"a1", false}, {"report-2024", true}, {"x.json", false},
	} {
		if got := isIDSegment(tc.seg); got != tc.want {
			t.Errorf("isIDSegment(%q) = %v", tc.seg, got)
		}
	}
	c1, r1, n, numeric, ok := recordRef("/api/items/42")
	c2, r2, _, _, _ := recordRef("/API/items/43/")
	if !ok || !numeric || n != 42 || c1 != c2 || r1 == r2 {
		t.Errorf("recordRef: %v %v %v %v %v", c1, c2, n, numeric, ok)
	}
	if _, _, _, _, ok := recordRef("/api/items"); ok {
		t.Error("a collection is not a record")
	}
	if routeKey("/admin/users/7") != routeKey("/Admin/users/8/") || routeKey("/admin/users") == routeKey("/admin/roles") {
		t.Error("routeKey")
	}
	prefixes := lowerAll([]string{"/api"})
	for path, want := range map[string]string{
		"/api/items/1": "items", "/api/v2/projects/9": "projects", "/documents/7": "documents", "/api": "", "/": "",
	} {
		if got := resourceType(path, prefixes); got != want {
			t.Errorf("resourceType(%q) = %q, want %q", path, got, want)
		}
	}
	if name, v, ok := queryInt("sort=id&page=12", "page", "offset"); !ok || v != 12 || name != "page" {
		t.Errorf("queryInt: %s %d %v", name, v, ok)
	}
	if _, _, ok := queryInt("page=x&offset", "page", "offset"); ok {
		t.Error("queryInt on junk")
	}
	if !hasPathSegment("/api/users/bob/roles", "bob") || hasPathSegment("/api/users/bobby/roles", "bob") || hasPathSegment("/x", "") {
		t.Error("hasPathSegment")
	}
	if hashNetwork("10.1.2.3", 24, 64) != hashNetwork("10.1.2.200", 24, 64) || hashNetwork("10.1.2.3", 24, 64) == hashNetwork("10.1.3.3", 24, 64) {
		t.Error("IPv4 /24")
	}
	if hashNetwork("2001:db8:1:2::1", 24, 64) != hashNetwork("2001:db8:1:2:ffff::9", 24, 64) || hashNetwork("::ffff:10.1.2.3", 24, 64) != hashNetwork("10.1.2.9", 24, 64) {
		t.Error("IPv6 /64 or mapped IPv4")
	}
	if hashNetwork("not an ip", 24, 64) == 0 || hashUserAgent("Chrome/122.0") != hashUserAgent("Chrome/123.1") || hashUserAgent("Chrome/1") == hashUserAgent("Firefox/1") {
		t.Error("hashes")
	}
	if (prefixList{"/.git"}).match("/app/.git/config") != "/.git" || (prefixList{"/.env"}).match("/.ENV") != "/.env" || (prefixList{"/.env"}).match("/api/x") != "" {
		t.Error("prefixList")
	}
}

func TestStatePrimitives(t *testing.T) {
	b := leaky{}
	c := Bucket{Capacity: 2, LeakSpeed: Duration(10)}
	var got []bool
	for range 4 {
		got = append(got, b.pour(100, c))
	}
	if !slices.Equal(got, []bool{false, false, true, false}) {
		t.Errorf("capacity 2 overflows on the third and then starts empty: %v", got)
	}
	if b.tokens(100, c) != 1 || b.tokens(105, c) != 1 || b.tokens(110, c) != 0 {
		t.Error("leak")
	}
	if b.pour(50, c) || b.tokens(110, c) != 0 {
		t.Error("an event a whole leak period late adds nothing")
	}
	if b.pour(105, c) || b.fill != 5 || b.tokens(110, c) != 1 {
		t.Error("an event half a period late adds half a token, and time does not go back")
	}
	d := distinctLeaky{}
	for i := range 5 {
		if over, _ := d.pour(int64(i), 7, c); over {
			t.Fatal("repeats of one value never overflow")
		}
	}
	var set hashSet
	for i := uint64(1); i <= 1000; i++ {
		if !set.add(i*2654435761 | 1) {
			t.Fatal("fresh value reported seen")
		}
	}
	if set.n != 1000 || set.add(5*2654435761|1) || !set.has(7*2654435761|1) || set.has(3) {
		t.Error("hashSet")
	}
	var r ring
	for i := range 10 {
		r.push(stamp{t: int64(i), id: string(rune('a' + i))}, 4)
	}
	if r.len() != 4 || r.at(0).id != "g" || r.since(7) != 2 || len(r.ids(3, nil)) != 3 {
		t.Errorf("ring %+v", r)
	}
	var w distinctWindow
	for i := range 12 {
		w.add(int64(i*10), uint64(i%5+1), "x", 100, 4)
	}
	if len(w.e) != 4 {
		t.Errorf("distinctWindow keeps %d", len(w.e))
	}
}
