package policy

import (
	"strings"
)

// Value patterns: secrets and personal data recognised by their shape,
// wherever they appear (path, query, headers, bodies).
const (
	// PatternCard is a payment card number: 13 to 19 digits, optionally
	// grouped by single spaces or dashes, starting 2-6 (the card brands'
	// ranges) and passing the Luhn check.
	PatternCard = "card"
	// PatternSSN is a US social security number written ddd-dd-dddd (or
	// with spaces), within the ranges the SSA assigns.
	PatternSSN = "ssn"
	// PatternJWT is a JSON web token (or JWE): eyJ... with two or more dots.
	PatternJWT = "jwt"
	// PatternBearer is the credential after "Bearer " (8 characters or
	// more, so prose such as "the bearer of" survives).
	PatternBearer = "bearer"
	// PatternCloudKey covers cloud and SaaS access keys: AWS access key IDs
	// (AKIA, ASIA, ...), Google API keys (AIza...) and OAuth tokens
	// (ya29.), Azure storage keys (AccountKey=, SharedAccessKey=), GitHub
	// (ghp_, github_pat_) and Slack (xoxb-) tokens.
	PatternCloudKey = "cloud_key"
	// PatternPrivateKey is a PEM private key block, from BEGIN to END (or
	// to the end of the text when the END line was cut off).
	PatternPrivateKey = "private_key"
	// PatternEmail is an e-mail address. Off unless the policy or its
	// profile asks for it: addresses are often the very identifiers an
	// investigator searches for.
	PatternEmail = "email"
)

// PatternNames lists every value pattern.
var PatternNames = []string{PatternCard, PatternSSN, PatternJWT, PatternBearer, PatternCloudKey, PatternPrivateKey, PatternEmail}

// DefaultPatterns are always on.
var DefaultPatterns = []string{PatternCard, PatternSSN, PatternJWT, PatternBearer, PatternCloudKey, PatternPrivateKey}

// patternSet is a set of value patterns, one bit per PatternNames entry.
type patternSet uint8

const (
	patCard patternSet = 1 << iota
	patSSN
	patJWT
	patBearer
	patCloudKey
	patPrivateKey
	patEmail
)

// compilePatterns turns names into a set; unknown names are ignored
// (Validate reports them).
func compilePatterns(names []string) patternSet {
	var ps patternSet
	for _, n := range names {
		for i, known := range PatternNames {
			if n == known {
				ps |= 1 << i
			}
		}
	}
	return ps
}

// redact returns s with every match of the set replaced by tok of the
// matched value. It returns s itself, without allocating, when nothing
// matches: most values in most requests.
func (ps patternSet) redact(s string, tok func(string) string) string {
	if ps == 0 || len(s) < 6 {
		return s
	}
	var b []byte
	last := 0
	for i := 0; i < len(s); {
		if triggers[s[i]]&ps == 0 {
			i++ // the common case: no pattern can start here
			continue
		}
		m := ps.matchAt(s, i, last)
		if m.end == 0 {
			i = max(m.skip, i+1)
			continue
		}
		if b == nil {
			b = make([]byte, 0, len(s)+32)
		}
		b = append(b, s[last:m.start+m.keep]...)
		b = append(b, tok(m.value)...)
		last, i = m.end, m.end
	}
	if b == nil {
		return s
	}
	return string(append(b, s[last:]...))
}

// triggers maps a byte to the patterns that may start (or, for e-mail,
// be anchored) at it.
var triggers = func() (t [256]patternSet) {
	for c := '0'; c <= '9'; c++ {
		t[c] |= patCard | patSSN
	}
	t['@'] |= patEmail
	t['e'] |= patJWT
	t['B'] |= patBearer
	t['b'] |= patBearer
	t['-'] |= patPrivateKey
	for _, c := range "ASygx" {
		t[c] |= patCloudKey
	}
	return t
}()

// match is a pattern found in s[start:end]; the first keep bytes are not
// secret (a "Bearer " or a PEM header) and stay, and value is what the
// token is computed from (a card number without its spaces, so equal
// cards give equal tokens however they were written).
type match struct {
	start, end, keep int
	value            string
	skip             int // no match: where the next one may start
}

