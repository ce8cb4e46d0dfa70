/*
 * prelude.c - runs a file under the task-runner prelude (prelude.lua,
 * embedded at build time): the pack that starts it as the main goroutine,
 * and the reading of its outcome.
 *
 * The prelude gets the user's compiled file, the `arg` table and the
 * runner's options; it defines task() and workflow.define(), runs the file,
 * then the workflows it defined. It returns nothing for a plain script and
 * a boolean (every task succeeded) after running workflows.
 */
#include "internal.h"

#include <string.h>

extern const char gl_prelude_lua[];
extern const size_t gl_prelude_lua_len;

static void pack_cstr(gr_pack *p, const char *s) {
  gr_pack_str(p, s, strlen(s));
}

gr_pack *gr_lua_prelude_pack(const char *chunkname, const char *code,
                             size_t len, const char *script, int argc,
                             char **argv, const char *workflow, int taskfile) {
  gr_pack *p = gr_pack_new();
  if (!p)
    return NULL;
  gr_pack_source(p, "=(goroutined prelude)", gl_prelude_lua,
                 gl_prelude_lua_len);
  gr_pack_source(p, chunkname, code, len);
  /* arg, as the stock interpreter makes it: arg[0] is the script */
  gr_pack_table_begin(p);
  gr_pack_int(p, 0);
  pack_cstr(p, script);
  for (int i = 0; i < argc; i++) {
    gr_pack_int(p, i + 1);
    pack_cstr(p, argv[i]);
  }
  pack_cstr(p, "n");
  gr_pack_int(p, argc);
  gr_pack_table_end(p);
  /* options */
  gr_pack_table_begin(p);
  pack_cstr(p, "script");
  pack_cstr(p, script);
  pack_cstr(p, "taskfile");
  gr_pack_bool(p, taskfile);
  if (workflow) {
    pack_cstr(p, "workflow");
    pack_cstr(p, workflow);
  }
  gr_pack_table_end(p);
  return p;
}

int gr_lua_prelude_failed(const gr_pack *values) {
  if (!values)
    return 0;
  gr_pack_reader r;
  gr_item first;
  gr_pack_reader_init(&r, values);
  return gr_pack_next(&r, &first) == GR_ITEM_BOOL && !first.b;
}
