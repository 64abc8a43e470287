package adminapi

import (
	"encoding"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode"
)

// openapiPath is where the document is served. It needs no API key: it is
// not secret, and clients fetch it before they hold one.
const openapiPath = "/api/v1/openapi.json"

// openapiRoutes serves the OpenAPI document.
func (a *api) openapiRoutes() []route {
	return []route{{method: http.MethodGet, path: openapiPath, h: a.serveOpenAPI,
		summary: "This OpenAPI 3.1 document (no API key needed)", resp: "application/json"}}
}

// serveOpenAPI serves GET /api/v1/openapi.json.
func (a *api) serveOpenAPI(w http.ResponseWriter, _ *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	// Unlike audit records, the document may be cached, but revalidated:
	// it changes with the build.
	h.Set("Cache-Control", "no-cache")
	_, _ = w.Write(a.openapi)
}

// apiDescription is the document's info.description.
const apiDescription = `The admin API of caddy-audit: search and export the audit trail, work
alerts, verify the integrity chain, and manage workspaces and detectors.

Authenticate with an API key: 'Authorization: Bearer <key>'. Each operation
names the permission it needs (x-required-permission); a key whose role
lacks it gets 403, and a key scoped to one workspace never sees another's
records (single records of another workspace answer 404). Errors are RFC
9457 problem details (application/problem+json). Every call is itself
recorded as an audit event in the reserved workspace _audit.`

// Problem statuses by the facts of a route. 405 is not listed: it answers a
// method no operation defines, so it belongs to no operation.
var (
	// authProblems can answer every authenticated route: no or a bad key, too many bad keys,
	// a missing permission or scope, a store failure, a store closed by a
	// reload.
	authProblems = []int{http.StatusUnauthorized, http.StatusForbidden, http.StatusTooManyRequests, http.StatusInternalServerError, http.StatusServiceUnavailable}
	// bodyProblems answer routes with a request body: malformed,
	// oversized, or of the wrong content type.
	bodyProblems = []int{http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType}
)

// inferredProblems are the statuses an authenticated route may answer by
// the API's generic rules, so the document holds them without each route
// listing them:
//   - 400: every authenticated route refuses query parameters it does not
//     document (noQuery, parseParams), and a malformed path value;
//   - 409: a route that changes state (any method but GET) may find the
//     state in the way (a duplicate name, a record already revoked, an
//     alert already closed, a source already imported);
//   - 404: a POST whose JSON body may name other records (a key's role,
//     a binding's principal and role) finds one missing.
func inferredProblems(rt route) []int {
	out := []int{http.StatusBadRequest}
	if rt.method != http.MethodGet {
		out = append(out, http.StatusConflict)
	}
	if _, isCT := rt.body.(string); rt.method == http.MethodPost && rt.body != nil && !isCT {
		out = append(out, http.StatusNotFound)
	}
	return out
}

// buildOpenAPI renders the OpenAPI 3.1 document of routes.
func buildOpenAPI(routes []route) ([]byte, error) {
	g := newSchemaGen()
	// Every named type first, so names are chosen knowing all of them.
	g.collect(reflect.TypeFor[problem]())
	for _, rt := range routes {
		for _, v := range []any{rt.body, rt.resp} {
			if v != nil {
				if _, isCT := v.(string); !isCT {
					g.collect(reflect.TypeOf(v))
				}
			}
		}
	}
	g.assignNames()

	paths := map[string]map[string]any{}
	ids := map[string]string{}
	for _, rt := range routes {
		op, err := g.operation(rt)
		if err != nil {
			return nil, err
		}
		id := op["operationId"].(string)
		if prev, dup := ids[id]; dup {
			return nil, fmt.Errorf("operationId %s of %s %s is also %s's", id, rt.method, rt.path, prev)
		}
		ids[id] = rt.method + " " + rt.path
		if paths[rt.path] == nil {
			paths[rt.path] = map[string]any{}
		}
		paths[rt.path][strings.ToLower(rt.method)] = op
	}
	doc := map[string]any{
		"openapi": "3.1.0",
		"info": map[string]any{
			"title":       "caddy-audit admin API",
			"version":     "1.0.0",
			"description": apiDescription,
		},
		// Relative: the document is served by the API it describes, on
		// whatever listener the operator chose.
		"servers": []any{map[string]any{"url": "/", "description": "The admin API listener serving this document"}},
		"paths":   paths,
		"components": map[string]any{
			"schemas": g.schemas,
			"securitySchemes": map[string]any{
				"bearerAuth": map[string]any{
					"type": "http", "scheme": "bearer", "bearerFormat": "API key",
					"description": "An API key (it starts with " + keyPrefix + "), shown once when created.",
				},
			},
		},
		"tags": g.tags(routes),
	}
	return json.MarshalIndent(doc, "", "  ")
}

