/*
 * internal.h - shared by the files of lua/ only.
 */
#ifndef GR_LUA_INTERNAL_H
#define GR_LUA_INTERNAL_H

#include "modules.h"

#include <curl/curl.h>
#include <lauxlib.h>
#include <lua.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

/* ---- the catalog (catalog.c): every library value a state can see ----- */

enum gl_kind {
  GL_CFUNC, /* a C function without upvalues */
  GL_INT,
  GL_NUM,
  GL_STR,
  GL_LIB,     /* a library table (an entry of _G) */
  GL_GLOBALS, /* _G._G */
  GL_OPENED,  /* a C closure: taken from the library's own opener */
};

#define GL_PROFILES 2

typedef struct gl_entry {
  const char *name;
  int kind;
  lua_CFunction fn[GL_PROFILES]; /* per profile; NULL: not visible there */
  lua_Integer i;
  lua_Number n;
  const char *s;
  int lib;           /* for GL_LIB */
  unsigned profiles; /* bit p: visible to profile p */
  const char *path;  /* "string.format", for naming */
} gl_entry;

typedef struct gl_lib {
  const char *name;
  gl_entry *entries; /* sorted by name */
  int n;
  lua_CFunction opener; /* the library's luaopen_* */
  int lazy;             /* 0: opened for real on first use */
  unsigned profiles;
  /* When not NULL, also asked whether L may see the library (e.g. http for
   * untrusted code depends on the server's allow-list). */
  int (*visible)(lua_State *L);
  int first; /* its entries' first bit in gl_state.done */
} gl_lib;

enum gl_lib_id {
  GL_LIB_G,
  GL_LIB_COROUTINE,
  GL_LIB_TABLE,
  GL_LIB_STRING,
  GL_LIB_MATH,
  GL_LIB_UTF8,
  GL_LIB_OS,
  GL_LIB_GOROUTINE,
  GL_LIB_LOG,
  GL_LIB_JSON,
  GL_LIB_HTTP,
  GL_LIB_IO,
  GL_LIB_PACKAGE,
  GL_LIB_DEBUG,
  GL_NLIBS,
};

const gl_lib *gl_catalog(void); /* GL_NLIBS libraries, built once */
int gl_lib_by_name(const char *name);
const gl_entry *gl_find(const gl_lib *lib, const char *name, int *index);
const char *gl_cfunction_name(lua_CFunction f);
/* The string metatable's entries (__add, __index, ...). */
const gl_entry *gl_string_meta(int *n);

/* ---- lazy libraries in a state (lazy.c) ------------------------------- */

/* The string metatable, as a proxy's number beside the libraries'. */
#define GL_STRING_META GL_NLIBS

/* Bits in gl_state.done: one per entry of every library, together. */
#define GL_MAX_ENTRIES 256

/* Kept beside every goroutine (the core's per-goroutine area), so it is
 * small: with the core's gr_g it makes one 512-byte allocation. */
typedef struct gl_state {
  /* Bit lib.first + k: entry k of lib was materialized or assigned. */
  uint64_t done[GL_MAX_ENTRIES / 64];
  const void *tables[GL_NLIBS];
  int profile;
  int string_meta_proxied; /* the registry holds its read-only view */
} gl_state;

gl_state *gl_state_of(lua_State *L); /* NULL outside a goroutine */
int gl_open_state(lua_State *L, int profile, int recycled);
int gl_reset_state(lua_State *L);
/* Push library lib's table, creating it; 0 if the profile cannot see it. */
int gl_push_lib(lua_State *L, int lib);
/* If the table at idx is a lazy library table, make every entry real. */
void gl_materialize_all(lua_State *L, int idx);
void gl_materialize_key(lua_State *L, int idx, int key);
int gl_push_named(lua_State *L, const char *name);
const char *gl_table_name(lua_State *L, int idx);
/* If the value at idx is a read-only proxy, push the table behind it (a
 * library table, materialized in full) and return 1; else return 0. */
int gl_push_backing(lua_State *L, int idx);
/* Raises "attempt to modify the read-only table 'NAME'" if the value at idx
 * is a read-only proxy. */
void gl_check_writable(lua_State *L, int idx);
/* Untrusted: push the read-only view of the string metatable. */
void gl_push_string_meta(lua_State *L);

/* ---- functions registered in the catalog ------------------------------ */

extern const luaL_Reg gl_goroutine_funcs[];
extern const luaL_Reg gl_channel_methods[]; /* channel_lib.c */
int gl_channel(lua_State *L);               /* goroutine.channel */
int gl_select(lua_State *L);                /* goroutine.select */
extern const luaL_Reg gl_log_funcs[];
/* log_lib.c: the arguments of the running C function, each as tostring
 * makes it, joined by sep into b (print and the log functions). */
