import Foundation

/// A host as people write it: `host`, `user@host`, `host:port`, `user@host:port`, `[::1]:2222`,
/// or an alias from `~/.ssh/config`. `local` or `localhost` without a user or port means this machine
/// without ssh.
///
/// ```swift
/// let web = try HostSpec(parsing: "deploy@web1:2222")      // user, host, port
/// let here = try HostSpec(parsing: "local")                  // this machine, no ssh
/// let transports = [web, here].map { $0.transport(options: options, runners: runners) }
/// ```
public struct HostSpec: Sendable, Hashable, CustomStringConvertible {
    /// The login user; `nil`: ssh's default.
    public var user: String?
    /// The host name, address or ssh alias (`local` for this machine).
    public var host: String
    /// The port; `nil`: ssh's default.
    public var port: Int?

    /// Creates a host spec.
    public init(user: String? = nil, host: String, port: Int? = nil) {
        self.user = user
        self.host = host
        self.port = port
    }

    /// Parses the common `user@host:port` form.
    /// - Throws: `ClientError` `.usage` for an empty host or a bad port.
    public init(parsing text: String) throws {
        var rest = Substring(text.trimmingCharacters(in: .whitespaces))
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
    public var isLocal: Bool { user == nil && port == nil && (host == "local" || host == "localhost") }

    /// `user@host:port`, as parsed.
    public var description: String {
        var s = host.contains(":") ? "[\(host)]" : host
        if let user { s = user + "@" + s }
        if let port { s += ":\(port)" }
        return s
    }
}

extension HostSpec {
    /// The transport that reaches this host: `LocalTransport` for `local`, else `SSHTransport` with `options`
    /// (and, when given, the runner for each host's architecture).
    public func transport(options: SSHOptions = SSHOptions(), runners: RunnerSet? = nil) -> any Transport {
        isLocal ? LocalTransport(name: description) : SSHTransport(host: self, options: options, runners: runners)
    }
}
