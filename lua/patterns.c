/*
 * patterns.c - string.find, match, gmatch and gsub for untrusted code: Lua
 * 5.4's patterns, searched by a matcher that can be stopped and paused.
 *
 * The stock matcher is a recursive backtracking search in C. Patterns such
 * as "(.-)*(.-)*b" take exponential time on a long subject, and no hook can
 * fire inside C: a snippet could hold a worker thread, or the request
 * thread running its first slice, for hours. This matcher runs the same
 * search with an explicit stack of choice points instead of recursion and
 * counts its steps. Every few thousand steps it asks the runtime
 * (gr_checkpoint) whether the goroutine was stopped, and then raises its
 * timeout or cancel error as a hook would, or whether its time slice is
 * over, and then keeps its state in a userdata on the Lua stack, yields,
 * and goes on where it was when the goroutine runs again. A pathological
 * pattern so costs what a busy loop costs: it is preempted like one and
 * stopped at its timeout like one.
 *
 * What scripts see is the stock library's behaviour: the same results and
 * captures, the same error messages, "pattern too complex" past 200 nested
 * choices. A find with no special characters (or plain = true) is a plain
 * substring search, done by memmem in linear time. gsub calls a function
 * replacement with lua_callk, so it may wait (sleep, channels) and be
 * preempted too. string.rep is here as well: it builds its result in
 * O(log n) copies, and an empty result costs nothing whatever the count
 * (the stock one loops n times copying nothing).
 */
#include "internal.h"

#include <ctype.h>
#include <limits.h>
#include <stdint.h>
#include <string.h>

#define ESC '%'
#define SPECIALS "^$*+?.([%-"
#define MAXCAPS 32        /* captures, as lstrlib's LUA_MAXCAPTURES */
#define MAXDEPTH 200      /* nested choices, as lstrlib's MAXCCALLS */
#define CHECK_EVERY 4096  /* steps between two gr_checkpoint calls */
#define NONE ((size_t)-1) /* no position */
#define CAP_UNFINISHED (-1)
#define CAP_POSITION (-2)

enum { CH_OPEN, CH_CLOSE, CH_OPTIONAL, CH_GREEDY, CH_LAZY };
enum { M_MATCH, M_FAIL, M_PAUSE };
enum { STEP_ON, STEP_FAIL, STEP_MATCH };

/* A point the search can come back to. */
typedef struct choice {
  size_t s;     /* subject offset: where the alternative starts */
  size_t n;     /* CH_GREEDY: how many characters the item takes now */
  uint32_t p;   /* the item (CH_OPTIONAL: where to go on) */
  uint32_t ep;  /* the end of the item's class */
  int16_t cap;  /* CH_OPEN, CH_CLOSE: the capture */
  uint8_t kind; /* CH_* */
} choice;

/* Everything a search needs, by offsets, so it can be copied into a
 * userdata and carried across a yield. */
typedef struct mstate {
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
  } cap[MAXCAPS];
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
  choice stack[MAXDEPTH];
} mstate;

/* ---- the pattern language --------------------------------------------- */

static int class_matches(int c, int cl) {
  int res;
  switch (tolower(cl)) {
  case 'a':
    res = isalpha(c);
    break;
  case 'c':
    res = iscntrl(c);
    break;
  case 'd':
    res = isdigit(c);
    break;
  case 'g':
    res = isgraph(c);
    break;
  case 'l':
    res = islower(c);
    break;
  case 'p':
    res = ispunct(c);
    break;
  case 's':
    res = isspace(c);
    break;
  case 'u':
    res = isupper(c);
    break;
  case 'w':
    res = isalnum(c);
    break;
  case 'x':
    res = isxdigit(c);
    break;
  case 'z': /* deprecated, but 5.4 still has it */
    res = c == 0;
    break;
  default:
    return cl == c;
  }
  return isupper(cl) ? !res : res != 0;
}

/* Whether c is in the set [...] from p (the '[') to close (the ']'). */
static int set_matches(const mstate *m, int c, size_t p, size_t close) {
  const unsigned char *pat = (const unsigned char *)m->pat;
  int in = 1;
  p++;
  if (pat[p] == '^') {
    in = 0;
    p++;
  }
  for (; p < close; p++) {
    if (pat[p] == ESC) {
      p++;
      if (class_matches(c, pat[p]))
        return in;
    } else if (pat[p + 1] == '-' && p + 2 < close) {
      if (pat[p] <= c && c <= pat[p + 2])
        return in;
      p += 2;
    } else if (pat[p] == c) {
      return in;
    }
  }
  return !in;
}

