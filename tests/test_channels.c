/*
 * test_channels.c - channels and select between real goroutines: buffered
 * and unbuffered, close, the try operations, select with timeout and
 * default, many producers and consumers with no value lost or duplicated,
 * values copied by the transfer rules, and waits that are cancelled.
 */
#include "helpers.h"

#include <stdlib.h>
#include <string.h>

static gr_runtime *rt;

static void setup(void) {
  t_log_clear();
  rt = t_runtime(2, 0);
}

static void teardown(void) {
  t_runtime_free(rt);
}

START_TEST(buffered_channel_keeps_order_and_counts) {
  char *v = t_eval(rt, "local ch = goroutine.channel(3)\n"
                       "ch:send('a') ch:send('b') ch:send('c')\n"
                       "local n, cap = #ch, ch:cap()\n"
                       "local x = ch:receive()\n"
                       "local y = ch:receive()\n"
                       "return n, cap, x, y, ch:len(), tostring(ch):match('"
                       "capacity 3') ~= nil\n");
  ck_assert_str_eq(v, "3,3,a,b,1,true");
  free(v);
}
END_TEST

START_TEST(unbuffered_send_waits_for_a_receiver) {
  /* The sender finishes only once the receiver took the value. */
  char *v = t_eval(rt, "local ch = goroutine.channel()\n"
                       "local done = goroutine.channel(1)\n"
                       "goroutine.spawn(function()\n"
                       "  ch:send('hello')\n"
                       "  done:send(goroutine.id())\n"
                       "end)\n"
                       "goroutine.sleep(50)\n"
                       "local early = done:try_receive()\n"
                       "local v = ch:receive()\n"
                       "local sender = done:receive()\n"
                       "return early, v, type(sender)\n");
  ck_assert_str_eq(v, "nil,hello,number");
  free(v);
}
END_TEST

START_TEST(close_drains_then_reports_closed) {
  char *v = t_eval(rt, "local ch = goroutine.channel(2)\n"
                       "ch:send(1) ch:send(2) ch:close()\n"
                       "local a, ok1 = ch:receive()\n"
                       "local b, ok2 = ch:receive()\n"
                       "local c, ok3 = ch:receive()\n"
                       "return a, ok1, b, ok2, c, ok3, ch:is_closed()\n");
  ck_assert_str_eq(v, "1,true,2,true,nil,false,true");
  free(v);
  t_fails(rt, "local ch = goroutine.channel(1) ch:close() ch:send(1)",
          "send on a closed channel");
  t_fails(rt, "local ch = goroutine.channel() ch:close() ch:close()",
          "close of a closed channel");
}
END_TEST

START_TEST(range_receives_until_closed) {
  /* The loop parks between values and ends once closed and drained; the
   * producer runs in another goroutine. */
  char *v = t_eval(rt, "local ch = goroutine.channel()\n"
                       "goroutine.spawn(function()\n"
                       "  for i = 1, 5 do ch:send(i * 10) end\n"
                       "  ch:close()\n"
                       "end)\n"
                       "local got = {}\n"
                       "for v in ch:range() do got[#got + 1] = v end\n"
                       "local empty = goroutine.channel(1)\n"
                       "empty:close()\n"
                       "local n = 0\n"
                       "for _ in empty:range() do n = n + 1 end\n"
                       "return table.concat(got, ' '), n,\n"
                       "  select(2, pcall(goroutine.channel().range, {}))\n");
  ck_assert_msg(strncmp(v, "10 20 30 40 50,0,", 17) == 0, "%s", v);
  ck_assert_msg(
      strstr(v, "bad argument #1 to '?' (channel expected, got table)"), "%s",
      v);
  free(v);
}
END_TEST

START_TEST(close_wakes_waiting_receivers_and_senders) {
  char *v = t_eval(
      rt, "local ch = goroutine.channel()\n"
          "local out = goroutine.channel(3)\n"
          "for i = 1, 2 do goroutine.spawn(function()\n"
          "  local v, ok = ch:receive() out:send(ok)\n"
          "end) end\n"
          "local full = goroutine.channel(0)\n"
          "goroutine.spawn(function()\n"
          "  out:send(select(2, pcall(full.send, full, 'x')))\n"
          "end)\n"
          "goroutine.sleep(30)\n"
          "ch:close() full:close()\n"
          "local a, b, c = out:receive(), out:receive(), out:receive()\n"
          "local r = {tostring(a), tostring(b), tostring(c)} table.sort(r)\n"
          "return table.concat(r, '|')\n");
  ck_assert_str_eq(v, "false|false|send on a closed channel");
  free(v);
}
END_TEST