// tags lists the operation tags, sorted.
func (g *schemaGen) tags(routes []route) []any {
	var names []string
	for _, rt := range routes {
		if t := routeTag(rt.path); !slices.Contains(names, t) {
			names = append(names, t)
		}
	}
	slices.Sort(names)
	out := make([]any, 0, len(names))
	for _, n := range names {
		out = append(out, map[string]any{"name": n})
	}
	return out
}

// routeTag groups a path by its first segment under /api/v1 (events,
// alerts...); the paths outside it are "system".
func routeTag(path string) string {
	rest, ok := strings.CutPrefix(path, "/api/v1/")
	if !ok {
		return "system"
	}
	seg, _, _ := strings.Cut(rest, "/")
	return strings.TrimSuffix(seg, ".json")
}

var pathParam = regexp.MustCompile(`\{([A-Za-z_][A-Za-z0-9_]*)\.*\}`)

// operationID makes a stable, unique id from method and path:
// GET /api/v1/alerts/{id}/comments is getAlertsByIdComments.
func operationID(method, path string) string {
	var b strings.Builder
	b.WriteString(strings.ToLower(method))
	for _, seg := range strings.Split(strings.TrimPrefix(path, "/api/v1"), "/") {
		if m := pathParam.FindStringSubmatch(seg); m != nil {
			b.WriteString("By")
			seg = m[1]
		}
		for _, part := range strings.FieldsFunc(seg, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) }) {
			b.WriteString(strings.ToUpper(part[:1]) + part[1:])
		}
	}
	return b.String()
}

// operation describes one route.
func (g *schemaGen) operation(rt route) (map[string]any, error) {
	desc := rt.summary
	op := map[string]any{
		"operationId": operationID(rt.method, rt.path),
		"summary":     rt.summary,
		"tags":        []string{routeTag(rt.path)},
	}
	var problems []int
	var params []any
	for _, m := range pathParam.FindAllStringSubmatch(rt.path, -1) {
		params = append(params, map[string]any{
			"name": m[1], "in": "path", "required": true, "schema": map[string]any{"type": "string"},
		})
		problems = append(problems, http.StatusNotFound)
	}
	for _, q := range rt.query {
		typ := q.typ
		if typ == "" {
			typ = "string"
		}
		schema := map[string]any{"type": typ}
		if q.format != "" {
			schema["format"] = q.format
		}
		params = append(params, map[string]any{"name": q.name, "in": "query", "description": q.doc, "schema": schema})
		problems = append(problems, http.StatusBadRequest)
	}
	if params != nil {
		op["parameters"] = params
	}
	if rt.body != nil {
		op["requestBody"] = map[string]any{"content": g.content(rt.body)}
		problems = append(problems, bodyProblems...)
	}
	if rt.perm != "" {
		op["security"] = []any{map[string]any{"bearerAuth": []string{}}}
		op["x-required-permission"] = rt.perm
		desc += "\n\nRequires the `" + rt.perm + "` permission."
		problems = append(problems, authProblems...)
		problems = append(problems, inferredProblems(rt)...)
	} else {
		op["security"] = []any{} // explicitly public
	}
	problems = append(problems, rt.problems...)
	op["description"] = desc

	ok := http.StatusOK
	if rt.created {
		ok = http.StatusCreated
	}
	success := map[string]any{"description": http.StatusText(ok)}
	if rt.resp != nil {
		success["content"] = g.content(rt.resp)
	}
	responses := map[string]any{fmt.Sprint(ok): success}
	slices.Sort(problems)
	for _, status := range slices.Compact(problems) {
		responses[fmt.Sprint(status)] = map[string]any{
			"description": http.StatusText(status),
			"content": map[string]any{"application/problem+json": map[string]any{
				"schema": g.schema(reflect.TypeFor[problem]()),
			}},
		}
	}
	op["responses"] = responses
	return op, nil
}

