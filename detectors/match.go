package detectors

import (
	"fmt"
	"net/netip"
	"strings"
)

// Everything in this file runs once or more per event, so it works on the
// strings as they are, folding ASCII case on the fly instead of allocating
// lowered copies.

// route is a compiled Routes pattern.
type route struct {
	methods []string // upper case; empty means any
	path    string   // lower case
	glob    bool
}

func compileRoute(pattern string) (route, error) {
	p := strings.TrimSpace(pattern)
	var r route
	if p == "" {
		return r, fmt.Errorf("empty route pattern")
	}
	if m, path, ok := strings.Cut(p, " "); ok {
		if m != "*" {
			for _, x := range strings.Split(m, ",") {
				x = strings.ToUpper(strings.TrimSpace(x))
				if x == "" {
					return r, fmt.Errorf("route %q: empty method", pattern)
				}
				r.methods = append(r.methods, x)
			}
		}
		p = strings.TrimSpace(path)
	}
	if p == "" || (p[0] != '/' && p[0] != '*') {
		return r, fmt.Errorf("route %q: the path must start with / or *", pattern)
	}
	r.path = strings.ToLower(p)
	r.glob = strings.Contains(p, "*")
	return r, nil
}

func (r *route) match(method, path string) bool {
	if len(r.methods) > 0 {
		ok := false
		for _, m := range r.methods {
			if strings.EqualFold(m, method) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	if r.glob {
		return globFold(r.path, path)
	}
	return underFold(path, r.path)
}

// routes is a compiled list; it matches when any pattern does.
type routes []route

func compileRoutes(pats []string) routes {
	out := make(routes, 0, len(pats))
	for _, p := range pats {
		if r, err := compileRoute(p); err == nil {
			out = append(out, r)
		}
	}
	return out
}

func (rs routes) match(method, path string) bool {
	for i := range rs {
		if rs[i].match(method, path) {
			return true
		}
	}
	return false
}

func lowerASCII(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// hasPrefixFold reports whether s starts with the lower-case prefix.
func hasPrefixFold(s, lowerPrefix string) bool {
	if len(s) < len(lowerPrefix) {
		return false
	}
	for i := 0; i < len(lowerPrefix); i++ {
		if lowerASCII(s[i]) != lowerPrefix[i] {
			return false
		}
	}
	return true
}

// hasSuffixFold reports whether s ends with the lower-case suffix.
func hasSuffixFold(s, lowerSuffix string) bool {
	return len(s) >= len(lowerSuffix) && hasPrefixFold(s[len(s)-len(lowerSuffix):], lowerSuffix)
}

// underFold reports whether path is the lower-case prefix itself or below it
// as a path: "/admin" is under "/admin" and "/admin/x", not "/administrator".
func underFold(path, lowerPrefix string) bool {
	if !hasPrefixFold(path, lowerPrefix) {
		return false
	}
	n := len(lowerPrefix)
	return len(path) == n || lowerPrefix[n-1] == '/' || path[n] == '/'
}

// globFold matches s against a lower-case pattern in which "*" matches any
// run of bytes. Linear backtracking on the last star (no recursion), so a
// hostile path cannot make it exponential.
func globFold(pat, s string) bool {
	px, sx := 0, 0
	nextPx, nextSx := 0, 0
	for px < len(pat) || sx < len(s) {
		if px < len(pat) {
			c := pat[px]
			if c == '*' {
				nextPx, nextSx = px, sx+1
				px++
				continue
			}
			if sx < len(s) && lowerASCII(s[sx]) == c {
				px++
				sx++
				continue
			}
		}
		if 0 < nextSx && nextSx <= len(s) {
			px, sx = nextPx, nextSx
			continue
		}
		return false
	}
	return true
}

// prefixList is a list of lower-case path prefixes matched with underFold,
// plus a "contains /p/" check so "/app/.git/config" counts as "/.git".
type prefixList []string

func lowerAll(in []string) prefixList {
	out := make(prefixList, 0, len(in))
	for _, s := range in {
		if s = strings.ToLower(strings.TrimSpace(s)); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// match returns the first prefix that path starts with (as a path or a
// file name prefix, "/backup.zip" matches "/backup") or contains as a path
// component.
func (l prefixList) match(path string) string {
	for _, p := range l {
		if hasPrefixFold(path, p) || containsFold(path, p) {
			return p
		}
	}
	return ""
}

// containsFold reports whether s contains the lower-case needle after its
// first byte (hasPrefixFold covers position 0).
func containsFold(s, needle string) bool {
	if len(needle) == 0 {
		return true
	}
	first := needle[0]
	for i := 1; i+len(needle) <= len(s); i++ {
		if lowerASCII(s[i]) == first && hasPrefixFold(s[i:], needle) {
			return true
		}
	}
	return false
}

// FNV-1a, 64 bit: cheap, allocation-free identity of strings in state
// tables. A collision merges two values, which only ever undercounts.
const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

func hashString(s string) uint64 {
	h := uint64(fnvOffset)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= fnvPrime
	}
	return h | 1 // never zero: zero marks an empty slot
}

func hashFold(s string) uint64 {
	h := uint64(fnvOffset)
	for i := 0; i < len(s); i++ {
		h ^= uint64(lowerASCII(s[i]))
		h *= fnvPrime
	}
	return h | 1
}

// hashUserAgent identifies a user agent's family: digits are skipped, so a
// browser update (Chrome/124 to Chrome/125) is the same agent while a new
// browser, OS or tool is not.
func hashUserAgent(ua string) uint64 {
	h := uint64(fnvOffset)
	for i := 0; i < len(ua); i++ {
		c := ua[i]
		if c >= '0' && c <= '9' {
			continue
		}
		h ^= uint64(c)
		h *= fnvPrime
	}
	return h | 1
}

// hashNetwork identifies the network of a client IP: the address masked to
// the configured prefix. Unparsable values hash as they are.
func hashNetwork(ip string, v4bits, v6bits int) uint64 {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return hashString(ip)
	}
	a = a.Unmap()
	bits := v6bits
	if a.Is4() {
		bits = v4bits
	}
	if p, err := a.Prefix(bits); err == nil {
		a = p.Addr()
	}
	b := a.As16()
	h := uint64(fnvOffset)
	for _, c := range b {
		h ^= uint64(c)
		h *= fnvPrime
	}
	return h | 1
}

// segment returns the path segment starting at i (after a '/') and the
// index of the next '/', or len(path).
func segment(path string, i int) (string, int) {
	j := strings.IndexByte(path[i:], '/')
	if j < 0 {
		return path[i:], len(path)
	}
	return path[i : i+j], i + j
}

// isIDSegment reports whether a path segment names one record: a number, a
// UUID, a ULID or another token that mixes digits into an identifier.
func isIDSegment(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	digits, alnum := 0, 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			digits++
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
			alnum++
		case c == '-' || c == '_':
		default:
			return false
		}
	}
	if digits == len(s) {
		return true
	}
	return digits > 0 && len(s) >= 8 && !isVersion(s)
}

// isVersion matches API version segments such as "v1" or "v2beta1".
func isVersion(s string) bool {
	if len(s) < 2 || (s[0] != 'v' && s[0] != 'V') || s[1] < '0' || s[1] > '9' {
		return false
	}
	return len(s) <= 8
}

// parseUint reads a decimal number of up to 18 digits.
func parseUint(s string) (int64, bool) {
	if s == "" || len(s) > 18 {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// recordRef splits a path ending in a record id: the hash of the collection
// (everything before the id, case-folded), the hash of the whole reference,
// and the id as a number when it is one.
func recordRef(path string) (collection, record uint64, num int64, numeric, ok bool) {
	p := strings.TrimSuffix(path, "/")
	i := strings.LastIndexByte(p, '/')
	if i < 0 || i == len(p)-1 {
		return 0, 0, 0, false, false
	}
	id := p[i+1:]
	if !isIDSegment(id) {
		return 0, 0, 0, false, false
	}
	collection = hashFold(p[:i])
	record = hashString(p)
	num, numeric = parseUint(id)
	return collection, record, num, numeric, true
}

// routeKey identifies a route with record ids replaced by a placeholder, so
// "/admin/users/7" and "/admin/users/8" are the same privileged route.
func routeKey(path string) uint64 {
	h := uint64(fnvOffset)
	i := 0
	for i < len(path) {
		if path[i] != '/' {
			// a path that does not start with '/' still hashes
			h ^= uint64(lowerASCII(path[i]))
			h *= fnvPrime
			i++
			continue
		}
		seg, next := segment(path, i+1)
		if seg == "" && next == len(path) && i > 0 {
			break // a trailing slash names the same route
		}
		h ^= '/'
		h *= fnvPrime
		if isIDSegment(seg) {
			h ^= '#'
			h *= fnvPrime
		} else {
			for k := 0; k < len(seg); k++ {
				h ^= uint64(lowerASCII(seg[k]))
				h *= fnvPrime
			}
		}
		i = next
	}
	return h | 1
}

// resourceType returns the resource type of a path: the first segment after
// one of the prefixes (and an optional version segment), or the first
// segment when no prefix matches.
func resourceType(path string, prefixes prefixList) string {
	rest := path
	for _, p := range prefixes {
		if underFold(path, p) {
			rest = path[len(p):]
			break
		}
	}
	rest = strings.TrimLeft(rest, "/")
	seg, _ := segment(rest, 0)
	if isVersion(seg) {
		rest = strings.TrimLeft(rest[len(seg):], "/")
		seg, _ = segment(rest, 0)
	}
	return seg
}

// queryInt returns the value of the first numeric query parameter among
// names (raw query, no decoding needed for digits).
func queryInt(query string, names ...string) (string, int64, bool) {
	for len(query) > 0 {
		var kv string
		kv, query, _ = strings.Cut(query, "&")
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			continue
		}
		for _, n := range names {
			if k == n {
				if x, ok := parseUint(v); ok {
					return n, x, true
				}
			}
		}
	}
	return "", 0, false
}

// hasPathSegment reports whether path has a segment equal to s (the user's
// own id in "/api/users/{id}/roles").
func hasPathSegment(path, s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(path); {
		if path[i] != '/' {
			i++
			continue
		}
		seg, next := segment(path, i+1)
		if seg == s {
			return true
		}
		i = next
		if i == len(path) {
			break
		}
	}
	return false
}
