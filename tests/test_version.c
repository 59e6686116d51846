/* One version everywhere: the library's xkv_version(), the header's
 * XKV_VERSION and its parts, and CMake's project(VERSION) (read from the
 * header, passed in as XKV_PROJECT_VERSION). */
#include "xkv.h"

#include "check_main.h"
#include <stdio.h>
#include <string.h>

START_TEST(versions_agree) {
  char parts[32];
  snprintf(parts, sizeof parts, "%d.%d.%d", XKV_VERSION_MAJOR,
           XKV_VERSION_MINOR, XKV_VERSION_PATCH);
  ck_assert_str_eq(XKV_VERSION, parts);
  ck_assert_str_eq(xkv_version(), XKV_VERSION);
  ck_assert_str_eq(XKV_PROJECT_VERSION, XKV_VERSION);
}
END_TEST

int main(void) {
  Suite *s = suite_create("version");
  TCase *tc = tcase_create("version");
  tcase_add_test(tc, versions_agree);
  suite_add_tcase(s, tc);
  return xk_check_run(s);
}
