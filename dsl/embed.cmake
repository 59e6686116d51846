# Writes IN as a C string constant `xk_prelude_lua` into OUT.
file(READ ${IN} hex HEX)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," hex "${hex}")
file(WRITE ${OUT} "const char xk_prelude_lua[] = {${hex} 0};\n")
