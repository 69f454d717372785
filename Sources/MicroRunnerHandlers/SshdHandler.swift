import MicroRunnerProtocol
import MicroRunnerSystem

/// `sshd.harden`: password and root logins off, an AllowUsers list, a port; validated, verified, reloaded,
/// and rolled back on any failure.
///
/// Current distributions start sshd_config with `Include /etc/ssh/sshd_config.d/*.conf`, and sshd keeps the
/// first value it reads: then the settings go to a drop-in that sorts first (`00-micro-runner.conf`), so a
/// later `50-cloud-init.conf` with `PasswordAuthentication yes` cannot win. Without such an Include the
/// settings go at the top of the main file's global section (later duplicates there are commented out;
/// `Match` blocks are kept as they are). The candidate is checked with `sshd -t` and its effective values
/// with `sshd -T` before it is installed, and again after; then sshd is reloaded and, when asked, a real
/// connection must see the SSH banner. Any failure restores the previous files and reloads again.
package final class SshdHandler: CommandHandler {
    package var type: CommandType { .sshdHarden }
    static let dropInName = "00-micro-runner.conf"

    package init() {}

    package func isAvailable(on host: Host) -> Bool {
        host.effectiveUID == 0 && host.which("sshd") != nil && FileSystem.status(host.sshdConfigPath) != nil
    }

    /// One setting: the directive written and the `sshd -T` key and value expected.
    package struct Setting {
        package var directive: String
        package var key: String
        package var expected: [String]

        package init(directive: String, key: String, expected: [String]) {
            self.directive = directive
            self.key = key
            self.expected = expected
        }
    }

    static func validUserPattern(_ s: String) -> Bool {
        guard let f = s.utf8.first, f != 0x2D, s.utf8.count <= 64 else { return false }
        return ByteSet.sshdUserPattern.containsAll(s.utf8)
    }

    package func run(_ context: CommandContext) throws(RunnerError) -> JSONValue {
        let p = try context.params(SshdHardenParams.self)
        guard (0...65535).contains(p.port) else { throw .invalid("sshd.harden: port must be 1-65535 (0 keeps it)") }
        for u in p.allowUsers where !Self.validUserPattern(u) {
            throw .invalid("sshd.harden: allow_users entry \"\(u)\" is not a user pattern")
        }
        var settings: [Setting] = []
        if p.disablePasswordAuth {
            settings.append(
                Setting(directive: "PasswordAuthentication no", key: "passwordauthentication", expected: ["no"])
            )
            settings.append(
                Setting(
                    directive: "KbdInteractiveAuthentication no",
                    key: "kbdinteractiveauthentication",
                    expected: ["no"]
                )
            )
        }
        if p.disableRootLogin {
            settings.append(Setting(directive: "PermitRootLogin no", key: "permitrootlogin", expected: ["no"]))
        }
        if !p.allowUsers.isEmpty {
            settings.append(
                Setting(
                    directive: "AllowUsers " + p.allowUsers.joined(separator: " "),
                    key: "allowusers",
                    expected: p.allowUsers
                )
            )
        }
        if p.port > 0 { settings.append(Setting(directive: "Port \(p.port)", key: "port", expected: [String(p.port)])) }
        let tool = SshdTool(context: context)
        let config = context.host.sshdConfigPath
        let before = try tool.effective(config)
        let differing = settings.filter { before[$0.key] ?? [] != $0.expected }
        if differing.isEmpty {
            return encodeResult(
                SshdHardenResult(changed: false, backupPath: "", modifiedKeys: [], serviceAction: "none")
            )
        }
        let plan = try tool.plan(config: config, settings: settings)
        // Check the candidate as sshd would read it, before anything is installed.
        let candidateEffective = try tool.checkCandidate(plan)
        let modified = settings.map { $0.key }.filter { before[$0] ?? [] != candidateEffective[$0] ?? [] }
        for s in settings where candidateEffective[s.key] ?? [] != s.expected {
            throw RunnerError(
                .execFailed,
                "sshd.harden: with the candidate, sshd -T says \(s.key) \((candidateEffective[s.key] ?? []).joined(separator: " ")), not \(s.expected.joined(separator: " ")); nothing was installed"
            )
        }
        if context.command.dryRun {
            return encodeResult(
                SshdHardenResult(changed: true, backupPath: "", modifiedKeys: modified, serviceAction: "none")
            )
        }
        let backup = try tool.install(plan)
        do throws(RunnerError) {
            let after = try tool.effective(config)
            for s in settings where after[s.key] ?? [] != s.expected {
                throw RunnerError(
                    .execFailed,
                    "sshd.harden: after install, sshd -T says \(s.key) \((after[s.key] ?? []).joined(separator: " "))"
                )
            }
            let action = try tool.reload(config)
            if p.testConnection && action == "reloaded" {
                let port = Int((after["port"] ?? ["22"]).first ?? "22") ?? 22
                try tool.checkBanner(port: port, listen: after["listenaddress"] ?? [])
            }
            return encodeResult(
                SshdHardenResult(changed: true, backupPath: backup ?? "", modifiedKeys: modified, serviceAction: action)
            )
        } catch {
            let restored = tool.rollBack(plan, backup: backup)
            var reloaded = "sshd was reloaded with it"
            do { _ = try tool.reload(config) } catch { reloaded = "reloading sshd with it failed: \(error.message)" }
            throw RunnerError(
                error.code,
                error.message + "; " + restored + "; " + reloaded,
                details: error.details,
                cause: error.description
            )
        }
    }
}