void gl_join_args(lua_State *L, luaL_Buffer *b, char sep);
extern const luaL_Reg gl_json_funcs[]; /* json_lib.c */
void gl_json_setup(void);              /* json_decode.c: meters jansson, once */
int gl_json_decode(lua_State *L);      /* json_decode.c: json.decode */
/* json_lib.c: the check of an encode or decode options table. */
void gl_json_check_options(lua_State *L, int arg, const char *const known[]);
extern const luaL_Reg gl_http_funcs[]; /* http_lib.c */
int gl_http_visible(lua_State *L);     /* http_lib.c */
/* Base and coroutine overrides: name, trusted version, untrusted version. */
typedef struct gl_override {
  const char *lib, *name;
  lua_CFunction trusted, untrusted;
} gl_override;
extern const gl_override gl_overrides[];
/* As an override's trusted version: trusted code keeps the stock one. */
int gl_keep_stock(lua_State *L);
int gl_next(lua_State *L);    /* base.c: next that sees through proxies */
int gl_require(lua_State *L); /* lazy.c: require of built-in modules */
int gl_await(lua_State *L);   /* goroutine_lib.c: goroutine.await */
/* goroutine_lib.c: what the module's functions share. The spawn of a
 * goroutine started from L (its profile and memory limit); the n values
 * at first packed as a call (raises on one that cannot move); a pool
 * task's claim of its place among its job's goroutines (raises, freeing
 * p, when there is none); a duration argument in ms; and the error of a
 * goroutine that could not start (raises). */
gr_spawn gl_spawn_from(lua_State *L, gr_pack *p);
gr_pack *gl_pack_call(lua_State *L, int first, int n, int argbase);
void gl_claim_job_slot(lua_State *L, gr_pack *p);
int64_t gl_check_ms(lua_State *L, int arg, const char *what);
int gl_start_failed(lua_State *L, int64_t code);
/* pool_lib.c: the pool functions of the goroutine module. */
int gl_pool_create(lua_State *L);
int gl_pool_submit(lua_State *L);
int gl_pool_submit_wait(lua_State *L);
int gl_pool_result(lua_State *L);
int gl_pool_wait(lua_State *L);
int gl_pool_close(lua_State *L);
int gl_pool_stats(lua_State *L);
/* patterns.c: the string functions that untrusted code gets (rep: all). */
int gl_str_find(lua_State *L);
int gl_str_match(lua_State *L);
int gl_str_gmatch(lua_State *L);
int gl_str_gsub(lua_State *L);
int gl_str_rep(lua_State *L);
/* Stock functions that the overrides wrap. */
extern lua_CFunction gl_stock_load, gl_stock_collectgarbage, gl_stock_next;

/* ---- the pausable pattern matcher (pattern_match.c) ------------------- */

#define GL_PATTERN_ESC '%'
#define GL_M_MAXCAPS 32        /* captures, as lstrlib's LUA_MAXCAPTURES */
#define GL_M_MAXDEPTH 200      /* nested choices, as lstrlib's MAXCCALLS */
#define GL_M_NONE ((size_t)-1) /* no position */

/* What an attempt ends with. */
enum { GL_M_MATCH, GL_M_FAIL, GL_M_PAUSE };

/* A point the search can come back to. */
typedef struct gl_choice {
  size_t s;     /* subject offset: where the alternative starts */
  size_t n;     /* a greedy item: how many characters it takes now */
  uint32_t p;   /* the item (an optional one: where to go on) */
  uint32_t ep;  /* the end of the item's class */
  int16_t cap;  /* a capture's opening or closing: the capture */
  uint8_t kind; /* which of those (pattern_match.c) */
} gl_choice;

/* Everything a search needs, by offsets, so it can be copied into a
 * userdata and carried across a yield; with room for the calling loop's
 * own state (patterns.c), which travels with it. */
typedef struct gl_match {
  const char *src, *pat; /* refreshed from the stack after a yield */
  size_t slen, plen;
  size_t p0; /* where the pattern starts (after an anchor) */
  int anchor;
  /* an attempt from subject offset start, paused at (s, p) */
  int paused, backtracking;
  size_t s, p;
  int level, depth;
  struct {
    size_t init;
    ptrdiff_t len;
  } cap[GL_M_MAXCAPS];
  size_t end; /* where the last successful attempt ended */
  uint64_t steps, next_check;
  /* the caller's loop */
  size_t start, lastmatch;
  lua_Integer n, max_n;
  int changed, calling;    /* gsub: a replacement function is running */
  size_t from, to;         /* gsub: the match it replaces */
  size_t copied;           /* gsub: subject copied to the output up to here */
  size_t out_len, out_cap; /* gsub: the output, a userdata */
  char *out;               /* its bytes (userdata memory does not move) */
  gl_choice stack[GL_M_MAXDEPTH];
} gl_match;

