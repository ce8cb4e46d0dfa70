/*
 * test_common.c - common/, the pieces every layer shares: UTF-8 edge cases,
 * JSON escapes and float round trips (also under a locale whose decimal
 * point is ','), percent-decoding, sizes and numbers, and the option parser
 * on a sample table.
 */
#include "helpers.h"

#include "gr_common.h"

#include <limits.h>
#include <locale.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- UTF-8 ---------------------------------------------------------------
 */

static size_t char_len(const char *s) {
  return cm_utf8_char(s, strlen(s));
}

START_TEST(utf8_characters) {
  ck_assert_uint_eq(cm_utf8_char("\0", 1), 1);
  ck_assert_uint_eq(char_len("a"), 1);
  ck_assert_uint_eq(char_len("\xc3\xa9"), 2);         /* U+00E9 */
  ck_assert_uint_eq(char_len("\xdf\xbf"), 2);         /* U+07FF */
  ck_assert_uint_eq(char_len("\xe0\xa0\x80"), 3);     /* U+0800 */
  ck_assert_uint_eq(char_len("\xe2\x82\xac"), 3);     /* U+20AC */
  ck_assert_uint_eq(char_len("\xed\x9f\xbf"), 3);     /* U+D7FF */
  ck_assert_uint_eq(char_len("\xee\x80\x80"), 3);     /* U+E000 */
  ck_assert_uint_eq(char_len("\xef\xbf\xbf"), 3);     /* U+FFFF */
  ck_assert_uint_eq(char_len("\xf0\x90\x80\x80"), 4); /* U+10000 */
  ck_assert_uint_eq(char_len("\xf4\x8f\xbf\xbf"), 4); /* U+10FFFF */
  /* overlong forms */
  ck_assert_uint_eq(char_len("\xc0\x80"), 0);
  ck_assert_uint_eq(char_len("\xc1\xbf"), 0);
  ck_assert_uint_eq(char_len("\xe0\x80\xaf"), 0);
  ck_assert_uint_eq(char_len("\xe0\x9f\xbf"), 0);
  ck_assert_uint_eq(char_len("\xf0\x8f\xbf\xbf"), 0);
  /* surrogates, and past U+10FFFF */
  ck_assert_uint_eq(char_len("\xed\xa0\x80"), 0);
  ck_assert_uint_eq(char_len("\xed\xbf\xbf"), 0);
  ck_assert_uint_eq(char_len("\xf4\x90\x80\x80"), 0);
  ck_assert_uint_eq(char_len("\xf5\x80\x80\x80"), 0);
  ck_assert_uint_eq(char_len("\xff"), 0);
  /* lone continuation bytes, bad or missing continuations */
  ck_assert_uint_eq(char_len("\x80"), 0);
  ck_assert_uint_eq(char_len("\xbf"), 0);
  ck_assert_uint_eq(char_len("\xc3\x28"), 0);
  ck_assert_uint_eq(char_len("\xe2\x28\xac"), 0);
  ck_assert_uint_eq(cm_utf8_char("\xe2\x82\xac", 2), 0);
  ck_assert_uint_eq(cm_utf8_char("\xf0\x9f\x98\x80", 3), 0);
}
END_TEST

START_TEST(utf8_valid_prefixes) {
  const char *ok = "plain \xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 end";
  ck_assert_uint_eq(cm_utf8_valid_prefix(ok, strlen(ok)), strlen(ok));
  ck_assert_uint_eq(cm_utf8_valid_prefix("", 0), 0);
  ck_assert_uint_eq(cm_utf8_valid_prefix("ab\xff"
                                         "cd",
                                         5),
                    2);
  ck_assert_uint_eq(cm_utf8_valid_prefix("ab\xe2\x82", 4), 2);
  ck_assert_uint_eq(cm_utf8_valid_prefix("\xc3\xa9\xed\xa0\x80", 5), 2);
  ck_assert_uint_eq(cm_utf8_valid_prefix("a\0b", 3), 3);
}
END_TEST

/* ---- JSON text -----------------------------------------------------------
 */

/* What a writer received: the text, and whether each piece kept the
 * promise (a run holds no backslash, an escape starts with one). */
