#ifndef MR_TEST_SUPPORT_H
#define MR_TEST_SUPPORT_H

/// Returns 1 once the test process ignores SIGPIPE (set by a constructor before any test runs).
int mr_test_sigpipe_ignored(void);

/// Returns 1 and sets `status` (exit status, or the signal's number) once child `pid` has ended, without reaping it.
int mr_test_peek_exit(int pid, int *status);

#endif
