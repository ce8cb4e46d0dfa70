/*
 * catalog.c - every library value a goroutine can see, found once per
 * process.
 *
 * The standard libraries' functions are static in liblua, so the catalog
 * opens each library in a scratch state and records what it finds: a name
 * and a C function pointer, a constant, or "needs the real opener" for the
 * few C closures (math.random). With the catalog, a new state can get
 * string.format by pushing one pointer instead of opening the whole string
 * library; it also lets the transfer map C functions to names and back.
 *
 * Profiles decide what is visible: the untrusted profile loses io, os
 * except the clock, package, debug, dofile, loadfile, string.dump, and gets
 * a text-only load and a collectgarbage that cannot stop the collector.
 */
#include "internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <lualib.h>

#define BOTH ((1u << GR_PROFILE_TRUSTED) | (1u << GR_PROFILE_UNTRUSTED))
#define TRUSTED_ONLY (1u << GR_PROFILE_TRUSTED)

static gl_lib libs[GL_NLIBS];
static gl_entry *string_meta;
static int string_meta_n;
static pthread_once_t once = PTHREAD_ONCE_INIT;
lua_CFunction gl_stock_load, gl_stock_collectgarbage, gl_stock_next;

typedef struct name_slot {
  lua_CFunction fn;
  const char *path;
} name_slot;
static name_slot *names;
static size_t names_cap;

static const struct {
  const char *name;
  lua_CFunction opener;
  int lazy;
  unsigned profiles;
  const luaL_Reg *funcs; /* our own modules */
  int (*visible)(lua_State *L);
} lib_specs[GL_NLIBS] = {
    [GL_LIB_G] = {"_G", luaopen_base, 1, BOTH},
    [GL_LIB_COROUTINE] = {"coroutine", luaopen_coroutine, 1, BOTH},
    [GL_LIB_TABLE] = {"table", luaopen_table, 1, BOTH},
    [GL_LIB_STRING] = {"string", luaopen_string, 1, BOTH},
    [GL_LIB_MATH] = {"math", luaopen_math, 1, BOTH},
    [GL_LIB_UTF8] = {"utf8", luaopen_utf8, 1, BOTH},
    [GL_LIB_OS] = {"os", luaopen_os, 1, BOTH},
    [GL_LIB_GOROUTINE] = {"goroutine", NULL, 1, BOTH, gl_goroutine_funcs, NULL},
    [GL_LIB_LOG] = {"log", NULL, 1, BOTH, gl_log_funcs, NULL},
    [GL_LIB_JSON] = {"json", NULL, 1, BOTH, gl_json_funcs, NULL},
    [GL_LIB_HTTP] = {"http", NULL, 1, BOTH, gl_http_funcs, gl_http_visible},
    [GL_LIB_IO] = {"io", luaopen_io, 0, TRUSTED_ONLY},
    [GL_LIB_PACKAGE] = {"package", luaopen_package, 0, TRUSTED_ONLY},
    [GL_LIB_DEBUG] = {"debug", luaopen_debug, 0, TRUSTED_ONLY},
};

/* Entries the untrusted profile does not see. */
static const char *const untrusted_hidden[] = {
    "_G.dofile",  "_G.loadfile",  "string.dump", "os.execute",
    "os.exit",    "os.getenv",    "os.remove",   "os.rename",
    "os.tmpname", "os.setlocale", NULL,
};

static int hidden_from_untrusted(const char *lib, const char *name) {
  for (int i = 0; untrusted_hidden[i]; i++) {
    const char *h = untrusted_hidden[i];
    size_t n = strlen(lib);
    if (strncmp(h, lib, n) == 0 && h[n] == '.' && strcmp(h + n + 1, name) == 0)
      return 1;
  }
  return 0;
}

static int cmp_entry(const void *a, const void *b) {
  return strcmp(((const gl_entry *)a)->name, ((const gl_entry *)b)->name);
}

static char *join(const char *lib, const char *name) {
  size_t a = strlen(lib), b = strlen(name);
  char *s = malloc(a + b + 2);
  memcpy(s, lib, a);
  s[a] = '.';
  memcpy(s + a + 1, name, b + 1);
  return s;
}