typedef struct collected {
  char text[256];
  size_t len;
  int pieces, broken;
} collected;

static void collect(void *ctx, const char *s, size_t n) {
  collected *c = ctx;
  ck_assert_uint_gt(n, 0);
  ck_assert_uint_lt(c->len + n, sizeof c->text);
  if (s[0] != '\\' && memchr(s, '\\', n))
    c->broken++;
  if (s[0] == '\\' && n != 2 && n != 6)
    c->broken++;
  memcpy(c->text + c->len, s, n);
  c->len += n;
  c->text[c->len] = '\0';
  c->pieces++;
}

static collected escaped(const char *s, size_t n, cm_escape_style style) {
  collected c = {.len = 0};
  cm_json_escape(s, n, style, collect, &c);
  ck_assert_int_eq(c.broken, 0);
  return c;
}

START_TEST(json_escapes) {
  static const char in[] = "q\"b\\s/\n\r\t\b\f\x01\x1f\x7f \xc3\xa9";
  collected c = escaped(in, sizeof in - 1, CM_ESCAPE_JSON);
  ck_assert_str_eq(c.text, "q\\\"b\\\\s/\\n\\r\\t\\b\\f\\u0001\\u001f\x7f "
                           "\xc3\xa9");
  c = escaped(in, sizeof in - 1, CM_ESCAPE_LOG);
  ck_assert_str_eq(c.text, "q\\\"b\\\\s/\\n\\r\\t\\u0008\\u000c\\u0001"
                           "\\u001f\\u007f \xc3\xa9");
  c = escaped("a\0b", 3, CM_ESCAPE_JSON);
  ck_assert_str_eq(c.text, "a\\u0000b");
  c = escaped("", 0, CM_ESCAPE_JSON);
  ck_assert_int_eq(c.pieces, 0);
  c = escaped("no escapes at all", 17, CM_ESCAPE_JSON);
  ck_assert_int_eq(c.pieces, 1); /* one run, one call */
}
END_TEST

static const char *json_double(double d) {
  static char out[CM_DOUBLE_BUF];
  size_t len = cm_json_double(d, out);
  ck_assert_uint_eq(len, strlen(out));
  return out;
}

START_TEST(json_doubles_shortest) {
  ck_assert_str_eq(json_double(0.1), "0.1");
  ck_assert_str_eq(json_double(0.1 + 0.2), "0.30000000000000004");
  ck_assert_str_eq(json_double(1.0 / 3), "0.3333333333333333");
  ck_assert_str_eq(json_double(1e300), "1e+300");
  ck_assert_str_eq(json_double(1e21), "1e+21");
  ck_assert_str_eq(json_double(-1.5e-7), "-1.5e-07");
  ck_assert_str_eq(json_double(5e-324), "4.94065645841247e-324");
  ck_assert_str_eq(json_double(1.7976931348623157e308),
                   "1.7976931348623157e+308");
  /* integral values stay floats: ".0", also for -0 */
  ck_assert_str_eq(json_double(2.0), "2.0");
  ck_assert_str_eq(json_double(-2.0), "-2.0");
  ck_assert_str_eq(json_double(0.0), "0.0");
  ck_assert_str_eq(json_double(-0.0), "-0.0");
  ck_assert_str_eq(json_double(ldexp(1, 53)), "9007199254740992.0");
  /* 2^53 + 1 has no double: it is 2^53; 2^53 + 2 has one */
  ck_assert_str_eq(json_double((double)9007199254740993LL),
                   "9007199254740992.0");
  ck_assert_str_eq(json_double((double)9007199254740994LL),
                   "9007199254740994.0");
  ck_assert_str_eq(json_double(123456789012345678.0), "1.2345678901234568e+17");
  /* no JSON form: the caller decides */
  char out[CM_DOUBLE_BUF] = "x";
  ck_assert_uint_eq(cm_json_double(NAN, out), 0);
  ck_assert_str_eq(out, "");
  ck_assert_uint_eq(cm_json_double(INFINITY, out), 0);
  ck_assert_uint_eq(cm_json_double(-INFINITY, out), 0);
}
END_TEST

static int same_bits(double a, double b) {
  return memcmp(&a, &b, sizeof a) == 0;
}

