/*
 * object.c - reference-counted runtime objects (wait groups, futures, ...)
 * that several Lua states hold at once. A state holds one reference per
 * Lua value that boxes the object; the last unref destroys it.
 */
#include "internal.h"

gr_object *gr_object_ref(gr_object *obj) {
  __atomic_fetch_add(&obj->refs, 1, __ATOMIC_RELAXED);
  return obj;
}

void gr_object_unref(gr_object *obj) {
  if (obj && __atomic_fetch_sub(&obj->refs, 1, __ATOMIC_ACQ_REL) == 1)
    obj->type->destroy(obj);
}
