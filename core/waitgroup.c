/*
 * waitgroup.c - Go's sync.WaitGroup: a counter that goroutines add to and
 * take from, and that parks waiters until it reaches zero. Shared between
 * states by reference.
 */
#include "internal.h"

#include <stdlib.h>

struct gr_wg {
  gr_object obj;
  gr_spin lock;
  int64_t count;
  gr_waiter *waiters;
};

static void wg_destroy(gr_object *obj) {
  gr_wg *wg = (gr_wg *)obj;
  gr__waiters_wake_all(wg->waiters); /* none should be left; free them */
  free(wg);
}

const gr_object_type gr_wg_type = {"goroutine.wait_group", wg_destroy};

gr_wg *gr_wg_new(void) {
  gr_wg *wg = calloc(1, sizeof *wg);
  if (wg) {
    wg->obj.type = &gr_wg_type;
    wg->obj.refs = 1;
  }
  return wg;
}

int64_t gr_wg_add(gr_wg *wg, int64_t delta) {
  gr_waiter *wake = NULL;
  gr__spin_lock(&wg->lock);
  int64_t n = wg->count + delta;
  if (n < 0) {
    gr__spin_unlock(&wg->lock);
    return -1;
  }
  /* Nobody waits on a counter at zero: arming returns at once then. */
  assert(wg->count != 0 || wg->waiters == NULL);
  wg->count = n;
  if (n == 0) {
    wake = wg->waiters;
    wg->waiters = NULL;
  }
  gr__spin_unlock(&wg->lock);
  gr__waiters_wake_all(wake);
  return n;
}

int64_t gr_wg_count(gr_wg *wg) {
  gr__spin_lock(&wg->lock);
  int64_t n = wg->count;
  gr__spin_unlock(&wg->lock);
  return n;
}

int gr_wg_arm(gr_g *g, uint32_t seq, void *arg) {
  gr_wg *wg = arg;
  gr__spin_lock(&wg->lock);
  if (wg->count == 0) {
    gr__spin_unlock(&wg->lock);
    return 1;
  }
  int rc = gr__waiter_push(&wg->waiters, g, seq);
  gr__spin_unlock(&wg->lock);
  return rc < 0 ? 1 : 0; /* out of memory: let the caller re-check */
}
