/*
 * oai_schema.h - JSON Schema cleaning for Gemini (wire spec 3.6, 8.4).
 *
 * Gemini takes tool parameter and response schemas in two forms:
 *   - JSON Schema (`parametersJsonSchema`, `responseJsonSchema`): nearly
 *     everything clients send is accepted; only `$schema` and `$id` are
 *     removed (gkm_schema_clean);
 *   - the OpenAPI-subset Schema proto (`parameters`, `responseSchema`),
 *     which rejects unknown keywords with a 400; gkm_schema_to_openapi
 *     rewrites a JSON Schema into it.
 * Both walk the schema by keyword, so a *property* named "$id" or "type" is
 * never mistaken for a keyword. Pure functions; inputs are borrowed.
 */
#ifndef GKM_OAI_SCHEMA_H
#define GKM_OAI_SCHEMA_H

#include <jansson.h>

/* Deep copy of schema with "$schema" and "$id" removed from every schema
 * object (root, properties, items, anyOf branches, $defs, ...). Never NULL
 * for a non-NULL input. */
json_t *gkm_schema_clean(const json_t *schema);

/* Rewrite a JSON Schema into Gemini's OpenAPI subset:
 *   - only Schema fields are kept (type, format, title, description,
 *     nullable, enum, properties, required, propertyOrdering, items,
 *     min/maxItems, minimum, maximum, min/maxLength, pattern,
 *     min/maxProperties, example, default, anyOf); additionalProperties,
 *     $schema, $id, strict, examples, $comment, ... are dropped;
 *   - type names are upper-cased; `type: [T, "null"]` and a `{"type":
 *     "null"}` anyOf branch become `nullable: true`; other type lists
 *     become anyOf; a single remaining anyOf branch is collapsed;
 *   - oneOf becomes anyOf; allOf branches are merged (properties and
 *     required united); `const: v` becomes `enum: [v]`;
 *   - `$ref` to #/$defs/X or #/definitions/X is inlined, recursion cut
 *     after 4 levels (the cut becomes a plain OBJECT);
 *   - enums keep string values only (non-string enums are dropped);
 *   - `format` kept only where Gemini supports it (STRING: enum, date-time;
 *     NUMBER: float, double; INTEGER: int32, int64);
 *   - `required` keeps only names present in properties; empty
 *     `properties` is omitted; ARRAY without items gets STRING items; a
 *     schema with no type information becomes STRING.
 * Returns a new reference, or NULL with *why set (static text) when a
 * $ref cannot be resolved or the result would pass 20000 schema nodes
 * (inlining can multiply a small schema). */
json_t *gkm_schema_to_openapi(const json_t *schema, const char **why);

/* 1 if schema describes an object with no properties at all (nothing to
 * declare: a parameterless function), else 0. */
int gkm_schema_is_empty_object(const json_t *schema);

#endif