/* The end of the single-character class at p. Lua strings end with a NUL
 * byte, which is no ']'. */
static size_t class_end(lua_State *L, const mstate *m, size_t p) {
  const char *pat = m->pat;
  char c = pat[p++];
  if (c == ESC) {
    if (p >= m->plen)
      luaL_error(L, "malformed pattern (ends with '%%')");
    return p + 1;
  }
  if (c == '[') {
    if (pat[p] == '^')
      p++;
    do { /* the first character may be a ']' */
      if (p >= m->plen)
        luaL_error(L, "malformed pattern (missing ']')");
      c = pat[p++];
      if (c == ESC && p < m->plen)
        p++;
    } while (pat[p] != ']');
    return p + 1;
  }
  return p;
}

/* Whether the subject character at s is in the class p..ep. */
static int single(const mstate *m, size_t s, size_t p, size_t ep) {
  if (s >= m->slen)
    return 0;
  int c = (unsigned char)m->src[s];
  switch (m->pat[p]) {
  case '.':
    return 1;
  case ESC:
    return class_matches(c, (unsigned char)m->pat[p + 1]);
  case '[':
    return set_matches(m, c, p, ep - 1);
  default:
    return (unsigned char)m->pat[p] == c;
  }
}

/* %bxy at p (after the "%b"): the end of the balanced run at s, or NONE. */
static size_t balance(lua_State *L, mstate *m, size_t s, size_t p) {
  if (p + 1 >= m->plen)
    luaL_error(L, "malformed pattern (missing arguments to '%%b')");
  if (s >= m->slen || m->src[s] != m->pat[p])
    return NONE;
  char open = m->pat[p], close = m->pat[p + 1];
  size_t depth = 1;
  for (size_t i = s + 1; i < m->slen; i++) {
    if (m->src[i] == close) {
      if (--depth == 0) {
        m->steps += i - s;
        return i + 1;
      }
    } else if (m->src[i] == open) {
      depth++;
    }
  }
  m->steps += m->slen - s;
  return NONE;
}

/* %1..%9 at s: the end of a repetition of that capture, or NONE. */
static size_t backref(lua_State *L, mstate *m, size_t s, int digit) {
  int l = digit - '1';
  if (l < 0 || l >= m->level || m->cap[l].len == CAP_UNFINISHED)
    luaL_error(L, "invalid capture index %%%d", l + 1);
  size_t len = (size_t)m->cap[l].len;
  if (m->slen - s >= len &&
      memcmp(m->src + m->cap[l].init, m->src + s, len) == 0) {
    m->steps += len;
    return s + len;
  }
  return NONE;
}

/* %f[set] at p (the 'f'): whether s is a frontier; *ep gets the set end. */
static int frontier(lua_State *L, const mstate *m, size_t s, size_t p,
                    size_t *ep) {
  p++;
  if (m->pat[p] != '[')
    luaL_error(L, "missing '[' after '%%f' in pattern");
  *ep = class_end(L, m, p);
  int before = s == 0 ? 0 : (unsigned char)m->src[s - 1];
  int here = s < m->slen ? (unsigned char)m->src[s] : 0;
  return !set_matches(m, before, p, *ep - 1) &&
         set_matches(m, here, p, *ep - 1);
}

/* ---- the search: an explicit stack of choice points ------------------- */

static choice *push_choice(lua_State *L, mstate *m, int kind) {
  if (m->depth >= MAXDEPTH - 1)
    luaL_error(L, "pattern too complex");
  choice *c = &m->stack[m->depth++];
  c->kind = (uint8_t)kind;
  return c;
}

static void open_capture(lua_State *L, mstate *m, size_t s, ptrdiff_t what) {
  if (m->level >= MAXCAPS)
    luaL_error(L, "too many captures");
  m->cap[m->level].init = s;
  m->cap[m->level].len = what;
  m->level++;
  push_choice(L, m, CH_OPEN);
}

static void close_capture(lua_State *L, mstate *m, size_t s) {
  int l = m->level - 1;
  while (l >= 0 && m->cap[l].len != CAP_UNFINISHED)
    l--;
  if (l < 0)
    luaL_error(L, "invalid pattern capture");
  m->cap[l].len = (ptrdiff_t)(s - m->cap[l].init);
  push_choice(L, m, CH_CLOSE)->cap = (int16_t)l;
}

