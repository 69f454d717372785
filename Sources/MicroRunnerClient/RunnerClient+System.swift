import MicroRunnerProtocol

/// Typed calls for the system command types, matching `exec` and `putFile`: each is refused before anything is
/// sent (`ClientError` `.unsupported`, naming the runner's version) when the runner does not offer it, which
/// for these four means a runner that is not root (see `Become`).
extension RunnerClient {
    /// `pkg.ensure` states: the wire's own names (`.present`, `.absent`, `.latest`), shared with the runner.
    public typealias PackageState = MicroRunnerProtocol.PackageState
    /// Package managers (`.apt`, `.dnf`, `.yum`, `.zypper`); `nil` in `package(...)` lets the runner detect one.
    public typealias PackageManager = MicroRunnerProtocol.PackageManager
    /// `service.reload` actions (systemd): `.reload`, `.restart`, `.start`, `.stop`, `.enable`, `.disable`.
    public typealias ServiceAction = MicroRunnerProtocol.ServiceAction
    /// `sudoers.ensure` states: `.present`, `.absent`.
    public typealias RuleState = MicroRunnerProtocol.RuleState

    /// Ensures a package's state. A name is a package name for its manager and nothing else (no version,
    /// pattern or action suffix: the runner refuses those with `INVALID_CMD`).
    ///
    /// ```swift
    /// let r = try await client.package("nginx", state: .latest)
    /// print(r.action, r.installedVersion)  // "upgraded 1.22.1-9"
    /// ```
    public func package(
        _ name: String,
        state: PackageState = .present,
        version: String = "",
        manager: PackageManager? = nil,
        dryRun: Bool = false,
        timeout: Duration = .seconds(600)
    ) async throws -> PkgEnsureResult {
        let p = PkgEnsureParams(name: name, version: version, state: state, manager: manager ?? "")
        return try await run(.pkgEnsure, p, as: PkgEnsureResult.self, timeout: timeout, dryRun: dryRun)
    }

    /// Acts on a systemd service; `changed` says whether it did anything.
    ///
    /// ```swift
    /// if try await client.putFile(config, to: "/etc/nginx/nginx.conf").changed != false {
    ///     _ = try await client.service("nginx", .reload)
    /// }
    /// ```
    public func service(
        _ name: String,
        _ action: ServiceAction,
        dryRun: Bool = false,
        timeout: Duration = .seconds(120)
    ) async throws -> ServiceReloadResult {
        try await run(
            .serviceReload,
            ServiceReloadParams(name: name, action: action),
            as: ServiceReloadResult.self,
            timeout: timeout,
            dryRun: dryRun
        )
    }

    /// A sudo rule for `user`, validated with visudo before it is live.
    public func sudoers(
        user: String,
        commands: [String],
        noPassword: Bool = false,
        state: RuleState = .present,
        dryRun: Bool = false,
        timeout: Duration = .seconds(60)
    ) async throws -> SudoersEnsureResult {
        try await run(
            .sudoersEnsure,
            SudoersEnsureParams(user: user, commands: commands, noPasswd: noPassword, state: state),
            as: SudoersEnsureResult.self,
            timeout: timeout,
            dryRun: dryRun
        )
    }

    /// Hardens sshd (validated with `sshd -t`, verified, rolled back on failure).
    public func sshdHarden(
        _ params: SshdHardenParams,
        dryRun: Bool = false,
        timeout: Duration = .seconds(120)
    ) async throws -> SshdHardenResult {
        try await run(.sshdHarden, params, as: SshdHardenResult.self, timeout: timeout, dryRun: dryRun)
    }
}
