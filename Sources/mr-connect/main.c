// mr-connect: opens ssh's TCP connection with Nagle's algorithm off and hands the socket to ssh.
//
//   mr-connect [-4|-6] [-e FILE] TIMEOUT_SECONDS HOST PORT      (ssh's ProxyCommand, with ProxyUseFdpass=yes)
//
// Why: OpenSSH turns Nagle off (TCP_NODELAY) only once a session is open. During the key exchange and the
// authentication each side sends a small packet right after another one that is not yet acknowledged, so the
// second waits for the peer's delayed ACK: three stalls of ~40 ms (Linux's minimum delayed ACK), 140 -> 90 ms
// for `ssh host true` over loopback here (`strace -ttt` on both ends showed each side waiting ~40 ms for the
// other, three times). ssh accepts an already-connected socket from a ProxyCommand that passes it back over its
// stdout (ProxyUseFdpass); this program connects as ssh would (every address of the name in order, the
// timeout per address, keepalive on), sets TCP_NODELAY, passes the socket and exits: no process stays in the
// path of the bytes.
//
// Errors are said in ssh's own words ("ssh: connect to host H port P: Connection refused", "ssh: Could not
// resolve hostname H: ...") so a caller that reads ssh's stderr sees what it would have seen; exit status 255.
// With -e they also go to FILE (created 0600, not through a link): ssh sends a ProxyCommand's stderr to /dev/null
// when it may become a background master (ControlPersist), and the caller would learn only that no connection
// came back.
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

static const char *note_path;

// Says a failure on stderr and, with -e, in the note file; exit status 255, as ssh's.
static int say(const char *text) {
    fputs(text, stderr);
    if (note_path != NULL) {
        int fd = open(note_path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd >= 0) {
            (void)!write(fd, text, strlen(text));
            close(fd);
        }
    }
    return 255;
}

static int fail(const char *host, const char *port, const char *why) {
    char text[1024];
    snprintf(text, sizeof text, "ssh: connect to host %s port %s: %s\r\n", host, port, why);
    return say(text);
}

// Connects to one address within `timeout_ms` (<= 0: no limit of our own). Returns the socket or -1 with errno.
static int connect_one(const struct addrinfo *ai, int timeout_ms) {
    // Close-on-exec and non-blocking by fcntl, not socket()'s flags: those are Linux's, and this builds on macOS.
    int fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
    if (fd < 0) return -1;
    if (fcntl(fd, F_SETFD, FD_CLOEXEC) != 0 || fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) != 0) goto failed;
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        if (errno != EINPROGRESS) goto failed;
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        int n;
        do n = poll(&p, 1, timeout_ms > 0 ? timeout_ms : -1); while (n < 0 && errno == EINTR);
        if (n == 0) { errno = ETIMEDOUT; goto failed; }
        if (n < 0) goto failed;
        int error = 0;
        socklen_t length = sizeof error;
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length) != 0) goto failed;
        if (error != 0) { errno = error; goto failed; }
    }
    // Blocking again, as ssh's own socket is; Nagle off from the first byte; keepalive as ssh's TCPKeepAlive.
    int flags = fcntl(fd, F_GETFL);
    int one = 1;
    if (flags < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) != 0) goto failed;
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0) goto failed;
    (void)setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
    return fd;
failed:;
    int saved = errno;
    close(fd);
    errno = saved;
    return -1;
}

int main(int argc, char **argv) {
    int family = AF_UNSPEC, arg = 1;
    if (arg < argc && strcmp(argv[arg], "-4") == 0) family = AF_INET, arg++;
    else if (arg < argc && strcmp(argv[arg], "-6") == 0) family = AF_INET6, arg++;
    if (arg + 1 < argc && strcmp(argv[arg], "-e") == 0) note_path = argv[arg + 1], arg += 2;
    if (argc - arg != 3) {
        fprintf(stderr, "usage: mr-connect [-4|-6] [-e FILE] TIMEOUT_SECONDS HOST PORT (ssh's ProxyCommand with "
                        "ProxyUseFdpass)\n");
        return 2;
    }
    long timeout = strtol(argv[arg], NULL, 10);
    const char *host = argv[arg + 1], *port = argv[arg + 2];

    struct addrinfo hints = {.ai_family = family, .ai_socktype = SOCK_STREAM}, *addresses;
    int gai = getaddrinfo(host, port, &hints, &addresses);
    if (gai != 0) {
        char text[1024];
        snprintf(text, sizeof text, "ssh: Could not resolve hostname %s: %s\r\n", host, gai_strerror(gai));
        return say(text);
    }
    int fd = -1, last = ECONNREFUSED;
    for (const struct addrinfo *ai = addresses; ai != NULL && fd < 0; ai = ai->ai_next) {
        fd = connect_one(ai, timeout > 0 && timeout < 86400 ? (int)timeout * 1000 : 0);
        if (fd < 0) last = errno;
    }
    freeaddrinfo(addresses);
    if (fd < 0) return fail(host, port, strerror(last));

    // One byte of data carrying the descriptor (SCM_RIGHTS), on stdout: ssh's end of a socket pair.
    char byte = 0;
    struct iovec iov = {.iov_base = &byte, .iov_len = 1};
    union {
        struct cmsghdr header;
        char space[CMSG_SPACE(sizeof(int))];
    } control;
    memset(&control, 0, sizeof control);
    struct msghdr message = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.space,
                             .msg_controllen = sizeof control.space};
    struct cmsghdr *c = CMSG_FIRSTHDR(&message);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &fd, sizeof fd);
    ssize_t sent;
    do sent = sendmsg(STDOUT_FILENO, &message, 0); while (sent < 0 && errno == EINTR);
    if (sent != 1) {
        fprintf(stderr, "mr-connect: cannot pass the connection to ssh: %s (is ProxyUseFdpass=yes set?)\n",
                strerror(errno));
        return 255;
    }
    return 0;
}
