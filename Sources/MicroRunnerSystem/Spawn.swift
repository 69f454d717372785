import CMicroRunnerShims

/// Where one of a child's standard descriptors (0, 1, 2) comes from.
package enum ChildStream {
    /// `/dev/null`, opened for the child.
    case null
    /// The parent's own.
    case inherited
    /// This descriptor of the parent's, dup2'ed onto the standard one (the parent keeps and closes its own).
    case descriptor(Int32)
    /// A new close-on-exec pipe: the child gets one end (the read end for stdin, the write end for stdout and
    /// stderr), the parent the other in `SpawnedProcess`, its to close. The child's end is closed here once the
    /// child has its copy, so that EOF arrives when the child (and its children) are done with it.
    case pipe
}

/// A started child: its pid and the parent's end of each pipe the request asked for (`ChildStream.pipe`).
package struct SpawnedProcess {
    package var pid: pid_t
    /// The write end of the child's standard input.
    package var standardInput: Int32?
    /// The read end of the child's standard output.
    package var standardOutput: Int32?
    /// The read end of the child's standard error.
    package var standardError: Int32?
}

/// One `posix_spawn`: what to run and with which descriptors, environment, directory and signals.
package struct SpawnRequest {
    /// The executable's path (no PATH search: callers resolve it first, so an error names what was tried).
    package var executable: String
    /// The whole argv, argv[0] included.
    package var arguments: [String]
    /// Set on top of the inherited environment (none: the parent's own block is passed as it is).
    package var environment: [String: String] = [:]
    package var standardInput = ChildStream.null
    package var standardOutput = ChildStream.null
    package var standardError = ChildStream.null
    /// Where the child starts; empty: the parent's directory.
    package var workingDirectory = ""
    /// A process group of its own (pgid = pid), so the whole tree can be signalled.
    package var newProcessGroup = false
    /// Signals set back to their default action in the child. Ignored signals survive exec: a parent that
    /// ignores SIGPIPE (the runner, the client) would hand that on, and `yes | head` would never end.
    package var defaultSignals: [Int32] = [SIGPIPE]

    package init(executable: String, arguments: [String]) {
        self.executable = executable
        self.arguments = arguments
    }
}

/// Why a spawn failed: the errno value, and whether the working directory was the cause.
package struct SpawnError: Error {
    package var code: Int32
    /// The libc cannot set a working directory (no `posix_spawn_file_actions_addchdir_np`): never run the
    /// command somewhere else instead.
    package var workingDirectoryUnsupported: Bool
    /// A pipe could not be made (EMFILE, ENFILE): nothing was started.
    package var creatingPipes = false
}

/// The pipes one spawn makes: the parent's ends (returned) and the child's (closed after the spawn). Three
/// optionals and three integers, not arrays: this runs on every exec.
private struct SpawnPipes {
    var input: Int32?, output: Int32?, error: Int32?
    var childInput: Int32 = -1, childOutput: Int32 = -1, childError: Int32 = -1

    mutating func open(for request: SpawnRequest) throws(SpawnError) {
        if case .pipe = request.standardInput {
            let p = try Self.make()
            (childInput, input) = (p.read, p.write)
        }
        if case .pipe = request.standardOutput {
            let p = try Self.make()
            (output, childOutput) = (p.read, p.write)
        }
        if case .pipe = request.standardError {
            let p = try Self.make()
            (error, childError) = (p.read, p.write)
        }
    }

    private static func make() throws(SpawnError) -> (read: Int32, write: Int32) {
        var fds: [Int32] = [-1, -1]
        guard mr_pipe_cloexec(&fds) == 0 else {
            throw SpawnError(code: errno, workingDirectoryUnsupported: false, creatingPipes: true)
        }
        return (fds[0], fds[1])
    }

    mutating func closeChildEnds() {
        if childInput >= 0 { Sys.close(childInput) }
        if childOutput >= 0 { Sys.close(childOutput) }
        if childError >= 0 { Sys.close(childError) }
        (childInput, childOutput, childError) = (-1, -1, -1)
    }

    mutating func closeParentEnds() {
        if let fd = input { Sys.close(fd) }
        if let fd = output { Sys.close(fd) }
        if let fd = error { Sys.close(fd) }
        (input, output, error) = (nil, nil, nil)
    }
}

