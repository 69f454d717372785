import MicroRunnerProtocol
import MicroRunnerSystem

/// `pkg.ensure`: a package present, absent, latest, or at an exact version, through the host's manager.
///
/// Every decision reads the package database first, so `changed` is honest and a second identical call
/// does nothing. The manager's output goes out as EVENTs while it runs; a failure answers with the last
/// lines of its stderr. `options` must pass a per-manager allow-list of flags that neither run programs nor
/// change where the manager reads its configuration (apt's `-o Dir::Bin::dpkg=SCRIPT` or
/// `-o DPkg::Pre-Invoke::=SCRIPT` would run SCRIPT as root); a runner started with `--unsafe-pkg-options`
/// passes them as they are (how the tests point a manager at a private root). Names and versions that
/// could be read as options are refused.
package final class PackageHandler: CommandHandler {
    package var type: CommandType { .pkgEnsure }

    package init() {}

    package func isAvailable(on host: Host) -> Bool {
        host.effectiveUID == 0 && Self.detect(host) != nil
    }

    /// The first manager found: apt, dnf, yum, zypper.
    static func detect(_ host: Host) -> PackageManager? {
        if host.which("apt-get") != nil && host.which("dpkg-query") != nil { return .apt }
        for m in [PackageManager.dnf, .yum, .zypper] where host.which(m.rawValue) != nil { return m }
        return nil
    }

    /// Versions: letters, digits, `. + ~ : _ -`, not starting with `-`.
    static func validVersion(_ s: String) -> Bool {
        guard let f = s.utf8.first, f != 0x2D, s.utf8.count <= 128 else { return false }
        return ByteSet.packageVersion.containsAll(s.utf8)
    }

    /// Options that change only what is resolved, never which programs run or where configuration is read.
    /// A name ending in `=` takes a value in the same argument (`--enablerepo=updates`).
    static let allowedOptions: [PackageManager: [String]] = [
        .apt: [
            "--no-install-recommends", "--install-recommends", "--no-install-suggests", "--install-suggests",
            "--allow-downgrades", "--only-upgrade", "--reinstall", "--fix-broken", "--target-release=",
            "--default-release=",
        ],
        .dnf: [
            "--nobest", "--best", "--allowerasing", "--skip-broken", "--refresh", "--cacheonly", "--enablerepo=",
            "--disablerepo=", "--exclude=", "--noautoremove", "--setopt=install_weak_deps=False",
            "--setopt=install_weak_deps=True",
        ],
        .zypper: ["--no-refresh", "--ignore-unknown", "--no-color"],
    ]

    /// Why `option` may not be passed to `manager` (allow-list above), or `nil` when it may.
    package static func optionProblem(_ option: String, manager: PackageManager) -> String? {
        let list = allowedOptions[manager == .yum ? .dnf : manager] ?? []
        if list.contains(option) && !option.hasSuffix("=") { return nil }
        if let eq = option.utf8.firstIndex(of: 0x3D) {
            let name = String(decoding: option.utf8[...eq], as: UTF8.self)
            let value = option.utf8[option.utf8.index(after: eq)...]
            if list.contains(name), let first = value.first, first != 0x2D,
                ByteSet.packageOptionValue.containsAll(value)
            {
                return nil
            }
        }
        return "is not an allowed \(manager) option (allowed: \(list.joined(separator: " ")); options that run "
            + "programs or change where the manager reads its configuration need a runner started with "
            + "--unsafe-pkg-options)"
    }

    package func run(_ context: CommandContext) throws(RunnerError) -> JSONValue {
        let p = try context.params(PkgEnsureParams.self)
        if !p.version.isEmpty && !Self.validVersion(p.version) {
            throw .invalid("pkg.ensure: version \"\(p.version)\" is not a package version")
        }
        let state = p.state.rawValue.isEmpty ? .present : p.state
        guard PackageState.all.contains(state) else {
            throw .invalid("pkg.ensure: state must be present, absent or latest, not \"\(p.state)\"")
        }
        if state != .present && !p.version.isEmpty {
            throw .invalid("pkg.ensure: version goes with state present")
        }
        let manager = p.manager.rawValue.isEmpty ? Self.detect(context.host) : p.manager
        guard let manager else {
            throw RunnerError(.unsupported, "pkg.ensure: no package manager found (apt, dnf, yum, zypper)")
        }
        if let why = PackageName.problem(p.name, manager: manager) {
            throw .invalid("pkg.ensure: name \"\(p.name)\" is not a \(manager) package name: it \(why)")
        }
        if !context.host.rawPackageOptions {
            for option in p.options {
                if let why = Self.optionProblem(option, manager: manager) {
                    throw .invalid("pkg.ensure: option \"\(option)\" \(why)")
                }
            }
        }
        let tool = PackageTool(manager: manager, options: p.options, context: context)
        // Generic calls, not an `any PackageBackend`: the Embedded runner has no existentials of plain protocols.
        switch manager {
        case .apt: return try ensureResult(p, state, backend: AptBackend(tool: tool), context: context)
        case .dnf, .yum, .zypper:
            return try ensureResult(p, state, backend: RPMBackend(tool: tool), context: context)
        default: throw .invalid("pkg.ensure: manager must be apt, dnf, yum or zypper, not \"\(manager)\"")
        }
    }

    func ensureResult<B: PackageBackend>(
        _ p: PkgEnsureParams,
        _ state: PackageState,
        backend: B,
        context: CommandContext
    ) throws(RunnerError) -> JSONValue {
        encodeResult(
            try ensure(p.name, version: p.version, state: state, backend: backend, dryRun: context.command.dryRun)
        )
    }
}

