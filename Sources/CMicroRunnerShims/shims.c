#define _GNU_SOURCE
#include "CMicroRunnerShims.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <signal.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/eventfd.h>
#include <sys/syscall.h>
#endif

extern char **environ;

int mr_pidfd_open(pid_t pid) {
#if defined(__linux__) && defined(SYS_pidfd_open)
    return (int)syscall(SYS_pidfd_open, pid, 0);
#else
    (void)pid;
    errno = ENOSYS;
    return -1;
#endif
}

int mr_set_pipe_size(int fd, int bytes) {
#if defined(__linux__) && defined(F_SETPIPE_SZ)
    return fcntl(fd, F_SETPIPE_SZ, bytes);
#else
    (void)fd; (void)bytes;
    errno = ENOSYS;
    return -1;
#endif
}

int mr_eventfd(void) {
#ifdef __linux__
    return eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
#else
    errno = ENOSYS;
    return -1;
#endif
}

char *const *mr_environ(void) { return environ; }

#include <fcntl.h>
#ifdef __linux__
#include <sys/random.h>
#endif

long mr_splice_from_file(int in, long long *offset, int out, size_t len) {
#ifdef __linux__
    loff_t off = (loff_t)*offset;
    ssize_t n = splice(in, &off, out, NULL, len, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    *offset = (long long)off;
    return (long)n;
#else
    (void)in; (void)offset; (void)out; (void)len;
    errno = ENOSYS;
    return -1;
#endif
}

int mr_start_writeback(int fd, long long offset, long long len) {
#if defined(__linux__) && defined(SYNC_FILE_RANGE_WRITE)
    return sync_file_range(fd, (off_t)offset, (off_t)len, SYNC_FILE_RANGE_WRITE);
#else
    (void)fd; (void)offset; (void)len;
    return 0;
#endif
}

int mr_pipe_cloexec(int fds[2]) {
#ifdef __linux__
    return pipe2(fds, O_CLOEXEC);
#else
    if (pipe(fds) != 0) return -1;
    fcntl(fds[0], F_SETFD, FD_CLOEXEC);
    fcntl(fds[1], F_SETFD, FD_CLOEXEC);
    return 0;
#endif
}

long mr_getrandom(void *buf, size_t len) {
#ifdef __linux__
    return (long)getrandom(buf, len, 0);
#else
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    long n = (long)read(fd, buf, len);
    close(fd);
    return n;
#endif
}

int mr_spawn_addchdir(posix_spawn_file_actions_t *actions, const char *path) {
#if (defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 29))) || \
    (defined(__linux__) && !defined(__GLIBC__)) /* musl has had it since 1.1.24 (2019) */
    return posix_spawn_file_actions_addchdir_np(actions, path);
#else
    (void)actions; (void)path;
    return ENOSYS;
#endif
}

#ifdef __GLIBC__
#include <malloc.h>
#endif

void mr_tune_malloc(void) {
#ifdef __GLIBC__
    mallopt(M_MMAP_THRESHOLD, 256 * 1024);
    mallopt(M_TRIM_THRESHOLD, 1024 * 1024);
#endif
}

int mr_errno(void) { return errno; }

int mr_tcp_socket(int family) { return socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0); }

int mr_tcp_connect(int fd, const void *address, unsigned int length, int timeout_ms) {
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) return errno;
    if (connect(fd, (const struct sockaddr *)address, (socklen_t)length) == 0) return 0;
    if (errno != EINPROGRESS && errno != EINTR) return errno;
    struct pollfd pfd = {.fd = fd, .events = POLLOUT, .revents = 0};
    int ready;
    do { ready = poll(&pfd, 1, timeout_ms); } while (ready < 0 && errno == EINTR);
    if (ready < 0) return errno;
    if (ready == 0) return ETIMEDOUT;
    int error = 0;
    socklen_t size = sizeof error;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &size) < 0) return errno;
    return error;
}

int mr_start_detached_thread(void *(*body)(void *), void *context, size_t stack_bytes) {
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, stack_bytes);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_t thread;
    int rc = pthread_create(&thread, &attr, body, context);
    pthread_attr_destroy(&attr);
    return rc;
}

int mr_openat(int dirfd, const char *path, int flags, mode_t mode) { return openat(dirfd, path, flags, mode); }

