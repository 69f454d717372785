import Foundation
import MicroRunnerClient
import Yams

/// An Ansible inventory, read as Ansible reads it: hosts, groups with `children`, variables at every level,
/// host ranges (`web[01:20].example.com`). Read from Ansible's INI or YAML format, or from mrctl's one host per
/// line (`user@host:port`).
public struct Inventory: Sendable {
    /// A group: its own hosts, its child groups, its variables.
    public struct Group: Sendable, Equatable {
        /// Hosts named in this group itself.
        public var hosts: [String] = []
        /// Child groups.
        public var children: [String] = []
        /// The group's variables.
        public var vars: [String: String] = [:]
    }

    /// Groups by name; `all` and `ungrouped` always exist.
    public private(set) var groups: [String: Group] = ["all": Group(), "ungrouped": Group()]
    /// Host variables set on the host itself, by host name.
    public private(set) var hostVars: [String: [String: String]] = [:]
    /// Host names in the order the file first names them.
    public private(set) var hostOrder: [String] = []
    /// Groups by depth below `all`, then name: the order their variables apply in (`derive`).
    private var precedence: [String] = []
    /// Each group's hosts, its descendants' included (`derive`).
    private var members: [String: Set<String>] = [:]

    /// An inventory failure: the file, the line (0 when unknown) and what is wrong.
    public struct ParseError: Error, CustomStringConvertible, Sendable {
        /// The inventory file.
        public var file: String
        /// The line (0 when unknown).
        public var line: Int
        /// What is wrong.
        public var reason: String
        /// `file:line: reason`.
        public var description: String { line > 0 ? "\(file):\(line): \(reason)" : "\(file): \(reason)" }
    }

    /// An empty inventory.
    public init() {}

