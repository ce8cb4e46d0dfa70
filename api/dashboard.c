/*
 * dashboard.c - GET /: the live dashboard, one page embedded at build time.
 *
 * The page (web/) is a single HTML file with its style and script inline,
 * made by web/compose.cmake. It asks only this server for data, with
 * fetch, so the policy allows nothing else. Two policies apply together:
 * the header below (default none, fetch to this origin, inline blocks, no
 * framing) and the page's own <meta> policy, which narrows the inline
 * blocks to the two whose SHA-256 the build put there. The hashes live in
 * the page because a response header here holds at most 127 characters.
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

extern const char api_dashboard_html[];
extern const size_t api_dashboard_html_len;

#define DASHBOARD_CSP                                                          \
  "default-src 'none'; connect-src 'self'; script-src 'unsafe-inline'; "       \
  "style-src 'unsafe-inline'; frame-ancestors 'none'"

_Static_assert(sizeof DASHBOARD_CSP <= sizeof(((api_header *)0)->value),
               "the dashboard's policy must fit in a response header");

int api__dashboard(const api_call *c) {
  api_response *r = c->resp;
  char *page = malloc(api_dashboard_html_len);
  if (!page) {
    api__problem(r, 500, "internal", "Internal Server Error", NULL,
                 "not enough memory to send the dashboard");
    return API_DONE;
  }
  memcpy(page, api_dashboard_html, api_dashboard_html_len);
  r->status = 200;
  r->body = page;
  r->body_len = api_dashboard_html_len;
  r->content_type = "text/html; charset=utf-8";
  /* The page changes with the binary: always revalidate. */
  api__set_header(r, "Cache-Control", "no-cache");
  api__set_header(r, "Content-Security-Policy", "%s", DASHBOARD_CSP);
  api__set_header(r, "X-Content-Type-Options", "nosniff");
  return API_DONE;
}
