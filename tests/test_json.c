/*
 * test_json.c - the `json` module as scripts see it: json.encode and
 * json.decode on every kind of value, the mapping the HTTP API documents,
 * the errors and the places they name, the sentinels, the sandbox and
 * goroutines; and jansson as an independent judge of the text.
 */
#include "helpers.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
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

/* Runs code and checks its values, each through tostring, joined with ",". */
#define t_eq(code, want) t_eq_at(code, want, __LINE__)
static void t_eq_at(const char *code, const char *want, int line) {
  char *v = t_eval(rt, code);
  ck_assert_msg(strcmp(v, want) == 0, "line %d:\n got: %s\nwant: %s", line, v,
                want);
  free(v);
}

/* ---- encode -------------------------------------------------------------- */

START_TEST(encode_scalars) {
  t_eq("return json.encode(nil), json.encode(true), json.encode(false)",
       "null,true,false");
  t_eq("return json.encode(0), json.encode(-42), json.encode(math.maxinteger),"
       " json.encode(math.mininteger)",
       "0,-42,9223372036854775807,-9223372036854775808");
  t_eq("return json.encode('hello'), json.encode('')", "\"hello\",\"\"");
}
END_TEST

START_TEST(encode_floats_shortest_and_exact) {
  t_eq("return json.encode(0.1), json.encode(1e300), json.encode(2.0), "
       "json.encode(-0.0), json.encode(1/3), json.encode(2^53), "
       "json.encode(1e21), json.encode(-1.5e-7), json.encode(0.1 + 0.2)",
       "0.1,1e+300,2.0,-0.0,0.3333333333333333,9007199254740992.0,1e+21,"
       "-1.5e-07,0.30000000000000004");
  /* JSON has no NaN or infinity: null, as in the API */
  t_eq("return json.encode({0/0, math.huge, -math.huge})", "[null,null,null]");
  /* every float reads back as the same double, and stays a float */
  t_eq("for _, x in ipairs({0.1, 1/3, 2^-1074, 1.7976931348623157e308, "
       "123456789.125, -2.0, 5e-324, 2^63}) do\n"
       "  local y = json.decode(json.encode(x))\n"
       "  assert(y == x and math.type(y) == 'float', tostring(x))\n"
       "end return 'ok'",
       "ok");
}
END_TEST

START_TEST(encode_arrays_and_objects) {
  t_eq("return json.encode({1, 2, 3}), json.encode({'a', {}, {true}})",
       "[1,2,3],[\"a\",{},[true]]");
  /* an empty table is an empty object, as in the API */
  t_eq("return json.encode({}), json.encode({{}})", "{},[{}]");
  /* keys other than exactly 1..n make an object, keys written as strings */
  t_eq("return json.encode({[1] = 'a', [3] = 'c'})",
       "{\"1\":\"a\",\"3\":\"c\"}");
  t_eq("return json.encode({[0] = 0}), json.encode({[-1] = 1}), "
       "json.encode({[2.5] = 1}), json.encode({[true] = 1}), "
       "json.encode({[1e300] = 1})",
       "{\"0\":0},{\"-1\":1},{\"2.5\":1},{\"true\":1},{\"1e+300\":1}");
  t_eq("local s = json.encode({1, 2, x = 3})\n"
       "return #s, s:find('\"1\":1', 1, true) ~= nil, "
       "s:find('\"x\":3', 1, true) ~= nil",
       "19,true,true");
  /* tables are read raw: metamethods change nothing */
  t_eq("local t = setmetatable({}, {__index = function() return 1 end, "
       "__pairs = function() error('no') end, __len = function() return 9 "
       "end})\n"
       "return json.encode(t)",
       "{}");
}
END_TEST

START_TEST(encode_nested_tables) {
  t_eq("return json.encode({a = {b = {1, {c = 'd'}, {}}}})",
       "{\"a\":{\"b\":[1,{\"c\":\"d\"},{}]}}");
  /* a table reached twice without a cycle is written twice */
  t_eq("local s = {1} return json.encode({s, {s}})", "[[1],[[1]]]");
}
END_TEST