/* A single-character class at *p, maybe with a repetition suffix. */
static int step_single(lua_State *L, mstate *m, size_t *sp, size_t *pp) {
  size_t s = *sp, p = *pp;
  size_t ep = class_end(L, m, p);
  int suffix = ep < m->plen ? m->pat[ep] : 0;
  if (!single(m, s, p, ep)) {
    if (suffix != '*' && suffix != '?' && suffix != '-')
      return STEP_FAIL;
    *pp = ep + 1; /* zero repetitions */
    return STEP_ON;
  }
  choice *c;
  switch (suffix) {
  case '?':
    c = push_choice(L, m, CH_OPTIONAL);
    c->s = s; /* if taking it fails: go on without it */
    c->p = (uint32_t)(ep + 1);
    *sp = s + 1;
    *pp = ep + 1;
    return STEP_ON;
  case '+':
  case '*': { /* take as many as possible, give back one by one */
    size_t from = suffix == '+' ? s + 1 : s, n = 0;
    while (single(m, from + n, p, ep))
      n++;
    m->steps += n;
    c = push_choice(L, m, CH_GREEDY);
    c->s = from;
    c->n = n;
    c->p = (uint32_t)p;
    c->ep = (uint32_t)ep;
    *sp = from + n;
    *pp = ep + 1;
    return STEP_ON;
  }
  case '-': /* take none, then one more each time the rest fails */
    c = push_choice(L, m, CH_LAZY);
    c->s = s;
    c->p = (uint32_t)p;
    c->ep = (uint32_t)ep;
    *pp = ep + 1;
    return STEP_ON;
  default:
    *sp = s + 1;
    *pp = ep;
    return STEP_ON;
  }
}

/* One step forward from (*sp, *pp). */
static int step(lua_State *L, mstate *m, size_t *sp, size_t *pp) {
  size_t s = *sp, p = *pp, e;
  if (p >= m->plen)
    return STEP_MATCH;
  switch (m->pat[p]) {
  case '(':
    if (m->pat[p + 1] == ')') {
      open_capture(L, m, s, CAP_POSITION);
      *pp = p + 2;
    } else {
      open_capture(L, m, s, CAP_UNFINISHED);
      *pp = p + 1;
    }
    return STEP_ON;
  case ')':
    close_capture(L, m, s);
    *pp = p + 1;
    return STEP_ON;
  case '$':
    if (p + 1 != m->plen)
      break; /* an ordinary character */
    if (s != m->slen)
      return STEP_FAIL;
    *pp = p + 1;
    return STEP_ON;
  case ESC:
    if (p + 1 >= m->plen)
      break; /* class_end says what is wrong */
    switch (m->pat[p + 1]) {
    case 'b':
      e = balance(L, m, s, p + 2);
      if (e == NONE)
        return STEP_FAIL;
      *sp = e;
      *pp = p + 4;
      return STEP_ON;
    case 'f':
      if (!frontier(L, m, s, p + 1, &e))
        return STEP_FAIL;
      *pp = e;
      return STEP_ON;
    default:
      if (!isdigit((unsigned char)m->pat[p + 1]))
        break;
      e = backref(L, m, s, m->pat[p + 1]);
      if (e == NONE)
        return STEP_FAIL;
      *sp = e;
      *pp = p + 2;
      return STEP_ON;
    }
    break;
  default:
    break;
  }
  return step_single(L, m, sp, pp);
}

/* Undoes the newest choice, or takes its next alternative: returns 1 and
 * sets (*sp, *pp) when there is one to try. */
static int retreat(mstate *m, size_t *sp, size_t *pp) {
  choice *c = &m->stack[m->depth - 1];
  switch (c->kind) {
  case CH_OPEN:
    m->level--;
    break;
  case CH_CLOSE:
    m->cap[c->cap].len = CAP_UNFINISHED;
    break;
  case CH_OPTIONAL:
    *sp = c->s;
    *pp = c->p;
    m->depth--;
    return 1;
  case CH_GREEDY:
    if (c->n == 0)
      break;
    c->n--;
    *sp = c->s + c->n;
    *pp = c->ep + 1;
    return 1;
  case CH_LAZY:
    if (!single(m, c->s, c->p, c->ep))
      break;
    *sp = ++c->s;
    *pp = c->ep + 1;
    return 1;
  }
  m->depth--;
  return 0;
}

/* Runs the attempt in progress until it matches, fails, or the goroutine
 * should yield (M_PAUSE: the state is saved in m). */
