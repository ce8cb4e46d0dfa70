/*
 * pattern_match.c - Lua 5.4's pattern matching as a search that can be
 * paused: the engine under the string functions of patterns.c.
 *
 * The stock matcher recurses in C and backtracks without limit: patterns
 * such as "(.-)*(.-)*b" take exponential time on a long subject, and no
 * hook can fire inside C. This engine runs the same search with an
 * explicit stack of choice points (gl_choice) instead of recursion, and
 * keeps all its state, by offsets, in one struct (gl_match) that its
 * callers may copy into a userdata. It counts its steps, and every few
 * thousand it calls gr_checkpoint: a stopped goroutine raises its timeout
 * or cancel error there, as from a hook, and a goroutine whose slice is
 * over gets GL_M_PAUSE back, with the search saved in the struct, so that
 * the caller can yield and resume the search later (gl_match_resume).
 *
 * Results, captures and error messages are the stock library's; more than
 * 200 nested choices is "pattern too complex", as there.
 */
#include "internal.h"

#include <ctype.h>
#include <string.h>

#define CHECK_EVERY 4096 /* steps between two gr_checkpoint calls */
#define CAP_UNFINISHED (-1)
#define CAP_POSITION (-2)

enum { CH_OPEN, CH_CLOSE, CH_OPTIONAL, CH_GREEDY, CH_LAZY };
enum { STEP_ON, STEP_FAIL, STEP_MATCH };

