import CMicroRunnerShims
import MicroRunnerSystem
import Synchronization

/// Why a command is being stopped before it finished.
package enum StopReason: Int, Sendable {
    /// The controller sent CANCEL.
    case cancelled = 1
    /// The runner's TTL ran out.
    case ttlExpired = 2
    /// The runner was told to stop (SIGTERM, SIGHUP, SIGINT).
    case shutdown = 3
}

/// Stops one running command from another thread.
///
/// The flag is atomic; the eventfd wakes a `poll(2)` loop at once, so a CANCEL arriving while a child
/// runs takes effect in microseconds, not at the next timer tick.
package final class CancellationToken: Sendable {
    private let reason = Atomic<Int>(0)
    /// Polls readable once the token is cancelled; -1 when eventfd is not available (the poll loop then ticks).
    package let fd: Int32

    package init() {
        fd = mr_eventfd()
    }

    deinit {
        if fd >= 0 { close(fd) }
    }

    /// The reason, once cancelled.
    package var stopReason: StopReason? {
        StopReason(rawValue: reason.load(ordering: .acquiring))
    }

    /// Cancels (the first reason wins).
    package func cancel(_ why: StopReason) {
        let (exchanged, _) = reason.compareExchange(
            expected: 0,
            desired: why.rawValue,
            ordering: .acquiringAndReleasing
        )
        if exchanged && fd >= 0 {
            var one: UInt64 = 1
            _ = write(fd, &one, 8)
        }
    }
}
