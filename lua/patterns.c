/*
 * patterns.c - string.find, match, gmatch, gsub and rep for untrusted
 * code, on the pausable matcher of pattern_match.c.
 *
 * What scripts see is the stock library's behaviour. The difference is
 * what a pathological pattern costs: the search may pause (GL_M_PAUSE)
 * when the goroutine's slice is over; these functions then keep the
 * search in a userdata on the Lua stack, yield, and go on where they
 * were when the goroutine runs again. A pattern so costs what a busy
 * loop costs: it is preempted like one and stopped at its timeout like
 * one. A find with no special characters (or plain = true) is a plain
 * substring search, done by memmem in linear time. gsub calls a function
 * replacement with lua_callk, so the replacement may wait (sleep,
 * channels) and be preempted too. string.rep builds its result in
 * O(log n) copies, and an empty result costs nothing whatever the count
 * (the stock one loops n times copying nothing).
 */
#include "internal.h"

#include <ctype.h>
#include <limits.h>
#include <string.h>

#define SPECIALS "^$*+?.([%-"

/* ---- find and match ------------------------------------------------------ */

/* Lua's string positions: 1-based, negative from the end; 0 is 1. */
static size_t start_offset(lua_Integer pos, size_t len) {
  if (pos > 0)
    return (size_t)pos - 1;
  if (pos == 0 || pos < -(lua_Integer)len)
    return 0;
  return len + (size_t)pos;
}

static int no_specials(const char *p, size_t len) {
  for (size_t i = 0; i < len; i++)
    if (p[i] && strchr(SPECIALS, p[i]))
      return 0;
  return 1;
}

enum { FIND_SLOT = 5 }; /* find and match keep a paused state here */

/* Copies m into a userdata at slot, unless it is that userdata already. */
static gl_match *keep_state(lua_State *L, gl_match *m, int slot) {
  if (lua_touserdata(L, slot) == m)
    return m;
  gl_match *kept = lua_newuserdatauv(L, sizeof *kept, 0);
  memcpy(kept, m, sizeof *kept);
  lua_replace(L, slot);
  return kept;
}

static int find_k(lua_State *L, int status, lua_KContext find);

static int find_search(lua_State *L, gl_match *m, int find) {
  for (;;) {
    int r = gl_match_attempt(L, m);
    if (r == GL_M_PAUSE) {
      keep_state(L, m, FIND_SLOT);
      return lua_yieldk(L, 0, find, find_k);
    }
    if (r == GL_M_MATCH)
      break;
    if (m->anchor || m->start >= m->slen) {
      luaL_pushfail(L);
      return 1;
    }
    m->start++;
  }
  if (!find)
    return gl_match_push_captures(L, m, m->start, m->end);
  lua_pushinteger(L, (lua_Integer)m->start + 1);
  lua_pushinteger(L, (lua_Integer)m->end);
  return gl_match_push_captures(L, m, GL_M_NONE, 0) + 2;
}

static int find_k(lua_State *L, int status, lua_KContext find) {
  (void)status;
  return find_search(L, gl_match_resume(L, FIND_SLOT, 1, 2), (int)find);
}

static int find_aux(lua_State *L, int find) {
  size_t ls, lp;
  const char *s = luaL_checklstring(L, 1, &ls);
  const char *p = luaL_checklstring(L, 2, &lp);
  size_t init = start_offset(luaL_optinteger(L, 3, 1), ls);
  if (init > ls) {
    luaL_pushfail(L);
    return 1;
  }
  if (find && (lua_toboolean(L, 4) || no_specials(p, lp))) {
    const char *hit = memmem(s + init, ls - init, p, lp);
    if (!hit) {
      luaL_pushfail(L);
      return 1;
    }
    lua_pushinteger(L, (lua_Integer)(hit - s) + 1);
    lua_pushinteger(L, (lua_Integer)(hit - s + lp));
    return 2;
  }
  lua_settop(L, FIND_SLOT);
  gl_match m;
  gl_match_init(&m, L, 1);
  m.start = init;
  return find_search(L, &m, find);
}

static int l_find(lua_State *L) {
  return find_aux(L, 1);
}

static int l_match(lua_State *L) {
  return find_aux(L, 0);
}

/* ---- gmatch -------------------------------------------------------------- */

static int gmatch_k(lua_State *L, int status, lua_KContext ctx);