/// One package operation: runs the manager's commands with the command's deadline and cancellation.
struct PackageTool {
    let manager: PackageManager
    let options: [String]
    let context: CommandContext

    /// Runs a tool; with `stream`, output lines go out as EVENTs.
    func run(
        _ tool: String,
        _ args: [String],
        stream: Bool = false,
        env: [String: String] = [:]
    ) throws(RunnerError)
        -> ProcessOutcome
    {
        try context.runTool(tool, args, stream: stream, environment: env)
    }

    func failure(_ what: String, _ out: ProcessOutcome) -> RunnerError {
        let tail = out.tail()
        let lower = ASCII.lower(Array(tail.utf8))
        if ["unable to locate package", "no match for argument", "not found in package names", "no package "].contains(
            where: { ASCII.contains(lower, $0) })
        {
            return RunnerError(.notFound, "pkg.ensure: \(what): \(tail)", details: ["stderr_tail": tail])
        }
        return RunnerError(
            .execFailed,
            "pkg.ensure: \(what) failed (exit \(out.exitCode)): \(tail)",
            details: ["stderr_tail": tail]
        )
    }

    // MARK: apt

    /// Installed version, or "" (a removed package whose config files remain, `rc`, counts as absent).
    func aptInstalled(_ name: String) throws(RunnerError) -> String {
        let out = try run("dpkg-query", ["-W", "-f=${Version}\t${db:Status-Abbrev}", name])
        let fields = out.stdout.split(separator: 0x09, omittingEmptySubsequences: false)
        guard out.exitCode == 0, fields.count == 2, ASCII.starts(fields[1], "ii") || ASCII.starts(fields[1], "hi")
        else {
            return ""
        }
        return ASCII.string(fields[0])
    }

    /// The version apt would install (`Candidate:`), or "" when there is none.
    func aptCandidate(_ name: String) throws(RunnerError) -> String {
        let out = try run("apt-cache", options + ["policy", "--", name])
        for line in ASCII.lines(out.stdout) {
            let t = ASCII.trim(line)
            if ASCII.starts(t, "Candidate:") {
                let v = ASCII.trim(t.dropFirst("Candidate:".utf8.count))
                return ASCII.starts(v, "(none)") ? "" : ASCII.string(v)
            }
        }
        return ""
    }

