import MicroRunnerProtocol

/// What `pkg.ensure` accepts as a package name: a name for each manager and nothing else, no action suffix,
/// pattern, version or path. The grammar, per manager:
///
/// - every manager: 1-128 bytes of ASCII letters, digits and `+ . _ -`, starting with a letter or digit and not
///   ending in `-` (apt-get reads `sudo-` as "remove sudo": a state of present once planned to remove
///   openssh-server). A trailing `+` (apt's "install" suffix) stays: `g++` is a package; apt reads an exact name
///   first, and a name with `+` that is no package is refused by the exact-name check below. `*`, `?`, `[`, `@`, `=`, `/`, `:`, `<`, `>`, `~` and spaces never
///   pass: globs, groups (`@core`), versions (`=1.2`), releases (`/bookworm`), architectures (`:amd64`) and
///   version comparisons belong in `version` or nowhere.
/// - apt: Debian policy 5.6.1 on top: lowercase only, no `_`, at least 2 bytes.
///
/// Two forms the grammar cannot see are checked against the manager's own index before anything is installed
/// (`PackageBackend.requireExactName`): apt reads a name with `.` or `+` that is no package as a regular
/// expression (`xterm.+` selected 22 packages), and dnf reads `bash-5.1` as bash at version 5.1.
package enum PackageName {
    /// Why `name` is not a package name for `manager`, or nil when it is one.
    package static func problem(_ name: String, manager: PackageManager) -> String? {
        let bytes = Array(name.utf8)
        guard !bytes.isEmpty, bytes.count <= 128 else { return "must be 1 to 128 bytes long" }
        guard isAlphanumeric(bytes[0]) else { return "must start with a letter or a digit" }
        for b in bytes where !(isAlphanumeric(b) || b == 0x2B || b == 0x2E || b == 0x5F || b == 0x2D) {
            return "may hold only letters, digits and + . _ - (no globs, groups, versions, releases or paths)"
        }
        if bytes.last == 0x2D { return "must not end in -, which apt-get reads as \"remove\"" }
        if manager == .apt {
            if bytes.count < 2 { return "must be at least 2 characters (Debian policy)" }
            if bytes.contains(where: { ($0 >= 0x41 && $0 <= 0x5A) || $0 == 0x5F }) {
                return "must be lowercase letters, digits and + . - (Debian policy)"
            }
        }
        return nil
    }

    /// Whether apt would read `name`, when no package has exactly that name, as a regular expression.
    package static func aptMightReadAsPattern(_ name: String) -> Bool {
        name.utf8.contains { $0 == 0x2E || $0 == 0x2B }
    }

    static func isAlphanumeric(_ b: UInt8) -> Bool {
        (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A)
    }
}
