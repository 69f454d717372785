#ifndef MR_TEST_SUPPORT_H
#define MR_TEST_SUPPORT_H

/// Returns 1 once the test process ignores SIGPIPE (set by a constructor before any test runs).
int mr_test_sigpipe_ignored(void);

#endif
