import MicroRunnerHandlers
import MicroRunnerSystem
import Testing

/// The supervision timing as a state machine, without a process: each transition at the nanosecond it is due.
@Suite struct SupervisionTests {
    let ms: Int64 = 1_000_000

    func make(deadline: Int64 = .max, ttl: Int64 = .max) -> Supervision {
        Supervision(deadline: deadline, ttlDeadline: ttl, killGrace: 500 * ms, drainAfterExit: 250 * ms)
    }

    @Test func aCommandThatEndsByItselfIsNeverSignalledAndDrainsAfterExit() {
        var s = make(deadline: 10_000 * ms)
        #expect(s.signal(at: 0, requested: nil) == nil)
        #expect(s.wakeAt(now: 0, pollingForExit: false, pollingForCancel: false) == 10_000 * ms)
        #expect(!s.readingIsOver(at: 0, pipesOpen: true))
        s.leaderExited(at: 100 * ms)
        // No pipe left: done at once; a pipe a grandchild holds: read 250 ms more, then stop.
        #expect(s.readingIsOver(at: 100 * ms, pipesOpen: false))
        #expect(!s.readingIsOver(at: 349 * ms, pipesOpen: true))
        #expect(s.readingIsOver(at: 350 * ms, pipesOpen: true))
        #expect(s.wakeAt(now: 100 * ms, pollingForExit: false, pollingForCancel: false) == 350 * ms)
        #expect(s.stoppedBy == nil)
    }

    @Test func theDeadlineSendsTermThenKillAfterTheGrace() {
        var s = make(deadline: 1_000 * ms)
        #expect(s.signal(at: 999 * ms, requested: nil) == nil)
        #expect(s.signal(at: 1_000 * ms, requested: nil) == SIGTERM)
        #expect(s.stoppedBy == .deadline)
        #expect(s.signal(at: 1_001 * ms, requested: nil) == nil)  // TERM goes once
        #expect(s.wakeAt(now: 1_001 * ms, pollingForExit: false, pollingForCancel: false) == 1_500 * ms)
        #expect(s.signal(at: 1_499 * ms, requested: nil) == nil)
        #expect(s.signal(at: 1_500 * ms, requested: nil) == SIGKILL)
        #expect(s.signal(at: 9_000 * ms, requested: nil) == nil)  // and KILL once
        // Stopped by the runner: reading ends only after KILL and the drain that follows it.
        s.leaderExited(at: 1_200 * ms)
        #expect(!s.readingIsOver(at: 1_600 * ms, pipesOpen: true))
        #expect(s.readingIsOver(at: 1_750 * ms, pipesOpen: true))
    }

    @Test func aLeaderThatExitsOnTermStillWaitsForKillBeforeReadingStops() {
        var s = make(deadline: 0)
        #expect(s.signal(at: 0, requested: nil) == SIGTERM)
        s.leaderExited(at: 10 * ms)
        // Members of the group may live on: the drain is counted from KILL, which has not gone out yet.
        #expect(!s.readingIsOver(at: 300 * ms, pipesOpen: true))
        #expect(s.signal(at: 500 * ms, requested: nil) == SIGKILL)
        #expect(s.readingIsOver(at: 750 * ms, pipesOpen: true))
    }

    @Test func aRequestedStopWinsOverTtlAndTtlOverTheDeadline() {
        var a = make(deadline: 0, ttl: 0)
        #expect(a.signal(at: 5, requested: .cancelled) == SIGTERM)
        #expect(a.stoppedBy == .token(.cancelled))
        var b = make(deadline: 0, ttl: 0)
        #expect(b.signal(at: 5, requested: nil) == SIGTERM)
        #expect(b.stoppedBy == .token(.ttlExpired))
        var c = make(deadline: 0, ttl: 10)
        #expect(c.signal(at: 5, requested: nil) == SIGTERM)
        #expect(c.stoppedBy == .deadline)
    }

    @Test func pollingIntervalsWithoutPidfdOrTokenDescriptor() {
        let s = make()
        #expect(s.wakeAt(now: 0, pollingForExit: false, pollingForCancel: false) == .max)
        #expect(s.wakeAt(now: 0, pollingForExit: true, pollingForCancel: false) == 10 * ms)
        #expect(s.wakeAt(now: 0, pollingForExit: false, pollingForCancel: true) == 20 * ms)
        #expect(Supervision.pollTimeout(until: .max, now: 0) == -1)
        #expect(Supervision.pollTimeout(until: 1, now: 0) == 1)  // rounded up: never a busy loop of 0 ms
        #expect(Supervision.pollTimeout(until: 0, now: 5) == 0)
    }
}
