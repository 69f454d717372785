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
        guard path.utf8.first == 0x2F else { throw .invalid("\(what): path \"\(path)\" must be absolute") }
        var components = Self.components(path)
        let start: Descriptor
        var base: [String]
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
            base = []
        }
        guard !components.isEmpty else { throw .invalid("\(what): \(path): is a directory") }

        // The walk: `stack` holds the directories entered (their names in `names`); `pending` the components
        // left, last one first.
        var stack: [Descriptor] = [start]
        var names: [String] = []
        var pending = Array(components.reversed())
        var links = 0
        func dirPath() -> String {
            let all = base + names
            return all.isEmpty ? "/" : "/" + all.joined(separator: "/")
        }
        while let component = pending.popLast() {
            if component == ".." {
                if stack.count > 1 {
                    stack.removeLast()
                    names.removeLast()
                } else if root != nil {
                    throw outside(path, what)
                }
                continue
            }
            let top = stack[stack.count - 1].fd
            // The owner of `component` when it is a symlink to follow; else the walk moved on or returned.
            let symlinkOwner: uid_t
            if pending.isEmpty {
                // The last component: not opened here (the caller opens it with O_NOFOLLOW), but a symlink is
                // followed to what it names.
                let st: stat
                do {
                    st = try Sys.lstatat(top, component)
                } catch {
                    if error.code == ENOENT {
                        return Location(directory: stack[stack.count - 1], name: component, directoryPath: dirPath())
                    }
                    throw FileSystem.error(error.code, what, path)
                }
                guard (st.st_mode & S_IFMT) == S_IFLNK else {
                    return Location(directory: stack[stack.count - 1], name: component, directoryPath: dirPath())
                }
                symlinkOwner = st.st_uid
            } else {
                do {
                    let fd = try Sys.openat(top, component, O_PATH | O_DIRECTORY | O_NOFOLLOW)
                    stack.append(Descriptor(fd))
                    names.append(component)
                    continue
                } catch {
                    switch error.code {
                    case ENOENT where createParents:
                        do {
                            try Sys.mkdirat(top, component, 0o755)
                        } catch {
                            if error.code != EEXIST {
                                throw FileSystem.error(error.code, "\(what): create directory", path)
                            }
                        }
                        pending.append(component)  // open it (O_NOFOLLOW) on the next turn: whatever is there now
                        continue
                    case ENOENT:
                        throw RunnerError(
                            .notFound,
                            "\(what): \(path): directory \(dirPath())/\(component) does not exist (create it first, or set create: true)"
                        )
                    case ELOOP, ENOTDIR:
                        // Either a symlink (followed by this walk) or not a directory.
                        let st: stat
                        do { st = try Sys.lstatat(top, component) } catch {
                            throw FileSystem.error(error.code, what, path)
                        }
                        guard (st.st_mode & S_IFMT) == S_IFLNK else {
                            throw RunnerError(
                                .notFound,
                                "\(what): \(path): \(dirPath())/\(component) is not a directory"
                            )
                        }
                        symlinkOwner = st.st_uid
                    default:
                        throw FileSystem.error(error.code, what, path)
                    }
                }
            }
            try follow(
                top,
                component,
                owner: symlinkOwner,
                into: &pending,
                stack: &stack,
                names: &names,
                links: &links,
                path,
                what
            )
        }
        // Only `..` components were left: the path names a directory.
        throw .invalid("\(what): \(path): is a directory")
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
    private func follow(
        _ dir: Int32,
        _ name: String,
        owner: uid_t,
        into pending: inout [String],
        stack: inout [Descriptor],
        names: inout [String],
        links: inout Int,
        _ path: String,
        _ what: String
    ) throws(RunnerError) {
        let me = geteuid()
        guard owner == 0 || owner == me else {
            throw RunnerError(
                .permissionDenied,
                "\(what): \(path): the symlink \(name) belongs to uid \(owner); only symlinks of root or uid \(me) are followed"
            )
        }
        links += 1
        guard links <= Self.maxSymlinks else {
            throw RunnerError(.invalidCommand, "\(what): \(path): too many levels of symbolic links")
        }
        let target: String
        do {
            target = try Sys.readlinkat(dir, name)
        } catch {
            // EINVAL: no longer a symlink (replaced between the lstat and here).
            guard error.code == EINVAL || error.code == ENOENT else { throw FileSystem.error(error.code, what, path) }
            throw RunnerError(.conflict, "\(what): \(path): changed while it was being resolved", retryable: true)
        }
        if target.utf8.first == 0x2F {
            // An absolute target restarts at the top: the file system's root, or outside a confinement root.
            guard root == nil else { throw outside(path, what, hint: "an absolute symlink leads out of it") }
            stack.removeSubrange(1...)
            names.removeAll()
        }
        pending.append(contentsOf: Self.components(target).reversed())
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
