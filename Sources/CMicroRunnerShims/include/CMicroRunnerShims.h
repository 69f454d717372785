#ifndef C_MICRO_RUNNER_SHIMS_H
#define C_MICRO_RUNNER_SHIMS_H

#include <sys/types.h>
#include "mr_libc.h"

/// pidfd_open(2): a descriptor that polls readable when the process exits; -1 with errno on failure
/// (ENOSYS before Linux 5.3, where callers fall back to a timed waitpid loop).
int mr_pidfd_open(pid_t pid);

/// fcntl(F_SETPIPE_SZ): the pipe's capacity in bytes (rounded up by the kernel); -1 with errno when `fd` is not
/// a pipe or the size is over /proc/sys/fs/pipe-max-size (1 MiB by default).
int mr_set_pipe_size(int fd, int bytes);

/// eventfd(2) with EFD_CLOEXEC | EFD_NONBLOCK; -1 on failure.
int mr_eventfd(void);

/// The process's environment block (`environ`), which Swift cannot reach portably.
char *const *mr_environ(void);

/// Starts a detached thread running `body(context)` with a stack of `stack_bytes`; 0 or an errno value.
int mr_start_detached_thread(void *(*body)(void *), void *context, size_t stack_bytes);

/// socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0) (SOCK_STREAM is an enum in glibc, a macro in musl).
int mr_tcp_socket(int family);

/// connect(2) bounded by `timeout_ms`: 0 once connected, else an errno value (ETIMEDOUT when nothing answered
/// in time). A blocking connect to a port whose SYNs a firewall drops waits ~127 s (6 SYN retries). Leaves
/// `fd` non-blocking.
int mr_tcp_connect(int fd, const void *address, unsigned int length, int timeout_ms);

/// The process's arguments, captured before main (glibc passes them to initialisers).
int mr_argc(void);
char *const *mr_argv(void);

/// The name in a directory entry, where it lies. Swift reads `entry.pointee.d_name` by copying the whole
/// 256-byte tuple, and musl keeps entries in a 2048-byte buffer at the very end of its DIR allocation: a short
/// name near that buffer's end, copied that way, reads up to ~240 bytes past the allocation (measured: the
/// static runner died of SIGSEGV on the 10th file.write into a directory of 3,000 entries).
static inline const char *mr_dirent_name(const struct dirent *entry) { return entry->d_name; }

#endif

#include <spawn.h>
#include <stddef.h>

#ifndef C_MICRO_RUNNER_SHIMS_H_GNU
#define C_MICRO_RUNNER_SHIMS_H_GNU
/// pipe2(fds, O_CLOEXEC).
int mr_pipe_cloexec(int fds[2]);
/// splice(2) of up to `len` bytes from the file `in` at `*offset` (advanced) to the pipe `out`, without
/// blocking on the pipe; ENOSYS where there is no splice.
long mr_splice_from_file(int in, long long *offset, int out, size_t len);
/// sync_file_range(fd, offset, len, SYNC_FILE_RANGE_WRITE): starts writing those dirty pages out, without
/// waiting; 0 and nothing done where there is no such call.
int mr_start_writeback(int fd, long long offset, long long len);
/// getrandom(2); falls back to /dev/urandom.
long mr_getrandom(void *buf, size_t len);
/// posix_spawn_file_actions_addchdir_np (glibc 2.29+); ENOSYS where missing.
int mr_spawn_addchdir(posix_spawn_file_actions_t *actions, const char *path);
#endif

#include <stdint.h>

/// Streaming SHA-256; uses the x86 SHA extensions when present.
typedef struct {
    uint32_t state[8];
    uint64_t length;
    uint8_t buffer[64];
    size_t buffered;
    void *blocks;
} mr_sha256_ctx;

/// Starts a hash; `allow_accelerated` 0 forces the portable code (tests compare both).
void mr_sha256_init(mr_sha256_ctx *ctx, int allow_accelerated);
void mr_sha256_update(mr_sha256_ctx *ctx, const void *data, size_t len);
void mr_sha256_final(mr_sha256_ctx *ctx, uint8_t out[32]);
/// 1 when this CPU runs the SHA-extension code path.
int mr_sha256_accelerated(void);

/// Makes glibc serve allocations of 256 KiB or more with mmap (returned to the kernel when freed) and
/// trim the heap above 1 MiB, so a multi-megabyte transfer does not leave the RSS high. No-op elsewhere.
void mr_tune_malloc(void);

#ifndef C_MICRO_RUNNER_SHIMS_H_BECOME
#define C_MICRO_RUNNER_SHIMS_H_BECOME
/// A new pseudo-terminal: the master's descriptor (close-on-exec, not a controlling terminal), with the
/// slave's path written to `slave_path`; -1 with errno on failure.
int mr_open_pty(char *slave_path, size_t length);
/// In a new session's leader: opens the terminal at `path` and makes it the controlling terminal
/// (TIOCSCTTY; ioctl is variadic, which Swift cannot call), then closes that descriptor: the terminal stays
/// the session's. 0, or -1 with errno.
int mr_acquire_controlling_tty(const char *path);
/// SIGTERM, SIGINT and SIGHUP received by this process are sent on to `child` (a plain handler: kill(2) is
/// async-signal-safe). 0, or -1 with errno.
int mr_forward_stop_signals(pid_t child);
/// PR_SET_DUMPABLE 0: other processes of this uid can no longer ptrace this one or open its /proc/PID/fd.
int mr_set_not_dumpable(void);
#endif
