package api

import (
	"encoding/json"
	"net/http"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/vigilhq/vigil/news2"
)

// The OpenAPI 3.1 document is generated from the route table and the Go types of bodies and
// answers, so it cannot drift from the router; a test compares it with the registered routes.

var (
	openapiOnce sync.Once
	openapiDoc  []byte
)

func (s *Server) openapi(c *gin.Context) {
	openapiOnce.Do(func() { openapiDoc, _ = json.MarshalIndent(s.spec(), "", "  ") })
	c.Data(http.StatusOK, "application/json", openapiDoc)
}

var ginParam = regexp.MustCompile(`:([a-z]+)`)

// OpenAPIPath turns a Gin path into an OpenAPI one: /hospitals/:h -> /hospitals/{h}.
func OpenAPIPath(p string) string { return ginParam.ReplaceAllString(p, "{$1}") }

func (s *Server) spec() map[string]any {
	schemas := map[string]any{
		"Problem": schemaOf(reflect.TypeOf(Problem{}), nil),
	}
	paths := map[string]map[string]any{}
	for _, r := range s.table() {
		p := "/api/v1" + OpenAPIPath(r.path)
		if paths[p] == nil {
			paths[p] = map[string]any{}
		}
		op := map[string]any{
			"summary":     r.summary,
			"tags":        []string{r.tag},
			"operationId": strings.ToLower(r.method) + strings.NewReplacer("/", "_", ":", "", "{", "", "}", "").Replace(r.path),
			"description": "Access: " + r.access.String() + ".",
		}
		var params []any
		for _, m := range ginParam.FindAllStringSubmatch(r.path, -1) {
			params = append(params, map[string]any{"name": m[1], "in": "path", "required": true,
				"description": paramKind(m[1]) + " ID", "schema": map[string]any{"type": "string", "pattern": `^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`}})
		}
		for _, q := range r.query {
			params = append(params, map[string]any{"name": q.name, "in": "query", "required": false, "description": q.desc, "schema": map[string]any{"type": "string"}})
		}
		if len(params) > 0 {
			op["parameters"] = params
		}
		if r.access != anyone {
			op["security"] = []any{map[string]any{"bearer": []string{}}}
		}
		if r.body != nil {
			op["requestBody"] = map[string]any{"required": !r.optional, "content": map[string]any{
				"application/json": map[string]any{"schema": schemaOf(reflect.TypeOf(r.body), schemas)}}}
		}
		ok := map[string]any{"description": http.StatusText(r.status)}
		if r.resp != nil {
			ok["content"] = map[string]any{"application/json": map[string]any{"schema": schemaOf(reflect.TypeOf(r.resp), schemas)}}
		}
		problem := map[string]any{"description": "Error (RFC 9457)", "content": map[string]any{
			"application/problem+json": map[string]any{"schema": map[string]any{"$ref": "#/components/schemas/Problem"}}}}
		op["responses"] = map[string]any{itoa(r.status): ok, "default": problem}
		paths[p][strings.ToLower(r.method)] = op
	}
	return map[string]any{
		"openapi": "3.1.0",
		"info": map[string]any{"title": "Vigil REST API", "version": "1",
			"description": "Clinician and integrator API of Vigil. Errors are RFC 9457 problem JSON; lists are cursor-paginated."},
		"paths": paths,
		"components": map[string]any{
			"schemas":         schemas,
			"securitySchemes": map[string]any{"bearer": map[string]any{"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
		},
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

var (
	timeType = reflect.TypeOf(time.Time{})
	rawType  = reflect.TypeOf(json.RawMessage{})
	riskType = reflect.TypeOf(news2.Risk{})
)

// schemaOf builds a JSON Schema (OpenAPI 3.1 dialect) for a Go type from its json tags. Named
// struct types go into schemas and are referenced.
func schemaOf(t reflect.Type, schemas map[string]any) map[string]any {
	nullable := false
	for t.Kind() == reflect.Pointer {
		t, nullable = t.Elem(), true
	}
	s := schemaOfType(t, schemas)
	if nullable {
		return map[string]any{"oneOf": []any{s, map[string]any{"type": "null"}}}
	}
	return s
}

func schemaOfType(t reflect.Type, schemas map[string]any) map[string]any {
	switch {
	case t == timeType:
		return map[string]any{"type": "string", "format": "date-time"}
	case t == rawType:
		return map[string]any{"type": "object"}
	case t == riskType:
		return riskSchema(schemas)
	}
	switch t.Kind() {
	case reflect.String:
		return map[string]any{"type": "string"}
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return map[string]any{"type": "integer"}
	case reflect.Float32, reflect.Float64:
		return map[string]any{"type": "number"}
	case reflect.Slice, reflect.Array:
		return map[string]any{"type": "array", "items": schemaOf(t.Elem(), schemas)}
	case reflect.Map:
		return map[string]any{"type": "object", "additionalProperties": schemaOf(t.Elem(), schemas)}
	case reflect.Interface:
		return map[string]any{}
	case reflect.Struct:
		name := t.Name()
		if i := strings.Index(name, "["); i >= 0 { // list[T]: name it after T
			name = "ListOf" + t.Field(0).Type.Elem().Name()
		}
		if schemas != nil && name != "" {
			if _, done := schemas[name]; !done {
				schemas[name] = map[string]any{} // guard against recursion
				schemas[name] = structSchema(t, schemas)
			}
			return map[string]any{"$ref": "#/components/schemas/" + name}
		}
		return structSchema(t, schemas)
	}
	return map[string]any{}
}

func structSchema(t reflect.Type, schemas map[string]any) map[string]any {
	props := map[string]any{}
	var required []string
	var walk func(reflect.Type)
	walk = func(t reflect.Type) {
		for i := range t.NumField() {
			f := t.Field(i)
			if f.Anonymous && f.Type.Kind() == reflect.Struct {
				walk(f.Type)
				continue
			}
			if !f.IsExported() {
				continue
			}
			tag := f.Tag.Get("json")
			name, opts, _ := strings.Cut(tag, ",")
			if name == "-" {
				continue
			}
			if name == "" {
				name = f.Name
			}
			props[name] = schemaOf(f.Type, schemas)
			if !strings.Contains(opts, "omitempty") && f.Type.Kind() != reflect.Pointer {
				required = append(required, name)
			}
		}
	}
	walk(t)
	s := map[string]any{"type": "object", "properties": props, "additionalProperties": false}
	if len(required) > 0 {
		s["required"] = required
	}
	return s
}

func riskSchema(schemas map[string]any) map[string]any {
	if schemas != nil {
		if _, ok := schemas["Risk"]; !ok {
			contrib := map[string]any{}
			for p := news2.Param(0); p < news2.NumParams; p++ {
				contrib[p.String()] = map[string]any{"type": "integer", "minimum": 0, "maximum": 3}
			}
			keys := make([]string, 0, news2.NumParams)
			for p := news2.Param(0); p < news2.NumParams; p++ {
				keys = append(keys, p.String())
			}
			schemas["Risk"] = map[string]any{
				"type":        "object",
				"description": "NEWS2 risk: the score, its RCP clinical-risk band, and per-parameter sub-scores that add up to it.",
				"properties": map[string]any{
					"score":         map[string]any{"type": "integer", "minimum": 0, "maximum": 20},
					"level":         map[string]any{"type": "string", "enum": []string{"low", "low-medium", "medium", "high"}},
					"contributions": map[string]any{"type": "object", "properties": contrib, "required": keys},
					"complete":      map[string]any{"type": "boolean"},
					"missing":       map[string]any{"type": "array", "items": map[string]any{"type": "string", "enum": keys}},
				},
				"required": []string{"score", "level", "contributions", "complete", "missing"},
			}
		}
		return map[string]any{"$ref": "#/components/schemas/Risk"}
	}
	return map[string]any{"type": "object"}
}
