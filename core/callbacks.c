/*
 * callbacks.c - lists of one-shot callbacks with removal by token, as
 * futures (done) and pools (idle) keep them. The owner's lock protects the
 * list; callbacks run after the owner detached the list and unlocked, in
 * the order they were added.
 */
#include "internal.h"

#include <stdlib.h>

gr_callback *gr__callback_new(gr_cb_fn fn, void *ud) {
  gr_callback *c = malloc(sizeof *c);
  if (c) {
    c->fn = fn;
    c->ud = ud;
  }
  return c;
}

uintptr_t gr__callbacks_push(gr_callbacks *list, gr_callback *c) {
  c->token = ++list->next_token;
  assert(c->token != 0); /* 0 means "already ran" to the callers */
  c->next = list->head;
  list->head = c;
  return c->token;
}

int gr__callbacks_remove(gr_callbacks *list, uintptr_t token) {
  for (gr_callback **at = &list->head; *at; at = &(*at)->next) {
    if ((*at)->token == token) {
      gr_callback *c = *at;
      *at = c->next;
      free(c);
      return 1;
    }
  }
  return 0;
}

gr_callback *gr__callbacks_take(gr_callbacks *list) {
  gr_callback *head = list->head;
  list->head = NULL;
  return head;
}

void gr__callbacks_run(gr_callback *list,
                       void (*call)(gr_callback *c, void *subject),
                       void *subject) {
  gr_callback *ordered = NULL; /* the list is newest first: reverse it */
  while (list) {
    gr_callback *next = list->next;
    list->next = ordered;
    ordered = list;
    list = next;
  }
  while (ordered) {
    gr_callback *next = ordered->next;
    if (call)
      call(ordered, subject);
    free(ordered);
    ordered = next;
  }
}
