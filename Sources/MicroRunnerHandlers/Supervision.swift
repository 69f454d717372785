import MicroRunnerProtocol
import MicroRunnerSystem

/// The timing of one supervised process group, as data: what has happened and when (stop decided, TERM sent,
/// KILL sent, leader exited), and from that the one thing to do now and when to look again. No system calls:
/// `ProcessRunner.supervise` does the I/O and signalling, and every transition here is unit-tested without a
/// process (the swift-subprocess `TeardownStep` idea: the teardown is a sequence of values, TERM, then KILL after
/// `killGrace`, then `drainAfterExit` for output a grandchild may still hold).
package struct Supervision: Sendable, Equatable {
    /// When the command's own timeout ends it (`ProcessSpec.deadline`), in `Monotonic` nanoseconds.
    package let deadline: Int64
    /// When the runner's TTL ends it.
    package let ttlDeadline: Int64
    /// How long a group has between TERM and KILL.
    package let killGrace: Int64
    /// How long output is still read after the leader exited (a grandchild may hold a pipe).
    package let drainAfterExit: Int64

    /// Why the runner is stopping the group, once it decided to.
    package private(set) var stoppedBy: StoppedBy?
    /// When TERM went to the group (0: not yet).
    package private(set) var termSentAt: Int64 = 0
    /// When KILL went to the group (0: not yet).
    package private(set) var killSentAt: Int64 = 0
    /// When the leader was seen to exit (nil: still running).
    package private(set) var exitedAt: Int64?

    package init(deadline: Int64, ttlDeadline: Int64, killGrace: Int64, drainAfterExit: Int64) {
        self.deadline = deadline
        self.ttlDeadline = ttlDeadline
        self.killGrace = killGrace
        self.drainAfterExit = drainAfterExit
    }

    /// The signal to send the group at `now`, if any: TERM once a stop is due (a cancellation token's
    /// `requested` reason, the TTL, then the deadline, in that order of precedence), KILL `killGrace` after it.
    package mutating func signal(at now: Int64, requested: StopReason?) -> Int32? {
        if stoppedBy == nil {
            if let requested {
                stoppedBy = .token(requested)
            } else if now >= ttlDeadline {
                stoppedBy = .token(.ttlExpired)
            } else if now >= deadline {
                stoppedBy = .deadline
            }
            if stoppedBy != nil {
                termSentAt = now
                return SIGTERM
            }
        }
        if stoppedBy != nil && killSentAt == 0 && now - termSentAt >= killGrace {
            killSentAt = now
            return SIGKILL
        }
        return nil
    }

    /// Notes that the leader exited at `now` (reaped).
    package mutating func leaderExited(at now: Int64) {
        if exitedAt == nil { exitedAt = now }
    }

    /// Whether to stop reading output at `now`: the leader is gone and either no pipe is open or the drain time
    /// after the last of exit and KILL has passed (when the runner stopped the group, only once KILL went out:
    /// anything left after it escaped the group).
    package func readingIsOver(at now: Int64, pipesOpen: Bool) -> Bool {
        guard let exitedAt else { return false }
        if !pipesOpen { return true }
        return now >= max(exitedAt, killSentAt) + drainAfterExit && (stoppedBy == nil || killSentAt != 0)
    }

    /// When to look again at the latest (`Int64.max`: only when a descriptor is ready): the next stop, KILL or
    /// end of draining, and within 10 ms while the exit must be polled for (no pidfd) or 20 ms while a
    /// cancellation token has no descriptor to wait on.
    package func wakeAt(now: Int64, pollingForExit: Bool, pollingForCancel: Bool) -> Int64 {
        var wake = Int64.max
        if stoppedBy == nil { wake = min(deadline, ttlDeadline) }
        if stoppedBy != nil && killSentAt == 0 { wake = min(wake, termSentAt + killGrace) }
        if let exitedAt { wake = min(wake, max(exitedAt, killSentAt) + drainAfterExit) }
        if pollingForExit && exitedAt == nil { wake = min(wake, now + 10_000_000) }
        if pollingForCancel { wake = min(wake, now + 20_000_000) }
        return wake
    }

    /// `wakeAt` as poll(2)'s timeout in milliseconds, rounded up (-1: none).
    package static func pollTimeout(until wake: Int64, now: Int64) -> Int32 {
        wake == .max ? -1 : Int32(clamping: max(0, (wake - now + 999_999) / 1_000_000))
    }
}
