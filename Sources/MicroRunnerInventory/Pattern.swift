import Foundation
import MicroRunnerClient

extension Inventory {
    /// The hosts `pattern` selects, with Ansible's syntax: host and group names, globs (`web*`, `web0[13]`,
    /// `db-[!a]*`), regular expressions (`~(web|db)0[12]`, matched from the start of a name as Ansible's
    /// `re.match`), positions within a match (`web[0]`, `web[-1]`, `web[1:]`, `web[0:2]`, both ends included),
    /// union (`a:b` or `a,b`), intersection (`a:&b`), exclusion (`a:!b`), `@FILE` for patterns one per line
    /// (Ansible's retry files); `all` or `*` for every host. As in Ansible, unions are taken first, then
    /// intersections, then exclusions, whatever their order in the pattern.
    /// - Throws: `ParseError` when a term matches nothing (a typo must not silently shrink a run), a position
    ///   is past the end, a regular expression does not compile or a `@FILE` cannot be read.
    public func select(_ pattern: String) throws -> [String] {
        var union = Set<String>()
        var intersections: [Set<String>] = []
        var exclusions = Set<String>()
        for term in try Self.expandingFiles(Self.terms(pattern)) {
            if term.hasPrefix("&") {
                intersections.append(Set(try match(String(term.dropFirst()))))
            } else if term.hasPrefix("!") {
                exclusions.formUnion(try match(String(term.dropFirst())))
            } else {
                union.formUnion(try match(term))
            }
        }
        var selected = union
        for i in intersections { selected.formIntersection(i) }
        selected.subtract(exclusions)
        return hostOrder.filter { selected.contains($0) }
    }

    /// `@FILE` terms replaced by the patterns the file lists, one per line.
    static func expandingFiles(_ terms: [String]) throws -> [String] {
        try terms.flatMap { term -> [String] in
            guard term.hasPrefix("@") else { return [term] }
            let path = String(term.dropFirst())
            guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
                throw ParseError(file: path, line: 0, reason: "the --limit file cannot be read")
            }
            return text.split(whereSeparator: \.isNewline).flatMap { Self.terms(String($0)) }
        }
    }

    /// The terms of a pattern: separated by `,` or `:` (not inside a `[...]` range).
    static func terms(_ pattern: String) -> [String] {
        var terms: [String] = []
        var current = ""
        var depth = 0
        for c in pattern {
            if c == "[" { depth += 1 }
            if c == "]" { depth -= 1 }
            if depth == 0 && (c == "," || c == ":") {
                if !current.isEmpty { terms.append(current) }
                current = ""
            } else {
                current.append(c)
            }
        }
        if !current.isEmpty { terms.append(current) }
        return terms.map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }

    func match(_ term: String) throws -> [String] {
        if term == "all" || term == "*" { return hostOrder }
        if groups[term] != nil { return hosts(in: term) }
        if hostVars[term] != nil { return [term] }
        if let (expression, position) = Self.subscripted(term) {
            let found = try match(expression)
            guard let picked = position.pick(from: found) else {
                throw ParseError(
                    file: "--limit",
                    line: 0,
                    reason: "\"\(term)\": \(expression) matches \(found.count) hosts, none at that position"
                )
            }
            return picked
        }
        func noMatch() -> ParseError {
            ParseError(file: "--limit", line: 0, reason: "\"\(term)\" matches no host or group of the inventory")
        }
        let matches: (String) -> Bool
        if term.hasPrefix("~") {
            let regex: Regex<AnyRegexOutput>
            do { regex = try Regex(String(term.dropFirst())) } catch {
                throw ParseError(file: "--limit", line: 0, reason: "\"\(term)\" is not a regular expression: \(error)")
            }
            matches = { (try? regex.prefixMatch(in: $0)) != nil }
        } else if term.contains("*") || term.contains("?") || term.contains("[") {
            matches = { Self.glob(term, $0) }
        } else {
            throw noMatch()  // a plain name that is neither a group nor a host
        }
        var found: [String] = []
        for group in groups.keys.sorted() where matches(group) { found += hosts(in: group) }
        found += hostOrder.filter(matches)
        var seen = Set<String>()
        found = found.filter { seen.insert($0).inserted }
        if !found.isEmpty { return found }
        throw noMatch()
    }

    /// A position within the hosts a pattern matches: `[i]` (negative from the end) or `[from:to]`, both ends
    /// included, `to` empty for the end (Ansible's subscripts).
    struct Position: Equatable {
        var from: Int
        var to: Int?
        var isRange: Bool

        func pick(from hosts: [String]) -> [String]? {
            if !isRange {
                let i = from < 0 ? hosts.count + from : from
                return hosts.indices.contains(i) ? [hosts[i]] : nil
            }
            let last = min(to ?? hosts.count - 1, hosts.count - 1)
            guard from < hosts.count, from <= last else { return nil }
            return Array(hosts[from...last])
        }
    }

    /// `pattern[i]` or `pattern[from:to]` split into the pattern and the position; nil for anything else (a
    /// glob's character class such as `web0[13]`, a regular expression).
    static func subscripted(_ term: String) -> (String, Position)? {
        guard !term.hasPrefix("~"), term.hasSuffix("]"), let open = term.lastIndex(of: "["), open > term.startIndex
        else { return nil }
        let inside = term[term.index(after: open)..<term.index(before: term.endIndex)]
        let expression = String(term[..<open])
        let parts = inside.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
        if parts.count == 1, let i = Int(parts[0]) { return (expression, Position(from: i, to: nil, isRange: false)) }
        guard parts.count == 2, let from = Int(parts[0]), from >= 0, parts[1].allSatisfy(\.isNumber) else { return nil }
        return (expression, Position(from: from, to: parts[1].isEmpty ? nil : Int(parts[1]), isRange: true))
    }

    /// Shell-style glob as Python's fnmatch: `*`, `?`, `[seq]`, `[!seq]` (ranges such as `[0-9]` included).
    static func glob(_ pattern: String, _ text: String) -> Bool {
        let p = Array(pattern)
        let t = Array(text)
        var memo = [[Bool?]](repeating: [Bool?](repeating: nil, count: t.count + 1), count: p.count + 1)
        func m(_ i: Int, _ j: Int) -> Bool {
            if let known = memo[i][j] { return known }
            let result: Bool
            if i == p.count {
                result = j == t.count
            } else if p[i] == "*" {
                result = m(i + 1, j) || (j < t.count && m(i, j + 1))
            } else if p[i] == "[", let (matched, next) = characterClass(p, at: i, t, j) {
                result = matched && m(next, j + 1)
            } else {
                result = j < t.count && (p[i] == "?" || p[i] == t[j]) && m(i + 1, j + 1)
            }
            memo[i][j] = result
            return result
        }
        return m(0, 0)
    }

    /// The class that opens at `p[i]` tested against `t[j]`: whether it matched and where the pattern goes on;
    /// nil when the `[` opens no class (no closing `]`), which then stands for itself.
    private static func characterClass(_ p: [Character], at i: Int, _ t: [Character], _ j: Int) -> (Bool, Int)? {
        var k = i + 1
        let negated = k < p.count && p[k] == "!"
        if negated { k += 1 }
        let first = k
        while k < p.count && (p[k] != "]" || k == first) { k += 1 }
        guard k < p.count, j < t.count else { return k < p.count ? (false, k + 1) : nil }
        let c = t[j]
        var member = false
        var x = first
        while x < k {
            if x + 2 < k && p[x + 1] == "-" {
                if p[x] <= c && c <= p[x + 2] { member = true }
                x += 3
            } else {
                if p[x] == c { member = true }
                x += 1
            }
        }
        return (member != negated, k + 1)
    }
}

