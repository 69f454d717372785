import CMicroRunnerShims
import Foundation
import MicroRunnerCrypto
import MicroRunnerSystem
import Synchronization

/// The runner executable a transport uploads: its bytes, their SHA-256, and a gzip copy for the wire.
///
/// ```swift
/// let runner = try RunnerBinary(path: "/opt/micro-runner/amd64/micro-runner")
/// print(runner.sha256)  // what the host's bootstrap checks before it runs it
/// ```
public struct RunnerBinary: Sendable {
    /// Where it is on this machine.
    public let path: String
    /// Lowercase hex SHA-256 of the executable.
    public let sha256: String
    /// Size in bytes.
    public let size: Int
    /// Whether it is an ELF executable that needs a dynamic loader (`PT_INTERP`): such a runner is refused for
    /// remote hosts, which may not have its libraries (any normal-mode Swift build of a runner is one).
    public let isDynamicallyLinked: Bool

    /// Reads and hashes a runner binary.
    /// - Throws: `ClientError` `.usage` when it is missing or not executable.
    public init(path: String) throws {
        guard FileManager.default.isExecutableFile(atPath: path),
            let data = FileManager.default.contents(atPath: path)
        else {
            throw ClientError(
                .usage,
                "runner binary \(path) is missing or not executable (build it: scripts/build-runner)"
            )
        }
        self.path = path
        var h = Crypto.SHA256()
        data.withUnsafeBytes { h.update($0) }
        self.sha256 = h.finalizeHex()
        self.size = data.count
        self.isDynamicallyLinked = Self.hasInterpreter([UInt8](data.prefix(64 * 1024)))
    }

    /// Whether 64-bit little-endian ELF `bytes` has a `PT_INTERP` program header.
    static func hasInterpreter(_ bytes: [UInt8]) -> Bool {
        guard bytes.count >= 64, bytes[0] == 0x7F, bytes[1] == 0x45, bytes[2] == 0x4C, bytes[3] == 0x46,
            bytes[4] == 2, bytes[5] == 1
        else { return false }
        func int(_ at: Int, _ width: Int) -> Int {
            var v = 0
            for i in (0..<width).reversed() { v = v << 8 | Int(bytes[at + i]) }
            return v
        }
        let (offset, size, count) = (int(0x20, 8), int(0x36, 2), int(0x38, 2))
        for i in 0..<count {
            let at = offset + i * size
            guard at + 4 <= bytes.count else { return false }
            if int(at, 4) == 3 { return true }  // PT_INTERP
        }
        return false
    }

    /// The default runner: this machine's architecture's from `RunnerSet.defaultDirectory()` (what
    /// `scripts/build-runner` or `scripts/install-cli` made), never a binary beside the program.
    public static func defaultPath() -> String {
        RunnerSet.defaultDirectory() + "/" + RunnerSet.localArchitecture + "/micro-runner"
    }

    /// The gzip-compressed executable (level 6), cached under `~/.cache/micro-runner/<sha256>.gz` so it is
    /// compressed once per build, not once per run. A cached copy is used only after it decompresses to
    /// exactly this executable (its SHA-256). The host checks the decompressed runner against that hash as
    /// well, so a replaced entry could never run there; checking here first repairs the entry instead of
    /// failing every host.
    /// - Throws: `ClientError` when gzip fails.
    public func gzipped() throws -> Data {
        // Checked once per process: a fan-out to 50 hosts must not decompress the cache entry 50 times.
        if let known = Self.verified.withLock({ $0[sha256] }) { return known }
        let data = try gzippedUncached()
        Self.verified.withLock { $0[sha256] = data }
        return data
    }

    /// Compressed copies already checked in this process, by the runner's SHA-256.
    private static let verified = Mutex<[String: Data]>([:])
    /// Checks under way, by the runner's SHA-256: hosts that start at once wait for the one check.
    private static let checking = Mutex<[String: Promise<Data>]>([:])

    /// `gzipped()` on a thread of its own, awaited: the check of the cache entry (a `gzip -dc` of it, ~40 ms)
    /// runs while ssh connects instead of before, once per process however many hosts ask at once, and never
    /// holds a thread of the cooperative pool.
    package func gzippedChecked() async throws -> Data {
        if let known = Self.verified.withLock({ $0[sha256] }) { return known }
        let (promise, first): (Promise<Data>, Bool) = Self.checking.withLock { table in
            if let running = table[sha256] { return (running, false) }
            let promise = Promise<Data>()
            table[sha256] = promise
            return (promise, true)
        }
        if first {
            let runner = self
            let thread = Thread {
                let outcome = Result { try runner.gzipped() }
                // A failure is not kept: the next host tries again, as it would have without this.
                Self.checking.withLock { _ = $0.removeValue(forKey: runner.sha256) }
                promise.complete(outcome)
            }
            thread.name = "mr-gzip-check"
            thread.start()
        }
        return try await promise.value()
    }

