import Synchronization
import Testing

@testable import MicroRunnerClient

/// The process-wide budget for file content in memory: one host never waits, many wait their turn in order, and a
/// cancelled waiter leaves nothing held.
@Suite struct ContentBudgetTests {
    @Test func withinTheLimitNothingWaitsAndBeyondItWaitersGoInOrder() async throws {
        let budget = ContentBudget(limit: 8)
        try await budget.acquire(4)
        try await budget.acquire(4)
        #expect(budget.available == 0)
        let order = Recorder()
        let first = Task {
            try await budget.acquire(4)
            order.add(1)
        }
        while budget.available != 0 || !budget.hasWaiters { await Task.yield() }
        let second = Task {
            try await budget.acquire(3)
            order.add(2)
        }
        try await Task.sleep(for: .milliseconds(50))
        #expect(order.values.isEmpty)
        budget.release(4)
        try await first.value
        budget.release(4)
        try await second.value
        #expect(order.values == [1, 2])
        #expect(budget.available == 1)
        // More than the limit is asked as the limit: it can never wait forever.
        budget.release(4)
        budget.release(3)
        try await budget.acquire(100)
        #expect(budget.available == 0)
        budget.release(100)
        #expect(budget.available == 8)
    }

    @Test func aCancelledWaiterHoldsNothing() async throws {
        let budget = ContentBudget(limit: 4)
        try await budget.acquire(4)
        let waiter = Task { try await budget.acquire(4) }
        while !budget.hasWaiters { await Task.yield() }
        waiter.cancel()
        await #expect(throws: CancellationError.self) { try await waiter.value }
        budget.release(4)
        #expect(budget.available == 4)
        try await budget.acquire(4)  // nothing was left queued ahead
    }
}

final class Recorder: Sendable {
    private let list = Mutex<[Int]>([])
    func add(_ v: Int) { list.withLock { $0.append(v) } }
    var values: [Int] { list.withLock { $0 } }
}