/* Doubles from every corner: a fixed sequence of random bit patterns. */
START_TEST(json_doubles_round_trip) {
  uint64_t x = 0x9e3779b97f4a7c15u;
  int checked = 0;
  for (int i = 0; i < 20000; i++) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    double d;
    memcpy(&d, &x, sizeof d);
    if (!isfinite(d))
      continue;
    const char *text = json_double(d);
    ck_assert_msg(same_bits(strtod(text, NULL), d), "%s", text);
    ck_assert_msg(strpbrk(text, ".e") != NULL, "%s", text);
    checked++;
  }
  ck_assert_int_gt(checked, 19000);
  const double edges[] = {0.1,
                          1e300,
                          5e-324,
                          -0.0,
                          2.0,
                          1e23,
                          2.2250738585072014e-308,
                          4503599627370497.5};
  for (size_t i = 0; i < sizeof edges / sizeof edges[0]; i++)
    ck_assert(same_bits(strtod(json_double(edges[i]), NULL), edges[i]));
}
END_TEST

/* A ',' locale: de_DE.UTF-8 if installed, else built with localedef into a
 * temporary folder (LOCPATH). 1 if LC_NUMERIC is now such a locale. */
static int use_comma_locale(char *dir) {
  if (setlocale(LC_NUMERIC, "de_DE.UTF-8"))
    return 1;
  t_tmpdir_make(dir, "gr_locale");
  char cmd[512];
  snprintf(cmd, sizeof cmd,
           "localedef -i de_DE -f UTF-8 %s/de_DE.UTF-8 >/dev/null 2>&1", dir);
  if (system(cmd) == -1)
    return 0;
  setenv("LOCPATH", dir, 1);
  return setlocale(LC_NUMERIC, "de_DE.UTF-8") != NULL;
}

START_TEST(json_doubles_ignore_the_locale) {
  char dir[64] = "";
  if (!use_comma_locale(dir)) {
    printf("test_common: SKIPPED the ',' locale check: de_DE.UTF-8 is not "
           "installed and localedef could not build it\n");
    return;
  }
  char probe[16];
  snprintf(probe, sizeof probe, "%.1f", 0.5);
  ck_assert_str_eq(probe, "0,5"); /* the locale is in force */
  ck_assert_str_eq(json_double(0.1), "0.1");
  ck_assert_str_eq(json_double(1234.5), "1234.5");
  ck_assert_str_eq(json_double(2.0), "2.0");
  ck_assert_str_eq(json_double(-1.5e-7), "-1.5e-07");
  ck_assert_str_eq(json_double(0.1 + 0.2), "0.30000000000000004");
  /* the Lua json module writes through it too */
  gr_runtime *rt = t_runtime(1, 0);
  char *v = t_eval(rt, "return json.encode({0.5, 2.0, 1/3})");
  ck_assert_str_eq(v, "[0.5,2.0,0.3333333333333333]");
  free(v);
  t_runtime_free(rt);
  setlocale(LC_NUMERIC, "C");
  if (dir[0])
    t_tmpdir_remove(dir);
}
END_TEST

/* ---- percent-decoding ----------------------------------------------------
 */

static const char *decoded(const char *s, long want_len) {
  static char out[64];
  long len = cm_percent_decode(s, strlen(s), out);
  ck_assert_int_eq(len, want_len);
  return out;
}

