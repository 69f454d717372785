import Dispatch
import Foundation

/// SIGINT and SIGTERM as an event instead of the default of ending the process on the spot: the first one runs
/// `action` (typically `fleet.cancel()` or `task.cancel()`), so that every host's command is stopped and its runner
/// removed before the program exits with 128 + the signal's number, as a shell's interrupted job does.
///
/// ```swift
/// let work = Task { try await deploy() }
/// let interrupts = Interrupts { _ in work.cancel() }
/// defer { interrupts.stop() }
/// do { try await work.value } catch where interrupts.received != nil { exit(128 + interrupts.received!) }
/// ```
///
/// Create it outside any actor: a closure written inside `@main`'s `main()` is main-actor isolated, and Dispatch
/// calling it from its own queue stops the program (SIGILL) under Swift 6; this initializer is nonisolated, so the
/// closure passed to it is not. `@unchecked Sendable`: Dispatch's sources are not marked Sendable, but they are set
/// once here and `stop()` may be called from any thread; the signal received is kept under a lock.
public final class Interrupts: @unchecked Sendable {
    private var sources: [any DispatchSourceSignal] = []
    private let lock = NSLock()
    private var first: Int32?

    /// The first signal received (`SIGINT` or `SIGTERM`), if any.
    public var received: Int32? { lock.withLock { first } }

    /// Starts listening: SIGINT and SIGTERM are ignored by default from here on, and the first of them runs
    /// `action` on a Dispatch queue (later ones are only absorbed).
    public init(_ action: @escaping @Sendable (Int32) -> Void) {
        for number in [SIGINT, SIGTERM] {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { [self] in
                let isFirst = lock.withLock {
                    defer { if first == nil { first = number } }
                    return first == nil
                }
                if isFirst { action(number) }
            }
            source.resume()
            sources.append(source)
        }
    }

    /// Stops listening (the signals stay ignored: a late one must not kill a program that is tidying up).
    public func stop() {
        for source in sources { source.cancel() }
    }
}
