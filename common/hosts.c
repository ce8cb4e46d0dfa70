/*
 * hosts.c - lists of allowed hosts, as the server's options give them
 * ("example.org, 127.0.0.1:8080, [::1]"): who a snippet's `http` may
 * reach (--http-allow) and where a webhook may go (--callback-allow).
 *
 * One parser and one matcher, so both options read and mean the same.
 * The caller owns the array (cm_hosts_count says how big); the matcher
 * takes a host and a port as a URL parser found them, so the decision is
 * made on what the transfer will really use, never on the text given.
 */
#include "gr_common.h"

#include <string.h>
#include <strings.h>

static int parse_port(const char *s, size_t n, long *port) {
  long p = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9' || (p = p * 10 + (s[i] - '0')) > 65535)
      return -1;
  }
  *port = p;
  return n && p > 0 ? 0 : -1;
}

/* One entry of the list: "host", "host:port", "[v6]", "[v6]:port", "v6". */
static int parse_host(const char *s, size_t n, cm_host *out) {
  const char *port = NULL;
  size_t hostlen = n;
  const char *colon = memchr(s, ':', n);
  if (s[0] == '[') {
    const char *close = memchr(s, ']', n);
    if (!close)
      return -1;
    hostlen = (size_t)(close - s) + 1;
    if (hostlen < n && s[hostlen] != ':')
      return -1;
    port = hostlen < n ? s + hostlen + 1 : NULL;
  } else if (colon && !memchr(colon + 1, ':', n - (size_t)(colon - s) - 1)) {
    hostlen = (size_t)(colon - s);
    port = colon + 1;
  }
  int bare_v6 = colon && !port && s[0] != '[';
  if (hostlen == 0 || hostlen + 2 * bare_v6 >= sizeof out->host)
    return -1;
  out->port = 0;
  if (port && parse_port(port, n - (size_t)(port - s), &out->port) != 0)
    return -1;
  char *h = out->host;
  if (bare_v6)
    *h++ = '[';
  for (size_t i = 0; i < hostlen; i++) {
    if (strchr(" \t/@?#\\", s[i]))
      return -1;
    *h++ = (char)(s[i] >= 'A' && s[i] <= 'Z' ? s[i] + 32 : s[i]);
  }
  if (bare_v6)
    *h++ = ']';
  *h = '\0';
  return 0;
}

size_t cm_hosts_count(const char *hosts) {
  size_t n = 1;
  for (const char *p = hosts ? hosts : ""; *p; p++)
    n += *p == ',';
  return n;
}

long cm_hosts_parse(const char *hosts, cm_host *out, size_t cap) {
  size_t n = 0;
  for (const char *p = hosts ? hosts : ""; *p;) {
    size_t len = strcspn(p, ",");
    const char *s = p, *end = p + len;
    while (s < end && (*s == ' ' || *s == '\t'))
      s++;
    while (end > s && (end[-1] == ' ' || end[-1] == '\t'))
      end--;
    if (end > s &&
        (n == cap || parse_host(s, (size_t)(end - s), &out[n++]) != 0))
      return -1;
    p += len + (p[len] == ',');
  }
  return (long)n;
}

int cm_hosts_allow(const cm_host *list, size_t n, const char *host, long port) {
  for (size_t i = 0; i < n; i++)
    if (strcasecmp(list[i].host, host) == 0 &&
        (!list[i].port || list[i].port == port))
      return 1;
  return 0;
}
