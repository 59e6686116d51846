/* The tail of every Check test's main: run the suite, exit 1 on failure. */
#ifndef XK_CHECK_MAIN_H
#define XK_CHECK_MAIN_H

#include <check.h>

static inline int xk_check_run(Suite *s) {
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? 1 : 0;
}

#endif
