#include "mr_test_support.h"

#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>

// Foundation's Process learns that a child ended when a socket the child inherited closes. Any process another
// test forks at the same moment inherits that socket too; while it lives (an sshd fixture: 20 s), isRunning
// stays true for a child that is long gone (CI on ed56ce0: "runner still running after 15.0s" for a runner that
// had answered and exited). waitid with WNOWAIT asks the kernel instead, and leaves the child for Foundation to
// reap.
int mr_test_peek_exit(int pid, int *status) {
    siginfo_t info;
    info.si_pid = 0;
    if (waitid(P_PID, (id_t)pid, &info, WEXITED | WNOHANG | WNOWAIT) != 0 || info.si_pid != pid) return 0;
    *status = info.si_status;  // the exit status, or the signal's number (as Process.terminationStatus)
    return 1;
}