START_TEST(encode_strings_and_escapes) {
  t_eq("return json.encode('q\"b\\\\s/n\\nr\\rt\\tb\\bf\\f')",
       "\"q\\\"b\\\\s/n\\nr\\rt\\tb\\bf\\f\"");
  t_eq("return json.encode('\\1\\31\\127')", "\"\\u0001\\u001f\x7f\"");
  /* UTF-8 is written as it is */
  t_eq("return json.encode('caf\\u{e9} \\u{1F600}')",
       "\"caf\xc3\xa9 \xf0\x9f\x98\x80\"");
}
END_TEST

START_TEST(encode_indent_option) {
  t_eq("return json.encode({a = {1, {}, {b = json.empty_array}}}, "
       "{indent = true})",
       "{\n  \"a\": [\n    1,\n    {},\n    {\n      \"b\": []\n    }\n  ]\n}");
  t_eq("return json.encode({1}, {indent = 4}), json.encode({1}, {indent = "
       "false}), json.encode(5, {indent = true})",
       "[\n    1\n],[1],5");
  t_fails(rt, "json.encode({}, {indent = 17})",
          "bad argument #2 to 'encode' (indent must be true or 0..16 "
          "spaces)");
  t_fails(rt, "json.encode({}, {ident = true})",
          "bad argument #2 to 'encode' (unknown option 'ident')");
  t_fails(rt, "json.encode({}, 'pretty')",
          "bad argument #2 to 'encode' (table expected, got string)");
}
END_TEST

/* ---- encode: what it refuses, and where -------------------------------- */

START_TEST(invalid_utf8_is_refused_with_the_path) {
  t_fails(rt, "json.encode({name = '\\xff'})",
          "json.encode: value.name is not valid UTF-8");
  t_fails(rt, "json.encode({items = {{}, {}, {title = 'ok\\xc3'}}})",
          "json.encode: value.items[3].title is not valid UTF-8");
  t_fails(rt, "json.encode('\\xc0\\xaf')", /* an overlong '/' */
          "json.encode: value is not valid UTF-8");
  t_fails(rt, "json.encode({'\\xed\\xa0\\x80'})", /* a surrogate */
          "json.encode: value[1] is not valid UTF-8");
  t_fails(rt, "json.encode({'\\xf4\\x90\\x80\\x80'})", /* past U+10FFFF */
          "json.encode: value[1] is not valid UTF-8");
  t_fails(rt, "json.encode({a = {['\\xff'] = 1}})",
          "json.encode: value.a has a key that is not valid UTF-8");
  /* odd keys are quoted in the path, shown as valid UTF-8 */
  t_fails(rt, "json.encode({['a b'] = {['\\u{e9}\\n'] = {x = '\\xff'}}})",
          "json.encode: value[\"a b\"][\"\xc3\xa9?\"].x is not valid UTF-8");
}
END_TEST

START_TEST(unencodable_values_are_refused_with_the_path) {
  t_fails(rt, "json.encode({f = print})", "json.encode: value.f is a function");
  t_fails(rt, "json.encode(function() end)",
          "json.encode: value is a function");
  t_fails(rt, "json.encode({list = {1, 2, io.stdout}})",
          "json.encode: value.list[3] is a userdata");
  t_fails(rt, "json.encode({co = coroutine.create(print)})",
          "json.encode: value.co is a coroutine");
  t_fails(rt, "json.encode({a = {[{}] = 1}})",
          "json.encode: value.a has a table as a key (JSON keys are strings)");
  t_fails(rt, "json.encode({[print] = 1})",
          "json.encode: value has a function as a key");
  t_fails(rt, "json.encode({[2.5] = {[true] = {[7] = {print}}}})",
          "json.encode: value[2.5][true][7][1] is a function");
  /* a library table is checked whole, not as the empty table it may
   * still be inside */
  t_fails(rt, "json.encode({lib = utf8})", "is a function");
  t_fails(rt, "json.encode()", "bad argument #1 to 'encode' (value expected)");
}
END_TEST

START_TEST(cycles_are_refused_with_the_path) {
  t_fails(rt, "local t = {} t.self = t json.encode(t)",
          "json.encode: value.self contains itself");
  t_fails(rt, "local t = {a = {b = {}}} t.a.b.c = t.a json.encode(t)",
          "json.encode: value.a.b.c contains itself");
  t_fails(rt, "local t = {1, 2} t[3] = t json.encode({x = t})",
          "json.encode: value.x[3] contains itself");
}
END_TEST