/* Reads the table on top of S into entries of lib (S keeps the table). */
static void read_table(lua_State *S, gl_lib *lib, gl_entry *out, int *n) {
  lua_pushnil(S);
  while (lua_next(S, -2)) {
    int type = lua_type(S, -1);
    if (lua_type(S, -2) != LUA_TSTRING ||
        !(type == LUA_TFUNCTION || type == LUA_TNUMBER || type == LUA_TSTRING ||
          type == LUA_TTABLE)) {
      lua_pop(S, 1);
      continue;
    }
    gl_entry *e = &out[(*n)++];
    memset(e, 0, sizeof *e);
    e->name = strdup(lua_tostring(S, -2));
    e->profiles = lib->profiles;
    if (type == LUA_TFUNCTION && lua_getupvalue(S, -1, 1)) {
      lua_pop(S, 1);
      e->kind = GL_OPENED;
    } else if (type == LUA_TFUNCTION) {
      e->kind = GL_CFUNC;
      e->fn[0] = e->fn[1] = lua_tocfunction(S, -1);
    } else if (type == LUA_TNUMBER && lua_isinteger(S, -1)) {
      e->kind = GL_INT;
      e->i = lua_tointeger(S, -1);
    } else if (type == LUA_TNUMBER) {
      e->kind = GL_NUM;
      e->n = lua_tonumber(S, -1);
    } else if (type == LUA_TSTRING) {
      e->kind = GL_STR;
      e->s = strdup(lua_tostring(S, -1));
    } else {
      e->kind = GL_GLOBALS; /* only _G._G is a table among lazy entries */
    }
    if (hidden_from_untrusted(lib->name, e->name)) {
      e->profiles &= ~(1u << GR_PROFILE_UNTRUSTED);
      e->fn[GR_PROFILE_UNTRUSTED] = NULL;
    }
    lua_pop(S, 1);
  }
}

static void add_reg(gl_lib *lib, gl_entry *out, int *n, const luaL_Reg *reg) {
  for (; reg->name; reg++) {
    gl_entry *e = &out[(*n)++];
    memset(e, 0, sizeof *e);
    e->name = reg->name;
    e->kind = GL_CFUNC;
    e->fn[0] = e->fn[1] = reg->func;
    e->profiles = lib->profiles;
  }
}

static void apply_overrides(void) {
  for (const gl_override *o = gl_overrides; o->name; o++) {
    gl_lib *lib = &libs[gl_lib_by_name(o->lib)];
    int idx;
    gl_entry *e = (gl_entry *)gl_find(lib, o->name, &idx);
    if (!e) { /* a name the stock library lacks (require) */
      e = &lib->entries[lib->n++];
      memset(e, 0, sizeof *e);
      e->name = o->name;
    }
    if (lib == &libs[GL_LIB_G] && strcmp(o->name, "load") == 0)
      gl_stock_load = e->fn[0];
    if (lib == &libs[GL_LIB_G] && strcmp(o->name, "collectgarbage") == 0)
      gl_stock_collectgarbage = e->fn[0];
    if (lib == &libs[GL_LIB_G] && strcmp(o->name, "next") == 0)
      gl_stock_next = e->fn[0];
    e->kind = GL_CFUNC;
    if (o->trusted != gl_keep_stock)
      e->fn[GR_PROFILE_TRUSTED] = o->trusted;
    e->fn[GR_PROFILE_UNTRUSTED] = o->untrusted;
    e->profiles = (o->trusted ? TRUSTED_ONLY : 0) |
                  (o->untrusted ? 1u << GR_PROFILE_UNTRUSTED : 0);
    qsort(lib->entries, (size_t)lib->n, sizeof *lib->entries, cmp_entry);
  }
}

static void name_add(lua_CFunction fn, const char *path) {
  size_t i = ((uintptr_t)fn >> 4) & (names_cap - 1);
  while (names[i].fn && names[i].fn != fn)
    i = (i + 1) & (names_cap - 1);
  if (!names[i].fn) {
    names[i].fn = fn;
    names[i].path = path;
  }
}

