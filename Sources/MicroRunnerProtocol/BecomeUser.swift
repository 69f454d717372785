/// The user a runner may be restarted as (`micro-runner --become sudo USER ...`), checked by the client before
/// connecting and by the runner before it calls sudo: one rule in one place.
package enum BecomeUser {
    /// A POSIX portable user name (letters, digits, `.`, `_`, `-`, not starting with `-`, at most 32 bytes, a
    /// trailing `$` as Samba machine accounts have), or `#` and a numeric uid as sudo takes it. Nothing that
    /// sudo could read as an option or a shell could read as syntax.
    package static func isValid(_ user: String) -> Bool {
        let bytes = Array(user.utf8)
        guard !bytes.isEmpty, bytes.count <= 32 else { return false }
        if bytes[0] == UInt8(ascii: "#") {
            return bytes.count > 1 && bytes.dropFirst().allSatisfy { $0 >= 0x30 && $0 <= 0x39 }
        }
        guard bytes[0] != UInt8(ascii: "-") else { return false }
        // A trailing `$` (a Samba machine account) is the one byte outside the portable set.
        let name = bytes.last == UInt8(ascii: "$") ? bytes.dropLast() : bytes[...]
        return ByteSet.portableUserName.containsAll(name)
    }

    /// Whether `user` names root (no directory permissions need opening up for it).
    package static func isRoot(_ user: String) -> Bool { user == "root" || user == "#0" }
}