START_TEST(encode_depth_limit) {
  t_eq("local t = {} local c = t\n"
       "for i = 2, 200 do c[1] = {} c = c[1] end\n"
       "local s = json.encode(t)\n"
       "return #s, s:sub(1, 3)",
       "400,[[[");
  t_fails(rt,
          "local t = {} local c = t\n"
          "for i = 2, 201 do c[1] = {} c = c[1] end\n"
          "json.encode(t)",
          "json.encode: value[1][1][1][1][1][1]...(188 more)...[1][1][1][1][1]"
          "[1] is nested more than 200 levels deep");
  t_fails(rt,
          "local t = {} local c = t\n"
          "for i = 1, 1e5 do c.next = {} c = c.next end\n"
          "json.encode(t)",
          "is nested more than 200 levels deep");
}
END_TEST

/* ---- decode -------------------------------------------------------------- */

START_TEST(decode_scalars) {
  t_eq("return json.decode('true'), json.decode('false'), json.decode(' 42 "
       "'), json.decode('\"x\"'), select('#', json.decode('null'))",
       "true,false,42,x,1");
  t_eq("return json.decode('null')", "nil");
  t_fails(rt, "json.decode()",
          "bad argument #1 to 'decode' (string expected, got no value)");
  t_fails(rt, "json.decode('1', 5)",
          "bad argument #2 to 'decode' (table expected, got number)");
}
END_TEST

START_TEST(integers_and_floats_survive_decode) {
  t_eq("local t = json.decode('[1, 1.0, 1e2, -0, -0.0, 2.5E-3, "
       "9223372036854775807, -9223372036854775808, 1e-400, 1E308]')\n"
       "local out = {}\n"
       "for i, v in ipairs(t) do out[i] = math.type(v) .. ':' .. tostring(v) "
       "end\n"
       "return table.concat(out, ' ')",
       "integer:1 float:1.0 float:100.0 integer:0 float:-0.0 float:0.0025 "
       "integer:9223372036854775807 integer:-9223372036854775808 float:0.0 "
       "float:1e+308");
  /* past 64 bits or the double range: errors, as the API's */
  t_fails(rt, "json.decode('[9223372036854775808]')",
          "json.decode: too big integer near '9223372036854775808' at line 1, "
          "column 20 (byte 20)");
  t_fails(rt, "json.decode('-9223372036854775809')",
          "json.decode: too big negative integer near '-9223372036854775809' "
          "at line 1, column 20 (byte 20)");
  t_fails(rt, "json.decode('[1,\\n 123456789012345678901234567890]')",
          "json.decode: too big integer at line 2, column 31 (byte 35)");
  t_fails(rt, "json.decode('{\"x\": 1E400}')",
          "json.decode: real number overflow near '1E400' at line 1, column 11 "
          "(byte 11)");
  t_fails(rt, "json.decode('-1e400')", "real number overflow near '-1e400'");
  /* and what encode writes, decode gives back with the same type */
  t_eq("local v = {1, 1.0, -7, 0.5, math.maxinteger, math.mininteger}\n"
       "local w = json.decode(json.encode(v))\n"
       "for i = 1, #v do assert(w[i] == v[i] and math.type(w[i]) == "
       "math.type(v[i])) end\n"
       "return #w",
       "6");
}
END_TEST

START_TEST(decode_arrays_and_objects) {
  t_eq("local t = json.decode('{\"a\": [1, [2, 3], {}], \"b\": {\"c\": "
       "\"d\"}, \"\": 0}')\n"
       "return #t.a, t.a[2][2], next(t.a[3]), t.b.c, t['']",
       "3,3,nil,d,0");
  t_eq("local t = json.decode(' [ ] ') return type(t), next(t)", "table,nil");
  t_eq("local t = json.decode('{\"1\": \"x\"}') return t[1], t['1']", "nil,x");
}
END_TEST

