/*
 * gr_common.h - the public interface of common/: small pieces of text
 * handling that every layer needs and that must behave the same in each.
 *
 * UTF-8 validation, JSON text (string escapes, numbers, the nesting limit),
 * percent-decoding, sizes and numbers from the command line, a parser
 * for command-line options described by a table, lists of allowed
 * hosts, a bounded string copy and a hash of bytes. Nothing here allocates,
 * prints or knows Lua, HTTP or the runtime: errors are returned (a code, or
 * text in a buffer the caller gives), and what is written goes to a
 * function the caller gives. Every function is safe to call from any
 * thread.
 */
#ifndef GR_COMMON_H
#define GR_COMMON_H

#include <stddef.h>
#include <stdint.h>

/* ---- bytes (bytes.c) ------------------------------------------------------
 */

/* src into dst (cap > 0 bytes), cut short to cap - 1 bytes if need be, as
 * snprintf(dst, cap, "%s", src) but without its cost; returns the length
 * copied. */
size_t cm_copy_text(char *dst, size_t cap, const char *src);
/* A 64-bit hash of n bytes, eight at a time (not for secrets): for ETags
 * and cache keys, where a changed input must change the hash. */
uint64_t cm_hash64(const void *data, size_t n);

/* ---- UTF-8 (utf8.c) ------------------------------------------------------
 *
 * Well-formed means what RFC 3629 allows: the shortest form of each code
 * point (no overlong forms), no UTF-16 surrogates (U+D800..U+DFFF), nothing
 * above U+10FFFF.
 */

/* The length (1 to 4) of the well-formed character at s, n > 0 bytes being
 * there, or 0 if the bytes at s are not one. */
size_t cm_utf8_char(const char *s, size_t n);
/* The length of the longest well-formed prefix of s: n when all of it is. */
size_t cm_utf8_valid_prefix(const char *s, size_t n);

/* ---- JSON text (json_text.c) -------------------------------------------- */

/* How deep values may nest (arrays and objects, tables in tables), for
 * every reader and writer in the project: JSON text in the HTTP API and
 * the Lua json module, and the packs that carry values between states. */
#define CM_MAX_DEPTH 200

/* Where the writers below put their text: called with consecutive pieces,
 * in order. */
typedef void (*cm_write_fn)(void *ctx, const char *s, size_t n);

typedef enum cm_escape_style {
  /* JSON's short escapes \" \\ \b \f \n \r \t, the other control characters
   * as \u00XX; DEL (0x7f) as it is. */
  CM_ESCAPE_JSON,
  /* For log lines, which people read in a terminal: \" \\ \n \r \t, every
   * other control character and DEL as \u00XX. Still valid JSON. */
  CM_ESCAPE_LOG,
} cm_escape_style;

/* Writes the n bytes of s escaped for the inside of a JSON string (without
 * the quotes). s must be valid UTF-8 (cm_utf8_valid_prefix); its bytes
 * from 0x80 up are copied as they are. write gets runs of bytes copied as
 * they are and whole escapes, one call each: a run never holds a
 * backslash, and an escape always starts with one, so a writer that must
 * cut the text short can tell a piece it may split from one it may not. */
void cm_json_escape(const char *s, size_t n, cm_escape_style style,
                    cm_write_fn write, void *ctx);

/* Room for any number cm_json_double writes, its NUL included. */
#define CM_DOUBLE_BUF 32

/* Writes d to out (CM_DOUBLE_BUF bytes) as a JSON number and returns its
 * length: the fewest significant digits (15, 16 or 17, as %g writes them)
 * that strtod reads back as the same bits. The decimal point is always
 * '.', whatever LC_NUMERIC says. A number that would read back as an
 * integer gets ".0" (2.0, -0.0, 9007199254740992.0), so readers that tell
 * integers from floats (Lua, jansson) get a float again; exponents stay as
 * %g writes them (1e+300, 1.5e-07). NaN and the infinities have no JSON
 * form: returns 0 with out empty, and the caller decides (the API and the
 * json module write null). */
size_t cm_json_double(double d, char *out);

/* ---- percent-decoding (percent.c) ---------------------------------------- */

enum {
  CM_PERCENT_BAD = -1, /* a '%' not followed by two hex digits */
  CM_PERCENT_NUL = -2, /* %00: a NUL cannot be part of a C string */
};

/* Decodes the n bytes at s, each %XX (hex, either case) once, into out,
 * which has room for n + 1 bytes (decoding never lengthens), NUL-ended.
 * Returns the decoded length, or CM_PERCENT_BAD or CM_PERCENT_NUL, out
 * then unspecified. '+' stays '+': this is for paths, not forms. */
long cm_percent_decode(const char *s, size_t n, char *out);

