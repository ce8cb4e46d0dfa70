/*
 * prelude.c - the task-runner prelude (being written).
 */
#include "internal.h"
