import MicroRunnerProtocol
import MicroRunnerSystem

/// An open file descriptor, closed when the last reference goes away. A class (not `~Copyable`) so it can
/// sit in optionals, tuples and registries; immutable, so it is `Sendable`.
package final class Descriptor: @unchecked Sendable {
    /// The descriptor number.
    package let fd: Int32

    package init(_ fd: Int32) { self.fd = fd }

    deinit { Sys.close(fd) }

    /// fstat(2) of this descriptor.
    package func status() throws(SystemError) -> stat { try Sys.fstat(fd) }
}

/// Resolves a path once, holding a directory descriptor at every step, so nothing checked is ever looked up
/// again by name.
///
/// Every component is opened with `openat(..., O_NOFOLLOW)` relative to the directory before it; a symlink is
/// read with `readlinkat` and its target spliced into the walk by this code, never by the kernel (and only when
/// it belongs to root or to the runner's user); `..` pops the
/// stack of directories already held. Confined to a root (`--root-dir`), the walk starts at the root's
/// descriptor, and `..` above it or an absolute symlink is refused: a process that flips symlinks inside the
/// root while the runner works can make a command fail, never reach outside. (`openat2(RESOLVE_BENEATH)` gives
/// the same guarantee in the kernel; this walk is used on every kernel so there is one code path to prove.)
package struct PathResolver: Sendable {
    /// The confinement root (a resolved absolute path) and its descriptor, or `nil` for the whole file system.
    package let root: (path: String, dir: Descriptor)?

    /// Symlinks followed in one resolution, as the kernel's limit (ELOOP).
    static let maxSymlinks = 40

    /// An unconfined resolver.
    package init() { root = nil }

    /// A resolver confined to `rootPath`, which must be an existing directory (resolved once, here).
    package init(confinedTo rootPath: String) throws(SystemError) {
        let fd = try Sys.openat(AT_FDCWD, rootPath, O_PATH | O_DIRECTORY)
        root = (rootPath, Descriptor(fd))
    }

    /// Where a path leads: the directory that holds its last component, open, and that component's name.
    package struct Location: Sendable {
        /// The directory holding `name` (an `O_PATH` descriptor: usable with every `*at` call).
        package var directory: Descriptor
        /// The last component (never a symlink when it was resolved; it may not exist yet).
        package var name: String
        /// The directory's path as walked (for messages and for tools that need a path in a directory the runner
        /// trusts, e.g. visudo). Never used to reach the file again.
        package var directoryPath: String

        /// A location in an already-open directory the caller trusts (e.g. the state directory).
        package init(directory: Descriptor, name: String, directoryPath: String) {
            self.directory = directory
            self.name = name
            self.directoryPath = directoryPath
        }

        /// `directoryPath/name`.
        package var path: String { directoryPath == "/" ? "/" + name : directoryPath + "/" + name }

        /// lstat of the last component: `nil` when it does not exist.
        package func status() throws(SystemError) -> stat? {
            do {
                return try Sys.lstatat(directory.fd, name)
            } catch {
                if error.code == ENOENT { return nil }
                throw error
            }
        }
    }

    /// Resolves `path` (absolute) to its parent directory and last component, following symlinks anywhere in
    /// it (the last component too) as the kernel would, but each one once and under this resolver's root.
    /// - Parameters:
    ///   - what: the command, for messages (`file.write`).
    ///   - createParents: create missing directories on the way (mode 0755, as the Go runner does).
    /// - Throws: `RunnerError`: `PERMISSION_DENIED` outside the root, `NOT_FOUND` for a missing directory.
    package func locate(_ path: String, what: String, createParents: Bool = false) throws(RunnerError) -> Location {
        var walk = try startWalk(path, what)
        while let component = walk.pending.popLast() {
            if component == ".." {
                if !walk.leave() && root != nil { throw outside(path, what) }
                continue
            }
            // The owner of `component` when it is a symlink to follow; else the walk moved on or returned.
            let symlinkOwner: uid_t
            if walk.pending.isEmpty {
                // The last component: not opened here (the caller opens it with O_NOFOLLOW), but a symlink is
                // followed to what it names.
                guard let owner = try walk.symlinkOwner(ofLast: component) else { return walk.location(component) }
                symlinkOwner = owner
            } else {
                guard let owner = try walk.enter(component, createParents: createParents) else { continue }
                symlinkOwner = owner
            }
            try follow(component, owner: symlinkOwner, in: &walk)
        }
        // Only `..` components were left: the path names a directory.
        throw .invalid("\(what): \(path): is a directory")
    }

    /// A walk at its start: the root's descriptor (confined) or `/`'s, with the path's components to go.
    private func startWalk(_ path: String, _ what: String) throws(RunnerError) -> Walk {
        guard path.utf8.first == 0x2F else { throw .invalid("\(what): path \"\(path)\" must be absolute") }
        var components = Self.components(path)
        let start: Descriptor
        var base: [String] = []
        if let root {
            let rootComponents = Self.components(root.path)
            guard components.count >= rootComponents.count,
                Array(components[0..<rootComponents.count]) == rootComponents
            else { throw outside(path, what) }
            components.removeFirst(rootComponents.count)
            start = root.dir
            base = rootComponents
        } else {
            do {
                start = Descriptor(try Sys.openat(AT_FDCWD, "/", O_PATH | O_DIRECTORY))
            } catch {
                throw FileSystem.error(error.code, what, "/")
            }
        }
        guard !components.isEmpty else { throw .invalid("\(what): \(path): is a directory") }
        return Walk(path: path, what: what, base: base, stack: [start], pending: Array(components.reversed()))
    }

    /// One resolution in progress: the directories entered (held open, their names beside them) and the
    /// components left, last one first.
    private struct Walk {
        let path: String
        let what: String
        /// The confinement root's components (empty unconfined): where `stack[0]` is.
        let base: [String]
        var stack: [Descriptor]
        var names: [String] = []
        var pending: [String]
        var links = 0

        init(path: String, what: String, base: [String], stack: [Descriptor], pending: [String]) {
            (self.path, self.what, self.base, self.stack, self.pending) = (path, what, base, stack, pending)
        }

        /// The directory the walk is in.
        var top: Int32 { stack[stack.count - 1].fd }

        /// The path of the directory the walk is in, as walked.
        var directoryPath: String {
            let all = base + names
            return all.isEmpty ? "/" : "/" + all.joined(separator: "/")
        }

        /// `name` in the directory the walk is in.
        func location(_ name: String) -> Location {
            Location(directory: stack[stack.count - 1], name: name, directoryPath: directoryPath)
        }

        /// `..`: back to the directory before; false at the start (where `/..` is `/`, and a root's is outside).
        mutating func leave() -> Bool {
            guard stack.count > 1 else { return false }
            stack.removeLast()
            names.removeLast()
            return true
        }

        /// Goes back to the start, for an absolute symlink.
        mutating func restart() {
            stack.removeSubrange(1...)
            names.removeAll()
        }

        /// The owner of the last component when it is a symlink; `nil` when it is anything else or absent (the
        /// caller opens it, or creates it, by name in `top`).
        func symlinkOwner(ofLast name: String) throws(RunnerError) -> uid_t? {
            let st: stat
            do {
                st = try Sys.lstatat(top, name)
            } catch {
                if error.code == ENOENT { return nil }
                throw FileSystem.error(error.code, what, path)
            }
            return (st.st_mode & S_IFMT) == S_IFLNK ? st.st_uid : nil
        }

        /// Enters the directory `name` (`O_NOFOLLOW`), creating it first when asked: `nil` when the walk moved on
        /// (or will open what was created on its next turn), the symlink's owner when `name` is one to follow.
        mutating func enter(_ name: String, createParents: Bool) throws(RunnerError) -> uid_t? {
            do {
                stack.append(Descriptor(try Sys.openat(top, name, O_PATH | O_DIRECTORY | O_NOFOLLOW)))
                names.append(name)
                return nil
            } catch {
                switch error.code {
                case ENOENT where createParents:
                    do {
                        try Sys.mkdirat(top, name, 0o755)
                    } catch {
                        if error.code != EEXIST {
                            throw FileSystem.error(error.code, "\(what): create directory", path)
                        }
                    }
                    pending.append(name)  // open it (O_NOFOLLOW) on the next turn: whatever is there now
                    return nil
                case ENOENT:
                    throw RunnerError(
                        .notFound,
                        "\(what): \(path): directory \(directoryPath)/\(name) does not exist (create it first, or set create: true)"
                    )
                case ELOOP, ENOTDIR:
                    // Either a symlink (followed by this walk) or not a directory.
                    let st: stat
                    do { st = try Sys.lstatat(top, name) } catch { throw FileSystem.error(error.code, what, path) }
                    guard (st.st_mode & S_IFMT) == S_IFLNK else {
                        throw RunnerError(.notFound, "\(what): \(path): \(directoryPath)/\(name) is not a directory")
                    }
                    return st.st_uid
                default:
                    throw FileSystem.error(error.code, what, path)
                }
            }
        }
    }

    /// `locate`, for a file a helper tool will read by path (visudo, sshd -t): its directory must belong to root
    /// or the runner's user and be writable by no one else, or a neighbour could swap what the tool reads.
    /// - Throws: `RunnerError` `PERMISSION_DENIED` for any other directory.
    package func locateInTrustedDirectory(_ path: String, what: String) throws(RunnerError) -> Location {
        let location = try locate(path, what: what)
        guard let dir = try? Sys.fstat(location.directory.fd), dir.st_uid == 0 || dir.st_uid == geteuid(),
            (dir.st_mode & 0o022) == 0
        else {
            throw RunnerError(
                .permissionDenied,
                "\(what): \(location.directoryPath) is writable by someone other than root; refusing to stage files there"
            )
        }
        return location
    }

    /// Reads the symlink `name` in `dir` and splices its target into the walk. Only symlinks owned by root or by
    /// the runner's user are followed: one made by another user (a neighbour who can write in the directory)
    /// could point anywhere, and the kernel's own check (`fs.protected_symlinks`) covers only sticky
    /// directories and may be off.
    private func follow(_ name: String, owner: uid_t, in walk: inout Walk) throws(RunnerError) {
        let (path, what) = (walk.path, walk.what)
        let me = geteuid()
        guard owner == 0 || owner == me else {
            throw RunnerError(
                .permissionDenied,
                "\(what): \(path): the symlink \(name) belongs to uid \(owner); only symlinks of root or uid \(me) are followed"
            )
        }
        walk.links += 1
        guard walk.links <= Self.maxSymlinks else {
            throw RunnerError(.invalidCommand, "\(what): \(path): too many levels of symbolic links")
        }
        let target: String
        do {
            target = try Sys.readlinkat(walk.top, name)
        } catch {
            // EINVAL: no longer a symlink (replaced between the lstat and here).
            guard error.code == EINVAL || error.code == ENOENT else { throw FileSystem.error(error.code, what, path) }
            throw RunnerError(.conflict, "\(what): \(path): changed while it was being resolved", retryable: true)
        }
        if target.utf8.first == 0x2F {
            // An absolute target restarts at the top: the file system's root, or outside a confinement root.
            guard root == nil else { throw outside(path, what, hint: "an absolute symlink leads out of it") }
            walk.restart()
        }
        walk.pending.append(contentsOf: Self.components(target).reversed())
    }

    private func outside(_ path: String, _ what: String, hint: String = "") -> RunnerError {
        RunnerError(
            .permissionDenied,
            "\(what): \(path) is outside --root-dir \(root?.path ?? "/")" + (hint.isEmpty ? "" : " (\(hint))")
        )
    }

    /// The path's components without empty ones and `.`.
    static func components(_ path: String) -> [String] {
        path.utf8.split(separator: 0x2F).compactMap { part -> String? in
            if part.count == 1 && part.first == 0x2E { return nil }
            return String(decoding: part, as: UTF8.self)
        }
    }
}
