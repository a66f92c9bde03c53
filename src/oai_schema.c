/*
 * oai_schema.c - JSON Schema -> Gemini schema forms (see oai_schema.h).
 *
 * Recursion depth is bounded by the input's nesting (jansson's parser caps
 * it at 2048) and, for $ref inlining, by REF_DEPTH_MAX; deeper nesting than
 * DEPTH_MAX is cut to a plain OBJECT in the OpenAPI form.
 */
#include "oai_schema.h"

#include <string.h>

#include "util.h"

#define REF_DEPTH_MAX 4
#define DEPTH_MAX 64
/* Most schema nodes one conversion may produce: $ref inlining multiplies
 * (a definition with 100 properties that all refer back to it would
 * otherwise expand to 100^4 nodes). */
#define NODES_MAX 20000

static int in_list(const char *k, const char *const *list)
{
    for (; *list; list++)
        if (strcmp(k, *list) == 0)
            return 1;
    return 0;
}

/* Keywords whose value is an object mapping names to schemas. */
static const char *const map_kw[] = {"properties", "patternProperties",
                                     "$defs", "definitions",
                                     "dependentSchemas", NULL};
/* Keywords whose value is one schema (or, for items, a list of them). */
static const char *const one_kw[] = {
    "items", "additionalProperties", "not", "if", "then", "else", "contains",
    "propertyNames", "additionalItems", "unevaluatedProperties",
    "unevaluatedItems", NULL};
/* Keywords whose value is a list of schemas. */
static const char *const list_kw[] = {"anyOf", "oneOf", "allOf",
                                      "prefixItems", NULL};

static json_t *clean_node(const json_t *s);

static json_t *clean_list(const json_t *a)
{
    json_t *out = json_array();
    size_t i;
    const json_t *v;
    json_array_foreach(a, i, v)
        json_array_append_new(out, clean_node(v));
    return out;
}

static json_t *clean_node(const json_t *s)
{
    const char *k;
    const json_t *v;
    if (!json_is_object(s))
        return json_deep_copy(s);
    json_t *out = json_object();
    json_object_foreach((json_t *)s, k, v) {
        if (strcmp(k, "$schema") == 0 || strcmp(k, "$id") == 0)
            continue;
        if (in_list(k, map_kw) && json_is_object(v)) {
            json_t *m = json_object();
            const char *name;
            const json_t *sub;
            json_object_foreach((json_t *)v, name, sub)
                json_object_set_new(m, name, clean_node(sub));
            json_object_set_new(out, k, m);
        } else if (in_list(k, one_kw)) {
            json_object_set_new(out, k, json_is_array(v) ? clean_list(v)
                                                         : clean_node(v));
        } else if (in_list(k, list_kw) && json_is_array(v)) {
            json_object_set_new(out, k, clean_list(v));
        } else {
            json_object_set_new(out, k, json_deep_copy(v));
        }
    }
    return out;
}

json_t *gkm_schema_clean(const json_t *schema)
{
    return clean_node(schema);
}

int gkm_schema_is_empty_object(const json_t *s)
{
    if (!json_is_object(s))
        return 0;
    const json_t *t = json_object_get(s, "type");
    const char *ts = json_string_value(t);
    if (t != NULL && (ts == NULL || !gkm_strcaseeq(ts, "object")))
        return 0;
    const json_t *p = json_object_get(s, "properties");
    if (p != NULL && (!json_is_object(p) || json_object_size(p) > 0))
        return 0;
    /* Anything that still constrains the object keeps the schema. */
    static const char *const other[] = {"anyOf", "oneOf", "allOf", "$ref",
                                        "patternProperties", NULL};
    for (size_t i = 0; other[i]; i++)
        if (json_object_get(s, other[i]))
            return 0;
    const json_t *ap = json_object_get(s, "additionalProperties");
    if (json_is_object(ap) && json_object_size(ap) > 0)
        return 0;
    return 1;
}

/* ------------------------------------------------------------------ */
/* OpenAPI subset                                                       */

