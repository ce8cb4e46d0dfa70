/*
 * client.h - the public interface of client/: the goroutined commands that
 * talk to a running server over its HTTP/JSON API (pools, submit, get,
 * watch, fn, call ...), on libcurl and jansson.
 *
 * The server's address comes from GOROUTINED_URL or --url, a bearer token
 * from GOROUTINED_TOKEN or --token. A command's exit status says how it
 * went (CL_EXIT_* below); errors go to stderr, results to stdout.
 */
#ifndef GR_CLIENT_H
#define GR_CLIENT_H

/* Exit statuses of the client commands. An HTTP error answer (a problem)
 * exits with its status minus 300: 404 -> 104, 503 -> 203. */
enum {
  CL_EXIT_OK = 0,         /* done; with --wait: the work succeeded */
  CL_EXIT_FAILED = 1,     /* the task, job or call failed */
  CL_EXIT_USAGE = 2,      /* a bad command line */
  CL_EXIT_TIMED_OUT = 3,  /* the work timed out (or a pool wait did) */
  CL_EXIT_CANCELLED = 4,  /* the work was cancelled */
  CL_EXIT_CONNECT = 5,    /* the server could not be reached */
  CL_EXIT_BAD_ANSWER = 6, /* an answer the client cannot read */
};

/* Whether cmd ("pools", "submit", "fn" ...) is a client command. */
int cl_is_command(const char *cmd);

/* Runs a client command: argv[0] is its name, the rest its arguments.
 * Returns the exit status. */
int cl_main(int argc, char **argv);

/* Prints the help of a client command to stdout: 0, or CL_EXIT_USAGE
 * (with a message on stderr) when cmd is not one. */
int cl_help(const char *cmd);

/* The lines goroutined's own usage lists for the client commands. */
extern const char cl_usage_lines[];

#endif