    /// `dpkg --compare-versions a lt b`.
    func aptLess(_ a: String, _ b: String) throws(RunnerError) -> Bool {
        try run("dpkg", ["--compare-versions", a, "lt", b]).exitCode == 0
    }

    /// Runs apt-get non-interactively; a dpkg lock still held after a bounded wait is a retryable CONFLICT.
    func aptGet(_ args: [String], what: String) throws(RunnerError) {
        let remaining = Int((context.deadline - Monotonic.now()) / 1_000_000_000)
        let lockWait = max(1, min(120, remaining - 5))
        let out = try run(
            "apt-get",
            [
                "-y", "-q", "-o", "DPkg::Lock::Timeout=\(lockWait)", "-o", "Dpkg::Options::=--force-confdef",
                "-o", "Dpkg::Options::=--force-confold",
            ] + options + args,
            stream: true,
            env: ["DEBIAN_FRONTEND": "noninteractive", "APT_LISTCHANGES_FRONTEND": "none", "NEEDRESTART_MODE": "a"]
        )
        guard out.exitCode == 0 else {
            let tail = out.tail()
            // ASCII.contains, not String.contains(String): that one links the Regex engine (~1.3 MB).
            let bytes = Array(tail.utf8)
            if ASCII.contains(bytes, "Could not get lock") || ASCII.contains(bytes, "Unable to acquire the dpkg") {
                throw RunnerError(
                    .conflict,
                    "pkg.ensure: the dpkg lock is held by another process (waited \(lockWait)s): \(tail)",
                    details: ["stderr_tail": tail],
                    retryable: true,
                    retryAfter: 10
                )
            }
            throw failure(what, out)
        }
    }

    // MARK: dnf, yum, zypper

    /// Installed `version-release`, or "".
    func rpmInstalled(_ name: String) throws(RunnerError) -> String {
        if manager == .zypper {
            let out = try run(
                "zypper",
                ["-n", "--no-refresh"] + options + [
                    "--quiet", "search", "--installed-only", "--match-exact", "-s", "--", name,
                ]
            )
            return Self.zypperVersion(out, name: name, installed: true)
        }
        let out = try run(
            manager.rawValue,
            ["-q"] + options + ["repoquery", "--installed", "--qf", "%{name} %{version}-%{release}", "--", name]
        )
        return Self.versionOfExactly(name, in: out)
    }

    /// The newest available `version-release`, or "".
    func rpmLatest(_ name: String) throws(RunnerError) -> String {
        if manager == .zypper {
            let out = try run("zypper", ["-n"] + options + ["--quiet", "search", "--match-exact", "-s", "--", name])
            return Self.zypperVersion(out, name: name, installed: false)
        }
        let out = try run(
            manager.rawValue,
            ["-q"] + options + [
                "repoquery", "--latest-limit", "1", "--qf", "%{name} %{version}-%{release}", "--", name,
            ]
        )
        return Self.versionOfExactly(name, in: out)
    }

    /// From repoquery lines `NAME VERSION-RELEASE`, the last version of exactly `name`: dnf also matches
    /// `bash-5.1` as bash at 5.1 and globs, and answers with those packages' names.
    static func versionOfExactly(_ name: String, in out: ProcessOutcome) -> String {
        let wanted = Array(name.utf8)
        var found = ""
        for line in ASCII.lines(out.stdout) {
            let fields = ASCII.trim(line).split(separator: 0x20)
            if fields.count == 2 && fields[0].elementsEqual(wanted) { found = ASCII.string(fields[1]) }
        }
        return found
    }