struct conv {
    const json_t *root; /* for $ref resolution */
    const char *why;
    int ref_depth;
    size_t nodes; /* produced so far, at most NODES_MAX */
};

static json_t *to_oapi(struct conv *c, const json_t *s, int depth);

static const char *upper_type(const char *t)
{
    static const char *const names[][2] = {
        {"string", "STRING"}, {"number", "NUMBER"}, {"integer", "INTEGER"},
        {"boolean", "BOOLEAN"}, {"array", "ARRAY"}, {"object", "OBJECT"},
        {"null", "NULL"}};
    for (size_t i = 0; i < GKM_ARRAY_LEN(names); i++)
        if (gkm_strcaseeq(t, names[i][0]))
            return names[i][1];
    return "STRING";
}

static int type_is(const json_t *s, const char *t)
{
    const char *v = json_string_value(json_object_get(s, "type"));
    return v && strcmp(v, t) == 0;
}

static const json_t *resolve_ref(const json_t *root, const char *ref)
{
    static const char *const prefixes[] = {"#/$defs/", "#/definitions/"};
    for (size_t i = 0; i < GKM_ARRAY_LEN(prefixes); i++) {
        size_t pl = strlen(prefixes[i]);
        if (strncmp(ref, prefixes[i], pl) != 0)
            continue;
        const json_t *defs = json_object_get(root, i == 0 ? "$defs"
                                                          : "definitions");
        return json_object_get(defs, ref + pl);
    }
    if (strcmp(ref, "#") == 0)
        return root;
    return NULL;
}

static int format_ok(const char *type, const char *fmt)
{
    if (type == NULL || fmt == NULL)
        return 0;
    if (strcmp(type, "STRING") == 0)
        return strcmp(fmt, "enum") == 0 || strcmp(fmt, "date-time") == 0;
    if (strcmp(type, "NUMBER") == 0)
        return strcmp(fmt, "float") == 0 || strcmp(fmt, "double") == 0;
    if (strcmp(type, "INTEGER") == 0)
        return strcmp(fmt, "int32") == 0 || strcmp(fmt, "int64") == 0;
    return 0;
}

/* Merge schema b into a: properties and required united, other keys only
 * where a lacks them. */
static void merge_into(json_t *a, const json_t *b)
{
    const char *k;
    const json_t *v;
    json_object_foreach((json_t *)b, k, v) {
        json_t *cur = json_object_get(a, k);
        if (strcmp(k, "properties") == 0 && json_is_object(cur)) {
            const char *pk;
            const json_t *pv;
            json_object_foreach((json_t *)v, pk, pv)
                if (!json_object_get(cur, pk))
                    json_object_set(cur, pk, (json_t *)pv);
        } else if (strcmp(k, "required") == 0 && json_is_array(cur)) {
            size_t i, j;
            const json_t *x, *y;
            json_array_foreach(v, i, x) {
                int dup = 0;
                json_array_foreach(cur, j, y)
                    dup |= json_equal((json_t *)x, (json_t *)y);
                if (!dup)
                    json_array_append(cur, (json_t *)x);
            }
        } else if (cur == NULL) {
            json_object_set(a, k, (json_t *)v);
        }
    }
}

/* Convert anyOf/oneOf branches; sets *nullable when a null branch is seen. */
static json_t *conv_branches(struct conv *c, const json_t *list, int depth,
                             int *nullable)
{
    json_t *out = json_array();
    size_t i;
    const json_t *b;
    json_array_foreach(list, i, b) {
        json_t *cb = to_oapi(c, b, depth + 1);
        if (cb == NULL) {
            json_decref(out);
            return NULL;
        }
        if (type_is(cb, "NULL") && json_object_size(cb) <= 2 &&
            !json_object_get(cb, "anyOf")) {
            *nullable = 1;
            json_decref(cb);
            continue;
        }
        json_array_append_new(out, cb);
    }
    return out;
}