    /// The size the compressed copy is expected to have, for the bootstrap's argv before the copy is checked:
    /// the checked copy's, else the cache entry's as it stands (what is sent is checked against it first), or
    /// nil when there is no entry yet.
    package func expectedGzipSize() -> Int? {
        if let known = Self.verified.withLock({ $0[sha256] }) { return known.count }
        let cached = FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(
            ".cache/micro-runner/\(sha256).gz"
        )
        var st = stat()
        guard stat(cached.path, &st) == 0, st.st_size > 0 else { return nil }
        return Int(st.st_size)
    }

    /// The disk cache's copy, checked (or made anew), without the per-process memo.
    package func gzippedUncached() throws -> Data {
        let cacheDir = FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache/micro-runner")
        let cached = cacheDir.appendingPathComponent("\(sha256).gz")
        if let data = FileManager.default.contents(atPath: cached.path), !data.isEmpty {
            if (try? Self.gunzipSHA256(data)) == sha256 { return data }
            try? FileManager.default.removeItem(at: cached)
        }
        let data = try Self.gzip(path)
        guard (try? Self.gunzipSHA256(data)) == sha256 else {
            throw ClientError(.usage, "\(path) changed while it was compressed; run again")
        }
        try? FileManager.default.createDirectory(
            at: cacheDir,
            withIntermediateDirectories: true,
            attributes: [.posixPermissions: 0o700]
        )
        let temp = cacheDir.appendingPathComponent(".\(sha256).\(getpid()).tmp")
        if (try? data.write(to: temp)) != nil {
            _ = rename(temp.path, cached.path)
        }
        return data
    }

    /// `gzip -6 -c` of a file.
    static func gzip(_ path: String) throws -> Data {
        try run("exec gzip -6 -c -- \"$0\"", argument: path, input: nil)
    }

    /// SHA-256 of what `data` decompresses to.
    static func gunzipSHA256(_ data: Data) throws -> String {
        let plain = try run("exec gzip -dc", argument: "gunzip", input: data)
        var h = Crypto.SHA256()
        plain.withUnsafeBytes { h.update($0) }
        return h.finalizeHex()
    }

    /// Runs `sh -c script argument`, feeding it `input` (or /dev/null) and returning its stdout. Through the
    /// project's `Spawn`, not Foundation's `Process`: that one fails with EBADF ("Bad file descriptor") when the
    /// program inherited a descriptor above a lowered open-file limit (seen in CI: every host of a run failed).
    private static func run(_ script: String, argument: String, input: Data?) throws -> Data {
        var request = SpawnRequest(executable: "/bin/sh", arguments: ["sh", "-c", script, argument])
        request.standardOutput = .pipe
        request.standardError = .inherited
        if input != nil { request.standardInput = .pipe }
        let spawned: SpawnedProcess
        do { spawned = try Spawn.start(request) } catch {
            let why = String(cString: strerror(error.code))
            throw ClientError(
                .usage,
                error.creatingPipes ? "gzip: cannot create pipes: \(why)" : "gzip: cannot start sh: \(why)"
            )
        }
        let pid = spawned.pid
        guard let output = spawned.standardOutput else {
            preconditionFailure("Spawn returns the pipes it was asked for")
        }
        if let input, let writer = spawned.standardInput {
            // Written from another thread: gzip's output pipe would otherwise fill while we block on its input.
            // gzip -dc stops at the first byte that is not gzip (a corrupt cache entry) and closes its input.
            ChildProcess.ignoreSIGPIPE
            Thread.detachNewThread {
                _ = input.withUnsafeBytes { writeAll(writer, $0) }
                close(writer)
            }
        }
        var data = Data()
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = (try? chunk.withUnsafeMutableBytes { try Sys.read(output, into: $0) }) ?? 0
            if n == 0 { break }
            data.append(contentsOf: chunk[0..<n])
        }
        close(output)
        let status = try? Sys.waitForExit(pid)
        guard status == 0, !data.isEmpty else {
            throw ClientError(.usage, "gzip failed (status \(status.map(String.init) ?? "unknown"))")
        }
        return data
    }
}