/// A host of an inventory as mrctl reaches it: the ssh destination, a container (`spec.container`) or the local
/// machine, and how to become root, from Ansible's connection variables.
public struct InventoryHost: Sendable, Equatable {
    /// The inventory's name for the host (what reports show).
    public var name: String
    /// Where ssh connects (`ansible_host`, `ansible_port`, `ansible_user`), or the container
    /// (`ansible_connection=docker|podman|machinectl|nsenter|kubectl` and their collection names).
    public var spec: HostSpec
    /// `ansible_connection=local`: runs through the local transport.
    public var isLocal: Bool
    /// `ansible_ssh_private_key_file`.
    public var identityFile: String?
    /// `ansible_become` (`ansible_sudo`): the whole runner runs as `becomeUser` through sudo.
    public var become: Bool
    /// Whether the inventory set `ansible_become` for this host at all: then it wins over mrctl's `-b`, as
    /// Ansible's connection variables win over its command line.
    public var becomeDeclared = false
    /// `ansible_become_user` (`ansible_sudo_user`); nil: the command line's, else root.
    public var becomeUser: String?
    /// `ansible_become_method`; nil: the command line's, else sudo.
    public var becomeMethod: String?
    /// `ansible_become_password` (`ansible_become_pass`, `ansible_sudo_pass`, `ansible_sudo_password`).
    public var becomePassword: String?
    /// Every variable after precedence (unknown ones are kept and ignored).
    public var variables: [String: String]

    /// A host given directly (`--host`), with no inventory variables.
    public init(_ spec: HostSpec) {
        self.init(
            name: spec.description,
            spec: spec,
            isLocal: spec.isLocal,
            identityFile: nil,
            become: false,
            becomePassword: nil,
            variables: [:]
        )
    }

    /// A host with everything stated.
    public init(
        name: String,
        spec: HostSpec,
        isLocal: Bool,
        identityFile: String?,
        become: Bool,
        becomePassword: String?,
        variables: [String: String]
    ) {
        self.name = name
        self.spec = spec
        self.isLocal = isLocal
        self.identityFile = identityFile
        self.become = become
        self.becomePassword = becomePassword
        self.variables = variables
    }
}

