import MicroRunnerCrypto
import MicroRunnerProtocol
import MicroRunnerSystem

/// `sudoers.ensure`: a sudo rule for one user, validated by `visudo -cf` before it is installed.
///
/// The rule is `USER ALL=(ALL) [NOPASSWD: ]CMD, CMD` in `<sudoers.d>/froyo-<user>`, mode 0440 root:root.
/// The candidate is written to a temporary file whose name starts with a dot (sudo's `@includedir` skips
/// it), checked with `visudo -cf`, and only then renamed over the rule: an invalid rule is never live.
/// User names and commands are checked against strict allow-lists, so nothing can smuggle sudoers syntax
/// (`,` `:` `=` `!` wildcards, newlines, `ALL`) into the rule.
package final class SudoersHandler: CommandHandler {
    package var type: CommandType { .sudoersEnsure }

    package init() {}

    package func isAvailable(on host: Host) -> Bool {
        host.effectiveUID == 0 && host.which("visudo") != nil
            && FileSystem.status(host.sudoersDirectory).map { ($0.st_mode & S_IFMT) == S_IFDIR } == true
    }

    /// A user name sudo will read as one plain user: POSIX portable name characters, lowercase first.
    static func validUser(_ user: String) -> Bool {
        let b = Array(user.utf8)
        guard (1...32).contains(b.count), let first = b.first, (first >= 0x61 && first <= 0x7A) || first == 0x5F else {
            return false
        }
        return ByteSet.sudoersUser.containsAll(b)
    }

    /// An absolute command path with optional plain arguments; no sudoers syntax, no wildcards, no `ALL`.
    static func validCommand(_ command: String) -> String? {
        guard command.hasPrefix("/") else { return "must be an absolute path" }
        guard ByteSet.sudoersCommand.containsAll(command.utf8) else {
            return "may only contain letters, digits, spaces and / . _ - + @ (no , : = ! \\ * ? [ or newlines)"
        }
        // Words compared as bytes: Substring/String comparison pulls Unicode normalization data into the binary.
        let words = Array(command.utf8).split(separator: 0x20)
        if words.contains(where: { Array($0) == Array("ALL".utf8) }) { return "must not contain ALL" }
        if let first = words.first,
            first.indices.contains(where: { $0 + 1 < first.endIndex && first[$0] == 0x2E && first[$0 + 1] == 0x2E })
        {
            return "must not contain .."
        }
        return nil
    }

    static func rule(user: String, commands: [String], noPasswd: Bool) -> String {
        let list = commands.map { c in
            String(
                decoding: Array(Array(c.utf8).split(separator: 0x20).map(Array.init).joined(separator: [0x20])),
                as: UTF8.self
            )
        }.joined(separator: ", ")
        return "# Managed by micro-runner (sudoers.ensure); changes here are overwritten.\n"
            + "\(user) ALL=(ALL) \(noPasswd ? "NOPASSWD: " : "")\(list)\n"
    }

    package func run(_ context: CommandContext) throws(RunnerError) -> JSONValue {
        let p = try context.params(SudoersEnsureParams.self)
        let host = context.host
        if p.useSudo && host.effectiveUID != 0 {
            throw RunnerError(
                .unsupported,
                "sudoers.ensure: use_sudo is not supported by a non-root runner; start it with sudo"
            )
        }
        guard Self.validUser(p.user) else {
            throw .invalid(
                "sudoers.ensure: user \"\(p.user)\" is not a plain user name ([a-z_][a-z0-9_-]*, at most 32)"
            )
        }
        let state = p.state.rawValue.isEmpty ? .present : p.state
        guard state == .present || state == .absent else {
            throw .invalid("sudoers.ensure: state must be present or absent, not \"\(p.state)\"")
        }
        let path = host.sudoersDirectory + "/froyo-" + p.user
        // Resolved once, in a directory only root can write: visudo is given the candidate by path.
        let location = try PathResolver().locateInTrustedDirectory(path, what: "sudoers.ensure")
        let existing: stat?
        do { existing = try location.status() } catch { throw FileSystem.error(error.code, "sudoers.ensure", path) }

        if state == .absent {
            guard existing != nil else {
                return encodeResult(SudoersEnsureResult(changed: false, filePath: path, action: "already_absent"))
            }
            if !context.command.dryRun {
                do { try Sys.unlinkat(location.directory.fd, location.name) } catch {
                    throw FileSystem.error(error.code, "sudoers.ensure", path)
                }
                FileSystem.syncDirectory(location.directory)
            }
            return encodeResult(SudoersEnsureResult(changed: true, filePath: path, action: "removed"))
        }

        guard !p.commands.isEmpty else {
            throw .invalid("sudoers.ensure: commands is empty (state present needs at least one)")
        }
        for c in p.commands {
            if let why = Self.validCommand(c) ?? Self.commandFileProblem(c) {
                throw .invalid("sudoers.ensure: command \"\(c)\" \(why)")
            }
        }
        guard let visudo = host.which("visudo") else {
            throw RunnerError(.notFound, "sudoers.ensure: visudo is not installed (install sudo)")
        }
        let candidate = Array(Self.rule(user: p.user, commands: p.commands, noPasswd: p.noPasswd).utf8)
        if let existing, (existing.st_mode & S_IFMT) == S_IFREG, (existing.st_mode & 0o7777) == 0o440,
            existing.st_uid == 0, existing.st_gid == 0,
            let current = try? FileSystem.openRegular(location, what: "sudoers.ensure", expect: existing),
            FileSystem.contentEquals(current, candidate)
        {
            return encodeResult(SudoersEnsureResult(changed: false, filePath: path, action: "already_present"))
        }
        let action = existing == nil ? "created" : "updated"
        if context.command.dryRun {
            return encodeResult(SudoersEnsureResult(changed: true, filePath: path, action: action))
        }
        try install(candidate, at: location, visudo: visudo, context: context)
        return encodeResult(SudoersEnsureResult(changed: true, filePath: path, action: action))
    }

    /// Why a command's program is not a regular file (a directory such as `/usr/bin/` would let the user run
    /// everything in it), or `nil` when it is one.
    package static func commandFileProblem(_ command: String) -> String? {
        let program = String(decoding: Array(command.utf8).split(separator: 0x20).first ?? [], as: UTF8.self)
        if program.utf8.last == 0x2F { return "names a directory (sudo would allow every program in it)" }
        var st = stat()
        guard stat(program, &st) == 0 else { return "names \(program), which does not exist: \(errnoText(errno))" }
        guard (st.st_mode & S_IFMT) == S_IFREG else {
            return (st.st_mode & S_IFMT) == S_IFDIR
                ? "names a directory (sudo would allow every program in it)" : "does not name a regular file"
        }
        return trustProblem(program)
    }

    /// Why the program at `path` could be changed by someone other than root, or nil: it must be a regular file
    /// owned by root and writable by no group or other, and every directory on the way to it, along the path as
    /// written and along the path it resolves to, owned by root and not writable by others (sudo's own
    /// `secure_path` reasoning). A rule for a file its grantee can rewrite grants everything: the second review
    /// installed one for a script the grantee owned, edited it, and ran it as uid 0.
    package static func trustProblem(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return "cannot be resolved: \(errnoText(errno))" }
        let real = String(cString: resolved)
        free(resolved)
        var st = stat()
        guard stat(real, &st) == 0 else { return "cannot be read: \(errnoText(errno))" }
        if st.st_uid != 0 { return "is owned by uid \(st.st_uid), not root: its owner could change what it runs" }
        if st.st_mode & 0o022 != 0 {
            return
                "is writable by its group or by others (mode \(octal(st.st_mode & 0o7777))): they could change what it runs"
        }
        for walked in [path, real] {
            // Every directory above the file, "/" first, as the path names it (a symlinked directory is checked
            // as the symlink's own directory and, through `real`, as what it points to).
            let bytes = Array(walked.utf8)
            for end in bytes.indices where bytes[end] == 0x2F {
                let prefix = end == 0 ? "/" : String(decoding: bytes[..<end], as: UTF8.self)
                var d = stat()
                guard lstat(prefix, &d) == 0 else { return "cannot check \(prefix): \(errnoText(errno))" }
                if d.st_uid != 0 { return "lies under \(prefix), which is owned by uid \(d.st_uid), not root" }
                if (d.st_mode & S_IFMT) == S_IFDIR && d.st_mode & 0o002 != 0 {
                    return "lies under \(prefix), which others may write (mode \(octal(d.st_mode & 0o7777)))"
                }
            }
        }
        return nil
    }

    static func octal(_ mode: mode_t) -> String {
        let text = String(UInt32(mode), radix: 8)
        return String(repeating: "0", count: max(0, 4 - text.count)) + text
    }

    /// Validates `candidate` with `visudo -cf` in a file sudo ignores, then renames it into place.
    func install(
        _ candidate: [UInt8],
        at location: PathResolver.Location,
        visudo: String,
        context: CommandContext
    ) throws(RunnerError) {
        // ".froyo-x.mr-tmp-…": a name with a dot, which sudo's @includedir skips.
        let staged = try StagedFile(beside: location)
        do { try staged.append(candidate) } catch {
            throw FileSystem.error(error.code, "sudoers.ensure", location.path)
        }
        try staged.finish(mode: 0o440, uid: 0, gid: 0, ownerRequired: true)
        let temp = staged.pathForTools
        let check = try context.runTool(visudo, ["-c", "-f", temp])
        guard check.exitCode == 0 else {
            staged.discard()
            let why = String(decoding: check.stderr + check.stdout, as: UTF8.self).replacingTemp(
                temp,
                with: location.path
            )
            throw RunnerError(
                .invalidCommand,
                "sudoers.ensure: visudo rejected the rule, nothing was installed: \(why)",
                details: ["visudo_output": why]
            )
        }
        try staged.commit()
    }
}

extension String {
    /// The text with every occurrence of `temp` replaced by `path`, trimmed.
    fileprivate func replacingTemp(_ temp: String, with path: String) -> String {
        let hay = Array(utf8)
        let needle = Array(temp.utf8)
        var out: [UInt8] = []
        var i = 0
        while i < hay.count {
            if !needle.isEmpty && i + needle.count <= hay.count && Array(hay[i..<(i + needle.count)]) == needle {
                out += Array(path.utf8)
                i += needle.count
            } else {
                out.append(hay[i])
                i += 1
            }
        }
        // Byte checks, not Character.isWhitespace: that pulls Unicode property tables (~1.3 MB) into the runner.
        let space: (UInt8) -> Bool = { $0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09 }
        while let f = out.first, space(f) { out.removeFirst() }
        while let l = out.last, space(l) { out.removeLast() }
        return String(decoding: out, as: UTF8.self)
    }
}
