/*
 * oai_media.h - media references in OpenAI content parts -> Gemini parts
 * (wire spec 8.3).
 *
 * URLs are never fetched: data: URIs become inlineData, remote http(s) and
 * gs:// URLs become fileData (Gemini fetches public / pre-signed URLs
 * itself), Files API names become fileData. The MIME type of a remote URL
 * is guessed from its extension. Pure; inputs borrowed.
 */
#ifndef GKM_OAI_MEDIA_H
#define GKM_OAI_MEDIA_H

#include <jansson.h>
#include <stddef.h>

/* Longest URL accepted in a content part (data: URIs are exempt). */
#define GKM_MEDIA_URL_MAX 8192

/* Standard base64 (with padding) of n bytes; NUL-terminated heap string,
 * length in *outlen if not NULL. Aborts on OOM. */
char *gkm_base64_encode(const unsigned char *p, size_t n, size_t *outlen);

/* MIME type Gemini accepts for the extension of name (a file name or URL;
 * query and fragment ignored), or NULL when unknown. Static string. */
const char *gkm_media_mime_from_name(const char *name, size_t len);

/* Parse a data: URI ("data:[<mime>][;param...][;base64],<payload>").
 * On success returns 0, *mime = lower-cased media type without parameters
 * ("" if absent) and *b64 = the payload as standard base64 (base64
 * payloads are checked and stripped of whitespace, url-safe letters are
 * converted; other payloads are percent-decoded and encoded); both heap
 * strings owned by the caller. On failure returns -1 and sets *why. */
int gkm_media_data_uri(const char *uri, size_t len, char **mime, char **b64,
                       const char **why) __attribute__((warn_unused_result));

/* Gemini part for a URL found in an image_url / file part:
 *   data:...                         -> {"inlineData": {mimeType, data}}
 *   http(s)://, gs://                -> {"fileData": {mimeType?, fileUri}}
 *   files/<id> (Files API name)      -> {"fileData": {fileUri: full URI}}
 * mime_hint (may be NULL) is used when the URI/extension gives none;
 * YouTube and Files API URIs get no guessed type (Gemini knows it).
 * Returns a new part, or NULL with *why set (unsupported scheme, bad
 * data URI, missing media type, too long). */
json_t *gkm_media_url_part(const char *url, size_t len, const char *mime_hint,
                           const char **why);

/* {"inlineData": {mimeType, data}} from a base64 payload (checked and
 * normalised as for data: URIs) or from a data: URI whose own media type,
 * if any, wins over mime. Returns a new part, or NULL with *why set. */
json_t *gkm_media_inline_part(const char *mime, const char *data, size_t len,
                              const char **why);

#endif