/// The file operations and sshd invocations of one `sshd.harden`.
package struct SshdTool {
    let context: CommandContext

    package struct Plan {
        /// The file written: the drop-in or the main config.
        package var target: String
        package var content: [UInt8]
        /// Whether `target` is a drop-in (else the main file).
        package var dropIn: Bool
        /// The main config (for checks).
        package var mainConfig: String
    }

    /// `sshd -T -f config`: effective settings, key -> values (repeated keys collect their values).
    func effective(_ config: String) throws(RunnerError) -> [String: [String]] {
        _ = mkdir("/run/sshd", 0o755)  // sshd -t/-T refuse to run without the privilege separation directory
        let out = try context.runTool("sshd", ["-T", "-f", config])
        guard out.exitCode == 0 else {
            let why = out.tail(5)
            throw RunnerError(
                .execFailed,
                "sshd.harden: sshd -T -f \(config) failed: \(why)",
                details: ["sshd_output": why]
            )
        }
        var map: [String: [String]] = [:]
        for line in ASCII.lines(out.stdout) {
            guard let space = line.firstIndex(of: 0x20) else { continue }
            let key = ASCII.string(line[line.startIndex..<space])
            let value = ASCII.string(line[(space + 1)...])
            map[key, default: []] += value.split(separator: " ").map(String.init)
        }
        return map
    }

    /// Decides where the settings go and what the file will hold.
    func plan(config: String, settings: [SshdHandler.Setting]) throws(RunnerError) -> Plan {
        Self.plan(main: try FileSystem.readAll(config), config: config, settings: settings)
    }

    /// The decision itself, from the main file's bytes (pure: unit-tested without sshd or root).
    package static func plan(main: [UInt8], config: String, settings: [SshdHandler.Setting]) -> Plan {
        let lines = main.split(separator: 0x0A, omittingEmptySubsequences: false)
        let header =
            "# Managed by micro-runner (sshd.harden): these settings come first, and sshd keeps the first value."
        let directives = settings.map { $0.directive }
        // An Include of a *.conf glob before any other setting: use a drop-in that sorts first.
        for raw in lines {
            let line = ASCII.trim(raw)
            if line.isEmpty || line.first == UInt8(ascii: "#") { continue }
            let words = line.split(whereSeparator: { $0 == 0x20 || $0 == 0x09 })
            if words.count == 2, ASCII.lower(Array(words[0])) == Array("include".utf8) {
                let pattern = ASCII.string(words[1])
                if pattern.hasPrefix("/"), pattern.hasSuffix("/*.conf") {
                    let dir = String(pattern.dropLast("/*.conf".count))
                    let content = ([header] + directives).joined(separator: "\n") + "\n"
                    return Plan(
                        target: dir + "/" + SshdHandler.dropInName,
                        content: Array(content.utf8),
                        dropIn: true,
                        mainConfig: config
                    )
                }
            }
            break
        }
        // Main file: our settings first; later duplicates in the global section commented out; Match blocks kept.
        let keys = Set(settings.map { Array($0.directive.split(separator: " ")[0].utf8).map { $0 | 0x20 } })
        var out: [String] = [header] + directives + [""]
        var inMatch = false
        for raw in lines {
            let t = ASCII.trim(raw)
            let first = t.split(whereSeparator: { $0 == 0x20 || $0 == 0x09 }).first.map { ASCII.lower(Array($0)) } ?? []
            if first == Array("match".utf8) { inMatch = true }
            if ASCII.starts(t, "# Managed by micro-runner (sshd.harden)") { continue }
            if !inMatch && keys.contains(first) {
                out.append("# " + ASCII.string(raw) + "    # replaced by micro-runner above")
            } else {
                out.append(ASCII.string(raw))
            }
        }
        while out.last == "" { out.removeLast() }
        return Plan(
            target: config,
            content: Array((out.joined(separator: "\n") + "\n").utf8),
            dropIn: false,
            mainConfig: config
        )
    }

    /// Where `path` lives, resolved once, in a directory only root can write (`sshd -t` reads candidates there).
    static func location(_ path: String) throws(RunnerError) -> PathResolver.Location {
        try PathResolver().locateInTrustedDirectory(path, what: "sshd.harden")
    }

    /// `bytes` in a new dot-named file beside `location` (no `*.conf` glob matches it), owner and mode set and
    /// fsynced (0600 unless told: candidates are only for `sshd -t`).
    static func stage(
        _ bytes: [UInt8],
        beside location: PathResolver.Location,
        mode: mode_t = 0o600,
        owner: stat? = nil
    ) throws(RunnerError)
        -> StagedFile
    {
        let staged = try StagedFile(beside: location)
        do { try staged.append(bytes) } catch { throw FileSystem.error(error.code, "sshd.harden", location.path) }
        try staged.finish(mode: mode, uid: owner?.st_uid, gid: owner?.st_gid, ownerRequired: false)
        return staged
    }

    /// Writes the candidate where sshd will not read it and checks it with `sshd -t` and `sshd -T`.
    /// - Returns: the effective settings with the candidate in place.
    func checkCandidate(_ plan: Plan) throws(RunnerError) -> [String: [String]] {
        let location = try Self.location(plan.target)
        let candidate = try Self.stage(plan.content, beside: location)
        defer { candidate.discard() }
        var checkConfig = candidate.pathForTools
        var wrapper: StagedFile?
        if plan.dropIn {
            // As sshd will read it: the drop-in first, then everything else.
            let text = "Include \(checkConfig)\nInclude \(plan.mainConfig)\n"
            let w = try Self.stage(Array(text.utf8), beside: location)
            wrapper = w
            checkConfig = w.pathForTools
        }
        defer { wrapper?.discard() }
        let test = try context.runTool("sshd", ["-t", "-f", checkConfig])
        guard test.exitCode == 0 else {
            let why = test.tail(5)
            throw RunnerError(
                .invalidCommand,
                "sshd.harden: sshd -t rejected the candidate, nothing was installed: \(why)",
                details: ["sshd_output": why]
            )
        }
        return try effective(checkConfig)
    }

    /// Installs the candidate atomically (the shared `StagedFile` install); returns the backup of the file it
    /// replaced, if any.
    func install(_ plan: Plan) throws(RunnerError) -> String? {
        let location = try Self.location(plan.target)
        let existing: stat?
        do { existing = try location.status() } catch { throw FileSystem.error(error.code, "sshd.harden", plan.target) }
        if let existing, (existing.st_mode & S_IFMT) != S_IFREG {
            throw .invalid("sshd.harden: \(plan.target) is not a regular file")
        }
        // The replacement keeps the existing file's mode and owner (a new drop-in: 0644).
        let staged = try Self.stage(
            plan.content,
            beside: location,
            mode: existing.map { $0.st_mode & 0o7777 } ?? 0o644,
            owner: existing
        )
        // The backup ends in "~": it matches no *.conf glob, so sshd never reads it.
        return try staged.commit(backupOf: existing)
    }

    /// Puts the previous file back (or removes a drop-in that did not exist).
    /// - Returns: what happened, for the error message: never claims a restore that failed.
    func rollBack(_ plan: Plan, backup: String?) -> String {
        guard let location = try? Self.location(plan.target) else {
            return "the previous configuration could not be restored: \(plan.target) cannot be reached"
                + (backup.map { "; it is kept in \($0)" } ?? "")
        }
        do {
            if let backup {
                let name = String(decoding: Array(backup.utf8).split(separator: 0x2F).last ?? [], as: UTF8.self)
                try Sys.renameat(location.directory.fd, name, location.directory.fd, location.name)
            } else {
                try Sys.unlinkat(location.directory.fd, location.name)
            }
        } catch {
            return "the previous configuration could NOT be restored (\(errnoText(error.code)))"
                + (backup.map { "; it is kept in \($0)" } ?? "; remove \(plan.target) by hand")
        }
        FileSystem.syncDirectory(location.directory)
        return backup == nil
            ? "the previous configuration was restored (\(plan.target) removed)"
            : "the previous configuration was restored from \(backup!)"
    }

    /// Reloads sshd: through systemd (unit `ssh` or `sshd`) when it runs, else SIGHUP to the pid in sshd's
    /// PidFile. Returns `none` when no sshd is running.
    func reload(_ config: String) throws(RunnerError) -> String {
        if FileSystem.status("/run/systemd/system") != nil, context.host.which("systemctl") != nil {
            for unit in ["ssh", "sshd"] {
                let show = try context.runTool("systemctl", ["show", "-p", "ActiveState", "--value", unit])
                let state = ASCII.string(ASCII.trim(show.stdout[...]))
                guard state == "active" || state == "reloading" else { continue }
                let out = try context.runTool("systemctl", ["reload", unit])
                guard out.exitCode == 0 else {
                    throw RunnerError(
                        .execFailed,
                        "sshd.harden: systemctl reload \(unit) failed: \(out.tail(5))"
                    )
                }
                return "reloaded"
            }
        }
        let pidFile = (try effective(config)["pidfile"] ?? ["/run/sshd.pid"]).first ?? "/run/sshd.pid"
        guard let text = try? FileSystem.readAll(pidFile, limit: 64),
            let pid = Int32(ASCII.string(ASCII.trim(text[...]))), pid > 1, kill(pid, 0) == 0
        else { return "none" }
        guard kill(pid, SIGHUP) == 0 else { throw FileSystem.error(errno, "sshd.harden: reload (SIGHUP)", pidFile) }
        return "reloaded"
    }

    /// Connects to sshd where it really listens (`sshd -T` `listenaddress`) and waits for its `SSH-` banner
    /// (sshd re-executes on reload: retried for a few seconds). Any one address answering is enough.
    func checkBanner(port: Int, listen: [String]) throws(RunnerError) {
        let targets = Self.bannerTargets(listen: listen, port: port)
        let deadline = min(context.deadline, Monotonic.now() + 10_000_000_000)
        var lastError = "no answer"
        while Monotonic.now() < deadline {
            for target in targets {
                switch Self.banner(host: target.host, port: target.port) {
                case .success(let b) where ASCII.starts(b[...], "SSH-"): return
                case .success(let b): lastError = "unexpected greeting \"\(ASCII.string(b[...]))\""
                case .failure(let e): lastError = e.text
                }
            }
            usleep(100_000)
        }
        let shown = targets.map { $0.host.utf8.contains(0x3A) ? "[\($0.host)]:\($0.port)" : "\($0.host):\($0.port)" }
        throw RunnerError(
            .execFailed,
            "sshd.harden: no SSH banner on \(shown.joined(separator: ", ")) after the reload (\(lastError))"
        )
    }

    /// Where to look for the banner: each `listenaddress` sshd reports (`127.0.0.1:22`, `[::1]:22`,
    /// `0.0.0.0:22`), the wildcard ones through loopback; 127.0.0.1 on `port` when it reports none.
    package static func bannerTargets(listen: [String], port: Int) -> [(host: String, port: Int)] {
        var out: [(host: String, port: Int)] = []
        for entry in listen {
            var host = entry
            var p = port
            if host.hasPrefix("["), let close = host.firstIndex(of: "]") {
                let rest = host[host.index(after: close)...]
                host = String(host[host.index(after: host.startIndex)..<close])
                if rest.hasPrefix(":"), let n = Int(rest.dropFirst()) { p = n }
            } else if let colon = host.lastIndex(of: ":"), host.firstIndex(of: ":") == colon {
                if let n = Int(host[host.index(after: colon)...]) { p = n }
                host = String(host[..<colon])
            }
            if host == "0.0.0.0" || host.isEmpty { host = "127.0.0.1" }
            if host == "::" { host = "::1" }
            if !out.contains(where: { $0.host == host && $0.port == p }) { out.append((host, p)) }
        }
        return out.isEmpty ? [("127.0.0.1", port)] : out
    }

    struct BannerError: Error {
        var text: String
    }

    static func banner(host: String, port: Int) -> Result<[UInt8], BannerError> {
        // inet_pton, not getaddrinfo: numeric addresses only, and getaddrinfo adds ~120 KB of resolver to a
        // static binary.
        var storage = sockaddr_storage()
        let v6 = host.utf8.contains(0x3A)
        let length: Int
        let parsed: Int32 = withUnsafeMutableBytes(of: &storage) { raw in
            if v6 {
                let a = raw.baseAddress!.assumingMemoryBound(to: sockaddr_in6.self)
                a.pointee.sin6_family = sa_family_t(AF_INET6)
                a.pointee.sin6_port = UInt16(port).bigEndian
                return inet_pton(AF_INET6, host, &a.pointee.sin6_addr)
            }
            let a = raw.baseAddress!.assumingMemoryBound(to: sockaddr_in.self)
            a.pointee.sin_family = sa_family_t(AF_INET)
            a.pointee.sin_port = UInt16(port).bigEndian
            return inet_pton(AF_INET, host, &a.pointee.sin_addr)
        }
        length = v6 ? MemoryLayout<sockaddr_in6>.size : MemoryLayout<sockaddr_in>.size
        guard parsed == 1 else { return .failure(BannerError(text: "not an address: \(host)")) }
        let fd = mr_tcp_socket(v6 ? AF_INET6 : AF_INET)
        guard fd >= 0 else { return .failure(BannerError(text: errnoText(errno))) }
        defer { close(fd) }
        // Bounded: a port whose SYNs a firewall drops would hold a blocking connect for ~127 s.
        let rc = withUnsafePointer(to: &storage) { mr_tcp_connect(fd, $0, UInt32(length), 2000) }
        guard rc == 0 else {
            return .failure(BannerError(text: rc == ETIMEDOUT ? "no connection within 2 s" : errnoText(rc)))
        }
        var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&pfd, 1, 2000) == 1 else { return .failure(BannerError(text: "no banner within 2 s")) }
        var buf = [UInt8](repeating: 0, count: 256)
        let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        guard n > 0 else { return .failure(BannerError(text: "connection closed")) }
        return .success(Array(buf[0..<n]))
    }
}