static int gmatch_next(lua_State *L) {
  gl_match *m = gl_match_resume(L, lua_upvalueindex(3), lua_upvalueindex(1),
                                lua_upvalueindex(2));
  for (; m->start <= m->slen; m->start++) {
    int r = gl_match_attempt(L, m);
    if (r == GL_M_PAUSE)
      return lua_yieldk(L, 0, 0, gmatch_k);
    if (r == GL_M_MATCH && m->end != m->lastmatch) {
      size_t from = m->start;
      m->start = m->lastmatch = m->end;
      return gl_match_push_captures(L, m, from, m->end);
    }
  }
  return 0;
}

static int gmatch_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  (void)ctx;
  return gmatch_next(L);
}

static int l_gmatch(lua_State *L) {
  size_t ls;
  luaL_checklstring(L, 1, &ls);
  luaL_checkstring(L, 2);
  size_t init = start_offset(luaL_optinteger(L, 3, 1), ls);
  lua_settop(L, 2);
  gl_match *m = lua_newuserdatauv(L, sizeof *m, 0);
  gl_match_init(m, L, 0); /* a '^' is an ordinary character here */
  m->start = init > ls ? ls + 1 : init;
  lua_pushcclosure(L, gmatch_next, 3);
  return 1;
}

/* ---- gsub ---------------------------------------------------------------- */

enum { GSUB_OUT = 5, GSUB_STATE = 6 };

static void out_add(lua_State *L, gl_match *m, const char *data, size_t len) {
  if (len == 0)
    return;
  if (len > m->out_cap - m->out_len) {
    if (len > (size_t)INT_MAX - m->out_len)
      luaL_error(L, "resulting string too large");
    size_t need = m->out_len + len, cap = m->out_cap ? m->out_cap : 64;
    while (cap < need)
      cap *= 2;
    char *bigger = lua_newuserdatauv(L, cap, 0);
    if (m->out_len)
      memcpy(bigger, m->out, m->out_len);
    lua_replace(L, GSUB_OUT);
    m->out = bigger;
    m->out_cap = cap;
  }
  memcpy(m->out + m->out_len, data, len);
  m->out_len += len;
}

/* The subject from m->copied up to `to`, unchanged. */
static void out_copy_to(lua_State *L, gl_match *m, size_t to) {
  out_add(L, m, m->src + m->copied, to - m->copied);
  m->copied = to;
}

/* A string replacement: %0 the match, %1..%9 captures, %% a '%'. */
static void add_template(lua_State *L, gl_match *m) {
  size_t len, i = 0;
  const char *t = lua_tolstring(L, 3, &len);
  const char *esc;
  while ((esc = memchr(t + i, GL_PATTERN_ESC, len - i)) != NULL) {
    size_t at = (size_t)(esc - t);
    out_add(L, m, t + i, at - i);
    int c = (unsigned char)t[at + 1];
    if (c == GL_PATTERN_ESC) {
      out_add(L, m, "%", 1);
    } else if (c == '0') {
      out_add(L, m, m->src + m->from, m->to - m->from);
    } else if (isdigit(c)) {
      size_t vl;
      gl_match_push_capture(L, m, c - '1', m->from, m->to);
      const char *v = luaL_tolstring(L, -1, &vl);
      out_add(L, m, v, vl);
      lua_pop(L, 2);
    } else {
      luaL_error(L, "invalid use of '%c' in replacement string",
                 GL_PATTERN_ESC);
    }
    i = at + 2;
  }
  out_add(L, m, t + i, len - i);
}

/* The value on top replaces the match: false or nil keeps it. */
static void add_value(lua_State *L, gl_match *m) {
  if (!lua_toboolean(L, -1)) {
    out_add(L, m, m->src + m->from, m->to - m->from);
  } else if (!lua_isstring(L, -1)) {
    luaL_error(L, "invalid replacement value (a %s)", luaL_typename(L, -1));
  } else {
    size_t len;
    const char *v = lua_tolstring(L, -1, &len);
    out_add(L, m, v, len);
    m->changed = 1;
  }
  lua_pop(L, 1);
}

static int gsub_k(lua_State *L, int status, lua_KContext ctx);

/* Replaces the match m->from..m->to. A replacement function that yields
 * continues in gsub_k. */