START_TEST(decode_unicode_and_escapes) {
  t_eq("return json.decode('\"\\\\u00e9\\\\u20AC\\\\ud83d\\\\ude00\"') == "
       "'\\u{e9}\\u{20ac}\\u{1f600}'",
       "true");
  t_eq("return json.decode('\"\\\\\" \\\\\\\\ \\\\/ "
       "\\\\b\\\\f\\\\n\\\\r\\\\t\"')"
       " == '\" \\\\ / \\b\\f\\n\\r\\t'",
       "true");
  t_eq("return json.decode('\"caf\xc3\xa9 \xf0\x9f\x98\x80\"') == "
       "'caf\\u{e9} \\u{1f600}'",
       "true");
}
END_TEST

START_TEST(nul_bytes_in_strings) {
  t_eq("local s = 'a\\0b\\0'\n"
       "local text = json.encode({s})\n"
       "local back = json.decode(text)[1]\n"
       "return text, #back, back == s",
       "[\"a\\u0000b\\u0000\"],4,true");
  t_eq("return #json.decode('\"\\\\u0000\"')", "1");
}
END_TEST

START_TEST(round_trip_every_type) {
  t_eq("local v = {b = true, f = false, i = -3, x = 2.5, whole = 3.0, "
       "s = 'x\\0y\\u{263a}', list = {1, 'two', {3}}, empty = {}, "
       "obj = {k = {deep = {1, 2}}}, big = math.maxinteger, tiny = 5e-324}\n"
       "local function same(a, b)\n"
       "  if type(a) ~= 'table' then\n"
       "    return a == b and math.type(a) == math.type(b)\n"
       "  end\n"
       "  for k, x in pairs(a) do if not same(x, b[k]) then return false end "
       "end\n"
       "  for k in pairs(b) do if a[k] == nil then return false end end\n"
       "  return true\n"
       "end\n"
       "local back = json.decode(json.encode(v))\n"
       "local pretty = json.decode(json.encode(v, {indent = true}))\n"
       "return same(v, back), same(v, pretty), same(back, v)",
       "true,true,true");
}
END_TEST

/* ---- decode: malformed text ---------------------------------------------- */

START_TEST(malformed_json_names_the_place) {
  /* jansson's words and place: line, column in characters, bytes read */
  t_fails(rt, "json.decode('[1, 2, x]')",
          "json.decode: invalid token near 'x' at line 1, column 8 (byte 8)");
  t_fails(rt, "json.decode('{\"a\": 1,\\n  \"b\" 2}')",
          "json.decode: ':' expected near '2' at line 2, column 7 (byte 16)");
  t_fails(rt, "json.decode('[\"\\u{e9}\\u{e9}\", tru]')", /* characters */
          "json.decode: invalid token near 'tru' at line 1, column 10 "
          "(byte 12)");
  t_fails(rt, "json.decode('')",
          "json.decode: unexpected token near end of file at line 1, column 0 "
          "(byte 0)");
  t_fails(rt, "json.decode('[1,]')", "unexpected token near ']'");
  t_fails(rt, "json.decode('[1 2]')", "']' expected near '2'");
  t_fails(rt, "json.decode('{\"a\":1 \"b\"}')", "'}' expected near '\"b\"'");
  t_fails(rt, "json.decode('{1: 2}')", "string or '}' expected near '1'");
  t_fails(rt, "json.decode('[1] [2]')",
          "end of file expected near '[' at line 1, column 5 (byte 5)");
  t_fails(rt, "json.decode('[1')",
          "']' expected near end of file at line 1, column 2 (byte 2)");
  t_fails(rt, "json.decode('\"abc')",
          "premature end of input near '\"abc' at line 1, column 4 (byte 4)");
  t_fails(rt, "json.decode('\"a\\nb\"')",
          "unexpected newline near '\"a' at line 1, column 2 (byte 2)");
  t_fails(rt, "json.decode('\"a\\tb\"')", "control character 0x9");
  t_fails(rt, "json.decode('\"\\\\q\"')", "invalid escape near '\"\\q'");
  t_fails(rt, "json.decode('\"\\\\u12\"')", "invalid escape");
  t_fails(rt, "json.decode('\"\\\\ud800x\"')",
          "invalid Unicode '\\uD800' near '\"\\ud800x\"'");
  t_fails(rt, "json.decode('\"\\\\udc00\"')", "invalid Unicode '\\uDC00'");
  t_fails(rt, "json.decode('\"\\\\ud83d\\\\u0041\"')",
          "invalid Unicode '\\uD83D\\u0041'");
  t_fails(
      rt, "json.decode('\"ok\\xff\"')",
      "unable to decode byte 0xff near '\"ok' at line 1, column 3 (byte 3)");
  t_fails(rt, "json.decode('\\xef\\xbb\\xbf1')", /* a byte order mark */
          "invalid token near '\xef\xbb\xbf' at line 1, column 1 (byte 3)");
  t_fails(rt, "json.decode('[\\0]')", "invalid token near end of file");
  t_fails(rt, "json.decode('[\\u{e9}]')", "invalid token near '\xc3\xa9'");
  t_fails(rt, "json.decode('01')", "invalid token near '0'");
  t_fails(rt, "json.decode('-')", "invalid token near '-'");
  t_fails(rt, "json.decode('1.')", "invalid token near '1.'");
  t_fails(rt, "json.decode('1e+')", "invalid token near '1e+'");
  t_fails(rt, "json.decode('NaN')", "invalid token near 'NaN'");
  t_fails(rt, "json.decode('[0x10]')", "']' expected near 'x'");
  /* as the API refuses them */
  t_fails(rt, "json.decode('{\"a\": 1, \"a\": 2}')",
          "json.decode: duplicate object key near '\"a\"' at line 1, column 12 "
          "(byte 12)");
  t_fails(rt, "json.decode('{\"a\\\\u0000b\": 1}')",
          "NUL byte in object key not supported");
}
END_TEST

