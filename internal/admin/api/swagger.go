package api

import (
	"net/http"
	"strconv"
	"strings"
)

// Spec returns the OpenAPI (Swagger 2.0, as flask-restx writes) document
// built from the route table and the models the handlers validate with.
func (a *API) Spec() any {
	paths := map[string]map[string]any{}
	tags := []string{}
	seenTag := map[string]bool{}
	for _, rt := range a.routes {
		if !seenTag[rt.tag] {
			seenTag[rt.tag] = true
			tags = append(tags, rt.tag)
		}
		ops := paths[rt.path]
		if ops == nil {
			ops = map[string]any{}
			paths[rt.path] = ops
		}
		ops[strings.ToLower(rt.method)] = operation(rt)
	}
	defs := map[string]any{}
	for _, m := range allModels() {
		defs[m.name] = m.schema()
	}
	tagList := make([]any, len(tags))
	for i, t := range tags {
		tagList[i] = map[string]any{"name": t, "description": strings.ToUpper(t[:1]) + t[1:] + " operations"}
	}
	return map[string]any{
		"swagger":  "2.0",
		"basePath": a.opts.Prefix,
		"info": map[string]any{
			"title":       "Mailu API",
			"version":     "1.0",
			"description": "Mailu-compatible REST API served by Petrel",
		},
		"produces":            []string{"application/json"},
		"consumes":            []string{"application/json"},
		"securityDefinitions": map[string]any{"Bearer": map[string]any{"type": "apiKey", "in": "header", "name": "Authorization"}},
		"security":            []any{map[string]any{"Bearer": []string{}}},
		"tags":                tagList,
		"paths":               paths,
		"definitions":         defs,
		"responses": map[string]any{
			"ParseError":      map[string]any{"description": "When a mask can't be parsed"},
			"MaskError":       map[string]any{"description": "When any error occurs on mask"},
			"ValidationError": map[string]any{"description": "Input payload validation failed"},
		},
	}
}

func operation(rt route) map[string]any {
	var params []any
	for _, seg := range strings.Split(rt.path, "/") {
		if strings.HasPrefix(seg, "{") {
			name := strings.Trim(seg, "{}")
			params = append(params, map[string]any{"name": name, "in": "path", "required": true, "type": "string"})
		}
	}
	if rt.body != nil {
		params = append(params, map[string]any{"name": "payload", "in": "body", "required": true,
			"schema": map[string]any{"$ref": "#/definitions/" + rt.body.name}})
	}
	responses := map[string]any{}
	for _, r := range rt.resps {
		e := map[string]any{"description": r.desc}
		if r.model == nil && r.list {
			e["schema"] = map[string]any{"type": "array", "items": map[string]any{"type": "string"}}
		}
		if r.model != nil {
			ref := map[string]any{"$ref": "#/definitions/" + r.model.name}
			if r.list {
				e["schema"] = map[string]any{"type": "array", "items": ref}
			} else {
				e["schema"] = ref
			}
		}
		responses[strconv.Itoa(r.code)] = e
	}
	responses["401"] = map[string]any{"description": "Authorization header missing"}
	responses["403"] = map[string]any{"description": "Invalid authorization header"}
	responses["429"] = map[string]any{"description": "Too many failed attempts from this IP"}
	op := map[string]any{
		"operationId": rt.op,
		"summary":     rt.summary,
		"tags":        []string{rt.tag},
		"responses":   responses,
		"security":    []any{map[string]any{"Bearer": []string{}}},
	}
	if params != nil {
		op["parameters"] = params
	}
	return op
}

// schema is the JSON schema of a model, as flask-restx writes it.
func (m *model) schema() map[string]any {
	props := map[string]any{}
	var required []string
	for _, f := range m.fields {
		p := map[string]any{}
		switch f.typ {
		case "list":
			p["type"] = "array"
			p["items"] = map[string]any{"type": "string"}
		case "date":
			p["type"] = "string"
			p["format"] = "date"
		default:
			p["type"] = f.typ
		}
		if f.desc != "" {
			p["description"] = f.desc
		}
		if f.example != "" {
			p["example"] = f.example
		}
		if f.min != nil {
			p["minimum"] = *f.min
		}
		props[f.name] = p
		if f.required {
			required = append(required, f.name)
		}
	}
	s := map[string]any{"type": "object", "properties": props}
	if required != nil {
		s["required"] = required
	}
	return s
}

func (a *API) swaggerJSON(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, a.Spec())
}