func (ps patternSet) matchAt(s string, i, last int) match {
	c := s[i]
	switch {
	case isDigit(c):
		if i > 0 && isDigit(s[i-1]) {
			return match{}
		}
		if ps&patSSN != 0 {
			if end := ssnAt(s, i); end > 0 {
				return match{start: i, end: end, value: s[i:end]}
			}
		}
		if ps&patCard != 0 {
			end, digits, skip := cardAt(s, i)
			if end > 0 {
				return match{start: i, end: end, value: digits}
			}
			return match{skip: skip}
		}
		return match{skip: digitRunEnd(s, i)}
	case c == '@':
		if ps&patEmail != 0 {
			return emailAt(s, i, last)
		}
	case c == 'e':
		if ps&patJWT != 0 && strings.HasPrefix(s[i:], "eyJ") && (i == 0 || !isB64URL(s[i-1])) {
			if end := jwtAt(s, i); end > 0 {
				return match{start: i, end: end, value: s[i:end]}
			}
		}
	case c == 'B' || c == 'b':
		if ps&patBearer != 0 && (i == 0 || !isAlnum(s[i-1])) && len(s)-i > 7 && strings.EqualFold(s[i:i+6], "bearer") {
			return bearerAt(s, i)
		}
	case c == '-':
		if ps&patPrivateKey != 0 && strings.HasPrefix(s[i:], "-----BEGIN ") {
			return pemAt(s, i)
		}
	}
	if ps&patCloudKey != 0 && (c == 'A' || c == 'S' || c == 'y' || c == 'g' || c == 'x') {
		return cloudKeyAt(s, i)
	}
	return match{}
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
func isAlnum(c byte) bool {
	return isDigit(c) || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}
func isB64URL(c byte) bool { return isAlnum(c) || c == '-' || c == '_' }

func digitRunEnd(s string, i int) int {
	for i < len(s) && isDigit(s[i]) {
		i++
	}
	return i
}

// ssnAt matches ddd-dd-dddd (or with spaces) at i.
func ssnAt(s string, i int) int {
	if len(s)-i < 11 {
		return 0
	}
	t := s[i : i+11]
	sep := t[3]
	if sep != '-' && sep != ' ' || t[6] != sep {
		return 0
	}
	for _, k := range []int{0, 1, 2, 4, 5, 7, 8, 9, 10} {
		if !isDigit(t[k]) {
			return 0
		}
	}
	if i+11 < len(s) && isDigit(s[i+11]) {
		return 0
	}
	area, group, serial := t[0:3], t[4:6], t[7:11]
	if area == "000" || area == "666" || area[0] == '9' || group == "00" || serial == "0000" {
		return 0
	}
	return i + 11
}

// cardAt looks for a card number starting at i, a digit not preceded by a
// digit. Groups may be split by single spaces or dashes; every group end
// with 13 to 19 digits so far is a candidate, longest first, so a card
// followed by another number ("4111 1111 1111 1111 2") is still found.
// skip is where to look next when there is no card: the next group, since
// a card may start there ("order 12 4111...").
func cardAt(s string, i int) (end int, digits string, skip int) {
	var buf [19]byte
	var ends [20]int // ends[n]: end of the group that brought the count to n
	n, j, group := 0, i, 0
	skip = -1
	for j < len(s) {
		c := s[j]
		if isDigit(c) {
			if n == len(buf) {
				break
			}
			buf[n] = c
			n++
			j++
			group++
			if j == len(s) || !isDigit(s[j]) {
				ends[n] = j
			}
			continue
		}
		// Card brands print groups of 3 to 6 digits (4-4-4-4, 4-6-5):
		// shorter groups are other numbers written next to each other.
		if (c == ' ' || c == '-') && j+1 < len(s) && isDigit(s[j+1]) && group >= 3 {
			group = 0
			if skip < 0 {
				skip = j + 1
			}
			j++
			continue
		}
		break
	}
	if skip < 0 {
		// One run of digits: none of its suffixes starts a card.
		skip = digitRunEnd(s, j)
	}
	if buf[0] < '2' || buf[0] > '6' {
		return 0, "", skip
	}
	for k := min(n, 19); k >= 13; k-- {
		if ends[k] > 0 && luhn(buf[:k]) {
			return ends[k], string(buf[:k]), 0
		}
	}
	return 0, "", skip
}

// luhn reports whether the digits pass the Luhn check.
func luhn(d []byte) bool {
	sum := 0
	double := false
	for k := len(d) - 1; k >= 0; k-- {
		v := int(d[k] - '0')
		if double {
			v *= 2
			if v > 9 {
				v -= 9
			}
		}
		sum += v
		double = !double
	}
	return sum%10 == 0
}

// jwtAt matches a compact JWS or JWE at i: at least three dot-separated
// base64url parts, the first two non-empty.
func jwtAt(s string, i int) int {
	j, dots, partLen := i, 0, 0
	for j < len(s) {
		c := s[j]
		switch {
		case isB64URL(c):
			partLen++
		case c == '.':
			if dots < 2 && partLen < 2 {
				return 0
			}
			dots++
			partLen = 0
		default:
			goto done
		}
		j++
	}
done:
	if dots < 2 {
		return 0
	}
	return j
}

func bearerAt(s string, i int) match {
	j := i + 6
	k := j
	for k < len(s) && (s[k] == ' ' || s[k] == '\t') {
		k++
	}
	if k == j {
		return match{}
	}
	e := k
	for e < len(s) && (isAlnum(s[e]) || strings.IndexByte("-._~+/", s[e]) >= 0) {
		e++
	}
	for e < len(s) && s[e] == '=' {
		e++
	}
	if e-k < 8 {
		return match{}
	}
	return match{start: i, end: e, keep: k - i, value: s[k:e]}
}

// pemAt matches a PEM private key block at i.
func pemAt(s string, i int) match {
	rest := s[i+len("-----BEGIN "):]
	label, _, ok := strings.Cut(rest, "-----")
	if !ok || len(label) > 64 || !strings.HasSuffix(label, "PRIVATE KEY") {
		return match{}
	}
	headerEnd := i + len("-----BEGIN ") + len(label) + len("-----")
	end := len(s)
	if k := strings.Index(s[headerEnd:], "-----END "); k >= 0 {
		end = headerEnd + k + len("-----END ")
		if m := strings.Index(s[end:], "-----"); m >= 0 && m <= 64 {
			end += m + len("-----")
		}
	}
	return match{start: i, end: end, keep: headerEnd - i, value: s[headerEnd:end]}
}

// emailAt matches an address around the '@' at i; the local part reaches
// back no further than last, the end of the previous match.
func emailAt(s string, i, last int) match {
	start := i
	for start > last && isEmailLocal(s[start-1]) {
		start--
	}
	if start == i {
		return match{}
	}
	j, labelStart, dots, lastLabelAlpha := i+1, i+1, 0, true
	for j < len(s) {
		c := s[j]
		if isAlnum(c) || c == '-' {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
				lastLabelAlpha = false
			}
			j++
			continue
		}
		if c == '.' && j > labelStart && j+1 < len(s) && isAlnum(s[j+1]) {
			dots++
			j++
			labelStart, lastLabelAlpha = j, true
			continue
		}
		break
	}
	if dots == 0 || j-labelStart < 2 || !lastLabelAlpha {
		return match{}
	}
	return match{start: start, end: j, value: s[start:j]}
}