static json_t *conv_enum(const json_t *e, int *nullable, int *all_strings)
{
    json_t *out = json_array();
    size_t i;
    const json_t *v;
    *all_strings = 1;
    json_array_foreach(e, i, v) {
        if (json_is_null(v))
            *nullable = 1;
        else if (json_is_string(v))
            json_array_append(out, (json_t *)v);
        else
            *all_strings = 0;
    }
    return out;
}

static json_t *conv_object(struct conv *c, const json_t *s, int depth)
{
    static const char *const simple[] = {
        "title", "description", "minItems", "maxItems", "minimum", "maximum",
        "minLength", "maxLength", "pattern", "minProperties", "maxProperties",
        "example", "default", "propertyOrdering", NULL};
    json_t *out = json_object();
    int nullable = json_is_true(json_object_get(s, "nullable"));
    const char *type = NULL;
    json_t *types_any = NULL; /* anyOf made from a multi-type list */
    const json_t *t = json_object_get(s, "type");

    if (json_is_string(t)) {
        type = upper_type(json_string_value(t));
    } else if (json_is_array(t)) {
        size_t i, nn = 0;
        const json_t *x;
        const char *last = NULL;
        json_array_foreach(t, i, x) {
            const char *u = upper_type(json_is_string(x) ? json_string_value(x)
                                                         : "string");
            if (strcmp(u, "NULL") == 0) {
                nullable = 1;
                continue;
            }
            nn++;
            last = u;
        }
        if (nn == 1) {
            type = last;
        } else if (nn > 1) {
            types_any = json_array();
            json_array_foreach(t, i, x) {
                const char *u = upper_type(
                    json_is_string(x) ? json_string_value(x) : "string");
                if (strcmp(u, "NULL") != 0)
                    json_array_append_new(types_any,
                                          json_pack("{ss}", "type", u));
            }
        }
    }

    /* anyOf / oneOf (oneOf has no Gemini equivalent: same as anyOf). */
    const json_t *alts = json_object_get(s, "anyOf");
    if (!json_is_array(alts))
        alts = json_object_get(s, "oneOf");
    json_t *branches = NULL;
    if (json_is_array(alts)) {
        branches = conv_branches(c, alts, depth, &nullable);
        if (branches == NULL)
            goto fail;
    }

    /* enum / const */
    json_t *en = NULL;
    const json_t *cv = json_object_get(s, "const");
    const json_t *ev = json_object_get(s, "enum");
    if (json_is_array(ev)) {
        int all_str;
        en = conv_enum(ev, &nullable, &all_str);
        if (!all_str || json_array_size(en) == 0) {
            json_decref(en);
            en = NULL;
        }
    } else if (json_is_string(cv)) {
        en = json_pack("[O]", cv);
    }

    int has_allof = json_is_array(json_object_get(s, "allOf"));
    if (type == NULL && types_any == NULL && branches == NULL && !has_allof) {
        if (json_object_get(s, "properties"))
            type = "OBJECT";
        else if (json_object_get(s, "items"))
            type = "ARRAY";
        else
            type = "STRING"; /* enum, or no type information at all */
    }
    if (branches != NULL && type == NULL && types_any == NULL &&
        json_array_size(branches) == 1) {
        /* Collapse: the single branch, under the outer annotations. */
        json_t *only = json_incref(json_array_get(branches, 0));
        json_decref(branches);
        branches = NULL;
        json_decref(out);
        out = json_copy(only);
        json_decref(only);
        const char *bt = json_string_value(json_object_get(out, "type"));
        type = bt ? upper_type(bt) : NULL;
    } else if (branches != NULL && json_array_size(branches) == 0) {
        json_decref(branches);
        branches = NULL;
        if (type == NULL && types_any == NULL && !has_allof)
            type = "STRING";
    }
    if (types_any != NULL) {
        json_object_set_new(out, "anyOf", types_any);
        types_any = NULL;
    } else if (branches != NULL) {
        json_object_set_new(out, "anyOf", branches);
        branches = NULL;
    }
    if (type != NULL && !json_object_get(out, "anyOf"))
        json_object_set_new(out, "type", json_string(type));

    const char *fmt = json_string_value(json_object_get(s, "format"));
    if (format_ok(type, fmt))
        json_object_set_new(out, "format", json_string(fmt));
    for (size_t i = 0; simple[i]; i++) {
        json_t *v = json_object_get(s, simple[i]);
        if (v != NULL)
            json_object_set(out, simple[i], v);
    }
    if (en != NULL)
        json_object_set_new(out, "enum", en);
    if (nullable)
        json_object_set_new(out, "nullable", json_true());

    const json_t *props = json_object_get(s, "properties");
    if (json_is_object(props) && json_object_size(props) > 0) {
        json_t *po = json_object();
        const char *k;
        const json_t *v;
        json_object_foreach((json_t *)props, k, v) {
            json_t *cp = to_oapi(c, v, depth + 1);
            if (cp == NULL) {
                json_decref(po);
                goto fail;
            }
            json_object_set_new(po, k, cp);
        }
        json_object_set_new(out, "properties", po);
        const json_t *req = json_object_get(s, "required");
        json_t *ro = json_array();
        size_t i;
        json_array_foreach(req, i, v)
            if (json_is_string(v) && json_object_get(po, json_string_value(v)))
                json_array_append(ro, (json_t *)v);
        if (json_array_size(ro) > 0)
            json_object_set_new(out, "required", ro);
        else
            json_decref(ro);
    }

    if (type != NULL && strcmp(type, "ARRAY") == 0 &&
        !json_object_get(out, "items")) {
        const json_t *it = json_object_get(s, "items");
        if (json_is_array(it))
            it = json_array_get(it, 0);
        json_t *ci = json_is_object(it) ? to_oapi(c, it, depth + 1)
                                        : json_pack("{ss}", "type", "STRING");
        if (ci == NULL)
            goto fail;
        json_object_set_new(out, "items", ci);
    }

    /* allOf: merge every converted branch into the result. */
    const json_t *all = json_object_get(s, "allOf");
    if (json_is_array(all)) {
        size_t i;
        const json_t *b;
        json_array_foreach(all, i, b) {
            json_t *cb = to_oapi(c, b, depth + 1);
            if (cb == NULL)
                goto fail;
            merge_into(out, cb);
            json_decref(cb);
        }
        if (!json_object_get(out, "type") && !json_object_get(out, "anyOf"))
            json_object_set_new(out, "type",
                                json_string(json_object_get(out, "properties")
                                                ? "OBJECT"
                                                : "STRING"));
    }
    return out;
fail:
    json_decref(out);
    json_decref(branches);
    json_decref(types_any);
    return NULL;
}