/* ---- numbers and sizes from the command line (numbers.c) -----------------
 *
 * Both take the whole text or nothing: no blanks, no sign but a leading
 * '-' for cm_parse_int, no trailing bytes. Durations are whole numbers in
 * the unit their option names (milliseconds, seconds, microseconds).
 */

/* The whole number in s, if it is one within [min, max]; -1 if not. */
int cm_parse_int(const char *s, long long min, long long max, long long *out);

/* A duration as a decimal number of units of unit_ms ("2", "0.5", ".5",
 * "10."; no sign, exponent or blanks), in milliseconds rounded up, at most
 * max_ms. The decimal point is '.', whatever the locale says. 0 with
 * *out_ms, or -1. (The API's ?wait=SECONDS is one: unit_ms 1000.) */
int cm_parse_duration(const char *s, long long unit_ms, long long max_ms,
                      long long *out_ms);

/* The largest size cm_parse_size accepts: 1 PiB. */
#define CM_SIZE_MAX (1LL << 50)

/* A byte count: digits, then optionally K, M or G (any case; powers of
 * 1024) and an 'i', then optionally B (64M, 64Mi, 64MiB, 64MB, 512k, 4096,
 * 4096B); at most CM_SIZE_MAX. 0 with *out, or -1. */
int cm_parse_size(const char *s, long long *out);

/* ---- lists of allowed hosts (hosts.c) ------------------------------------
 *
 * "host" or "host:port" entries separated by commas, blanks around them
 * ignored: "example.org, 127.0.0.1:8080, [::1]:9000". Hosts are kept in
 * lowercase; an IPv6 address in brackets, as URL parsers give it (a bare
 * "::1" is taken as "[::1]").
 */

typedef struct cm_host {
  char host[256];
  long port; /* 0: any */
} cm_host;

/* Room enough for every entry of hosts (an upper bound). */
size_t cm_hosts_count(const char *hosts);
/* The entries of hosts into out (cap of them): how many, or -1 when one
 * is not a host or host:port (a port is 1 to 65535). */
long cm_hosts_parse(const char *hosts, cm_host *out, size_t cap);
/* Whether host (as a URL parser gives it) and port are on the list. */
int cm_hosts_allow(const cm_host *list, size_t n, const char *host, long port);

/* ---- command-line options (options.c) ------------------------------------
 *
 * A command describes its options in a table; the parser reads the
 * environment and argv against it. An argument is an option when it starts
 * with "--" or is exactly the name of one in the table (a short alias such
 * as "-h"); a value follows as "--name=value" or as the next argument,
 * whatever it looks like. "--" ends the options. Anything else ends them
 * too: it is the first operand (a script, say), and what follows it
 * belongs to the operands, options or not.
 */

typedef struct cm_option cm_option;

/* What a setter returns besides 0 (taken) and -1 (refused, with why). */
#define CM_OPTION_STOP 1 /* stop parsing here (--help) */

/* Takes the value of opt (NULL for an option that takes none). On refusal,
 * why says what the value must be, without the option's name, which the
 * parser puts in front: "must be 1 to 1024, not '0'". */
typedef int (*cm_option_set)(const cm_option *opt, const char *value, char *why,
                             size_t whylen);

struct cm_option {
  const char *name; /* as typed: "--workers", "-h" */
  const char *env;  /* an environment variable that sets it too, or NULL */
  /* The text given last (by argv or the environment), kept here by the
   * parser; the table may start it at a default. */
  const char *value;
  int no_value;      /* 1: a flag, given alone ("--help") */
  cm_option_set set; /* NULL: only keep the value */
  void *target;      /* for the setter */
};

/* A setter that only returns CM_OPTION_STOP: for --help. */
int cm_option_stop(const cm_option *opt, const char *value, char *why,
                   size_t whylen);

/* What cm_options_parse returns besides the index of the first operand. */
enum {
  CM_OPTIONS_MISUSE = -1,    /* unknown option, missing or extra value */
  CM_OPTIONS_BAD_VALUE = -2, /* a setter refused a value */
  CM_OPTIONS_STOPPED = -3,   /* a setter returned CM_OPTION_STOP */
};

/* Gives every option whose environment variable is set and not empty its
 * value, in table order. 0, or CM_OPTIONS_BAD_VALUE with err naming the
 * option and the variable. Call it before cm_options_parse, so that flags
 * win. */
int cm_options_from_env(cm_option *opts, size_t n, char *err, size_t errlen);

/* Reads the options at the start of argv[0..argc), giving each its value
 * (the later of two wins) and calling its setter. Returns the index of the
 * first operand (argc if none), or one of CM_OPTIONS_* with err: "unknown
 * option --bogus", "option --workers needs a value", "option --help takes
 * no value", "--workers must be 1 to 1024, not '0'" (no message for
 * CM_OPTIONS_STOPPED). */
int cm_options_parse(cm_option *opts, size_t n, int argc, char **argv,
                     char *err, size_t errlen);

#endif