/* ---- the pattern language ------------------------------------------------ */

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
static int set_matches(const gl_match *m, int c, size_t p, size_t close) {
  const unsigned char *pat = (const unsigned char *)m->pat;
  int in = 1;
  p++;
  if (pat[p] == '^') {
    in = 0;
    p++;
  }
  for (; p < close; p++) {
    if (pat[p] == GL_PATTERN_ESC) {
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
static size_t class_end(lua_State *L, const gl_match *m, size_t p) {
  const char *pat = m->pat;
  char c = pat[p++];
  if (c == GL_PATTERN_ESC) {
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
      if (c == GL_PATTERN_ESC && p < m->plen)
        p++;
    } while (pat[p] != ']');
    return p + 1;
  }
  return p;
}

/* Whether the subject character at s is in the class p..ep. */
static int single(const gl_match *m, size_t s, size_t p, size_t ep) {
  if (s >= m->slen)
    return 0;
  int c = (unsigned char)m->src[s];
  switch (m->pat[p]) {
  case '.':
    return 1;
  case GL_PATTERN_ESC:
    return class_matches(c, (unsigned char)m->pat[p + 1]);
  case '[':
    return set_matches(m, c, p, ep - 1);
  default:
    return (unsigned char)m->pat[p] == c;
  }
}

/* %bxy at p (after the "%b"): the end of the balanced run at s, or GL_M_NONE.
 */
static size_t balance(lua_State *L, gl_match *m, size_t s, size_t p) {
  if (p + 1 >= m->plen)
    luaL_error(L, "malformed pattern (missing arguments to '%%b')");
  if (s >= m->slen || m->src[s] != m->pat[p])
    return GL_M_NONE;
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
  return GL_M_NONE;
}

/* %1..%9 at s: the end of a repetition of that capture, or GL_M_NONE. */
static size_t backref(lua_State *L, gl_match *m, size_t s, int digit) {
  int l = digit - '1';
  if (l < 0 || l >= m->level || m->cap[l].len == CAP_UNFINISHED)
    luaL_error(L, "invalid capture index %%%d", l + 1);
  size_t len = (size_t)m->cap[l].len;
  if (m->slen - s >= len &&
      memcmp(m->src + m->cap[l].init, m->src + s, len) == 0) {
    m->steps += len;
    return s + len;
  }
  return GL_M_NONE;
}

/* %f[set] at p (the 'f'): whether s is a frontier; *ep gets the set end. */
static int frontier(lua_State *L, const gl_match *m, size_t s, size_t p,
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

/* ---- the search: an explicit stack of choice points ---------------------- */

static gl_choice *push_choice(lua_State *L, gl_match *m, int kind) {
  if (m->depth >= GL_M_MAXDEPTH - 1)
    luaL_error(L, "pattern too complex");
  gl_choice *c = &m->stack[m->depth++];
  c->kind = (uint8_t)kind;
  return c;
}

static void open_capture(lua_State *L, gl_match *m, size_t s, ptrdiff_t what) {
  if (m->level >= GL_M_MAXCAPS)
    luaL_error(L, "too many captures");
  m->cap[m->level].init = s;
  m->cap[m->level].len = what;
  m->level++;
  push_choice(L, m, CH_OPEN);
}

static void close_capture(lua_State *L, gl_match *m, size_t s) {
  int l = m->level - 1;
  while (l >= 0 && m->cap[l].len != CAP_UNFINISHED)
    l--;
  if (l < 0)
    luaL_error(L, "invalid pattern capture");
  m->cap[l].len = (ptrdiff_t)(s - m->cap[l].init);
  push_choice(L, m, CH_CLOSE)->cap = (int16_t)l;
}

/* A single-character class at *p, maybe with a repetition suffix. */
static int step_single(lua_State *L, gl_match *m, size_t *sp, size_t *pp) {
  size_t s = *sp, p = *pp;
  size_t ep = class_end(L, m, p);
  int suffix = ep < m->plen ? m->pat[ep] : 0;
  if (!single(m, s, p, ep)) {
    if (suffix != '*' && suffix != '?' && suffix != '-')
      return STEP_FAIL;
    *pp = ep + 1; /* zero repetitions */
    return STEP_ON;
  }
  gl_choice *c;
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
static int step(lua_State *L, gl_match *m, size_t *sp, size_t *pp) {
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
  case GL_PATTERN_ESC:
    if (p + 1 >= m->plen)
      break; /* class_end says what is wrong */
    switch (m->pat[p + 1]) {
    case 'b':
      e = balance(L, m, s, p + 2);
      if (e == GL_M_NONE)
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
      if (e == GL_M_NONE)
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
static int retreat(gl_match *m, size_t *sp, size_t *pp) {
  gl_choice *c = &m->stack[m->depth - 1];
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
 * should yield (GL_M_PAUSE: the state is saved in m). */
static int run(lua_State *L, gl_match *m) {
  size_t s = m->s, p = m->p;
  int back = m->backtracking;
  for (;;) {
    if (++m->steps >= m->next_check) {
      m->next_check = m->steps + CHECK_EVERY;
      if (gr_checkpoint(L)) {
        m->s = s;
        m->p = p;
        m->backtracking = back;
        return GL_M_PAUSE;
      }
    }
    if (back) {
      if (m->depth == 0)
        return GL_M_FAIL;
      back = !retreat(m, &s, &p);
      continue;
    }
    int r = step(L, m, &s, &p);
    if (r == STEP_MATCH) {
      m->end = s;
      return GL_M_MATCH;
    }
    back = r == STEP_FAIL;
  }
}

/* One attempt at m->start, or the rest of a paused one. An error raised in
 * the middle leaves nothing paused: the next attempt starts afresh. */
int gl_match_attempt(lua_State *L, gl_match *m) {
  if (!m->paused) {
    m->level = 0;
    m->depth = 0;
    m->s = m->start;
    m->p = m->p0;
    m->backtracking = 0;
  }
  m->paused = 0;
  int r = run(L, m);
  m->paused = r == GL_M_PAUSE;
  return r;
}

void gl_match_init(gl_match *m, lua_State *L, int anchored) {
  m->src = luaL_checklstring(L, 1, &m->slen);
  m->pat = luaL_checklstring(L, 2, &m->plen);
  if (m->plen >= UINT32_MAX)
    luaL_error(L, "pattern too long");
  m->anchor = anchored && m->pat[0] == '^';
  m->p0 = m->anchor ? 1 : 0;
  m->paused = 0;
  m->steps = 0;
  m->next_check = CHECK_EVERY;
  m->lastmatch = GL_M_NONE;
  m->n = 0;
  m->changed = 0;
  m->calling = 0;
  m->copied = 0;
  m->out_len = m->out_cap = 0;
  m->out = NULL;
}

/* After a yield: the strings are the arguments (or upvalues) at s, p. */
gl_match *gl_match_resume(lua_State *L, int slot, int s, int p) {
  gl_match *m = lua_touserdata(L, slot);
  m->src = lua_tostring(L, s);
  m->pat = lua_tostring(L, p);
  return m;
}

/* ---- captures ------------------------------------------------------------ */

void gl_match_push_capture(lua_State *L, const gl_match *m, int i, size_t from,
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
 * GL_M_NONE; returns how many. */
int gl_match_push_captures(lua_State *L, const gl_match *m, size_t from,
                           size_t to) {
  int n = m->level == 0 && from != GL_M_NONE ? 1 : m->level;
  luaL_checkstack(L, n, "too many captures");
  for (int i = 0; i < n; i++)
    gl_match_push_capture(L, m, i, from, to);
  return n;
}