func isEmailLocal(c byte) bool {
	return isAlnum(c) || strings.IndexByte("._%+-", c) >= 0
}

// cloudKeyAt matches the cloud and SaaS key formats that start at i.
func cloudKeyAt(s string, i int) match {
	if i > 0 && isAlnum(s[i-1]) {
		return match{}
	}
	rest := s[i:]
	run := func(from int, ok func(byte) bool) int {
		j := from
		for j < len(rest) && ok(rest[j]) {
			j++
		}
		return j
	}
	upperDigit := func(c byte) bool { return isDigit(c) || c >= 'A' && c <= 'Z' }
	word := func(c byte) bool { return isB64URL(c) }
	fixed := func(prefixLen, n int, ok func(byte) bool) match {
		e := run(prefixLen, ok)
		if e-prefixLen != n || e < len(rest) && isAlnum(rest[e]) {
			return match{}
		}
		return match{start: i, end: i + e, value: rest[:e]}
	}
	atLeast := func(prefixLen, n int, ok func(byte) bool) match {
		e := run(prefixLen, ok)
		if e-prefixLen < n {
			return match{}
		}
		return match{start: i, end: i + e, value: rest[:e]}
	}
	// keyValue tokenizes the value after an Azure connection-string key.
	keyValue := func(prefix string) match {
		e := run(len(prefix), func(c byte) bool { return c != ';' && c != '"' && c != '\'' && c != '&' && c != ' ' && c != ',' })
		if e-len(prefix) < 8 {
			return match{}
		}
		return match{start: i, end: i + e, keep: len(prefix), value: rest[len(prefix):e]}
	}
	if len(rest) < 12 {
		return match{}
	}
	switch rest[0] {
	case 'A':
		switch rest[:4] {
		case "AKIA", "ASIA", "AGPA", "AIDA", "AROA", "AIPA", "ANPA", "ANVA":
			return fixed(4, 16, upperDigit)
		case "AIza":
			return fixed(4, 35, word)
		}
		if strings.HasPrefix(rest, "AccountKey=") {
			return keyValue("AccountKey=")
		}
	case 'S':
		if strings.HasPrefix(rest, "SharedAccessKey=") {
			return keyValue("SharedAccessKey=")
		}
	case 'y':
		if strings.HasPrefix(rest, "ya29.") {
			return atLeast(5, 20, func(c byte) bool { return word(c) || c == '.' })
		}
	case 'g':
		if strings.HasPrefix(rest, "github_pat_") {
			return atLeast(11, 22, word)
		}
		if rest[0:2] == "gh" && strings.IndexByte("pousr", rest[2]) >= 0 && rest[3] == '_' {
			return atLeast(4, 36, isAlnum)
		}
	case 'x':
		if rest[0:3] == "xox" && strings.IndexByte("baprs", rest[3]) >= 0 && rest[4] == '-' {
			return atLeast(5, 10, func(c byte) bool { return isAlnum(c) || c == '-' })
		}
	}
	return match{}
}