START_TEST(decode_depth_limit) {
  t_eq("local t = json.decode(('['):rep(200) .. (']'):rep(200))\n"
       "local n = 0 while t do n = n + 1 t = t[1] end return n",
       "200");
  t_fails(rt, "json.decode(('['):rep(201) .. (']'):rep(201))",
          "json.decode: more than 200 nested arrays and objects at line 1, "
          "column 201 (byte 201)");
  /* the place skips strings, counts characters and lines */
  t_fails(rt,
          "json.decode('[\"\\u{e9}\\\\\\\"[{\",' .. ('['):rep(200) .. "
          "(']'):rep(201))",
          "more than 200 nested arrays and objects at line 1, column 209 "
          "(byte 210)");
  t_fails(rt,
          "json.decode('{\"\\u{e9}\":\\n' .. ('['):rep(200) .. "
          "(']'):rep(200) .. '}')",
          "more than 200 nested arrays and objects at line 2, column 200 "
          "(byte 207)");
  /* past jansson's own limit (2048) too */
  t_fails(rt, "json.decode(('{\"a\":'):rep(1e6))",
          "json.decode: more than 200 nested arrays and objects at line 1, "
          "column 1001 (byte 1001)");
}
END_TEST

/* ---- null and empty arrays ----------------------------------------------- */

START_TEST(null_decodes_to_nil_by_default) {
  t_eq("local t = json.decode('[1, null, 3, null]')\n"
       "return t[1], t[2], t[3], t[4]",
       "1,nil,3,nil");
  t_eq("local t = json.decode('{\"a\": null, \"b\": 1}')\n"
       "local k = next(t) return t.a, t.b, k, next(t, k)",
       "nil,1,b,nil");
}
END_TEST

START_TEST(null_sentinel_both_ways) {
  t_eq("local t = json.decode('{\"a\": null, \"l\": [null, 2]}', "
       "{null = json.null})\n"
       "return t.a == json.null, t.l[1] == json.null, t.l[2]",
       "true,true,2");
  t_eq("return json.encode(json.null), json.encode({json.null, 2, "
       "json.null}), json.encode({x = json.null})",
       "null,[null,2,null],{\"x\":null}");
  /* with the sentinel, nulls survive a round trip */
  t_eq("local s = '[1,null,{\"a\":null},[null]]'\n"
       "return json.encode(json.decode(s, {null = json.null})) == s",
       "true");
  /* any value can stand for null */
  t_eq("return json.decode('[null]', {null = 'NULL'})[1]", "NULL");
  t_eq("return json.null() == json.null, json.null ~= json.empty_array, "
       "type(json.null)",
       "true,true,function");
  t_fails(rt, "json.decode('null', {nul = 1})",
          "bad argument #2 to 'decode' (unknown option 'nul')");
}
END_TEST

