#ifndef MR_LIBC_H
#define MR_LIBC_H
/* The libc the runner uses, declared through this module so the same Swift compiles in both modes: normal mode
   also sees these through Glibc, Embedded mode has no Glibc module and sees them only here. Variadic functions
   and macros Swift cannot import (errno, open/openat/fcntl, SIG_IGN) get plain functions below. */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/// The calling thread's errno (a macro in C).
int mr_errno(void);
/// open(2)/openat(2)/fcntl(2) with a fixed argument list (the C ones are variadic).
int mr_openat(int dirfd, const char *path, int flags, mode_t mode);
int mr_fcntl(int fd, int cmd, int arg);
/// SIG_IGN and SIG_DFL as values (macros in C).
void (*mr_sig_ign(void))(int);
void (*mr_sig_dfl(void))(int);
#endif
