package adminapi

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// fetchOpenAPI gets and decodes the document, without an API key.
func fetchOpenAPI(t *testing.T, e *testEnv) map[string]any {
	t.Helper()
	w := e.get(openapiPath, "")
	if w.Code != http.StatusOK {
		t.Fatalf("GET %s = %d %s", openapiPath, w.Code, w.Body)
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	var doc map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &doc); err != nil {
		t.Fatalf("the document does not parse: %v", err)
	}
	return doc
}

// resolve follows a local $ref.
func resolve(doc map[string]any, ref string) (any, bool) {
	var cur any = doc
	for _, part := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[part]; !ok {
			return nil, false
		}
	}
	return cur, true
}

// walk calls fn on every map in v, with its JSON path.
func walk(v any, path string, fn func(path string, m map[string]any)) {
	switch x := v.(type) {
	case map[string]any:
		fn(path, x)
		for k, c := range x {
			walk(c, path+"/"+k, fn)
		}
	case []any:
		for i, c := range x {
			walk(c, fmt.Sprintf("%s[%d]", path, i), fn)
		}
	}
}

func TestOpenAPIDocument(t *testing.T) {
	e := newEnv(t, nil)
	doc := fetchOpenAPI(t, e)
	if doc["openapi"] != "3.1.0" {
		t.Errorf("openapi = %v, want 3.1.0", doc["openapi"])
	}
	info, _ := doc["info"].(map[string]any)
	if info["title"] == "" || info["version"] == "" || info["description"] == "" {
		t.Errorf("info = %v", info)
	}
	if servers, _ := doc["servers"].([]any); len(servers) != 1 || servers[0].(map[string]any)["url"] != "/" {
		t.Errorf("servers = %v, want one relative server", doc["servers"])
	}
	paths := doc["paths"].(map[string]any)
	routes := e.h.(*api).routes()

	t.Run("every route is an operation", func(t *testing.T) {
		ops := 0
		for _, p := range paths {
			ops += len(p.(map[string]any))
		}
		if ops != len(routes) || ops < 25 {
			t.Errorf("%d operations for %d routes", ops, len(routes))
		}
		for _, rt := range routes {
			op, ok := paths[rt.path].(map[string]any)[strings.ToLower(rt.method)].(map[string]any)
			if !ok {
				t.Errorf("%s %s is not in the document", rt.method, rt.path)
				continue
			}
			if op["summary"] != rt.summary {
				t.Errorf("%s %s summary = %v", rt.method, rt.path, op["summary"])
			}
			responses := op["responses"].(map[string]any)
			ok2xx := "200"
			if rt.created {
				ok2xx = "201"
			}
			if _, ok := responses[ok2xx]; !ok {
				t.Errorf("%s %s lacks its %s response", rt.method, rt.path, ok2xx)
			}
			security, _ := op["security"].([]any)
			if rt.perm == "" {
				if len(security) != 0 || op["x-required-permission"] != nil {
					t.Errorf("%s %s is public but has security %v", rt.method, rt.path, security)
				}
				continue
			}
			if len(security) != 1 || op["x-required-permission"] != rt.perm || !strings.Contains(op["description"].(string), rt.perm) {
				t.Errorf("%s %s: security %v, permission %v, description %q", rt.method, rt.path, security, op["x-required-permission"], op["description"])
			}
			for _, code := range []string{"401", "403"} {
				r, ok := responses[code].(map[string]any)
				if !ok {
					t.Errorf("%s %s lacks %s", rt.method, rt.path, code)
					continue
				}
				schema := r["content"].(map[string]any)["application/problem+json"].(map[string]any)["schema"].(map[string]any)
				if schema["$ref"] != "#/components/schemas/Problem" {
					t.Errorf("%s %s %s schema = %v", rt.method, rt.path, code, schema)
				}
			}
		}
	})

	t.Run("operation ids are unique", func(t *testing.T) {
		seen := map[string]string{}
		for path, p := range paths {
			for method, op := range p.(map[string]any) {
				id, _ := op.(map[string]any)["operationId"].(string)
				if id == "" {
					t.Errorf("%s %s has no operationId", method, path)
				}
				if prev, dup := seen[id]; dup {
					t.Errorf("operationId %s of %s %s is also %s's", id, method, path, prev)
				}
				seen[id] = method + " " + path
			}
		}
	})

	t.Run("path parameters are declared", func(t *testing.T) {
		re := regexp.MustCompile(`\{([^}]+)\}`)
		for path, p := range paths {
			for method, op := range p.(map[string]any) {
				declared := map[string]bool{}
				params, _ := op.(map[string]any)["parameters"].([]any)
				for _, prm := range params {
					m := prm.(map[string]any)
					if m["in"] == "path" {
						declared[m["name"].(string)] = m["required"] == true
					}
				}
				want := re.FindAllStringSubmatch(path, -1)
				if len(declared) != len(want) {
					t.Errorf("%s %s declares path parameters %v", method, path, declared)
				}
				for _, m := range want {
					if !declared[m[1]] {
						t.Errorf("%s %s: path parameter %s not declared as required", method, path, m[1])
					}
				}
			}
		}
	})

	t.Run("every $ref resolves", func(t *testing.T) {
		refs := 0
		walk(doc, "", func(path string, m map[string]any) {
			ref, ok := m["$ref"].(string)
			if !ok {
				return
			}
			refs++
			if _, ok := resolve(doc, ref); !ok || !strings.HasPrefix(ref, "#/") {
				t.Errorf("%s: $ref %q does not resolve", path, ref)
			}
		})
		if refs < 20 {
			t.Errorf("only %d $refs", refs)
		}
	})

	t.Run("every property has a type", func(t *testing.T) {
		schemas := doc["components"].(map[string]any)["schemas"].(map[string]any)
		var typed func(s map[string]any) bool
		typed = func(s map[string]any) bool {
			if _, ok := s["type"]; ok {
				return true
			}
			if ref, ok := s["$ref"].(string); ok {
				_, ok := resolve(doc, ref)
				return ok
			}
			alts, ok := s["anyOf"].([]any)
			if !ok || len(alts) == 0 {
				return false
			}
			for _, alt := range alts {
				if !typed(alt.(map[string]any)) {
					return false
				}
			}
			return true
		}
		props := 0
		walk(schemas, "#/components/schemas", func(path string, m map[string]any) {
			p, ok := m["properties"].(map[string]any)
			if !ok {
				return
			}
			for name, s := range p {
				props++
				if !typed(s.(map[string]any)) {
					t.Errorf("%s/properties/%s has no type: %v", path, name, s)
				}
				if items, ok := s.(map[string]any)["items"].(map[string]any); ok && !typed(items) {
					t.Errorf("%s/properties/%s/items has no type", path, name)
				}
			}
		})
		if props < 100 {
			t.Errorf("only %d properties checked", props)
		}
	})

	t.Run("security scheme", func(t *testing.T) {
		bearer, _ := resolve(doc, "#/components/securitySchemes/bearerAuth")
		if m, _ := bearer.(map[string]any); m["type"] != "http" || m["scheme"] != "bearer" {
			t.Errorf("bearerAuth = %v", bearer)
		}
	})
}

