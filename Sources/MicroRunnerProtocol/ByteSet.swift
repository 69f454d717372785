/// The bytes allowed in a name the runner passes to another program (a package version, a unit, a user, a sudoers
/// command, an upload id): ASCII letters and digits as asked, plus listed punctuation. Every such grammar is stated
/// once, below, with where it comes from; a validator adds only what is not a set of bytes (a first byte, a length).
///
/// A 128-bit mask: a test is a shift and an and, with no allocation (the runner checks every byte of every name).
package struct ByteSet: Sendable {
    private var low: UInt64 = 0
    private var high: UInt64 = 0

    /// The set of `punctuation`'s bytes, plus digits, lowercase and uppercase ASCII letters as asked.
    package init(_ punctuation: StaticString, digits: Bool = true, lowercase: Bool = true, uppercase: Bool = true) {
        if digits { for b in UInt8(ascii: "0")...UInt8(ascii: "9") { insert(b) } }
        if lowercase { for b in UInt8(ascii: "a")...UInt8(ascii: "z") { insert(b) } }
        if uppercase { for b in UInt8(ascii: "A")...UInt8(ascii: "Z") { insert(b) } }
        punctuation.withUTF8Buffer { for b in $0 { insert(b) } }
    }

    private mutating func insert(_ b: UInt8) {
        if b < 64 { low |= 1 << UInt64(b) } else if b < 128 { high |= 1 << UInt64(b - 64) }
    }

    /// Whether `b` is in the set (never a byte above 0x7F).
    @inline(__always)
    package func contains(_ b: UInt8) -> Bool {
        b < 64 ? low & (1 << UInt64(b)) != 0 : b < 128 && high & (1 << UInt64(b - 64)) != 0
    }

    /// Whether every byte of `bytes` is in the set (true for none).
    package func containsAll<S: Sequence>(_ bytes: S) -> Bool where S.Element == UInt8 {
        for b in bytes where !contains(b) { return false }
        return true
    }

    /// Package versions and release names, as Debian policy (5.6.12) and RPM write them: letters, digits,
    /// `. + ~ : _ -`.
    package static let packageVersion = ByteSet(".+~:_-")
    /// The value of an allowed package-manager option (`--enablerepo=updates*,extras`): letters, digits,
    /// `. _ - + ~ :` and the globs and lists dnf takes, `*` and `,`.
    package static let packageOptionValue = ByteSet("._-+~:*,")
    /// systemd unit names (systemd.unit(5)): letters, digits, `: - _ .`, `@` for instances and `\` escapes.
    package static let unitName = ByteSet(":_.@-\\")
    /// A user pattern in sshd_config (`AllowUsers`, PATTERNS in ssh_config(5)): a user name's bytes, `@` for
    /// user@host, and the wildcards `*` and `?`, with `:` for user@[address]:port forms.
    package static let sshdUserPattern = ByteSet("._-@*?:")
    /// A user sudoers reads as one plain user: POSIX portable name characters in lowercase (no `%` group, `#`
    /// uid or `+` netgroup, which would widen a rule).
    package static let sudoersUser = ByteSet("_-", uppercase: false)
    /// A command in a sudoers rule: path and plain argument bytes; none of sudoers' syntax (`, : = ! \ * ? [`).
    package static let sudoersCommand = ByteSet("/._-+@ ")
    /// A chunked upload's id, part of a staged file's name: `[A-Za-z0-9._-]`.
    package static let uploadID = ByteSet("._-")
    /// A POSIX portable user name (IEEE Std 1003.1, 3.437): `[A-Za-z0-9._-]`.
    package static let portableUserName = ByteSet("._-")
}
