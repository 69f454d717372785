#ifndef C_MICRO_RUNNER_SHIMS_H
#define C_MICRO_RUNNER_SHIMS_H

#include <sys/types.h>

/// pidfd_open(2): a descriptor that polls readable when the process exits; -1 with errno on failure
/// (ENOSYS before Linux 5.3, where callers fall back to a timed waitpid loop).
int mr_pidfd_open(pid_t pid);

/// eventfd(2) with EFD_CLOEXEC | EFD_NONBLOCK; -1 on failure.
int mr_eventfd(void);

/// The process's environment block (`environ`), which Swift cannot reach portably.
char *const *mr_environ(void);

#endif

#include <spawn.h>
#include <stddef.h>

#ifndef C_MICRO_RUNNER_SHIMS_H_GNU
#define C_MICRO_RUNNER_SHIMS_H_GNU
/// pipe2(fds, O_CLOEXEC).
int mr_pipe_cloexec(int fds[2]);
/// getrandom(2); falls back to /dev/urandom.
long mr_getrandom(void *buf, size_t len);
/// posix_spawn_file_actions_addchdir_np (glibc 2.29+); ENOSYS where missing.
int mr_spawn_addchdir(posix_spawn_file_actions_t *actions, const char *path);
#endif