    /// Reads `path`, telling the format by its content: YAML when it is a YAML mapping (`all:` and the like),
    /// else INI (which also reads mrctl's one-host-per-line files).
    /// - Throws: `ParseError` naming the file and line.
    public init(path: String) throws {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ParseError(file: path, line: 0, reason: "cannot read the inventory")
        }
        let text = String(decoding: data, as: UTF8.self)
        self = Self.looksLikeYAML(text) ? try Self(yaml: text, file: path) : try Self(ini: text, file: path)
    }

    static func looksLikeYAML(_ text: String) -> Bool {
        for raw in text.split(separator: "\n") {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") { continue }
            if line == "---" { return true }
            // INI sections and host lines never end a first meaningful line with ':'; YAML's top keys do.
            return line.hasSuffix(":") && !line.hasPrefix("[")
        }
        return false
    }

    // MARK: Building

    mutating func addHost(_ name: String, to group: String, vars: [String: String] = [:]) {
        if hostVars[name] == nil {
            hostVars[name] = [:]
            hostOrder.append(name)
        }
        hostVars[name, default: [:]].merge(vars) { $1 }
        ensureGroup(group)
        if !groups[group]!.hosts.contains(name) { groups[group]!.hosts.append(name) }
    }

    mutating func ensureGroup(_ name: String) {
        if groups[name] == nil { groups[name] = Group() }
    }

    mutating func addChild(_ child: String, of parent: String) {
        ensureGroup(child)
        ensureGroup(parent)
        if !groups[parent]!.children.contains(child) { groups[parent]!.children.append(child) }
    }

    mutating func setGroupVars(_ vars: [String: String], of group: String) {
        ensureGroup(group)
        groups[group]!.vars.merge(vars) { $1 }
    }

    // MARK: INI

    /// Reads Ansible's INI format: `[group]`, `[group:children]`, `[group:vars]`, `host key=value ...`.
    public init(ini text: String, file: String = "inventory") throws {
        var section = "ungrouped"
        var kind = ""  // "", "children", "vars"
        for (index, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let number = index + 1
            var line = raw.trimmingCharacters(in: .whitespacesAndNewlines)
            if line.isEmpty || line.hasPrefix("#") || line.hasPrefix(";") { continue }
            if line.hasPrefix("[") {
                guard line.hasSuffix("]"), line.count > 2 else {
                    throw ParseError(file: file, line: number, reason: "a section header must look like [group]")
                }
                let header = String(line.dropFirst().dropLast())
                let parts = header.split(separator: ":", maxSplits: 1).map(String.init)
                section = parts[0]
                kind = parts.count > 1 ? parts[1] : ""
                guard ["", "children", "vars"].contains(kind) else {
                    throw ParseError(
                        file: file,
                        line: number,
                        reason: "unknown section kind :\(kind) (children or vars)"
                    )
                }
                guard Self.validGroupName(section) else {
                    throw ParseError(file: file, line: number, reason: "\"\(section)\" is not a group name")
                }
                ensureGroup(section)
                continue
            }
            if let hash = line.range(of: " #") { line = String(line[..<hash.lowerBound]) }
            switch kind {
            case "children":
                addChild(line, of: section)
            case "vars":
                guard let eq = line.firstIndex(of: "=") else {
                    throw ParseError(file: file, line: number, reason: "expected key=value in [\(section):vars]")
                }
                let key = line[..<eq].trimmingCharacters(in: .whitespaces)
                let value = Self.unquote(line[line.index(after: eq)...].trimmingCharacters(in: .whitespaces))
                setGroupVars([key: value], of: section)
            default:
                let words = try Self.splitWords(line, file: file, line: number)
                guard let pattern = words.first else { continue }
                var vars: [String: String] = [:]
                for word in words.dropFirst() {
                    guard let eq = word.firstIndex(of: "=") else {
                        throw ParseError(
                            file: file,
                            line: number,
                            reason: "expected key=value after the host, found \"\(word)\""
                        )
                    }
                    vars[String(word[..<eq])] = String(word[word.index(after: eq)...])
                }
                for host in try Self.expandRange(pattern, file: file, line: number) {
                    addHost(host, to: section, vars: vars)
                }
            }
        }
        finish()
    }

    /// Splits on spaces, keeping quoted values (`key="a b"`) together and unquoted.
    static func splitWords(_ line: String, file: String, line number: Int) throws -> [String] {
        var words: [String] = []
        var current = ""
        var quote: Character?
        for c in line {
            if let q = quote {
                if c == q { quote = nil } else { current.append(c) }
            } else if c == "\"" || c == "'" {
                quote = c
            } else if c == " " || c == "\t" {
                if !current.isEmpty { words.append(current) }
                current = ""
            } else {
                current.append(c)
            }
        }
        if quote != nil { throw ParseError(file: file, line: number, reason: "unterminated quote") }
        if !current.isEmpty { words.append(current) }
        return words
    }

    static func unquote(_ s: String) -> String {
        if s.count >= 2, let f = s.first, f == s.last, f == "\"" || f == "'" { return String(s.dropFirst().dropLast()) }
        return s
    }

    static func validGroupName(_ name: String) -> Bool {
        !name.isEmpty && name.allSatisfy { $0.isLetter || $0.isNumber || $0 == "_" || $0 == "-" || $0 == "." }
    }

    /// Expands Ansible host ranges: `web[01:03].x` -> web01.x web02.x web03.x (leading zeros kept),
    /// `db-[a:c]`, and a stride `[1:10:3]`. Several ranges multiply.
    public static func expandRange(_ pattern: String, file: String = "inventory", line: Int = 0) throws -> [String] {
        guard let open = pattern.firstIndex(of: "["), let close = pattern[open...].firstIndex(of: "]") else {
            return [pattern]
        }
        let prefix = String(pattern[..<open])
        let suffix = String(pattern[pattern.index(after: close)...])
        let spec = pattern[pattern.index(after: open)..<close].split(separator: ":", omittingEmptySubsequences: false)
            .map(String.init)
        guard spec.count == 2 || spec.count == 3 else {
            throw ParseError(file: file, line: line, reason: "a host range must look like [01:20] or [a:f]")
        }
        let stride = spec.count == 3 ? Int(spec[2]) ?? 0 : 1
        guard stride > 0 else { throw ParseError(file: file, line: line, reason: "bad range stride in \(pattern)") }
        var items: [String] = []
        if let a = Int(spec[0]), let b = Int(spec[1]) {
            guard a <= b, b - a <= 100_000 else {
                throw ParseError(file: file, line: line, reason: "bad host range \(pattern)")
            }
            let width = spec[0].hasPrefix("0") && spec[0].count > 1 ? spec[0].count : 0
            for i in Swift.stride(from: a, through: b, by: stride) {
                let digits = String(i)
                items.append(String(repeating: "0", count: max(0, width - digits.count)) + digits)
            }
        } else if spec[0].count == 1, spec[1].count == 1, let a = spec[0].unicodeScalars.first?.value,
            let b = spec[1].unicodeScalars.first?.value, a <= b
        {
            for v in Swift.stride(from: a, through: b, by: stride) { items.append(String(UnicodeScalar(v)!)) }
        } else {
            throw ParseError(file: file, line: line, reason: "bad host range \(pattern)")
        }
        var out: [String] = []
        for item in items { out += try expandRange(prefix + item + suffix, file: file, line: line) }
        return out
    }

    // MARK: YAML

    /// Reads Ansible's YAML format: `all: {hosts: {h: {vars}}, children: {g: {...}}, vars: {...}}`.
    public init(yaml text: String, file: String = "inventory") throws {
        let root: Node?
        do {
            root = try Yams.compose(yaml: text)
        } catch let error as YamlError {
            throw ParseError(file: file, line: Self.line(of: error), reason: "not valid YAML: \(error)")
        }
        guard let root, let top = root.mapping else {
            throw ParseError(file: file, line: 1, reason: "the inventory must be a mapping of groups (all: ...)")
        }
        for (key, value) in top {
            guard let name = key.string else { continue }
            try readGroup(name, value, parent: nil, file: file)
        }
        finish()
    }

    static func line(of error: YamlError) -> Int {
        switch error {
        case .parser(_, _, let mark, _), .scanner(_, _, let mark, _): return mark.line
        default: return 0
        }
    }

    mutating func readGroup(_ name: String, _ node: Node, parent: String?, file: String) throws {
        ensureGroup(name)
        if let parent { addChild(name, of: parent) }
        if node.null != nil { return }
        guard let mapping = node.mapping else {
            throw ParseError(
                file: file,
                line: node.mark.map { $0.line } ?? 0,
                reason: "group \(name) must be a mapping"
            )
        }
        for (key, value) in mapping {
            switch key.string {
            case "hosts":
                guard let hosts = value.mapping else {
                    if value.null != nil { continue }
                    throw ParseError(file: file, line: value.mark?.line ?? 0, reason: "\(name).hosts must be a mapping")
                }
                for (hostKey, hostValue) in hosts {
                    guard let pattern = hostKey.string else { continue }
                    let vars = try Self.scalars(hostValue, "\(name).hosts.\(pattern)", file: file)
                    for host in try Self.expandRange(pattern, file: file, line: hostKey.mark?.line ?? 0) {
                        addHost(host, to: name, vars: vars)
                    }
                }
            case "children":
                guard let children = value.mapping else {
                    if value.null != nil { continue }
                    throw ParseError(
                        file: file,
                        line: value.mark?.line ?? 0,
                        reason: "\(name).children must be a mapping"
                    )
                }
                for (childKey, childValue) in children {
                    guard let child = childKey.string else { continue }
                    try readGroup(child, childValue, parent: name, file: file)
                }
            case "vars":
                setGroupVars(try Self.scalars(value, "\(name).vars", file: file), of: name)
            default:
                throw ParseError(
                    file: file,
                    line: key.mark?.line ?? 0,
                    reason: "unknown key \"\(key.string ?? "?")\" in group \(name) (hosts, children, vars)"
                )
            }
        }
    }

    /// A mapping of scalars as strings (nested values are kept as their YAML text; unknown variables are kept
    /// and ignored).
    static func scalars(_ node: Node, _ what: String, file: String) throws -> [String: String] {
        if node.null != nil { return [:] }
        guard let mapping = node.mapping else {
            throw ParseError(file: file, line: node.mark?.line ?? 0, reason: "\(what) must be a mapping")
        }
        var out: [String: String] = [:]
        for (k, v) in mapping {
            guard let key = k.string else { continue }
            out[key] = v.scalar?.string ?? ((try? Yams.serialize(node: v)) ?? "").trimmingCharacters(in: .newlines)
        }
        return out
    }

    // MARK: Resolution

    /// Every host belongs to `all`; hosts in no other group are also in `ungrouped`.
    mutating func finish() {
        for (name, _) in groups where name != "all" && parents(of: name).isEmpty {
            if !groups["all"]!.children.contains(name) { groups["all"]!.children.append(name) }
        }
        for host in hostOrder
        where groups.allSatisfy({ $0.key == "all" || $0.key == "ungrouped" || !$0.value.hosts.contains(host) }) {
            if !groups["ungrouped"]!.hosts.contains(host) { groups["ungrouped"]!.hosts.append(host) }
        }
        derive()
    }

    func parents(of group: String) -> [String] {
        groups.filter { $0.value.children.contains(group) }.map { $0.key }.sorted()
    }

    /// The hosts of `group` and of all its descendants, in file order.
    public func hosts(in group: String) -> [String] {
        guard let found = members[group] else { return [] }
        return hostOrder.filter { found.contains($0) }
    }

    /// Groups in precedence order and each group's hosts with its descendants', derived once the file is read:
    /// every host's variables are resolved from them, so resolving N hosts does not walk the groups N times.
    mutating func derive() {
        var depth: [String: Int] = ["all": 0]
        var frontier = ["all"]
        var level = 0
        while !frontier.isEmpty {
            level += 1
            var next: [String] = []
            for g in frontier {
                for child in groups[g]?.children ?? [] where depth[child] == nil {
                    depth[child] = level
                    next.append(child)
                }
            }
            frontier = next
        }
        precedence = depth.keys.sorted { (depth[$0]!, $0) < (depth[$1]!, $1) }
        members = [:]
        for name in groups.keys {
            var found = Set<String>()
            var seen = Set<String>()
            func visit(_ g: String) {
                guard seen.insert(g).inserted, let group = groups[g] else { return }
                found.formUnion(group.hosts)
                for child in group.children { visit(child) }
            }
            visit(name)
            members[name] = found
        }
        members["all"] = Set(hostOrder)
    }

    /// The host's variables with Ansible's precedence: `all`, then parent groups before child groups (deeper
    /// wins; at one depth, alphabetical order, the later winning), then the host's own.
    ///
    /// Aliases are folded into their canonical names within each scope before scopes are merged
    /// (`ansible_ssh_user` is `ansible_user`): a host's `ansible_ssh_user` wins over a group's `ansible_user`,
    /// as in Ansible, where the scope decides and not the spelling.
    public func variables(of host: String) -> [String: String] {
        var vars: [String: String] = [:]
        for group in precedence where members[group]?.contains(host) == true {
            vars.merge(Self.canonical(groups[group]?.vars ?? [:])) { $1 }
        }
        vars.merge(Self.canonical(hostVars[host] ?? [:])) { $1 }
        return vars
    }

    /// Ansible's alias names of connection and become variables, and the name each stands for.
    public static let aliases: [String: String] = [
        "ansible_ssh_host": "ansible_host", "ansible_ssh_port": "ansible_port", "ansible_ssh_user": "ansible_user",
        "ansible_sudo": "ansible_become", "ansible_sudo_user": "ansible_become_user",
        "ansible_become_pass": "ansible_become_password", "ansible_sudo_pass": "ansible_become_password",
        "ansible_sudo_password": "ansible_become_password", "ansible_private_key_file": "ansible_ssh_private_key_file",
    ]

    /// `vars` with every alias under its canonical name; where one scope sets both, the canonical one wins.
    public static func canonical(_ vars: [String: String]) -> [String: String] {
        guard vars.keys.contains(where: { aliases[$0] != nil }) else { return vars }
        var out: [String: String] = [:]
        for (key, value) in vars where aliases[key] != nil {
            out[aliases[key]!] = value
        }
        for (key, value) in vars where aliases[key] == nil { out[key] = value }
        return out
    }
}