static int run(lua_State *L, mstate *m) {
  size_t s = m->s, p = m->p;
  int back = m->backtracking;
  for (;;) {
    if (++m->steps >= m->next_check) {
      m->next_check = m->steps + CHECK_EVERY;
      if (gr_checkpoint(L)) {
        m->s = s;
        m->p = p;
        m->backtracking = back;
        return M_PAUSE;
      }
    }
    if (back) {
      if (m->depth == 0)
        return M_FAIL;
      back = !retreat(m, &s, &p);
      continue;
    }
    int r = step(L, m, &s, &p);
    if (r == STEP_MATCH) {
      m->end = s;
      return M_MATCH;
    }
    back = r == STEP_FAIL;
  }
}

/* One attempt at m->start, or the rest of a paused one. An error raised in
 * the middle leaves nothing paused: the next attempt starts afresh. */
static int attempt(lua_State *L, mstate *m) {
  if (!m->paused) {
    m->level = 0;
    m->depth = 0;
    m->s = m->start;
    m->p = m->p0;
    m->backtracking = 0;
  }
  m->paused = 0;
  int r = run(L, m);
  m->paused = r == M_PAUSE;
  return r;
}

static void init_state(mstate *m, lua_State *L, int anchored) {
  m->src = luaL_checklstring(L, 1, &m->slen);
  m->pat = luaL_checklstring(L, 2, &m->plen);
  if (m->plen >= UINT32_MAX)
    luaL_error(L, "pattern too long");
  m->anchor = anchored && m->pat[0] == '^';
  m->p0 = m->anchor ? 1 : 0;
  m->paused = 0;
  m->steps = 0;
  m->next_check = CHECK_EVERY;
  m->lastmatch = NONE;
  m->n = 0;
  m->changed = 0;
  m->calling = 0;
  m->copied = 0;
  m->out_len = m->out_cap = 0;
  m->out = NULL;
}

/* After a yield: the strings are the arguments (or upvalues) at s, p. */
static mstate *resume_state(lua_State *L, int slot, int s, int p) {
  mstate *m = lua_touserdata(L, slot);
  m->src = lua_tostring(L, s);
  m->pat = lua_tostring(L, p);
  return m;
}

/* ---- captures ----------------------------------------------------------- */

static void push_capture(lua_State *L, const mstate *m, int i, size_t from,
                         size_t to) {
  if (i >= m->level) {
    if (i != 0)
      luaL_error(L, "invalid capture index %%%d", i + 1);
    lua_pushlstring(L, m->src + from, to - from); /* the whole match */
    return;
  }
  ptrdiff_t len = m->cap[i].len;
  if (len == CAP_UNFINISHED)
    luaL_error(L, "unfinished capture");
  if (len == CAP_POSITION)
    lua_pushinteger(L, (lua_Integer)m->cap[i].init + 1);
  else
    lua_pushlstring(L, m->src + m->cap[i].init, (size_t)len);
}

/* The captures, or the whole match if there are none and from is not
 * NONE; returns how many. */
static int push_captures(lua_State *L, const mstate *m, size_t from,
                         size_t to) {
  int n = m->level == 0 && from != NONE ? 1 : m->level;
  luaL_checkstack(L, n, "too many captures");
  for (int i = 0; i < n; i++)
    push_capture(L, m, i, from, to);
  return n;
}

/* ---- find and match ----------------------------------------------------- */

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
static mstate *keep_state(lua_State *L, mstate *m, int slot) {
  if (lua_touserdata(L, slot) == m)
    return m;
  mstate *kept = lua_newuserdatauv(L, sizeof *kept, 0);
  memcpy(kept, m, sizeof *kept);
  lua_replace(L, slot);
  return kept;
}

static int find_k(lua_State *L, int status, lua_KContext find);

static int find_search(lua_State *L, mstate *m, int find) {
  for (;;) {
    int r = attempt(L, m);
    if (r == M_PAUSE) {
      keep_state(L, m, FIND_SLOT);
      return lua_yieldk(L, 0, find, find_k);
    }
    if (r == M_MATCH)
      break;
    if (m->anchor || m->start >= m->slen) {
      luaL_pushfail(L);
      return 1;
    }
    m->start++;
  }
  if (!find)
    return push_captures(L, m, m->start, m->end);
  lua_pushinteger(L, (lua_Integer)m->start + 1);
  lua_pushinteger(L, (lua_Integer)m->end);
  return push_captures(L, m, NONE, 0) + 2;
}