    /// Reads zypper's `search -s` table: `S | Name | Type | Version | Arch | Repository`.
    static func zypperVersion(_ out: ProcessOutcome, name: String, installed: Bool) -> String {
        var best = ""
        let wanted = Array(name.utf8)
        for line in ASCII.lines(out.stdout) {
            let cols = line.split(separator: 0x7C, omittingEmptySubsequences: false).map { Array(ASCII.trim($0)) }
            guard cols.count >= 4, cols[1] == wanted, cols[2] == Array("package".utf8) else { continue }
            if installed && cols[0].first != UInt8(ascii: "i") { continue }
            best = ASCII.string(cols[3][...])  // zypper lists the newest first
            if !installed { return best }
        }
        return best
    }

    func rpmLess(_ a: String, _ b: String) throws(RunnerError) -> Bool {
        // rpmdev-vercmp is not everywhere; sort -V agrees with rpm for plain version-release strings.
        let out = try run("sh", ["-c", "printf '%s\\n%s\\n' \"$1\" \"$2\" | sort -V | head -n1", "sh", a, b])
        return ASCII.lines(out.stdout).first.map { Array($0) } == Array(a.utf8) && a != b
    }
}

/// What `ensure` needs from a package manager; the decisions are the same for all of them.
package protocol PackageBackend {
    /// The installed version, or "" when the package is not installed.
    func installed(_ name: String) throws(RunnerError) -> String
    /// The newest installable version, or "".
    func latest(_ name: String) throws(RunnerError) -> String
    /// Whether the installed version is the wanted one (rpm: "1.0" matches "1.0-1").
    func matches(installed: String, wanted: String) -> Bool
    /// Whether version `a` sorts before `b`.
    func older(_ a: String, than b: String) throws(RunnerError) -> Bool
    /// Installs `name` (at `version` when not empty); `downgrade` when that is older than what is installed.
    func install(_ name: String, version: String, downgrade: Bool) throws(RunnerError)
    /// Removes `name`.
    func remove(_ name: String) throws(RunnerError)
    /// Throws `NOT_FOUND` unless a package has exactly this name (not a pattern or a name-version form of
    /// another): called before anything is installed under a name that is not installed.
    func requireExactName(_ name: String) throws(RunnerError)
}

extension PackageHandler {
    /// Reads the database, decides, acts, reads again: `changed` and `action` say what really happened.
    package func ensure(
        _ name: String,
        version: String,
        state: PackageState,
        backend: some PackageBackend,
        dryRun: Bool
    ) throws(RunnerError) -> PkgEnsureResult {
        let before = try backend.installed(name)
        func result(_ changed: Bool, _ after: String, _ action: String) -> PkgEnsureResult {
            PkgEnsureResult(changed: changed, previousVersion: before, installedVersion: after, action: action)
        }
        if state == .absent {
            guard !before.isEmpty else { return result(false, "", "already_absent") }
            if dryRun { return result(true, before, "removed") }
            try backend.remove(name)
            return result(true, try backend.installed(name), "removed")
        }
        // Not installed under exactly this name: make sure the manager will not read it as something else.
        if before.isEmpty { try backend.requireExactName(name) }
        var wanted = version
        if state == .latest {
            wanted = try backend.latest(name)
            if wanted.isEmpty {
                throw RunnerError(
                    .notFound,
                    "pkg.ensure: no installable version of \(name) in the configured repositories"
                )
            }
        } else if version.isEmpty && !before.isEmpty {
            return result(false, before, "already_present")
        }
        if !wanted.isEmpty && !before.isEmpty && backend.matches(installed: before, wanted: wanted) {
            return result(false, before, "already_present")
        }
        let action =
            before.isEmpty ? "installed" : (try backend.older(before, than: wanted) ? "upgraded" : "downgraded")
        if dryRun { return result(true, before, action) }
        try backend.install(name, version: wanted, downgrade: action == "downgraded")
        let after = try backend.installed(name)
        guard !after.isEmpty, wanted.isEmpty || backend.matches(installed: after, wanted: wanted) else {
            throw RunnerError(
                .execFailed,
                "pkg.ensure: the package manager reported success but \(name) is at \"\(after)\""
            )
        }
        return result(after != before, after, action)
    }
}

