import Foundation
import MicroRunnerSystem
import Synchronization

/// A connection with Nagle's algorithm off from its first byte (`SSHOptions.connectHelper`).
///
/// OpenSSH sets TCP_NODELAY only once a session is open; before that, in the key exchange and the authentication,
/// each side sends a small packet while its previous one is unacknowledged, and the peer's delayed ACK holds it:
/// `strace -ttt` on both ends of `ssh host true` over loopback showed three waits of ~40 ms, 140 ms in all; with
/// the socket opened by `mr-connect` (TCP_NODELAY, passed to ssh with ProxyUseFdpass) 90-110 ms.
extension SSHTransport {
    /// How `mr-connect` is to connect for one ssh command line: ssh's address family, or nil where ssh would not
    /// connect by itself (the user's config names a proxy, a local address or interface, or retries).
    package struct DirectConnect: Equatable, Sendable {
        /// `-4` or `-6` (ssh's AddressFamily), or nil for any.
        package var family: String?

        package init(family: String?) { self.family = family }

        /// The decision from `ssh -G`'s output (lower-case keywords, one per line), or nil to leave ssh alone.
        package static func decide(sshConfig text: String) -> DirectConnect? {
            var decision = DirectConnect(family: nil)
            for line in text.split(whereSeparator: { $0 == "\n" || $0 == "\r" }) {
                let words = line.split(separator: " ", maxSplits: 1).map(String.init)
                guard words.count == 2 else { continue }
                let (key, value) = (words[0].lowercased(), words[1])
                switch key {
                case "proxycommand", "proxyjump", "bindaddress", "bindinterface":
                    // Someone else connects, or ssh must bind first: not ours to replace.
                    if value.lowercased() != "none" { return nil }
                case "connectionattempts":
                    // ssh retries once a second; the helper tries each address once.
                    if value != "1" { return nil }
                case "addressfamily":
                    switch value.lowercased() {
                    case "inet": decision.family = "-4"
                    case "inet6": decision.family = "-6"
                    case "any": decision.family = nil
                    default: return nil
                    }
                default: continue
                }
            }
            return decision
        }
    }

    /// What `ssh -G` decided, per ssh command line, for the life of the process (it reads the config files and
    /// runs any `Match exec`: once per host is enough).
    private static let directConnects = Mutex<[[String]: DirectConnect?]>([:])

    /// The `-o` options that have `connectHelper` open the connection, or none: no helper set, a shared
    /// connection that is already open (ssh will not connect at all, and `ssh -G` would cost 6-7 ms), or a
    /// config that connects some other way.
    func directConnectOptions(ssh: String) -> [String] {
        guard let helper = options.connectHelper, !helper.isEmpty else { return [] }
        // ssh runs a ProxyCommand with `$SHELL -c`: a login like /usr/sbin/nologin (a service account running
        // mrctl from cron) would fail every connection, where ssh alone would connect.
        guard Self.shellRunsProxyCommands(ProcessInfo.processInfo.environment["SHELL"]) else { return [] }
        // `-o ProxyCommand=none` (or a proxy) given by the caller: theirs wins, and no `ssh -G` is spent on it.
        let given = options.extraOptions.map { $0.lowercased().replacingOccurrences(of: " ", with: "") }
        if given.contains(where: { $0.hasPrefix("proxycommand") || $0.hasPrefix("proxyjump") }) { return [] }
        switch options.sharing {
        case .none: break
        case .master(let directory, _), .persistent(let directory, _):
            if FileManager.default.fileExists(atPath: controlPath(directory)) { return [] }
        }
        let question = sshArguments(nil, extra: ["-G"])
        let known = Self.directConnects.withLock { $0[question] }
        let decision: DirectConnect?
        if let known {
            decision = known
        } else {
            decision = Self.askSSH(ssh, question).flatMap { DirectConnect.decide(sshConfig: $0) }
            Self.directConnects.withLock { $0[question] = decision }
        }
        guard let decision else { return [] }
        var words = [helper] + (decision.family.map { [$0] } ?? [])
        if let note = connectNotePath {
            // A note left by an earlier failure must not explain this one.
            unlink(note)
            words += ["-e", note]
        }
        // ssh runs ProxyCommand with the user's shell after expanding %-tokens: each word quoted for the first, its
        // % doubled for the second.
        let command =
            (words.map { Self.shellQuote($0).replacingOccurrences(of: "%", with: "%%") }
            + [String(options.connectTimeout), "%h", "%p"]).joined(separator: " ")
        return ["-o", "ProxyCommand=\(command)", "-o", "ProxyUseFdpass=yes"]
    }

    /// Whether ssh can run a ProxyCommand with this `$SHELL` (unset: ssh uses /bin/sh): a shell by name, and one
    /// that exists.
    package static func shellRunsProxyCommands(_ shell: String?) -> Bool {
        guard let shell, !shell.isEmpty else { return true }
        let shells: Set<String> = ["sh", "bash", "dash", "zsh", "ksh", "mksh", "ash", "yash", "fish", "tcsh", "csh"]
        return shells.contains(URL(fileURLWithPath: shell).lastPathComponent)
            && FileManager.default.isExecutableFile(atPath: shell)
    }

    /// Where the helper also says why it failed when sharing: ssh sends a ProxyCommand's stderr to /dev/null when
    /// it may become a background master (ControlPersist). Beside the control socket, in the private directory
    /// sharing requires.
    var connectNotePath: String? {
        switch options.sharing {
        case .none: return nil
        case .master(let directory, _), .persistent(let directory, _): return controlPath(directory) + ".connect"
        }
    }

    /// ssh's stderr with the helper's note added, when ssh says only that the helper passed no connection back.
    func withConnectNote(_ stderr: String) -> String {
        guard stderr.contains("proxy dialer did not pass back a connection"), let note = connectNotePath,
            let handle = FileHandle(forReadingAtPath: note)
        else { return stderr }
        defer { try? handle.close() }
        // The helper writes one line of at most 1 KiB.
        let said = String(decoding: (try? handle.read(upToCount: 4096)) ?? Data(), as: UTF8.self)
        return said.isEmpty ? stderr : said + "\n" + stderr
    }

    /// `ssh ARGS` (here `-G ... host`), its stdout, or nil when it fails (then ssh connects as usual, and says
    /// what is wrong itself).
    private static func askSSH(_ ssh: String, _ arguments: [String]) -> String? {
        var request = SpawnRequest(executable: ssh, arguments: ["ssh"] + arguments)
        request.standardOutput = .pipe
        guard let spawned = try? Spawn.start(request), let output = spawned.standardOutput else { return nil }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 14)
        // ssh -G prints ~3 KB; 1 MiB bounds a config that makes it print more.
        while bytes.count < 1 << 20 {
            let n = (try? chunk.withUnsafeMutableBytes { try Sys.read(output, into: $0) }) ?? 0
            if n == 0 { break }
            bytes += chunk[0..<n]
        }
        close(output)
        guard (try? Sys.waitForExit(spawned.pid)) == 0 else { return nil }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// ssh's two lines after a ProxyCommand that passed no connection back: the helper's own line (in ssh's
    /// words) says why, these only that it did not.
    static func isDirectConnectNoise(_ line: Substring) -> Bool {
        line.hasPrefix("mm_receive_fd:") || line.hasPrefix("proxy dialer did not pass back a connection")
    }
}
