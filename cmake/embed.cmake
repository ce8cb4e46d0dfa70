# Writes OUTPUT, a C file defining NAME (the bytes of INPUT, NUL-ended)
# and NAME_len. Run with cmake -DINPUT=... -DOUTPUT=... -DNAME=... -P.
file(READ "${INPUT}" hex HEX)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
file(WRITE "${OUTPUT}"
  "/* Generated from ${INPUT}; do not edit. */\n#include <stddef.h>\n"
  "const char ${NAME}[] = {${bytes} 0};\n"
  "const size_t ${NAME}_len = sizeof(${NAME}) - 1;\n")