// The document is public and needs no key; every other /api/v1 route does.
func TestOpenAPIIsPublic(t *testing.T) {
	e := newEnv(t, nil)
	fetchOpenAPI(t, e)
	if n := len(e.rec.recorded()); n != 0 {
		t.Errorf("fetching the document recorded %d events", n)
	}
	wantProblem(t, e.do(http.MethodPost, openapiPath, ""), http.StatusMethodNotAllowed, "GET")
}

// Schema types that exercise the reflection rules.
type (
	schemaLeaf struct {
		Value string `json:"value"`
	}
	schemaBase struct {
		Shared  string `json:"shared"`
		Shadow  int    `json:"shadow"`
		private int    // unexported: not in the schema
	}
	schemaNode struct {
		schemaBase
		Shadow   string            `json:"shadow"` // wins over the embedded one
		Name     string            `json:"name,omitempty"`
		When     time.Time         `json:"when"`
		Raw      []byte            `json:"raw"`
		Maybe    *int              `json:"maybe"`
		Leaf     *schemaLeaf       `json:"leaf,omitzero"`
		Children []schemaNode      `json:"children"`
		Labels   map[string]string `json:"labels"`
		Anything any               `json:"anything"`
		Count    uint64            `json:"count,string"`
		Skipped  string            `json:"-"`
		Untagged bool
		Dur      time.Duration `json:"dur"`
	}
)

func TestSchemaReflection(t *testing.T) {
	_ = schemaBase{private: 1}
	g := newSchemaGen()
	g.collect(reflect.TypeFor[schemaNode]())
	g.assignNames()
	ref := g.schema(reflect.TypeFor[schemaNode]())
	if ref["$ref"] != "#/components/schemas/SchemaNode" {
		t.Fatalf("schema = %v", ref)
	}
	node := g.schemas["SchemaNode"].(map[string]any)
	props := node["properties"].(map[string]any)
	tests := []struct {
		prop string
		want string // the property's schema as JSON
	}{
		{"shared", `{"type":"string"}`},
		{"shadow", `{"type":"string"}`},
		{"name", `{"type":"string"}`},
		{"when", `{"format":"date-time","type":"string"}`},
		{"raw", `{"contentEncoding":"base64","type":"string"}`},
		{"maybe", `{"format":"int64","type":["integer","null"]}`},
		{"leaf", `{"anyOf":[{"$ref":"#/components/schemas/SchemaLeaf"},{"type":"null"}]}`},
		{"children", `{"items":{"$ref":"#/components/schemas/SchemaNode"},"type":"array"}`},
		{"labels", `{"additionalProperties":{"type":"string"},"type":"object"}`},
		{"anything", `{"type":["object","array","string","number","boolean","null"]}`},
		{"count", `{"type":"string"}`},
		{"Untagged", `{"type":"boolean"}`},
		{"dur", `{"format":"int64","type":"integer"}`},
	}
	for _, tt := range tests {
		got, _ := json.Marshal(props[tt.prop])
		if string(got) != tt.want {
			t.Errorf("%s = %s, want %s", tt.prop, got, tt.want)
		}
	}
	if len(props) != len(tests) {
		t.Errorf("properties %v, want exactly %d", slices.Sorted(maps.Keys(props)), len(tests))
	}
	required, _ := json.Marshal(node["required"])
	if want := `["Untagged","anything","children","count","dur","labels","maybe","raw","shadow","shared","when"]`; string(required) != want {
		t.Errorf("required = %s, want %s", required, want)
	}
}

func TestOperationID(t *testing.T) {
	for _, tt := range []struct{ method, path, want string }{
		{"GET", "/api/v1/alerts/{id}", "getAlertsById"},
		{"POST", "/api/v1/alerts/{id}/false_positive", "postAlertsByIdFalsePositive"},
		{"GET", "/api/v1/openapi.json", "getOpenapiJson"},
		{"GET", "/healthz", "getHealthz"},
		{"POST", "/api/v1/detectors/sweep", "postDetectorsSweep"},
	} {
		if got := operationID(tt.method, tt.path); got != tt.want {
			t.Errorf("operationID(%s %s) = %s, want %s", tt.method, tt.path, got, tt.want)
		}
	}
}
