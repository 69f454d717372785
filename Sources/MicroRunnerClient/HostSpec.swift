import Foundation

/// A host as people write it: `host`, `user@host`, `host:port`, `user@host:port`, `[::1]:2222`,
/// or an alias from `~/.ssh/config`. `local` or `localhost` without a user or port means this machine
/// without ssh. `RUNTIME:[USER@]TARGET` names a container reached through its runtime's exec
/// (`docker:web`, `podman:root@db`, `nspawn:build1`, `nsenter:4242`, `kubectl:prod/api-7f9c`; see
/// `ContainerRuntime`); an ssh host that is called like a runtime takes brackets: `[docker]:22`.
///
/// ```swift
/// let web = try HostSpec(parsing: "deploy@web1:2222")      // user, host, port
/// let here = try HostSpec(parsing: "local")                  // this machine, no ssh
/// let box = try HostSpec(parsing: "podman:web")              // a container, through podman exec
/// let transports = [web, here].map { $0.transport(options: options, runners: runners) }
/// ```
public struct HostSpec: Sendable, Hashable, CustomStringConvertible {
    /// The login user; `nil`: ssh's default.
    public var user: String?
    /// The host name, address or ssh alias (`local` for this machine).
    public var host: String
    /// The port; `nil`: ssh's default.
    public var port: Int?
    /// The container runtime that reaches `host` (then a container, machine, process id or pod); nil: ssh.
    public var container: ContainerRuntime?

    /// Creates a host spec.
    public init(user: String? = nil, host: String, port: Int? = nil, container: ContainerRuntime? = nil) {
        self.user = user
        self.host = host
        self.port = port
        self.container = container
    }

    /// Parses the common `user@host:port` form, or `RUNTIME:[USER@]TARGET` for a container.
    /// - Throws: `ClientError` `.usage` for an empty host or a bad port.
    public init(parsing text: String) throws {
        var rest = Substring(text.trimmingCharacters(in: .whitespaces))
        if let colon = rest.firstIndex(of: ":"), let runtime = ContainerRuntime(rawValue: String(rest[..<colon])) {
            container = runtime
            rest = rest[rest.index(after: colon)...]
            if let at = rest.firstIndex(of: "@") {
                user = String(rest[..<at])
                rest = rest[rest.index(after: at)...]
            }
            host = String(rest)
            if host.isEmpty || host.hasPrefix("-") || user?.isEmpty == true || user?.hasPrefix("-") == true {
                throw ClientError(.usage, "bad container \"\(text)\": give \(runtime.rawValue):[USER@]TARGET")
            }
            return
        }
        if let at = rest.lastIndex(of: "@") {
            user = String(rest[..<at])
            rest = rest[rest.index(after: at)...]
        }
        if rest.hasPrefix("[") {
            guard let close = rest.firstIndex(of: "]") else { throw ClientError(.usage, "bad host \(text): missing ]") }
            host = String(rest[rest.index(after: rest.startIndex)..<close])
            let after = rest[rest.index(after: close)...]
            if after.hasPrefix(":") {
                guard let p = Int(after.dropFirst()), (1...65535).contains(p) else {
                    throw ClientError(.usage, "bad port in \(text)")
                }
                port = p
            }
        } else if let colon = rest.lastIndex(of: ":"), rest.firstIndex(of: ":") == colon {
            host = String(rest[..<colon])
            guard let p = Int(rest[rest.index(after: colon)...]), (1...65535).contains(p) else {
                throw ClientError(.usage, "bad port in \(text)")
            }
            port = p
        } else {
            host = String(rest)
        }
        if host.isEmpty || host.hasPrefix("-") || user?.hasPrefix("-") == true {
            throw ClientError(.usage, "bad host \"\(text)\"")
        }
    }

    /// Whether this names the local machine (no ssh).
    public var isLocal: Bool {
        container == nil && user == nil && port == nil && (host == "local" || host == "localhost")
    }

    /// `user@host:port` (or `runtime:user@target`), as parsed.
    public var description: String {
        if let container { return "\(container.rawValue):\(user.map { $0 + "@" } ?? "")\(host)" }
        var s = host.contains(":") || ContainerRuntime(rawValue: host) != nil ? "[\(host)]" : host
        if let user { s = user + "@" + s }
        if let port { s += ":\(port)" }
        return s
    }
}

extension HostSpec {
    /// The transport that reaches this host: `LocalTransport` for `local`, `ContainerTransport` for a container
    /// (with `options`' remote directory, become and logger), else `SSHTransport` with `options` (and, when
    /// given, the runner for each host's architecture).
    public func transport(
        options: SSHOptions = SSHOptions(),
        runners: RunnerSet? = nil,
        name: String? = nil
    )
        -> any Transport
    {
        if isLocal { return LocalTransport(name: name ?? description, become: options.become) }
        if let container {
            return ContainerTransport(
                runtime: container,
                target: host,
                user: user,
                runners: runners,
                remoteDirectory: options.remoteDirectory,
                become: options.become,
                logger: options.logger,
                name: name
            )
        }
        return SSHTransport(host: self, options: options, runners: runners, name: name)
    }
}