START_TEST(empty_array_sentinel) {
  t_eq("return json.encode(json.empty_array), json.encode({tags = "
       "json.empty_array}), json.encode({json.empty_array, {}})",
       "[],{\"tags\":[]},[[],{}]");
  t_eq("return json.empty_array() == json.empty_array", "true");
}
END_TEST

/* ---- where json is available --------------------------------------------- */

START_TEST(require_json_is_the_global) {
  t_eq("return require('json') == json, type(json.encode), "
       "type(json.decode), type(json.null), type(json.empty_array)",
       "true,function,function,function,function");
  t_eq("local names = {} for k in pairs(json) do names[#names + 1] = k end "
       "table.sort(names) return table.concat(names, ' ')",
       "decode empty_array encode null");
}
END_TEST

START_TEST(untrusted_profile_has_json) {
  gr_future *f = t_start(rt,
                         "local t = json.decode('{\"a\": [1, 2.5, null]}', "
                         "{null = json.null})\n"
                         "return json.encode(t), require('json') == json",
                         GR_PROFILE_UNTRUSTED);
  ck_assert_int_eq(gr_future_wait(f, 30000), GR_SUCCEEDED);
  char *v = t_values(f);
  ck_assert_str_eq(v, "{\"a\":[1,2.5,null]},true");
  free(v);
  gr_future_unref(f);
}
END_TEST

START_TEST(json_inside_goroutines) {
  /* the sentinel keeps its identity when passed to another goroutine */
  t_eq("local ok, same, text = goroutine.await(goroutine.async(function(n, "
       "t)\n"
       "  return n == json.null, json.encode(t)\n"
       "end, json.null, {json.null, json.empty_array}))\n"
       "return ok, same, text",
       "true,true,[null,[]]");
  t_eq("local hs = {}\n"
       "for i = 1, 50 do\n"
       "  hs[i] = goroutine.async(function(i)\n"
       "    local doc = json.encode({id = i, tags = {'a', 'b'}, w = i / 4})\n"
       "    goroutine.yield()\n"
       "    local back = json.decode(doc)\n"
       "    return back.id * 2 + #back.tags, back.w\n"
       "  end, i)\n"
       "end\n"
       "local sum = 0\n"
       "for i, r in ipairs(goroutine.await_all(hs)) do\n"
       "  assert(r.success and r.values[2] == i / 4)\n"
       "  sum = sum + r.values[1]\n"
       "end\n"
       "return sum",
       "2650");
  t_eq("goroutine.pool_create('j', {workers = 4, queue_size = 20})\n"
       "for i = 1, 20 do\n"
       "  assert(goroutine.pool_submit('j', function(i)\n"
       "    local t = {} for k = 1, 200 do t[k] = {k = k, s = ('x'):rep(k)} "
       "end\n"
       "    assert(#json.decode(json.encode(t)) == 200)\n"
       "  end, i))\n"
       "end\n"
       "goroutine.pool_wait('j')\n"
       "return goroutine.pool_stats('j').completed",
       "20");
}
END_TEST

/* ---- size and memory ------------------------------------------------------
 */

START_TEST(large_documents) {
  t_eq("local t = {} for i = 1, 100000 do t[i] = {i, tostring(i)} end\n"
       "local s = json.encode(t)\n"
       "local back = json.decode(s)\n"
       "return #s, #back, back[99999][2]",
       "1577791,100000,99999");
}
END_TEST

START_TEST(memory_limit_holds_while_decoding) {
  t_runtime_free(rt);
  rt = t_runtime(2, 8u << 20);
  /* 3 MB of text, about ten times that in jansson's tree: its budget,
   * what the limit leaves, stops it */
  t_fails(rt,
          "local s = '[' .. ('[1,2],'):rep(500000) .. '0]'\n"
          "return json.decode(s)",
          "not enough memory (the goroutine's limit is 8388608 bytes)");
  t_fails(rt,
          "local t = {} for i = 1, 5000 do t[i] = ('x'):rep(1000) end\n"
          "local parts = {} for i = 1, 10 do parts[i] = json.encode(t) "
          "end",
          "not enough memory");
  t_eq("return json.encode(json.decode('[1]'))", "[1]");
}
END_TEST

