/*
 * callback.c - the "callback" field of a task's or job's submit: {"url":
 * URL}, the webhook its record is POSTed to once it ends (webhooks.c).
 *
 * The URL is parsed by libcurl (curl_url), as the delivery will use it,
 * never by hand: it must be http or https, carry no user name or
 * password, and name a host (and port) of --callback-allow. What is kept
 * is the URL as curl writes it back, so what was checked is what is
 * called. A refusal is a 400 naming callback or callback.url and what
 * was wrong.
 */
#include "internal.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The host of u (into host) is allowed for callbacks, with its port (the
 * scheme's when the URL has none). */
static int host_allowed(api_ctx *api, CURLU *u, char *host, size_t len) {
  char *h = NULL, *port = NULL;
  int ok = 0;
  host[0] = '\0';
  if (curl_url_get(u, CURLUPART_HOST, &h, 0) == CURLUE_OK) {
    snprintf(host, len, "%s", h);
    long number = 0;
    if (curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) == CURLUE_OK)
      number = strtol(port, NULL, 10);
    ok = api__webhooks_allow(api, h, number) == 1;
  }
  curl_free(h);
  curl_free(port);
  return ok;
}

/* Whether u has a user name or password in it. */
static int has_credentials(CURLU *u) {
  char *user = NULL, *password = NULL;
  curl_url_get(u, CURLUPART_USER, &user, 0);
  curl_url_get(u, CURLUPART_PASSWORD, &password, 0);
  int has = user || password;
  curl_free(user);
  curl_free(password);
  return has;
}

/* The URL text given (a string without NUL), parsed and checked against
 * the allow-list, into out as curl writes it back. 0, or -1 with the 400
 * answer set. */
static int check_url(api_ctx *api, const char *text, size_t len, char *out,
                     size_t outlen, api_response *r) {
  char shown[160], host[256];
  api__quote(shown, sizeof shown, text, len);
  if (len >= outlen || memchr(text, '\0', len)) {
    api__bad_field(r, "callback.url",
                   "must be a URL of at most %zu bytes, not '%s'", outlen - 1,
                   shown);
    return -1;
  }
  CURLU *u = curl_url();
  char *scheme = NULL, *full = NULL;
  CURLUcode rc =
      u ? curl_url_set(u, CURLUPART_URL, text, 0) : CURLUE_OUT_OF_MEMORY;
  int ok = 0;
  if (rc != CURLUE_OK)
    api__bad_field(r, "callback.url", "is not a URL ('%s': %s)", shown,
                   curl_url_strerror(rc));
  else if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
           (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0))
    api__bad_field(r, "callback.url", "must be an http or https URL, not '%s'",
                   shown);
  else if (has_credentials(u))
    api__bad_field(r, "callback.url",
                   "must not carry a user name or password ('%s')", shown);
  else if (!host_allowed(api, u, host, sizeof host))
    api__bad_field(r, "callback.url",
                   "names host '%s', which this server does not allow for "
                   "callbacks (see --callback-allow)",
                   host);
  else if (curl_url_get(u, CURLUPART_URL, &full, 0) != CURLUE_OK ||
           strlen(full) >= outlen)
    api__bad_field(r, "callback.url",
                   "must be a URL of at most %zu bytes, not '%s'", outlen - 1,
                   shown);
  else
    ok = snprintf(out, outlen, "%s", full) > 0;
  curl_free(scheme);
  curl_free(full);
  curl_url_cleanup(u);
  return ok ? 0 : -1;
}

int api__callback_field(api_ctx *api, json_t *body, char *url, size_t len,
                        api_response *r) {
  json_t *v = json_object_get(body, "callback");
  url[0] = '\0';
  if (!v || json_is_null(v))
    return 0;
  char what[48];
  if (!json_is_object(v)) {
    api__describe(v, what, sizeof what);
    api__bad_field(r, "callback", "must be an object {\"url\": URL}, not %s",
                   what);
    return -1;
  }
  const char *key;
  json_t *member;
  json_object_foreach(v, key, member) {
    if (strcmp(key, "url") != 0) {
      char name[80];
      api__quote(name, sizeof name, key, strlen(key));
      api__bad_field(r, "callback",
                     "has a member '%s' it does not know (it takes 'url')",
                     name);
      return -1;
    }
  }
  const char *text;
  size_t n;
  if (api__string_field(v, "url", 1, "an http or https URL", &text, &n, r) != 0)
    return -1;
  if (api__webhooks_allow(api, "", 0) < 0) {
    api__bad_field(r, "callback",
                   "cannot be used: this server allows callbacks to no host "
                   "(start it with --callback-allow HOSTS)");
    return -1;
  }
  return check_url(api, text, n, url, len, r);
}