START_TEST(try_operations_never_wait) {
  char *v = t_eval(rt, "local ch = goroutine.channel(1)\n"
                       "local a = ch:try_send(1)\n"
                       "local b = ch:try_send(2)\n"
                       "local v, ok = ch:try_receive()\n"
                       "local w, ok2 = ch:try_receive()\n"
                       "ch:close()\n"
                       "local x, ok3 = ch:try_receive()\n"
                       "return a, b, v, ok, w, ok2, x, ok3\n");
  ck_assert_str_eq(v, "true,false,1,true,nil,nil,nil,false");
  free(v);
  t_fails(rt, "local ch = goroutine.channel(1) ch:close() ch:try_send(1)",
          "send on a closed channel");
}
END_TEST

START_TEST(select_receives_from_whichever_is_ready) {
  char *v = t_eval(rt, "local a, b = goroutine.channel(), goroutine.channel()\n"
                       "goroutine.spawn(function() goroutine.sleep(30) "
                       "b:send('from b') end)\n"
                       "local i, v, ok = goroutine.select({{a, 'receive'}, {b, "
                       "'recv'}})\n"
                       "return i, v, ok\n");
  ck_assert_str_eq(v, "2,from b,true");
  free(v);
}
END_TEST

START_TEST(select_sends_and_times_out) {
  char *v = t_eval(rt, "local a = goroutine.channel(1)\n"
                       "local i = goroutine.select({{a, 'send', 'x'}})\n"
                       "local j, why = goroutine.select({{a, 'send', 'y'}}, "
                       "{timeout = 30})\n"
                       "local k, why2 = goroutine.select({{a, 'send', 'z'}}, "
                       "{default = true})\n"
                       "return i, j, why, k, why2, a:receive()\n");
  ck_assert_str_eq(v, "1,nil,timeout,nil,nothing ready,x,true");
  free(v);
}
END_TEST

START_TEST(select_bad_arguments) {
  t_fails(rt, "goroutine.select({})", "from 1 to 1000 cases expected");
  t_fails(rt, "goroutine.select({{1, 'receive'}})", "a channel expected");
  t_fails(rt, "goroutine.select({{goroutine.channel(), 'peek'}})",
          "\"send\" or \"receive\" expected");
  t_fails(rt,
          "goroutine.select({{goroutine.channel(), 'receive'}}, "
          "{timeout = -1})",
          "timeout must be a number");
  t_fails(rt,
          "local c = goroutine.channel(1) c:close() "
          "goroutine.select({{c, 'send', 1}})",
          "send on a closed channel (select case 1)");
}
END_TEST

START_TEST(many_producers_and_consumers_lose_nothing) {
  char *v = t_eval(
      rt, "local work, results = goroutine.channel(8), goroutine.channel(64)\n"
          "local producers = goroutine.wait_group()\n"
          "for p = 1, 8 do\n"
          "  producers:add(1)\n"
          "  goroutine.spawn(function()\n"
          "    for i = 1, 500 do work:send(p * 10000 + i) end\n"
          "    producers:done()\n"
          "  end)\n"
          "end\n"
          "for c = 1, 5 do goroutine.spawn(function()\n"
          "  while true do\n"
          "    local v, ok = work:receive()\n"
          "    if not ok then break end\n"
          "    results:send(v)\n"
          "  end\n"
          "end) end\n"
          "goroutine.spawn(function() producers:wait() work:close() end)\n"
          "local seen, dups = {}, 0\n"
          "for i = 1, 4000 do\n"
          "  local v = results:receive()\n"
          "  if seen[v] then dups = dups + 1 end\n"
          "  seen[v] = true\n"
          "end\n"
          "local missing = 0\n"
          "for p = 1, 8 do for i = 1, 500 do\n"
          "  if not seen[p * 10000 + i] then missing = missing + 1 end\n"
          "end end\n"
          "return dups, missing, results:try_receive()\n");
  ck_assert_str_eq(v, "0,0,nil,nil");
  free(v);
}
END_TEST