static json_t *to_oapi(struct conv *c, const json_t *s, int depth)
{
    if (++c->nodes > NODES_MAX) {
        c->why = "schema too large once $ref definitions are inlined";
        return NULL;
    }
    if (!json_is_object(s) || depth > DEPTH_MAX)
        return json_pack("{ss}", "type", json_is_object(s) ? "OBJECT"
                                                           : "STRING");
    const char *ref = json_string_value(json_object_get(s, "$ref"));
    if (ref != NULL) {
        const json_t *target = resolve_ref(c->root, ref);
        if (target == NULL) {
            c->why = "unresolvable $ref (only #/$defs/... and "
                     "#/definitions/... are supported)";
            return NULL;
        }
        json_t *r;
        if (c->ref_depth >= REF_DEPTH_MAX) {
            r = json_pack("{ss}", "type", "OBJECT");
        } else {
            c->ref_depth++;
            r = to_oapi(c, target, depth + 1);
            c->ref_depth--;
            if (r == NULL)
                return NULL;
        }
        const json_t *d = json_object_get(s, "description");
        if (json_is_string(d))
            json_object_set(r, "description", (json_t *)d);
        return r;
    }
    return conv_object(c, s, depth);
}

json_t *gkm_schema_to_openapi(const json_t *schema, const char **why)
{
    struct conv c = {schema, NULL, 0, 0};
    json_t *r = to_oapi(&c, schema, 0);
    if (r == NULL && why)
        *why = c.why ? c.why : "invalid schema";
    return r;
}