// content is the content map of a body: a Go value is JSON of its type;
// a string names a content type whose body is not JSON, or is JSON of
// no Go type.
func (g *schemaGen) content(v any) map[string]any {
	if ct, ok := v.(string); ok {
		schema := map[string]any{"type": "string"}
		if ct == "application/json" {
			schema = map[string]any{"type": "object"}
		} else if !strings.HasPrefix(ct, "text/") && !strings.Contains(ct, "json") {
			schema["contentMediaType"] = ct
		}
		return map[string]any{ct: map[string]any{"schema": schema}}
	}
	return map[string]any{"application/json": map[string]any{"schema": g.schema(reflect.TypeOf(v))}}
}

// schemaGen reflects Go types into JSON Schema (2020-12, as OpenAPI 3.1
// uses it), by encoding/json's rules. Named struct types become
// components/schemas entries referenced by $ref, which also makes
// recursive types safe.
type schemaGen struct {
	// names maps each named struct type to its schema name.
	names map[reflect.Type]string
	// order is the named types in the order collect met them.
	order []reflect.Type
	// schemas are the generated components/schemas.
	schemas map[string]any
}

func newSchemaGen() *schemaGen {
	return &schemaGen{names: map[reflect.Type]string{}, schemas: map[string]any{}}
}

var (
	timeType          = reflect.TypeFor[time.Time]()
	rawMessageType    = reflect.TypeFor[json.RawMessage]()
	textMarshalerType = reflect.TypeFor[encoding.TextMarshaler]()
)

// special returns the schema of a type encoding/json writes in its own way
// rather than by its kind.
func special(t reflect.Type) (map[string]any, bool) {
	switch {
	case t == timeType:
		return map[string]any{"type": "string", "format": "date-time"}, true
	case t == rawMessageType:
		return map[string]any{"type": "object"}, true
	case t.Implements(textMarshalerType) || reflect.PointerTo(t).Implements(textMarshalerType):
		return map[string]any{"type": "string"}, true
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Uint8:
		return map[string]any{"type": "string", "contentEncoding": "base64"}, true
	}
	return nil, false
}

// collect records every named struct type reachable from t.
func (g *schemaGen) collect(t reflect.Type) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if _, ok := special(t); ok {
		return
	}
	switch t.Kind() {
	case reflect.Slice, reflect.Array, reflect.Map:
		g.collect(t.Elem())
	case reflect.Struct:
		if _, seen := g.names[t]; seen {
			return
		}
		if t.Name() != "" {
			g.names[t] = "" // named in assignNames
			g.order = append(g.order, t)
		}
		for _, f := range jsonFields(t) {
			g.collect(f.typ)
		}
	}
}

// assignNames names each collected type after its Go name, capitalized;
// when types of other packages share a name, this package's type keeps
// it (so the error schema is always "Problem") and the others get their
// package name as a prefix. Names depend only on the set of types, not
// on the route order.
func (g *schemaGen) assignNames() {
	own := reflect.TypeFor[api]().PkgPath()
	count := map[string]int{}
	for _, t := range g.order {
		count[baseName(t)]++
	}
	for _, t := range g.order {
		name := baseName(t)
		if count[name] > 1 && t.PkgPath() != own {
			pkg := t.PkgPath()
			pkg = pkg[strings.LastIndex(pkg, "/")+1:]
			name = exported(pkg) + name
		}
		g.names[t] = name
	}
}

// baseName is t's Go name made a valid, capitalized schema name (type
// arguments of generic types become part of it).
func baseName(t reflect.Type) string {
	var b strings.Builder
	for _, part := range strings.FieldsFunc(t.Name(), func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) }) {
		if i := strings.LastIndex(part, "."); i >= 0 {
			part = part[i+1:]
		}
		b.WriteString(exported(part))
	}
	return b.String()
}

