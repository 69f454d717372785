#include "mr_test_support.h"

#include <signal.h>

// Every test target runs in one process. A test that writes to a runner or an agent that has already
// exited gets EPIPE only if SIGPIPE is ignored; otherwise the signal ends the whole test run (CI on 7436a9e:
// "exited with unexpected signal code 13", 659 s in, no test named). Ignoring it lazily from the first
// test that thinks of it leaves every earlier writer exposed, so it is done here, when the test binary
// loads, before Swift Testing starts.
__attribute__((constructor)) static void mr_test_ignore_sigpipe(void) { signal(SIGPIPE, SIG_IGN); }

int mr_test_sigpipe_ignored(void) {
    struct sigaction current;
    if (sigaction(SIGPIPE, 0, &current) != 0) return 0;
    return current.sa_handler == SIG_IGN;
}