START_TEST(percent_decoding) {
  ck_assert_str_eq(decoded("", 0), "");
  ck_assert_str_eq(decoded("plain", 5), "plain");
  ck_assert_str_eq(decoded("a%20b", 3), "a b");
  ck_assert_str_eq(decoded("%2F%2f", 2), "//");
  ck_assert_str_eq(decoded("%C3%A9", 2), "\xc3\xa9");
  ck_assert_str_eq(decoded("%252F", 3), "%2F"); /* once, not twice */
  ck_assert_str_eq(decoded("a+b", 3), "a+b");
  char out[16];
  const char *bad[] = {"%", "%4", "a%4", "%G1", "%1g", "%zz", "x%"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    ck_assert_int_eq(cm_percent_decode(bad[i], strlen(bad[i]), out),
                     CM_PERCENT_BAD);
  ck_assert_int_eq(cm_percent_decode("a%00b", 5, out), CM_PERCENT_NUL);
  /* only the n bytes given are read */
  ck_assert_int_eq(cm_percent_decode("ab%41", 4, out), CM_PERCENT_BAD);
  ck_assert_int_eq(cm_percent_decode("ab%41", 2, out), 2);
}
END_TEST

/* ---- sizes and numbers ---------------------------------------------------
 */

static long long size_of(const char *s) {
  long long n = -7;
  ck_assert_msg(cm_parse_size(s, &n) == 0, "'%s' refused", s);
  return n;
}

START_TEST(bounded_copies) {
  char buf[6];
  ck_assert_uint_eq(cm_copy_text(buf, sizeof buf, "abc"), 3);
  ck_assert_str_eq(buf, "abc");
  ck_assert_uint_eq(cm_copy_text(buf, sizeof buf, "abcde"), 5);
  ck_assert_str_eq(buf, "abcde");
  ck_assert_uint_eq(cm_copy_text(buf, sizeof buf, "abcdefgh"), 5); /* cut */
  ck_assert_str_eq(buf, "abcde");
  ck_assert_uint_eq(cm_copy_text(buf, sizeof buf, ""), 0);
  ck_assert_str_eq(buf, "");
  ck_assert_uint_eq(cm_copy_text(buf, 1, "x"), 0);
  ck_assert_str_eq(buf, "");
}
END_TEST

START_TEST(hashes_of_bytes) {
  /* the same bytes the same hash; one byte changed anywhere, or one more
   * byte (even a zero), another */
  char a[40], b[40];
  for (size_t i = 0; i < sizeof a; i++)
    a[i] = (char)('a' + i % 26);
  ck_assert(cm_hash64(a, sizeof a) == cm_hash64(memcpy(b, a, sizeof a), 40));
  for (size_t len = 0; len <= sizeof a; len++) {
    uint64_t h = cm_hash64(a, len);
    for (size_t i = 0; i < len; i++) {
      memcpy(b, a, len);
      b[i] ^= 1;
      ck_assert_msg(cm_hash64(b, len) != h, "len %zu, byte %zu", len, i);
    }
    if (len < sizeof a) {
      memcpy(b, a, len);
      b[len] = 0;
      ck_assert(cm_hash64(b, len + 1) != h);
    }
  }
}
END_TEST

START_TEST(sizes) {
  ck_assert_int_eq(size_of("0"), 0);
  ck_assert_int_eq(size_of("4096"), 4096);
  ck_assert_int_eq(size_of("4096B"), 4096);
  ck_assert_int_eq(size_of("512k"), 512 << 10);
  ck_assert_int_eq(size_of("512K"), 512 << 10);
  ck_assert_int_eq(size_of("64M"), 64 << 20);
  ck_assert_int_eq(size_of("64MB"), 64 << 20);
  ck_assert_int_eq(size_of("64Mi"), 64 << 20);
  ck_assert_int_eq(size_of("64MiB"), 64 << 20);
  ck_assert_int_eq(size_of("1g"), 1 << 30);
  ck_assert_int_eq(size_of("1048576G"), CM_SIZE_MAX);
  const char *bad[] = {"",         "lots",
                       "8Q",       "-5",
                       "1.5M",     " 1M",
                       "1M ",      "+1M",
                       "64iB",     "64MiBx",
                       "M",        "1T",
                       "1048577G", "99999999999999999999999"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    long long n = -7;
    ck_assert_msg(cm_parse_size(bad[i], &n) == -1, "'%s' taken", bad[i]);
    ck_assert_int_eq(n, -7); /* untouched */
  }
}
END_TEST

START_TEST(whole_numbers) {
  long long n;
  ck_assert_int_eq(cm_parse_int("0", 0, 10, &n), 0);
  ck_assert_int_eq(n, 0);
  ck_assert_int_eq(cm_parse_int("-5", -10, 10, &n), 0);
  ck_assert_int_eq(n, -5);
  ck_assert_int_eq(cm_parse_int("1024", 1, 1024, &n), 0);
  ck_assert_int_eq(n, 1024);
  ck_assert_int_eq(cm_parse_int("9223372036854775807", 0, LLONG_MAX, &n), 0);
  ck_assert(n == LLONG_MAX);
  ck_assert_int_eq(cm_parse_int("-9223372036854775808", LLONG_MIN, 0, &n), 0);
  ck_assert(n == LLONG_MIN);
  const char *bad[] = {"",
                       "-",
                       "1.5",
                       "10 ",
                       " 10",
                       "+5",
                       "0x10",
                       "1e3",
                       "1025",
                       "0",
                       "9223372036854775808",
                       "-9223372036854775809"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    ck_assert_msg(cm_parse_int(bad[i], 1, 1024, &n) == -1, "'%s' taken",
                  bad[i]);
  ck_assert_int_eq(cm_parse_int("9223372036854775808", 0, LLONG_MAX, &n), -1);
  ck_assert_int_eq(cm_parse_int("-9223372036854775809", LLONG_MIN, 0, &n), -1);
}
END_TEST

START_TEST(durations) {
  long long ms;
  const struct {
    const char *text;
    long long unit, want;
  } good[] = {{"0", 1000, 0},      {"2", 1000, 2000},
              {"0.5", 1000, 500},  {".5", 1000, 500},
              {"1.", 1000, 1000},  {"10.000", 1000, 10000},
              {"0.0001", 1000, 1}, {"1.2345", 1000, 1235},
              {"250", 1, 250},     {"60", 1000, 60000}};
  for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
    ck_assert_msg(cm_parse_duration(good[i].text, good[i].unit, 60000, &ms) ==
                      0,
                  "'%s' refused", good[i].text);
    ck_assert_msg(ms == good[i].want, "'%s' gave %lld", good[i].text, ms);
  }
  const char *bad[] = {
      "",     ".",      "-1",  "+1",  "1e3",
      "0x10", "inf",    "nan", " 1",  "1 ",
      "1,5",  "60.001", "61",  "1..", "9999999999999999999999"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    ck_assert_msg(cm_parse_duration(bad[i], 1000, 60000, &ms) == -1,
                  "'%s' taken", bad[i]);
}
END_TEST

/* ---- options -------------------------------------------------------------
 */

static int set_count(const cm_option *opt, const char *value, char *why,
                     size_t whylen) {
  long long n;
  if (cm_parse_int(value, 1, 10, &n) != 0) {
    snprintf(why, whylen, "must be 1 to 10, not '%s'", value);
    return -1;
  }
  *(int *)opt->target = (int)n;
  return 0;
}

enum { S_HELP, S_H, S_NAME, S_COUNT, S_N };

typedef struct sample {
  cm_option opts[S_N];
  int count;
  char err[200];
} sample;

static void sample_init(sample *s) {
  memset(s, 0, sizeof *s);
  s->opts[S_HELP] =
      (cm_option){.name = "--help", .no_value = 1, .set = cm_option_stop};
  s->opts[S_H] =
      (cm_option){.name = "-h", .no_value = 1, .set = cm_option_stop};
  s->opts[S_NAME] =
      (cm_option){.name = "--name", .env = "CM_TEST_NAME", .value = "default"};
  s->opts[S_COUNT] = (cm_option){.name = "--count",
                                 .env = "CM_TEST_COUNT",
                                 .set = set_count,
                                 .target = &s->count};
}

/* Parses the NULL-ended arguments into s. */
static int parse(sample *s, const char **args) {
  int argc = 0;
  while (args[argc])
    argc++;
  return cm_options_parse(s->opts, S_N, argc, (char **)args, s->err,
                          sizeof s->err);
}

START_TEST(options_forms) {
  sample s;
  sample_init(&s);
  const char *forms[] = {"--name=x", "--count", "3", "file",
                         "--name",   "y",       NULL};
  ck_assert_int_eq(parse(&s, forms), 3); /* "file" and after: operands */
  ck_assert_str_eq(s.opts[S_NAME].value, "x");
  ck_assert_int_eq(s.count, 3);
  sample_init(&s);
  const char *later_wins[] = {"--name=a", "--name", "b", "--name=", NULL};
  ck_assert_int_eq(parse(&s, later_wins), 4);
  ck_assert_str_eq(s.opts[S_NAME].value, "");
  sample_init(&s);
  const char *value_like_option[] = {"--name", "--count", NULL};
  ck_assert_int_eq(parse(&s, value_like_option), 2);
  ck_assert_str_eq(s.opts[S_NAME].value, "--count");
  sample_init(&s);
  const char *end[] = {"--count=2", "--", "--count=5", NULL};
  ck_assert_int_eq(parse(&s, end), 2);
  ck_assert_int_eq(s.count, 2);
  const char *operand_first[] = {"-", "--count=5", NULL};
  ck_assert_int_eq(parse(&s, operand_first), 0);
  const char *none[] = {NULL};
  ck_assert_int_eq(parse(&s, none), 0);
  ck_assert_str_eq(s.opts[S_NAME].value, "default");
}
END_TEST

START_TEST(options_refusals) {
  sample s;
  sample_init(&s);
  const char *unknown[] = {"--bogus=1", NULL};
  ck_assert_int_eq(parse(&s, unknown), CM_OPTIONS_MISUSE);
  ck_assert_str_eq(s.err, "unknown option --bogus");
  const char *missing[] = {"--count=1", "--name", NULL};
  ck_assert_int_eq(parse(&s, missing), CM_OPTIONS_MISUSE);
  ck_assert_str_eq(s.err, "option --name needs a value");
  const char *extra[] = {"--help=yes", NULL};
  ck_assert_int_eq(parse(&s, extra), CM_OPTIONS_MISUSE);
  ck_assert_str_eq(s.err, "option --help takes no value");
  const char *bad[] = {"--count=11", NULL};
  ck_assert_int_eq(parse(&s, bad), CM_OPTIONS_BAD_VALUE);
  ck_assert_str_eq(s.err, "--count must be 1 to 10, not '11'");
  /* a stop ends the parse where it is: what follows is not read */
  const char *help[] = {"--count=2", "--help", "--bogus", NULL};
  ck_assert_int_eq(parse(&s, help), CM_OPTIONS_STOPPED);
  const char *alias[] = {"-h", NULL};
  ck_assert_int_eq(parse(&s, alias), CM_OPTIONS_STOPPED);
}
END_TEST

START_TEST(options_from_the_environment) {
  sample s;
  sample_init(&s);
  setenv("CM_TEST_NAME", "from-env", 1);
  setenv("CM_TEST_COUNT", "", 1); /* empty: not set */
  ck_assert_int_eq(cm_options_from_env(s.opts, S_N, s.err, sizeof s.err), 0);
  ck_assert_str_eq(s.opts[S_NAME].value, "from-env");
  ck_assert_int_eq(s.count, 0);
  const char *flag[] = {"--name", "from-flag", NULL};
  ck_assert_int_eq(parse(&s, flag), 2);
  ck_assert_str_eq(s.opts[S_NAME].value, "from-flag");
  setenv("CM_TEST_COUNT", "99", 1);
  ck_assert_int_eq(cm_options_from_env(s.opts, S_N, s.err, sizeof s.err),
                   CM_OPTIONS_BAD_VALUE);
  ck_assert_str_eq(s.err,
                   "--count (from CM_TEST_COUNT) must be 1 to 10, not '99'");
  unsetenv("CM_TEST_NAME");
  unsetenv("CM_TEST_COUNT");
}
END_TEST

static Suite *common_suite(void) {
  Suite *s = suite_create("common");
  TCase *tc = tcase_create("common");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, utf8_characters);
  tcase_add_test(tc, utf8_valid_prefixes);
  tcase_add_test(tc, json_escapes);
  tcase_add_test(tc, json_doubles_shortest);
  tcase_add_test(tc, json_doubles_round_trip);
  tcase_add_test(tc, json_doubles_ignore_the_locale);
  tcase_add_test(tc, percent_decoding);
  tcase_add_test(tc, bounded_copies);
  tcase_add_test(tc, hashes_of_bytes);
  tcase_add_test(tc, sizes);
  tcase_add_test(tc, whole_numbers);
  tcase_add_test(tc, durations);
  tcase_add_test(tc, options_forms);
  tcase_add_test(tc, options_refusals);
  tcase_add_test(tc, options_from_the_environment);
  suite_add_tcase(s, tc);
  return s;
}

T_MAIN(common_suite)