START_TEST(values_follow_the_transfer_rules) {
  char *v = t_eval(rt, "local ch = goroutine.channel(2)\n"
                       "local t = {n = 1} t.self = t\n"
                       "ch:send(t)\n"
                       "ch:send(function(x) return x * 2 end)\n"
                       "local got = ch:receive()\n"
                       "local fn = ch:receive()\n"
                       "got.n = 2\n"
                       "return t.n, got.self == got, got ~= t, fn(21)\n");
  ck_assert_str_eq(v, "1,true,true,42");
  free(v);
  t_fails(rt, "goroutine.channel(1):send(coroutine.create(print))",
          "cannot pass argument #2 (a coroutine) to a goroutine");
  t_fails(rt, "goroutine.channel(-1)", "capacity must be from 0");
  t_fails(rt, "local c = goroutine.channel() c.send({}, 1)",
          "channel expected");
}
END_TEST

START_TEST(channels_pass_between_goroutines_by_reference) {
  char *v = t_eval(rt, "local ch = goroutine.channel()\n"
                       "local h = goroutine.async(function()\n"
                       "  local replies = goroutine.channel()\n"
                       "  ch:send(replies)\n"
                       "  return replies:receive()\n"
                       "end)\n"
                       "local replies = ch:receive()\n"
                       "replies:send('pong')\n"
                       "local ok, v = goroutine.await(h)\n"
                       "return v\n");
  ck_assert_str_eq(v, "pong");
  free(v);
}
END_TEST

START_TEST(cancelled_waits_give_up_their_place) {
  /* A receiver stopped by its timeout while waiting must not swallow the
   * next value: the next receiver gets it. */
  char *v = t_eval(rt, "local ch = goroutine.channel()\n"
                       "local ok, err = goroutine.timeout(30, function()\n"
                       "  return ch:receive()\n"
                       "end)\n"
                       "goroutine.spawn(function() ch:send('kept') end)\n"
                       "local v = ch:receive()\n"
                       "local w = goroutine.select({{ch, 'receive'}}, "
                       "{timeout = 20})\n"
                       "return ok, err, v, w\n");
  ck_assert_str_eq(v, "false,timeout after 30 ms,kept,nil");
  free(v);
}
END_TEST

START_TEST(select_is_fair) {
  /* Two always-ready channels: both get chosen, roughly half the time. */
  char *v = t_eval(rt, "local a, b = goroutine.channel(1000), "
                       "goroutine.channel(1000)\n"
                       "for i = 1, 1000 do a:send(1) b:send(2) end\n"
                       "local counts = {0, 0}\n"
                       "for i = 1, 1000 do\n"
                       "  local k = goroutine.select({{a, 'receive'}, {b, "
                       "'receive'}})\n"
                       "  counts[k] = counts[k] + 1\n"
                       "end\n"
                       "return counts[1] > 300 and counts[2] > 300\n");
  ck_assert_str_eq(v, "true");
  free(v);
}
END_TEST

static Suite *channels_suite(void) {
  Suite *s = suite_create("channels");
  TCase *tc = tcase_create("channels");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, buffered_channel_keeps_order_and_counts);
  tcase_add_test(tc, unbuffered_send_waits_for_a_receiver);
  tcase_add_test(tc, close_drains_then_reports_closed);
  tcase_add_test(tc, range_receives_until_closed);
  tcase_add_test(tc, close_wakes_waiting_receivers_and_senders);
  tcase_add_test(tc, try_operations_never_wait);
  tcase_add_test(tc, select_receives_from_whichever_is_ready);
  tcase_add_test(tc, select_sends_and_times_out);
  tcase_add_test(tc, select_bad_arguments);
  tcase_add_test(tc, many_producers_and_consumers_lose_nothing);
  tcase_add_test(tc, values_follow_the_transfer_rules);
  tcase_add_test(tc, channels_pass_between_goroutines_by_reference);
  tcase_add_test(tc, cancelled_waits_give_up_their_place);
  tcase_add_test(tc, select_is_fair);
  suite_add_tcase(s, tc);
  return s;
}

T_MAIN(channels_suite)