static void build_names(void) {
  size_t count = 0;
  for (int l = 0; l < GL_NLIBS; l++)
    count += (size_t)libs[l].n * 2;
  names_cap = 64;
  while (names_cap < count * 2)
    names_cap *= 2;
  names = calloc(names_cap, sizeof *names);
  for (int l = 0; l < GL_NLIBS; l++) {
    for (int k = 0; k < libs[l].n; k++) {
      gl_entry *e = &libs[l].entries[k];
      e->path = l == GL_LIB_G ? e->name : join(libs[l].name, e->name);
      for (int p = 0; p < GL_PROFILES; p++)
        if (e->kind == GL_CFUNC && e->fn[p])
          name_add(e->fn[p], e->path);
    }
  }
}

static void build(void) {
  lua_State *S = luaL_newstate();
  for (int l = 0; l < GL_NLIBS; l++) {
    gl_lib *lib = &libs[l];
    lib->name = lib_specs[l].name;
    lib->opener = lib_specs[l].opener;
    lib->lazy = lib_specs[l].lazy;
    lib->profiles = lib_specs[l].profiles;
    lib->visible = lib_specs[l].visible;
    gl_entry *out = calloc(128, sizeof *out);
    int n = 0;
    if (l == GL_LIB_G) {
      luaL_requiref(S, "_G", luaopen_base, 0);
      read_table(S, lib, out, &n);
      lua_pop(S, 1);
      for (int k = 0; k < GL_NLIBS; k++) {
        if (k == GL_LIB_G)
          continue;
        gl_entry *e = &out[n++];
        memset(e, 0, sizeof *e);
        e->name = lib_specs[k].name;
        e->kind = GL_LIB;
        e->lib = k;
        e->profiles = lib_specs[k].profiles;
      }
    } else if (lib_specs[l].funcs) {
      add_reg(lib, out, &n, lib_specs[l].funcs);
    } else if (lib->lazy) {
      luaL_requiref(S, lib->name, lib->opener, 0);
      read_table(S, lib, out, &n);
      if (l == GL_LIB_STRING) {
        lua_pushliteral(S, "");
        lua_getmetatable(S, -1);
        string_meta = calloc(32, sizeof *string_meta);
        gl_lib meta = {"string metatable", NULL, 0, NULL, 1, BOTH, NULL, 0};
        read_table(S, &meta, string_meta, &string_meta_n);
        lua_pop(S, 2);
      }
      lua_pop(S, 1);
    }
    qsort(out, (size_t)n, sizeof *out, cmp_entry);
    lib->entries = out;
    lib->n = n;
  }
  lua_close(S);
  apply_overrides();
  int first = 0; /* a state keeps one bit per entry: GL_MAX_ENTRIES */
  for (int l = 0; l < GL_NLIBS; l++) {
    libs[l].first = first;
    first += libs[l].n;
  }
  if (first > GL_MAX_ENTRIES)
    abort();
  build_names();
}

const gl_lib *gl_catalog(void) {
  pthread_once(&once, build);
  return libs;
}

int gl_lib_by_name(const char *name) {
  for (int l = 0; l < GL_NLIBS; l++)
    if (strcmp(lib_specs[l].name, name) == 0)
      return l;
  return -1;
}

const gl_entry *gl_find(const gl_lib *lib, const char *name, int *index) {
  int lo = 0, hi = lib->n - 1;
  while (lo <= hi) {
    int mid = (lo + hi) / 2;
    int c = strcmp(name, lib->entries[mid].name);
    if (c == 0) {
      if (index)
        *index = mid;
      return &lib->entries[mid];
    }
    if (c < 0)
      hi = mid - 1;
    else
      lo = mid + 1;
  }
  return NULL;
}

const char *gl_cfunction_name(lua_CFunction f) {
  gl_catalog();
  size_t i = ((uintptr_t)f >> 4) & (names_cap - 1);
  while (names[i].fn) {
    if (names[i].fn == f)
      return names[i].path;
    i = (i + 1) & (names_cap - 1);
  }
  return NULL;
}

const gl_entry *gl_string_meta(int *n) {
  gl_catalog();
  *n = string_meta_n;
  return string_meta;
}