/* A search of the pattern at stack position 2 in the subject at 1;
 * anchored: a leading '^' anchors it (gmatch: an ordinary character). */
void gl_match_init(gl_match *m, lua_State *L, int anchored);
/* After a yield: the search kept in the userdata at slot, its strings
 * refreshed from stack positions s and p. */
gl_match *gl_match_resume(lua_State *L, int slot, int s, int p);
/* One attempt at m->start, or the rest of a paused one: GL_M_MATCH (the
 * match ends at m->end), GL_M_FAIL or GL_M_PAUSE (yield, then call again).
 * Raises the pattern's errors, and the goroutine's when it is stopped. */
int gl_match_attempt(lua_State *L, gl_match *m);
/* Capture i (the whole match from..to if there are none and i is 0). */
void gl_match_push_capture(lua_State *L, const gl_match *m, int i, size_t from,
                           size_t to);
/* Every capture, or the whole match if there are none and from is not
 * GL_M_NONE; returns how many. */
int gl_match_push_captures(lua_State *L, const gl_match *m, size_t from,
                           size_t to);

/* ---- http transfers and their driver thread (http_transfer.c) --------- */

typedef struct gl_buffer {
  char *data;
  size_t len, cap;
} gl_buffer;

typedef struct gl_http_driver gl_http_driver;

/* One request and its response. The goroutine fills in the request part
 * before the hand-over; the driver's thread writes the response while the
 * transfer runs, and the goroutine reads it once gl_transfer_done. */
typedef struct gl_transfer {
  atomic_int refs;
  CURL *easy; /* writes the response into this transfer */
  CURLU *url; /* what the allow-list checked is what curl uses */
  struct curl_slist *request_headers;
  size_t max_response;    /* bytes of body, and of headers */
  gl_http_driver *driver; /* set when handed over */
  int handed_over;        /* goroutine side only */

  /* The response. */
  gl_buffer body;
  gl_buffer headers; /* the header lines of the last response */
  char status[64];
  long status_code;
  CURLcode result;
  int too_large;
  char error[CURL_ERROR_SIZE];

  pthread_mutex_t mu; /* guards done, abandoned, waiter, seq */
  int done, abandoned;
  gr_g *waiter; /* holds a reference while registered */
  uint32_t seq;

  /* The driver's links: queues under the driver's lock, the rest its own. */
  struct gl_transfer *next_new, *next_abort;
  struct gl_transfer *prev_active, *next_active;
  int in_multi;
} gl_transfer;

/* Initialises libcurl once per process; 0 if it cannot be. */
int gl_http_curl_ready(void);
/* A transfer owned by the caller; NULL when out of memory. */
gl_transfer *gl_transfer_new(void);
int gl_transfer_done(gl_transfer *t);
/* The arm function of a park on a transfer (gr_park). */
int gl_transfer_arm(gr_g *g, uint32_t seq, void *transfer);
/* The caller lets go of t (it finished with it, or unwinds): a transfer
 * still running is stopped by the driver. */
void gl_transfer_abandon(gl_transfer *t);
/* A driver thread; NULL when it cannot start. Freed only once no goroutine
 * can hand anything over any more. */
gl_http_driver *gl_http_driver_new(void);
void gl_http_driver_free(gl_http_driver *d);
/* Gives the driver a reference to t and starts it. */
void gl_http_driver_submit(gl_http_driver *d, gl_transfer *t);

/* ---- runtime objects as userdata (objects.c) -------------------------- */

typedef struct gl_box {
  gr_object *obj;
  int observed; /* a handle's result was read */
} gl_box;

void gl_push_object(lua_State *L, gr_object *obj);
gr_object *gl_object_at(lua_State *L, int idx);
gl_box *gl_check_box(lua_State *L, int idx, const gr_object_type *type);
/* Watches the tables a spawned goroutine's function at fn captured: the
 * first new key written to one is logged as a write the parent will not
 * see. */
void gl_watch_copies(lua_State *L, int fn);
/* Whether the metatable at mt is such a watch (hidden from scripts). */
int gl_is_copy_watch(lua_State *L, int mt);

/* ---- helpers ------------------------------------------------------------ */

/* The runtime of L (a goroutine's state or an attached one); raises if none. */
gr_runtime *gl_runtime(lua_State *L);
/* Push a table {success=, values=} or {success=, error=} for a future. */
void gl_push_result_table(lua_State *L, gr_future *f);
/* Push true, values... or false, error; returns the count. */
int gl_push_result_values(lua_State *L, gr_future *f);

#endif
