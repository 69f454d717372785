// `deploy-if-changed [-F SSH_CONFIG] HOST LOCAL_FILE REMOTE_PATH SERVICE`: puts the file (nothing is sent when
// the host already has it, by size and SHA-256) and reloads the systemd service only when the file changed.
import ExampleSupport
import Foundation
import MicroRunnerClient

@main
struct DeployIfChanged {
    static func main() async {
        let invocation = Invocation.parse(
            usage: "deploy-if-changed [-F SSH_CONFIG] HOST LOCAL_FILE REMOTE_PATH SERVICE",
            count: 4...4
        )
        let (host, local, remote, service) = (
            invocation.arguments[0], invocation.arguments[1], invocation.arguments[2], invocation.arguments[3]
        )
        let runners = orExit { try invocation.runners() }
        let transport = orExit { try invocation.transports([host], runners: runners)[0] }
        let runner = orExit { try runners.runner(for: RunnerSet.localArchitecture) }
        let digest = orExit { try LocalFileDigest(path: local) }
        do {
            try await RunnerClient.withRunner(transport: transport, runner: runner) { client in
                let written = try await client.putFile(contentsOf: digest, to: remote, mode: 0o644)
                // `changed` is nil only from a runner too old to say: then reload, to be safe.
                guard written.changed != false else {
                    print("\(safe(host)): \(remote) unchanged; \(service) left alone")
                    return
                }
                print("\(safe(host)): \(remote) changed (\(written.bytesWritten) bytes)")
                let reloaded = try await client.service(service, .reload)
                print("\(safe(host)): \(service) \(reloaded.action): \(safe(reloaded.status))")
            }
        } catch {
            let (word, unreachable) = reason(error)
            print("\(safe(host)): \(word): \(safe("\(error)"))")
            exit(unreachable ? 4 : 2)
        }
    }
}