START_TEST(the_tree_counts_against_the_memory_limit) {
  t_runtime_free(rt);
  rt = t_runtime(2, 8u << 20);
  /* 300 KB of text, about 12 MB as jansson's tree (outside Lua) */
  t_eq("local bomb = '[' .. ('[],'):rep(100000) .. '[]]'\n"
       "return pcall(json.decode, bomb)",
       "false,json.decode: not enough memory (the goroutine's limit is "
       "8388608 bytes)");
  /* the budget is what the limit leaves: 2.4 MB of tree fits, not next to
   * 6 MB of other things */
  t_eq("local doc = '[' .. ('[],'):rep(20000) .. '[]]'\n"
       "local ballast = {}\n"
       "for i = 1, 96 do ballast[i] = ('x'):rep(2^16 - 32) end\n"
       "local ok, err = pcall(json.decode, doc)\n"
       "ballast = nil\n"
       "collectgarbage()\n"
       "return ok, err, #json.decode(doc)",
       "false,json.decode: not enough memory (the goroutine's limit is "
       "8388608 bytes),20001");
  /* garbage leaves room: decode collects it before it gives up, as Lua
   * does (6 MB of garbage here, the collector stopped) */
  t_eq("local doc = '[' .. ('[],'):rep(20000) .. '[]]'\n"
       "collectgarbage('stop')\n"
       "local g = {}\n"
       "for i = 1, 96 do g[i] = ('x'):rep(2^16 - 32) end\n"
       "g = nil\n"
       "local before = collectgarbage('count') // 1024\n"
       "local t = json.decode(doc)\n"
       "collectgarbage('restart')\n"
       "return before >= 6, #t",
       "true,20001");
}
END_TEST

START_TEST(conversion_errors_free_the_tree) {
  /* jansson reads up to 2048 levels; the conversion raises at 201, after
   * 200 tables: the tree is freed all the same (ASan's leak check) */
  t_eq("local text = ('['):rep(300) .. (']'):rep(300)\n"
       "for i = 1, 20 do\n"
       "  local ok, err = pcall(json.decode, text)\n"
       "  assert(not ok and err:find('more than 200', 1, true), err)\n"
       "end\n"
       "return 'ok'",
       "ok");
  /* out of memory in the middle: 2^17 trues are 1 MB of tree (1.5 MB at
   * most while jansson's array grows) within the budget, but 2 MB as a
   * Lua table, which is more than the limit leaves */
  t_runtime_free(rt);
  rt = t_runtime(2, 8u << 20);
  t_eq("local text = '[' .. ('true,'):rep(2^17 - 1) .. 'true]'\n"
       "collectgarbage()\n"
       "local room = 8 * 2^20 - collectgarbage('count') * 1024\n"
       "local ballast = {}\n"
       "for i = 1, (room - 1.75 * 2^20) // 2^16 do\n"
       "  ballast[i] = ('x'):rep(2^16 - 32)\n"
       "end\n"
       "collectgarbage()\n"
       "local ok, err = pcall(json.decode, text)\n"
       "ballast = nil\n"
       "collectgarbage()\n"
       "return ok, err, #json.decode(text)",
       "false,not enough memory,131072");
}
END_TEST

/* ---- jansson as a judge ----------------------------------------------------
 */

static unsigned long long rng = 42;

static unsigned rnd(unsigned n) {
  rng = rng * 6364136223846793005ull + 1442695040888963407ull;
  return (unsigned)(rng >> 33) % n;
}

/* A random document of the shapes encode writes back the same way: no null,
 * no empty array. Strings come from pieces that need every kind of escape. */