/// The one place the runner, the client and the benchmark start processes. The child gets an empty signal
/// mask (the runner blocks its termination signals; children must not inherit that).
package enum Spawn {
    /// Starts `request`, trying again for up to 100 ms while exec fails with ETXTBSY: a just-written executable
    /// (the client's runner copy) is still open for writing in a child another thread forked before that child
    /// exec'd; it clears within milliseconds.
    package static func startRetryingBusyText(_ request: SpawnRequest) throws(SpawnError) -> SpawnedProcess {
        var attempts = 0
        while true {
            do {
                return try start(request)
            } catch  where error.code == ETXTBSY && attempts < 50 {
                attempts += 1
                usleep(2000)
            }
        }
    }

    /// Starts `request`, making the pipes it asks for.
    /// - Returns: the child's pid and the parent's pipe ends; on a throw nothing is left open.
    package static func start(_ request: SpawnRequest) throws(SpawnError) -> SpawnedProcess {
        var pipes = SpawnPipes()
        var started = false
        defer {
            pipes.closeChildEnds()
            if !started { pipes.closeParentEnds() }
        }
        try pipes.open(for: request)
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        // Three calls, not a loop over an array: this runs on every exec, and the array was a heap allocation.
        func add(_ stream: ChildStream, as fd: Int32, pipeEnd: Int32) {
            switch stream {
            case .null: posix_spawn_file_actions_addopen(&actions, fd, "/dev/null", fd == 0 ? O_RDONLY : O_WRONLY, 0)
            case .inherited: break
            case .descriptor(let source): posix_spawn_file_actions_adddup2(&actions, source, fd)
            case .pipe: posix_spawn_file_actions_adddup2(&actions, pipeEnd, fd)
            }
        }
        add(request.standardInput, as: 0, pipeEnd: pipes.childInput)
        add(request.standardOutput, as: 1, pipeEnd: pipes.childOutput)
        add(request.standardError, as: 2, pipeEnd: pipes.childError)
        if !request.workingDirectory.isEmpty {
            let rc = mr_spawn_addchdir(&actions, request.workingDirectory)
            if rc != 0 { throw SpawnError(code: rc, workingDirectoryUnsupported: true) }
        }

        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        var flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF
        if request.newProcessGroup {
            flags |= POSIX_SPAWN_SETPGROUP
            posix_spawnattr_setpgroup(&attr, 0)
        }
        posix_spawnattr_setflags(&attr, Int16(flags))
        var emptyMask = sigset_t()
        sigemptyset(&emptyMask)
        posix_spawnattr_setsigmask(&attr, &emptyMask)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for s in request.defaultSignals { sigaddset(&defaults, s) }
        posix_spawnattr_setsigdefault(&attr, &defaults)

        var pid: pid_t = 0
        let rc = withCStringArray(request.arguments) { argv in
            withEnvironment(overriding: request.environment) { envp in
                posix_spawn(&pid, request.executable, &actions, &attr, argv, envp)
            }
        }
        guard rc == 0 else { throw SpawnError(code: rc, workingDirectoryUnsupported: false) }
        started = true
        return SpawnedProcess(
            pid: pid,
            standardInput: pipes.input,
            standardOutput: pipes.output,
            standardError: pipes.error
        )
    }

    /// Calls `body` with the process's environment block, `overrides` applied.
    ///
    /// Hot path: with no overrides the process's own `environ` is passed as it is; otherwise inherited
    /// entries are passed by pointer (compared as bytes, never converted to Swift strings) and only the
    /// overrides are allocated.
    package static func withEnvironment<R>(
        overriding overrides: [String: String],
        _ body: (UnsafePointer<UnsafeMutablePointer<CChar>?>) -> R
    ) -> R {
        let inherited = mr_environ()
        if overrides.isEmpty, let inherited {
            return inherited.withMemoryRebound(to: UnsafeMutablePointer<CChar>?.self, capacity: 1) { body($0) }
        }
        let keys = overrides.keys.map { Array($0.utf8) }
        var pointers: [UnsafeMutablePointer<CChar>?] = []
        if let inherited {
            var i = 0
            while let entry = inherited[i] {
                i += 1
                let length = strlen(entry)
                let keyLength = strchr(entry, 0x3D).map { $0 - entry } ?? length
                let overridden = keys.contains { key in
                    key.count == keyLength
                        && key.withUnsafeBufferPointer { memcmp($0.baseAddress!, entry, keyLength) == 0 }
                }
                if !overridden { pointers.append(UnsafeMutablePointer(mutating: entry)) }
            }
        }
        let added = overrides.sorted { $0.key < $1.key }.map { strdup($0.key + "=" + $0.value) }
        defer { for p in added { free(p) } }
        pointers += added
        pointers.append(nil)
        return pointers.withUnsafeBufferPointer { body($0.baseAddress!) }
    }

    /// Calls `body` with a NULL-terminated C array of the strings.
    package static func withCStringArray<R>(
        _ strings: [String],
        _ body: (UnsafePointer<UnsafeMutablePointer<CChar>?>) -> R
    ) -> R {
        var pointers: [UnsafeMutablePointer<CChar>?] = strings.map { strdup($0) }
        pointers.append(nil)
        defer { for p in pointers { free(p) } }
        return pointers.withUnsafeBufferPointer { body($0.baseAddress!) }
    }
}
