/*
 * functions.c - stored functions: code kept in the store under a name, in
 * versions, and compiled once per version.
 *
 * The store holds the source (gr_store_ops.fn_*). The runtime keeps what it
 * compiled: one pack (the function as bytecode) per name and version, and
 * which version is a name's latest. A call copies the pack (no compile, no
 * store read); a put or a drop made here updates the cache at once. Only
 * this process writes a SQLite or memory store's functions, so the cache
 * cannot go stale; a store shared by several processes would have to tell
 * them of new versions.
 */
#include "internal.h"

#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Compiled versions kept; past it, the cache starts afresh. */
#define FN_CACHE_MAX 512

typedef struct fn_entry {
  struct fn_entry *next;
  gr_function_info info;
  gr_pack *pack; /* the compiled function */
  int latest;    /* info.version is its name's latest */
} fn_entry;

struct gr_fn_cache {
  pthread_mutex_t mu;
  fn_entry *head;
  size_t count;
  uint64_t gen; /* counts puts and drops: a read older than one is stale */
};

gr_fn_cache *gr__fn_cache_new(void) {
  gr_fn_cache *c = calloc(1, sizeof *c);
  if (c)
    pthread_mutex_init(&c->mu, NULL);
  return c;
}

static void entries_free(fn_entry *e) {
  while (e) {
    fn_entry *next = e->next;
    gr_pack_free(e->pack);
    free(e);
    e = next;
  }
}

void gr__fn_cache_free(gr_fn_cache *c) {
  if (!c)
    return;
  entries_free(c->head);
  pthread_mutex_destroy(&c->mu);
  free(c);
}

/* Caller holds c->mu: the entry of name's version (0: its latest). */
static fn_entry *find_locked(gr_fn_cache *c, const char *name,
                             int64_t version) {
  for (fn_entry *e = c->head; e; e = e->next)
    if (strcmp(e->info.name, name) == 0 &&
        (version ? e->info.version == version : e->latest))
      return e;
  return NULL;
}

/* Caller holds c->mu: forgets name's entries (all, or only which is the
 * latest). */
static void forget_locked(gr_fn_cache *c, const char *name, int only_latest) {
  for (fn_entry **at = &c->head; *at;) {
    fn_entry *e = *at;
    if (strcmp(e->info.name, name) != 0) {
      at = &e->next;
      continue;
    }
    if (only_latest) {
      e->latest = 0;
      at = &e->next;
      continue;
    }
    *at = e->next;
    e->next = NULL;
    entries_free(e);
    c->count--;
  }
}

/* Keeps a copy of pack as name's version; latest: it is the latest.
 * gen: the cache's gen when the store was read (a put passes ~0): what
 * was read before a put or a drop since is not kept. */
static void remember(gr_fn_cache *c, const gr_function_info *info,
                     const gr_pack *pack, int latest, uint64_t gen) {
  fn_entry *e = calloc(1, sizeof *e);
  if (e && !(e->pack = gr_pack_dup(pack))) {
    free(e);
    e = NULL;
  }
  if (!e)
    return; /* only a cache: the next call compiles again */
  e->info = *info;
  e->latest = latest;
  pthread_mutex_lock(&c->mu);
  if (gen == ~(uint64_t)0) {
    c->gen++;
  } else if (gen != c->gen) {
    pthread_mutex_unlock(&c->mu);
    entries_free(e);
    return;
  }
  if (latest)
    forget_locked(c, info->name, 1);
  fn_entry *old = find_locked(c, info->name, info->version);
  if (old) { /* another thread compiled it meanwhile */
    old->latest |= latest;
    pthread_mutex_unlock(&c->mu);
    entries_free(e);
    return;
  }
  if (c->count >= FN_CACHE_MAX) {
    entries_free(c->head);
    c->head = NULL;
    c->count = 0;
  }
  e->next = c->head;
  c->head = e;
  c->count++;
  pthread_mutex_unlock(&c->mu);
}

/* ---- compiling ----------------------------------------------------------- */

/* Compiles code as chunk name into a new pack; NULL with *rc (GR_EINVAL:
 * the syntax error in err, its line in *line; GR_ENOMEM). */