static json_t *random_value(int depth) {
  static const char *const pieces[] = {"a",
                                       "Zz",
                                       " ",
                                       "\"",
                                       "\\",
                                       "/",
                                       "\n",
                                       "\t",
                                       "\x01",
                                       "\x1f",
                                       "\xc3\xa9",
                                       "\xe2\x82\xac",
                                       "\xf0\x9f\x98\x80",
                                       "]",
                                       "\x7f",
                                       "0"};
  switch (rnd(depth >= 4 ? 5 : 7)) {
  case 0:
    return json_boolean(rnd(2));
  case 1:
    return json_integer(rnd(2) ? (json_int_t)rnd(2000) - 1000
                               : (json_int_t)rnd(1u << 31) << 31);
  case 2:
    return json_real(ldexp((double)rnd(1u << 30) + 0.5, (int)rnd(80) - 60) *
                     (rnd(2) ? 1 : -1));
  case 3:
  case 4: {
    char s[128];
    size_t n = 0;
    for (unsigned k = rnd(8); k > 0; k--) {
      const char *p = pieces[rnd(sizeof pieces / sizeof *pieces)];
      memcpy(s + n, p, strlen(p));
      n += strlen(p);
    }
    if (rnd(8) == 0)
      s[n++] = '\0';
    return json_stringn(s, n);
  }
  case 5: {
    json_t *a = json_array();
    for (unsigned k = rnd(4) + 1; k > 0; k--)
      json_array_append_new(a, random_value(depth + 1));
    return a;
  }
  default: {
    json_t *o = json_object();
    for (unsigned k = rnd(5); k > 0; k--) {
      char key[8];
      snprintf(key, sizeof key, "k%u", rnd(6));
      json_object_set_new(o, key, random_value(depth + 1));
    }
    return o;
  }
  }
}

START_TEST(jansson_reads_back_what_we_write) {
  for (int i = 0; i < 150; i++) {
    json_t *doc = random_value(0);
    size_t flags = JSON_ENCODE_ANY | (i % 2 ? JSON_INDENT(2) : JSON_COMPACT);
    char *text = json_dumps(doc, flags);
    ck_assert_ptr_nonnull(text);
    size_t len = strlen(text) + 128;
    char *code = malloc(len);
    snprintf(code, len,
             "local text = [==[%s]==]\n"
             "return json.encode(json.decode(text))",
             text);
    char *ours = t_eval(rt, code);
    json_error_t err;
    json_t *back = json_loads(ours, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
    ck_assert_msg(back, "jansson cannot read %s: %s", ours, err.text);
    ck_assert_msg(json_equal(doc, back), "document %d changed:\n%s\n%s", i,
                  text, ours);
    json_decref(back);
    json_decref(doc);
    free(ours);
    free(code);
    free(text);
  }
}
END_TEST

static Suite *json_suite(void) {
  Suite *s = suite_create("json");
  TCase *tc = tcase_create("json");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, encode_scalars);
  tcase_add_test(tc, encode_floats_shortest_and_exact);
  tcase_add_test(tc, encode_arrays_and_objects);
  tcase_add_test(tc, encode_nested_tables);
  tcase_add_test(tc, encode_strings_and_escapes);
  tcase_add_test(tc, encode_indent_option);
  tcase_add_test(tc, invalid_utf8_is_refused_with_the_path);
  tcase_add_test(tc, unencodable_values_are_refused_with_the_path);
  tcase_add_test(tc, cycles_are_refused_with_the_path);
  tcase_add_test(tc, encode_depth_limit);
  tcase_add_test(tc, decode_scalars);
  tcase_add_test(tc, integers_and_floats_survive_decode);
  tcase_add_test(tc, decode_arrays_and_objects);
  tcase_add_test(tc, decode_unicode_and_escapes);
  tcase_add_test(tc, nul_bytes_in_strings);
  tcase_add_test(tc, round_trip_every_type);
  tcase_add_test(tc, malformed_json_names_the_place);
  tcase_add_test(tc, decode_depth_limit);
  tcase_add_test(tc, null_decodes_to_nil_by_default);
  tcase_add_test(tc, null_sentinel_both_ways);
  tcase_add_test(tc, empty_array_sentinel);
  tcase_add_test(tc, require_json_is_the_global);
  tcase_add_test(tc, untrusted_profile_has_json);
  tcase_add_test(tc, json_inside_goroutines);
  tcase_add_test(tc, large_documents);
  tcase_add_test(tc, memory_limit_holds_while_decoding);
  tcase_add_test(tc, the_tree_counts_against_the_memory_limit);
  tcase_add_test(tc, conversion_errors_free_the_tree);
  tcase_add_test(tc, jansson_reads_back_what_we_write);
  suite_add_tcase(s, tc);
  return s;
}

T_MAIN(json_suite)
