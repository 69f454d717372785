import ArgumentParser
import Foundation
import MicroRunnerClient
import MicroRunnerProtocol

struct Read: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Read a file from the hosts.")
    @OptionGroup var global: GlobalOptions
    @Argument(help: "Absolute path on the host.") var path: String

    func run() async throws {
        let (path, timeout) = (self.path, global.timeout)
        try await runOnHosts(global) { client in
            let (bytes, meta) = try await client.getFile(path, timeout: .seconds(timeout))
            let text = String(validating: bytes, as: UTF8.self) ?? "(\(bytes.count) bytes of binary content)"
            var result = WireEncoder().encodeToValue(meta)
            if case .object(var o) = result {
                o["content"] = .string(Data(bytes).base64EncodedString())
                o["encoding"] = .string("base64")
                o["truncated"] = .bool(false)
                result = .object(o)
            }
            return HostReport(
                ok: true,
                changed: false,
                result: result,
                text: text.hasSuffix("\n") ? String(text.dropLast()) : text,
                summary: "\(bytes.count) bytes, mode \(meta.mode), uid \(meta.owner)"
            )
        }
    }
}