static int find_k(lua_State *L, int status, lua_KContext find) {
  (void)status;
  return find_search(L, resume_state(L, FIND_SLOT, 1, 2), (int)find);
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
  mstate m;
  init_state(&m, L, 1);
  m.start = init;
  return find_search(L, &m, find);
}

static int l_find(lua_State *L) {
  return find_aux(L, 1);
}

static int l_match(lua_State *L) {
  return find_aux(L, 0);
}

/* ---- gmatch ------------------------------------------------------------- */

static int gmatch_k(lua_State *L, int status, lua_KContext ctx);

static int gmatch_next(lua_State *L) {
  mstate *m = resume_state(L, lua_upvalueindex(3), lua_upvalueindex(1),
                           lua_upvalueindex(2));
  for (; m->start <= m->slen; m->start++) {
    int r = attempt(L, m);
    if (r == M_PAUSE)
      return lua_yieldk(L, 0, 0, gmatch_k);
    if (r == M_MATCH && m->end != m->lastmatch) {
      size_t from = m->start;
      m->start = m->lastmatch = m->end;
      return push_captures(L, m, from, m->end);
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
  mstate *m = lua_newuserdatauv(L, sizeof *m, 0);
  init_state(m, L, 0); /* a '^' is an ordinary character here */
  m->start = init > ls ? ls + 1 : init;
  lua_pushcclosure(L, gmatch_next, 3);
  return 1;
}

/* ---- gsub --------------------------------------------------------------- */

enum { GSUB_OUT = 5, GSUB_STATE = 6 };

static void out_add(lua_State *L, mstate *m, const char *data, size_t len) {
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
static void out_copy_to(lua_State *L, mstate *m, size_t to) {
  out_add(L, m, m->src + m->copied, to - m->copied);
  m->copied = to;
}

/* A string replacement: %0 the match, %1..%9 captures, %% a '%'. */
static void add_template(lua_State *L, mstate *m) {
  size_t len, i = 0;
  const char *t = lua_tolstring(L, 3, &len);
  const char *esc;
  while ((esc = memchr(t + i, ESC, len - i)) != NULL) {
    size_t at = (size_t)(esc - t);
    out_add(L, m, t + i, at - i);
    int c = (unsigned char)t[at + 1];
    if (c == ESC) {
      out_add(L, m, "%", 1);
    } else if (c == '0') {
      out_add(L, m, m->src + m->from, m->to - m->from);
    } else if (isdigit(c)) {
      size_t vl;
      push_capture(L, m, c - '1', m->from, m->to);
      const char *v = luaL_tolstring(L, -1, &vl);
      out_add(L, m, v, vl);
      lua_pop(L, 2);
    } else {
      luaL_error(L, "invalid use of '%c' in replacement string", ESC);
    }
    i = at + 2;
  }
  out_add(L, m, t + i, len - i);
}

/* The value on top replaces the match: false or nil keeps it. */
static void add_value(lua_State *L, mstate *m) {
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
static void replace(lua_State *L, mstate *m) {
  out_copy_to(L, m, m->from);
  m->copied = m->to;
  switch (lua_type(L, 3)) {
  case LUA_TFUNCTION:
    lua_pushvalue(L, 3);
    m->calling = 1;
    lua_callk(L, push_captures(L, m, m->from, m->to), 1, 0, gsub_k);
    m->calling = 0;
    add_value(L, m);
    break;
  case LUA_TTABLE:
    push_capture(L, m, 0, m->from, m->to);
    lua_gettable(L, 3);
    add_value(L, m);
    break;
  default:
    add_template(L, m);
    m->changed = 1;
  }
}

static int gsub_loop(lua_State *L, mstate *m) {
  while (m->n < m->max_n) {
    int r = attempt(L, m);
    if (r == M_PAUSE)
      return lua_yieldk(L, 0, 0, gsub_k);
    if (r == M_MATCH && m->end != m->lastmatch) {
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
  mstate *m = resume_state(L, GSUB_STATE, 1, 2);
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
  lua_pushnil(L);                                 /* GSUB_OUT */
  mstate *m = lua_newuserdatauv(L, sizeof *m, 0); /* GSUB_STATE */
  init_state(m, L, 1);
  m->start = 0;
  m->max_n = max_n;
  return gsub_loop(L, m);
}

/* ---- rep ---------------------------------------------------------------- */

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