static void replace(lua_State *L, gl_match *m) {
  out_copy_to(L, m, m->from);
  m->copied = m->to;
  switch (lua_type(L, 3)) {
  case LUA_TFUNCTION:
    lua_pushvalue(L, 3);
    m->calling = 1;
    lua_callk(L, gl_match_push_captures(L, m, m->from, m->to), 1, 0, gsub_k);
    m->calling = 0;
    add_value(L, m);
    break;
  case LUA_TTABLE:
    gl_match_push_capture(L, m, 0, m->from, m->to);
    lua_gettable(L, 3);
    add_value(L, m);
    break;
  default:
    add_template(L, m);
    m->changed = 1;
  }
}

static int gsub_loop(lua_State *L, gl_match *m) {
  while (m->n < m->max_n) {
    int r = gl_match_attempt(L, m);
    if (r == GL_M_PAUSE)
      return lua_yieldk(L, 0, 0, gsub_k);
    if (r == GL_M_MATCH && m->end != m->lastmatch) {
      m->n++;
      m->from = m->start;
      m->to = m->end;
      m->start = m->lastmatch = m->end;
      replace(L, m);
    } else if (m->start < m->slen) {
      m->start++;
    } else {
      break;
    }
    if (m->anchor)
      break;
  }
  if (!m->changed) {
    lua_pushvalue(L, 1);
  } else {
    out_copy_to(L, m, m->slen);
    lua_pushlstring(L, m->out, m->out_len);
  }
  lua_pushinteger(L, m->n);
  return 2;
}

/* Continues after a yield: in the search, or in a replacement function
 * (whose result is on top). */
static int gsub_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  (void)ctx;
  gl_match *m = gl_match_resume(L, GSUB_STATE, 1, 2);
  if (m->calling) {
    m->calling = 0;
    add_value(L, m);
    if (m->anchor) /* the only round */
      m->max_n = m->n;
  }
  return gsub_loop(L, m);
}

static int l_gsub(lua_State *L) {
  size_t ls;
  luaL_checklstring(L, 1, &ls);
  luaL_checkstring(L, 2);
  int tr = lua_type(L, 3);
  lua_Integer max_n = luaL_optinteger(L, 4, (lua_Integer)ls + 1);
  luaL_argexpected(L,
                   tr == LUA_TNUMBER || tr == LUA_TSTRING ||
                       tr == LUA_TFUNCTION || tr == LUA_TTABLE,
                   3, "string/function/table");
  if (tr == LUA_TNUMBER)
    lua_tolstring(L, 3, NULL); /* a string from now on */
  lua_settop(L, 4);
  lua_pushnil(L);                                   /* GSUB_OUT */
  gl_match *m = lua_newuserdatauv(L, sizeof *m, 0); /* GSUB_STATE */
  gl_match_init(m, L, 1);
  m->start = 0;
  m->max_n = max_n;
  return gsub_loop(L, m);
}

/* ---- rep ----------------------------------------------------------------- */

static int l_rep(lua_State *L) {
  size_t l, lsep;
  const char *s = luaL_checklstring(L, 1, &l);
  lua_Integer n = luaL_checkinteger(L, 2);
  const char *sep = luaL_optlstring(L, 3, "", &lsep);
  if (n <= 0 || l + lsep == 0) {
    lua_pushliteral(L, "");
    return 1;
  }
  if (l + lsep < l || l + lsep > (size_t)INT_MAX / (size_t)n)
    return luaL_error(L, "resulting string too large");
  size_t total = (size_t)n * l + (size_t)(n - 1) * lsep;
  luaL_Buffer b;
  char *out = luaL_buffinitsize(L, &b, total);
  memcpy(out, s, l);
  size_t done = l;
  if (n > 1) { /* one separator and copy, then double what is there */
    memcpy(out + done, sep, lsep);
    memcpy(out + done + lsep, s, l);
    done += lsep + l;
    while (done < total) {
      size_t chunk = done - l < total - done ? done - l : total - done;
      memcpy(out + done, out + l, chunk);
      done += chunk;
    }
  }
  luaL_pushresultsize(&b, total);
  return 1;
}

int gl_str_find(lua_State *L) {
  return l_find(L);
}
int gl_str_match(lua_State *L) {
  return l_match(L);
}
int gl_str_gmatch(lua_State *L) {
  return l_gmatch(L);
}
int gl_str_gsub(lua_State *L) {
  return l_gsub(L);
}
int gl_str_rep(lua_State *L) {
  return l_rep(L);
}
