import ArgumentParser
import Foundation
import MicroRunnerClient
import MicroRunnerProtocol

/// Shared shape of the system commands: run one typed command and report `changed`/`action`.
func runSystem<P: WireEncodable & Sendable, R: WireCodable & Sendable>(
    _ global: GlobalOptions,
    _ type: CommandType,
    _ params: P,
    _ result: R.Type,
    describe: @escaping @Sendable (R) -> (Bool, String)
) async throws {
    let (dryRun, timeout) = (global.dryRun, global.timeout)
    try await runOnHosts(global) { client in
        let r = try await client.run(type, params, as: R.self, timeout: .seconds(timeout), dryRun: dryRun)
        let (changed, summary) = describe(r)
        return HostReport(ok: true, changed: changed, result: WireEncoder().encodeToValue(r), summary: summary)
    }
}
