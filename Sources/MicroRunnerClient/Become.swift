import MicroRunnerProtocol

/// Run the whole runner as another user (root by default), as Ansible's `become`, pyinfra's `_sudo` and
/// Salt-ssh's `sudo` do: every command of the session, file writes included, has that identity.
///
/// The runner restarts itself through `sudo` on the host, with a pseudo-terminal as its controlling terminal
/// (so `Defaults requiretty` works) while the protocol stays on plain pipes. A password is sent once, inside
/// the ssh channel, as one line after the runner's bytes: it never appears in an argument, the environment,
/// a file or the process list, and sudo gets exactly one attempt (a wrong one fails the host at once with
/// `ClientError.Kind.becomeFailed`, never three tries that lock the account).
///
/// ```swift
/// var options = SSHOptions()
/// options.become = Become()  // root through sudo, NOPASSWD
/// let host = SSHTransport(host: try HostSpec(parsing: "deploy@web1"), options: options)
/// try await RunnerClient.withRunner(transport: host, runner: runner) { client in
///     print(await client.ready.metadata["user"] ?? "?")  // "root"
/// }
/// ```
public struct Become: Sendable, Equatable {
    /// How to change identity on the host.
    public struct Method: WireName {
        /// The method's name.
        public let rawValue: String
        /// Creates a method from its name (only `sudo` is started; others are refused before connecting).
        public init(rawValue: String) { self.rawValue = rawValue }

        /// `sudo -u USER`: the only method offered. su and doas read a password from a terminal only (no
        /// `-S`), so they would need the protocol to share the pty, which this design avoids.
        public static let sudo: Self = "sudo"
    }

    /// The method; `.sudo`.
    public var method: Method
    /// The user to become: a name or `#UID`; `root` by default.
    public var user: String
    /// sudo's password for the login user, or nil for NOPASSWD rules. Never sent anywhere but to sudo.
    public var password: String?

    /// Creates a become request.
    public init(method: Method = .sudo, user: String = "root", password: String? = nil) {
        self.method = method
        self.user = user
        self.password = password
    }

    /// Checks what can be checked before connecting (the method, the user name, the password's form).
    /// - Throws: `ClientError` `.usage`, as `SSHTransport` and `LocalTransport` would at start.
    public func check() throws { _ = try runnerArguments() }

    /// The runner's `--become` flags that go before its own, after checking what can be checked here.
    /// - Throws: `ClientError` `.usage` for a method other than sudo, a user name that is not one, or a password
    ///   with a line break or NUL (it goes to sudo as one line).
    func runnerArguments() throws -> [String] {
        guard method == .sudo else {
            throw ClientError(.usage, "become method \(method) is not supported: use sudo")
        }
        guard BecomeUser.isValid(user) else {
            throw ClientError(.usage, "become user \(user) is not a user name or #UID")
        }
        if let password, password.utf8.contains(where: { $0 == 0x0A || $0 == 0x0D || $0 == 0 }) {
            throw ClientError(.usage, "the become password contains a line break or NUL, which sudo cannot read")
        }
        return ["--become", method.rawValue, user, password == nil ? "no" : "yes"]
    }

    /// What the transport writes after the runner's bytes: the password line, or nothing.
    func passwordLine() -> [UInt8] {
        guard let password else { return [] }
        return Array(password.utf8) + [0x0A]
    }

    /// Why a become session ended before READY, in one line that says what to do.
    func explainFailure(host: String, stderr: String) -> String {
        var text = "\(host): could not become \(user) with sudo: \(stderr)"
        if stderr.contains("a password is required") {
            text +=
                password == nil
                ? " (give sudo's password: -K/--ask-become-pass or ansible_become_password; or a NOPASSWD rule)"
                : " (the password was accepted, but sudo asked again: sudo's timestamp_timeout is 0 on this host)"
        } else if stderr.contains("must have a tty") {
            text += " (requiretty: this host gave sudo no terminal)"
        }
        return text
    }
}