static gr_pack *compile(const char *name, const char *code, size_t len, int *rc,
                        char *err, size_t errlen, int *line) {
  *line = 0;
  lua_State *L = luaL_newstate();
  gr_pack *p = L ? gr_pack_new() : NULL;
  if (!p) {
    if (L)
      lua_close(L);
    snprintf(err, errlen, "not enough memory to compile");
    *rc = GR_ENOMEM;
    return NULL;
  }
  char chunk[GR_FUNCTION_NAME_MAX + 2];
  snprintf(chunk, sizeof chunk, "=%s", name);
  if (luaL_loadbufferx(L, code, len, chunk, "t") != LUA_OK) {
    const char *msg = lua_tostring(L, -1);
    snprintf(err, errlen, "%s", msg ? msg : "syntax error");
    size_t n = strlen(name);
    if (msg && strncmp(msg, name, n) == 0 && msg[n] == ':')
      *line = atoi(msg + n + 1);
    *rc = GR_EINVAL;
  } else if (gr_pack_values(p, L, -1, 1, 0, "function", 1, err, errlen) != 0) {
    *rc = GR_ENOMEM;
  } else {
    *rc = GR_OK;
  }
  lua_close(L);
  if (*rc != GR_OK) {
    gr_pack_free(p);
    p = NULL;
  }
  return p;
}

/* ---- the API ------------------------------------------------------------- */

int gr_function_put(gr_runtime *rt, const char *name, const char *code,
                    size_t len, const char *sha256, gr_function_info *out,
                    int *created, char *err, size_t errlen, int *line) {
  *line = 0;
  err[0] = '\0';
  if (!name || !gr_pool_name_valid(name, strlen(name)))
    return GR_ENAME;
  if (!rt->store->ops->fn_put)
    return GR_ESTORE;
  int rc;
  gr_pack *p = compile(name, code, len, &rc, err, errlen, line);
  if (!p)
    return rc;
  rc = rt->store->ops->fn_put(rt->store, name, code, len, sha256, gr__wall_ms(),
                              out, created);
  if (rc == GR_OK)
    remember(rt->functions, out, p, 1, ~(uint64_t)0);
  gr_pack_free(p);
  return rc;
}

gr_pack *gr_function_pack(gr_runtime *rt, const char *name, int64_t version,
                          gr_function_info *out, int *rc, char *err,
                          size_t errlen) {
  err[0] = '\0';
  gr_fn_cache *c = rt->functions;
  pthread_mutex_lock(&c->mu);
  fn_entry *e = find_locked(c, name, version);
  gr_pack *p = e ? gr_pack_dup(e->pack) : NULL;
  if (e)
    *out = e->info;
  uint64_t gen = c->gen;
  pthread_mutex_unlock(&c->mu);
  if (e) {
    *rc = p ? GR_OK : GR_ENOMEM;
    return p;
  }
  char *code = NULL;
  size_t len = 0;
  *rc = gr_function_get(rt, name, version, out, &code, &len);
  if (*rc != GR_OK)
    return NULL;
  int line;
  p = compile(name, code, len, rc, err, errlen, &line);
  free(code);
  if (!p)
    return NULL;
  /* Whether it is the latest is known when it was asked for as such. */
  remember(c, out, p, version == 0, gen);
  return p;
}

int gr_function_get(gr_runtime *rt, const char *name, int64_t version,
                    gr_function_info *out, char **code, size_t *len) {
  if (code)
    *code = NULL;
  if (!name || !gr_pool_name_valid(name, strlen(name)) || version < 0 ||
      !rt->store->ops->fn_get)
    return GR_ENOTFOUND;
  return rt->store->ops->fn_get(rt->store, name, version, out, code, len);
}

size_t gr_function_list(gr_runtime *rt, const char *name, const char *after,
                        gr_function_info *out, size_t limit) {
  if (!rt->store->ops->fn_list ||
      (name && !gr_pool_name_valid(name, strlen(name))))
    return 0;
  return rt->store->ops->fn_list(rt->store, name, after ? after : "", out,
                                 limit);
}

int gr_function_drop(gr_runtime *rt, const char *name) {
  if (!name || !gr_pool_name_valid(name, strlen(name)) ||
      !rt->store->ops->fn_drop)
    return 0;
  int rc = rt->store->ops->fn_drop(rt->store, name);
  pthread_mutex_lock(&rt->functions->mu);
  forget_locked(rt->functions, name, 0);
  rt->functions->gen++;
  pthread_mutex_unlock(&rt->functions->mu);
  return rc;
}