func exported(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// anyTypes is the schema of an interface value: any JSON at all, with
// the types spelled out so every property has one.
var anyTypes = []string{"object", "array", "string", "number", "boolean", "null"}

// schema returns the schema of t: a $ref for named structs, inline
// otherwise. Pointers are nullable.
func (g *schemaGen) schema(t reflect.Type) map[string]any {
	if t.Kind() == reflect.Pointer {
		inner := g.schema(t.Elem())
		if ref, ok := inner["$ref"]; ok {
			return map[string]any{"anyOf": []any{map[string]any{"$ref": ref}, map[string]any{"type": "null"}}}
		}
		if typ, ok := inner["type"].(string); ok {
			inner["type"] = []string{typ, "null"}
		}
		return inner
	}
	if s, ok := special(t); ok {
		return s
	}
	switch t.Kind() {
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Int, reflect.Int64:
		return map[string]any{"type": "integer", "format": "int64"}
	case reflect.Int8, reflect.Int16, reflect.Int32:
		return map[string]any{"type": "integer", "format": "int32"}
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return map[string]any{"type": "integer", "minimum": 0}
	case reflect.Float32, reflect.Float64:
		return map[string]any{"type": "number"}
	case reflect.String:
		return map[string]any{"type": "string"}
	case reflect.Slice, reflect.Array:
		return map[string]any{"type": "array", "items": g.schema(t.Elem())}
	case reflect.Map:
		return map[string]any{"type": "object", "additionalProperties": g.schema(t.Elem())}
	case reflect.Struct:
		name, named := g.names[t]
		if !named || name == "" {
			if t.Name() == "" {
				return g.object(t) // anonymous struct: inline
			}
			// A type collect did not see (not reachable from a route):
			// name it now.
			g.collect(t)
			g.names[t] = baseName(t)
			name = g.names[t]
		}
		if _, done := g.schemas[name]; !done {
			g.schemas[name] = map[string]any{} // placeholder: recursion stops here
			g.schemas[name] = g.object(t)
		}
		return map[string]any{"$ref": "#/components/schemas/" + name}
	}
	return map[string]any{"type": anyTypes}
}

// object is the object schema of struct t's JSON fields.
func (g *schemaGen) object(t reflect.Type) map[string]any {
	props := map[string]any{}
	var required []string
	for _, f := range jsonFields(t) {
		s := g.schema(f.typ)
		if f.asString {
			s = map[string]any{"type": "string"}
		}
		props[f.name] = s
		if !f.optional {
			required = append(required, f.name)
		}
	}
	obj := map[string]any{"type": "object", "properties": props}
	if len(required) > 0 {
		slices.Sort(required)
		obj["required"] = required
	}
	return obj
}

// jsonField is one field as encoding/json writes it.
type jsonField struct {
	name string
	typ  reflect.Type
	// optional is set by omitempty or omitzero: the field may be absent.
	optional bool
	// asString is the ",string" option: a number or bool written quoted.
	asString bool
}

// jsonFields lists t's fields as encoding/json writes them: exported,
// not "-", named by their tag, and the fields of untagged embedded
// structs promoted (a shallower field wins over a deeper one of the same
// name).
func jsonFields(t reflect.Type) []jsonField {
	var out []jsonField
	seen := map[string]bool{}
	current := []reflect.Type{t}
	visited := map[reflect.Type]bool{}
	for len(current) > 0 {
		var next []reflect.Type
		levelNames := map[string]bool{}
		for _, st := range current {
			if visited[st] {
				continue
			}
			visited[st] = true
			for i := range st.NumField() {
				f := st.Field(i)
				tag := f.Tag.Get("json")
				if tag == "-" {
					continue
				}
				name, opts, _ := strings.Cut(tag, ",")
				ft := f.Type
				if f.Anonymous && name == "" {
					et := ft
					if et.Kind() == reflect.Pointer {
						et = et.Elem()
					}
					if et.Kind() == reflect.Struct {
						next = append(next, et)
						continue
					}
				}
				if !f.IsExported() {
					continue
				}
				if name == "" {
					name = f.Name
				}
				if seen[name] || levelNames[name] {
					continue // encoding/json: the shallower (or first) field wins
				}
				levelNames[name] = true
				optional := false
				asString := false
				for _, o := range strings.Split(opts, ",") {
					switch o {
					case "omitempty", "omitzero":
						optional = true
					case "string":
						asString = true
					}
				}
				out = append(out, jsonField{name: name, typ: ft, optional: optional, asString: asString})
			}
		}
		for n := range levelNames {
			seen[n] = true
		}
		current = next
	}
	return out
}