extension InventoryHost {
    /// The become variables other than `ansible_become` and the password, from the host's variables.
    func withBecome(from vars: [String: String]) -> InventoryHost {
        var host = self
        host.becomeDeclared = vars["ansible_become"] != nil
        host.becomeUser = vars["ansible_become_user"]
        host.becomeMethod = vars["ansible_become_method"]
        host.become = Inventory.truthy(vars["ansible_become"])
        host.becomePassword = vars["ansible_become_password"]
        return host
    }
}

extension Inventory {
    /// The hosts `pattern` selects, resolved for connecting; `extraVariables` (`-e`) win over everything, as
    /// Ansible's extra vars do.
    /// - Throws: `ParseError` for a pattern that matches nothing or a variable that does not parse.
    public func targets(_ pattern: String = "all", extraVariables: [String: String] = [:]) throws -> [InventoryHost] {
        try select(pattern).map { try target($0, extraVariables: extraVariables) }
    }

    /// One host, resolved for connecting.
    public func target(_ name: String, extraVariables: [String: String] = [:]) throws -> InventoryHost {
        try Self.resolve(name, variables: variables(of: name).merging(Self.canonical(extraVariables)) { $1 })
    }

    /// A host named `name` with these (canonical) variables, resolved for connecting: what an inventory line
    /// says, or what `--host NAME -e ansible_user=...` says.
    public static func resolve(_ name: String, variables vars: [String: String]) throws -> InventoryHost {
        // mrctl's own one-host-per-line files name hosts as user@host:port.
        if (name.contains("@") || name.contains(":")) && vars["ansible_host"] == nil,
            let spec = try? HostSpec(parsing: name)
        {
            var host = InventoryHost(spec)
            host.variables = vars
            if spec.user == nil, let user = vars["ansible_user"] { host.spec.user = user }
            return host.withBecome(from: vars)
        }
        var port: Int?
        if let p = vars["ansible_port"] {
            guard let n = Int(p), (1...65535).contains(n) else {
                throw ParseError(file: "inventory", line: 0, reason: "\(name): ansible_port \"\(p)\" is not a port")
            }
            port = n
        }
        let connection = vars["ansible_connection"] ?? "ssh"
        var container: ContainerRuntime?
        var target = vars["ansible_host"] ?? name
        switch connection {
        case "ssh", "local", "smart", "paramiko": break
        case "docker", "community.docker.docker", "community.general.docker": container = .docker
        case "podman", "containers.podman.podman": container = .podman
        case "machinectl", "community.general.machinectl", "nspawn": container = .nspawn
        case "nsenter", "community.general.nsenter":
            // Ansible's nsenter connection enters the namespaces of ansible_nsenter_pid (default 1: the host
            // a privileged container runs on).
            container = .nsenter
            target = vars["ansible_nsenter_pid"] ?? (vars["ansible_host"].flatMap { Int($0) == nil ? nil : $0 } ?? "1")
        case "kubectl", "kubernetes.core.kubectl", "community.kubernetes.kubectl":
            container = .kubectl
            let pod = vars["ansible_kubectl_pod"] ?? target
            target = [vars["ansible_kubectl_namespace"], pod].compactMap { $0 }.joined(separator: "/")
            if let c = vars["ansible_kubectl_container"] {
                target = (vars["ansible_kubectl_namespace"] == nil ? "default/" : "") + target + "/" + c
            }
        default:
            throw ParseError(
                file: "inventory",
                line: 0,
                reason: "\(name): ansible_connection \(connection) is not supported (ssh, local, docker, podman, "
                    + "machinectl, nsenter or kubectl)"
            )
        }
        return InventoryHost(
            name: name,
            spec: HostSpec(
                user: vars["ansible_user"],
                host: target,
                port: container == nil ? port : nil,
                container: container
            ),
            isLocal: connection == "local",
            identityFile: vars["ansible_ssh_private_key_file"],
            become: Self.truthy(vars["ansible_become"]),
            becomePassword: vars["ansible_become_password"],
            variables: vars
        ).withBecome(from: vars)
    }

    /// Whether `value` is an Ansible vault block (`!vault |` in YAML, or its text pasted into INI): mrctl cannot
    /// decrypt it, and sending it to sudo as a password would cost a failed attempt on every host.
    public static func isVaultEncrypted(_ value: String) -> Bool {
        value.trimmingCharacters(in: .whitespacesAndNewlines).hasPrefix("$ANSIBLE_VAULT;")
    }

    /// Ansible's booleans: yes/true/1/on (any case).
    static func truthy(_ value: String?) -> Bool {
        guard let v = value?.lowercased() else { return false }
        return ["yes", "true", "1", "on", "y"].contains(v)
    }

    /// The inventory as Ansible's `ansible-inventory --graph` shows it.
    public func graph() -> String {
        func lines(_ group: String, _ prefix: String) -> String {
            var out = ""
            for child in (groups[group]?.children ?? []).sorted() {
                out += "\(prefix)|--@\(child):\n" + lines(child, prefix + "|  ")
            }
            for host in group == "all" ? [] : groups[group]?.hosts ?? [] { out += "\(prefix)|--\(host)\n" }
            return out
        }
        return "@all:\n" + lines("all", "  ")
    }
}