/// apt-get, dpkg-query, apt-cache.
struct AptBackend: PackageBackend {
    let tool: PackageTool

    func installed(_ name: String) throws(RunnerError) -> String { try tool.aptInstalled(name) }
    func latest(_ name: String) throws(RunnerError) -> String { try tool.aptCandidate(name) }
    func matches(installed: String, wanted: String) -> Bool { installed == wanted }
    func older(_ a: String, than b: String) throws(RunnerError) -> Bool { try tool.aptLess(a, b) }

    func install(_ name: String, version: String, downgrade: Bool) throws(RunnerError) {
        let target = version.isEmpty ? name : name + "=" + version
        try tool.aptGet(["install", "--allow-downgrades", "--", target], what: "apt-get install \(target)")
    }

    func remove(_ name: String) throws(RunnerError) {
        try tool.aptGet(["remove", "--", name], what: "apt-get remove \(name)")
    }

    /// `apt-cache pkgnames` lists names by prefix, never by pattern: one of them must be the name itself.
    func requireExactName(_ name: String) throws(RunnerError) {
        guard PackageName.aptMightReadAsPattern(name) else { return }
        let out = try tool.run("apt-cache", tool.options + ["pkgnames", "--", name])
        let wanted = Array(name.utf8)
        if ASCII.lines(out.stdout).contains(where: { Array(ASCII.trim($0)).elementsEqual(wanted) }) { return }
        throw RunnerError(
            .notFound,
            "pkg.ensure: no package is named exactly \(name) (apt would read it as a regular expression)"
        )
    }
}

/// dnf, yum (dnf or classic yum) and zypper.
struct RPMBackend: PackageBackend {
    let tool: PackageTool
    var zypper: Bool { tool.manager == .zypper }
    var base: [String] { zypper ? ["-n"] + tool.options : ["-y", "-q"] + tool.options }

    func installed(_ name: String) throws(RunnerError) -> String { try tool.rpmInstalled(name) }
    func latest(_ name: String) throws(RunnerError) -> String { try tool.rpmLatest(name) }
    func matches(installed: String, wanted: String) -> Bool { installed == wanted || installed.hasPrefix(wanted + "-") }
    func older(_ a: String, than b: String) throws(RunnerError) -> Bool { try tool.rpmLess(a, b) }

    func install(_ name: String, version: String, downgrade: Bool) throws(RunnerError) {
        let spec = version.isEmpty ? name : (zypper ? "\(name)=\(version)" : "\(name)-\(version)")
        let verb = downgrade ? (zypper ? ["install", "--oldpackage"] : ["downgrade"]) : ["install"]
        let out = try tool.run(tool.manager.rawValue, base + verb + ["--", spec], stream: true)
        // Judge by the database, not only the exit status (zypper has non-zero exits after success).
        if out.exitCode != 0 {
            let now = try installed(name)
            if now.isEmpty || (!version.isEmpty && !matches(installed: now, wanted: version)) {
                throw tool.failure("\(tool.manager) \(verb[0]) \(spec)", out)
            }
        }
    }

    /// The repositories' newest version of exactly this name (rpmLatest keeps only lines of that name).
    func requireExactName(_ name: String) throws(RunnerError) {
        guard try latest(name).isEmpty else { return }
        throw RunnerError(
            .notFound,
            "pkg.ensure: no package is named exactly \(name) in the configured repositories (\(tool.manager) would "
                + "read a name-version form as another package at that version)"
        )
    }

    func remove(_ name: String) throws(RunnerError) {
        let out = try tool.run(tool.manager.rawValue, base + ["remove", "--", name], stream: true)
        // zypper exits 8 after removing the last package of a root ("Failed to cache rpm database"): the state decides.
        if out.exitCode != 0 {
            let still = try installed(name)
            if !still.isEmpty { throw tool.failure("\(tool.manager) remove \(name)", out) }
        }
    }
}
