import MicroRunnerHandlers
import MicroRunnerProtocol
import MicroRunnerSystem

/// What the stdin reader hands the worker, in wire order.
enum InputItem: Sendable {
    /// A CMD to serve.
    /// `size` is the bytes the parsed command keeps in memory (estimated, its raw content included), for the
    /// queue's byte bound; `content` is the raw content that followed its line (ext `file.raw_content`).
    case command(CommandMessage, rawParams: [UInt8]?, size: Int, content: [UInt8]?)
    /// A line that cannot be served: answered with ERROR in its turn.
    case reject(RunnerError, commandID: String?)
    /// stdin reached end of file (or failed).
    case endOfInput
    /// The runner was told to stop by a signal.
    case terminate(signal: Int32)
}

/// The bounded queue between the stdin reader and the worker.
///
/// Bounded by the bytes queued commands keep in memory (parsed params estimated by shape, plus raw params
/// kept for signatures): when a controller pipelines more than that, the reader stops reading stdin (the pipe
/// then pushes back on the controller) until the worker catches up.
final class InputQueue: @unchecked Sendable {
    private let lock = ConditionLock()
    private var items: [InputItem] = []
    private var head = 0
    private var queuedBytes = 0
    let maxQueuedBytes: Int
    /// Command ids cancelled before they started.
    private var cancelledIDs: Set<String> = []

    init(maxQueuedBytes: Int) {
        self.maxQueuedBytes = maxQueuedBytes
    }

    private static func weight(_ item: InputItem) -> Int {
        if case .command(_, let raw, let size, _) = item { return size + (raw?.count ?? 0) }
        return 64
    }

    /// Appends an item, waiting while the queue is over its byte bound (a `.terminate` never waits).
    func push(_ item: InputItem) {
        lock.withLock {
            if case .terminate = item {
                // Jumps the queue: a stop request is served before anything queued.
                items.insert(item, at: head)
            } else {
                while queuedBytes > maxQueuedBytes && items.count > head {
                    _ = lock.wait(until: .max)
                }
                items.append(item)
            }
            queuedBytes += Self.weight(item)
            lock.broadcast()
        }
    }

    /// Takes the next item, waiting until `deadline` (monotonic ns).
    /// - Returns: `nil` when the deadline passed first.
    func pop(until deadline: Int64) -> InputItem? {
        lock.withLock {
            while head == items.count {
                if !lock.wait(until: deadline) && head == items.count { return nil }
            }
            let item = items[head]
            // Drop the queue's reference now: a served command's params (up to a 16 MiB line) must not
            // stay alive until the array is compacted.
            items[head] = .endOfInput
            head += 1
            if head > 64 && head * 2 > items.count {
                items.removeFirst(head)
                head = 0
            }
            queuedBytes -= Self.weight(item)
            lock.broadcast()
            return item
        }
    }

    /// Marks a queued command as cancelled; true when such a command is queued.
    func cancelQueued(id: String) -> Bool {
        lock.withLock {
            for i in head..<items.count {
                if case .command(let cmd, _, _, _) = items[i], cmd.id == id {
                    cancelledIDs.insert(id)
                    return true
                }
            }
            return false
        }
    }

    /// Whether a command was cancelled while queued (and forgets it).
    func takeCancelled(id: String) -> Bool {
        lock.withLock { cancelledIDs.remove(id) != nil }
    }
}
