import Foundation
import Logging
import MicroRunnerClient
import MicroRunnerTestSupport
import Synchronization
import Testing

/// A swift-log handler that keeps every entry, for tests to read.
final class CapturedLog: Sendable {
    struct Entry: Sendable {
        var level: Logger.Level
        var message: String
        var metadata: [String: String]
    }

    let entries = Mutex<[Entry]>([])

    var logger: Logger {
        var logger = Logger(label: "micro-runner-test") { _ in Handler(log: self) }
        logger.logLevel = .trace
        return logger
    }

    func messages(host: String) -> [String] {
        entries.withLock { $0.filter { $0.metadata["host"] == host }.map(\.message) }
    }

    struct Handler: LogHandler {
        let log: CapturedLog
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            let all = metadata.merging(event.metadata ?? [:]) { $1 }
            log.entries.withLock {
                $0.append(Entry(level: event.level, message: "\(event.message)", metadata: all.mapValues { "\($0)" }))
            }
        }
    }
}

/// What the library does is logged through the caller's swift-log Logger, with the host on every entry, and
/// never printed.
@Suite(.serialized, .enabled(if: geteuid() == 0, "uses the sshd fixture")) struct LoggingTests {
    @Test func aFleetRunLogsEachHostsConnectionStartAndEnd() async throws {
        let s = try server()
        let log = CapturedLog()
        var options = sshOptions(s)
        options.logger = log.logger
        let good = SSHTransport(host: HostSpec(host: "h5"), options: options)
        // The fixture's alias for a closed port: the failure is logged as that host's outcome.
        let closed = SSHTransport(host: HostSpec(host: "closed"), options: options)
        var outcomes: [String: Bool] = [:]
        await Fleet.run([good, closed], runner: try RunnerBinary(path: runnerPath), logger: log.logger) { client in
            try await client.exec(ExecParams(command: "true")).exitCode
        } onOutcome: { outcome in
            outcomes[outcome.host] = (try? outcome.result.get()) == 0
        }
        #expect(outcomes == ["h5": true, "closed": false])
        #expect(
            log.messages(host: "h5") == ["connecting", "runner sent", "runner ready", "runner closed", "host finished"]
        )
        let ready = try #require(log.entries.withLock { $0.first { $0.message == "runner ready" } })
        #expect(ready.metadata["arch"] == RunnerSet.localArchitecture)
        #expect(Int(ready.metadata["ms"] ?? "") != nil)
        let failed = try #require(log.entries.withLock { $0.last { $0.metadata["host"] == "closed" } })
        #expect(failed.message == "host finished")
        #expect(failed.metadata["outcome"]?.contains("refused") == true)
    }
}