int mr_fcntl(int fd, int cmd, int arg) { return fcntl(fd, cmd, arg); }

void (*mr_sig_ign(void))(int) { return SIG_IGN; }
void (*mr_sig_dfl(void))(int) { return SIG_DFL; }

#ifdef MR_EMBEDDED
#include <stdlib.h>
/* The runner takes one thing from libsodium: Ed25519 verification. The archive members that code needs refer to
   sodium_misuse (in core.o, beside sodium_init) and randombytes_buf (randombytes.o); linking those members would
   bring sodium_init, every cipher it picks an implementation for, and through its assert() glibc's gettext, locale
   and printf machinery: ~250 KB in all. Defined here, with libsodium's behaviour (abort on misuse; kernel
   randomness), the linker never pulls them. */
void sodium_misuse(void) { abort(); }
/* Debian's libsodium.a is built with _FORTIFY_SOURCE against glibc; musl has no __*_chk functions. */
void __explicit_bzero_chk(void *dest, size_t len, size_t destlen) {
    if (len > destlen) abort();
    explicit_bzero(dest, len);
}
void randombytes_buf(void *const buf, const size_t size) {
    size_t filled = 0;
    while (filled < size) {
        long n = mr_getrandom((char *)buf + filled, size - filled);
        if (n <= 0) abort();
        filled += (size_t)n;
    }
}
/* The Embedded stdlib seeds Hasher with arc4random_buf (glibc 2.36 has it, musl does not): per-process random
   seeds keep a crafted CMD from making dictionary lookups quadratic. */
void arc4random_buf(void *buf, size_t size) { randombytes_buf(buf, size); }

/* The Embedded stdlib leaves Double(String)'s parsing to the platform. */
const char *_swift_stdlib_strtod_clocale(const char *nptr, double *outResult) {
    char *end;
    *outResult = strtod(nptr, &end);
    return end;
}
#endif

/* The Embedded stdlib has no CommandLine, so the runner's arguments are captured here, before Swift's main runs.
   glibc passes (argc, argv, envp) to initialisers; musl does not, so the Embedded (musl) build links with
   -Wl,--wrap=main and the C start-up calls __wrap_main, which keeps them and goes on to the Swift main. */
static int mr_saved_argc;
static char **mr_saved_argv;
#if defined(__GLIBC__)
__attribute__((constructor)) static void mr_capture_arguments(int argc, char **argv, char **envp) {
    (void)envp;
    mr_saved_argc = argc;
    mr_saved_argv = argv;
}
#endif
#ifdef MR_EMBEDDED
int __real_main(int argc, char **argv);
int __wrap_main(int argc, char **argv) {
    mr_saved_argc = argc;
    mr_saved_argv = argv;
    return __real_main(argc, argv);
}
#endif
int mr_argc(void) { return mr_saved_argc; }
char *const *mr_argv(void) { return mr_saved_argv; }

#include <stdlib.h>
#include <sys/ioctl.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

int mr_open_pty(char *slave_path, size_t length) {
    int master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (master < 0) return -1;
    if (grantpt(master) != 0 || unlockpt(master) != 0 || ptsname_r(master, slave_path, length) != 0) {
        int saved = errno;
        close(master);
        errno = saved;
        return -1;
    }
    return master;
}

int mr_acquire_controlling_tty(const char *path) {
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0) return -1;
    int rc = ioctl(fd, TIOCSCTTY, 0);
    int saved = errno;
    close(fd);
    errno = saved;
    return rc;
}

static volatile pid_t forward_to = 0;

static void forward_signal(int sig) {
    int saved = errno;
    if (forward_to > 0) kill(forward_to, sig);
    errno = saved;
}

int mr_forward_stop_signals(pid_t child) {
    forward_to = child;
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = forward_signal;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_RESTART;
    int signals[] = {SIGTERM, SIGINT, SIGHUP};
    for (unsigned i = 0; i < sizeof signals / sizeof signals[0]; i++) {
        if (sigaction(signals[i], &action, NULL) != 0) return -1;
    }
    return 0;
}

int mr_set_not_dumpable(void) {
#ifdef __linux__
    return prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
#else
    return 0;
#endif
}
