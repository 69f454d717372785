import CMicroRunnerShims
import MicroRunnerHandlers
import MicroRunnerProtocol
import MicroRunnerSystem

/// `micro-runner --become sudo USER PASSWORD-LINE ARGS...`: started as the login user, restarts this same
/// executable as `USER` through sudo, so every command of the session runs with that identity.
///
/// Why the runner does it and not the bootstrap shell: `Defaults requiretty` wants a controlling terminal,
/// which a POSIX shell cannot give itself, and `script(1)` would put the protocol itself through a pty's line
/// discipline. Here a fresh pty becomes the controlling terminal of a new session while stdin and stdout stay
/// the protocol pipes, untouched (measured in shared/BECOME-FACTS.md: sudo 1.9.13, requiretty, use_pty).
///
/// The password, when there is one, is the first line on stdin after the runner's own bytes. It is read one
/// byte at a time (nothing after its newline is consumed), handed to `sudo -S -v` through a pipe that holds
/// exactly that line and then ends (one attempt: sudo reads three lines as three attempts when more wait), and
/// the final `sudo -n` runs on sudo's fresh timestamp. It never reaches argv, the environment or a file, and
/// the runner under sudo never sees it.
///
/// Process tree: this process (the login user's, what the bootstrap shell waits for) keeps the pty's master
/// open and sends SIGTERM/SIGINT/SIGHUP on to its child, the session leader, which is `sudo`, which relays them
/// to the runner. It reports its pid on stderr (`micro-runner-become-pid: N`) for the controller's tidy-up,
/// which cannot signal a runner of another user but can signal this process.
package enum BecomeLauncher {
    /// What `--become` asks for.
    package struct Request: Equatable {
        /// Only `sudo` (su and doas read passwords from a terminal only, with no `-S`; see the README).
        package var method: String
        /// The target user: a name, or `#UID`.
        package var user: String
        /// Whether a password line follows the runner on stdin.
        package var readsPassword: Bool
        /// The runner's own flags.
        package var runnerArguments: [String]
    }

    /// Exit statuses before the runner starts, as the controller's messages tell them apart.
    package enum Status {
        /// Usage error (a bad method or user).
        package static let usage: Int32 = 2
        /// sudo refused the password (or the user): one attempt was used.
        package static let refused: Int32 = 96
        /// No sudo on this host.
        package static let missing: Int32 = 97
        /// The launcher itself failed (pty, fork, no password line).
        package static let failed: Int32 = 98
    }

    /// The longest password line read (sudo's own limit is lower: it reads at most 255 bytes).
    static let maxPasswordBytes = 1024

    /// Parses `--become METHOD USER yes|no ARGS...` (the whole argv, argv[0] first).
    package static func parse(_ arguments: [String]) -> Result<Request, RunnerMain.ExitRequest> {
        guard arguments.count >= 5, arguments[1] == "--become" else {
            return .failure(usage("--become needs METHOD USER yes|no"))
        }
        let method = arguments[2]
        guard method == "sudo" else {
            return .failure(
                usage(
                    "become method \(method) is not supported (sudo is; su and doas read passwords from a terminal only)"
                )
            )
        }
        let user = arguments[3]
        guard BecomeUser.isValid(user) else {
            return .failure(usage("become user must be a user name or #UID (letters, digits, . _ -), not \(user)"))
        }
        guard arguments[4] == "yes" || arguments[4] == "no" else {
            return .failure(usage("--become's password flag is yes or no"))
        }
        return .success(
            Request(
                method: method,
                user: user,
                readsPassword: arguments[4] == "yes",
                runnerArguments: Array(arguments.dropFirst(5))
            )
        )
    }

    /// The final command: sudo, never prompting, running this executable as `user` with the runner's flags.
    package static func sudoArguments(sudo: String, user: String, runner: String, arguments: [String]) -> [String] {
        [sudo, "-n", "-u", user, "--", runner] + arguments
    }

    /// Runs the launcher; never returns.
    package static func main(_ arguments: [String]) -> Never {
        let request: Request
        switch parse(arguments) {
        case .success(let r): request = r
        case .failure(let e): fail(e.output, status: e.code)
        }
        let path = (getenv("PATH").map { String(cString: $0) } ?? "") + ":/usr/local/bin:/usr/bin:/bin"
        guard let sudo = ProcessRunner.resolveExecutable("sudo", path: path) else {
            fail(
                "sudo is not installed on this host (become method sudo, user \(request.user))",
                status: Status.missing
            )
        }
        guard let runner = RunnerMain.executablePath() else {
            fail("cannot find this runner's own executable (/proc/self/exe)", status: Status.failed)
        }
        var password: [UInt8] = []
        if request.readsPassword {
            guard let line = readPasswordLine() else {
                fail("no password line arrived on stdin", status: Status.failed)
            }
            password = line
        }
        // Another user than root must be able to reach and run the executable: its directory is the login
        // user's (0700 by the bootstrap's umask). 0711 lets others through without listing it; the binary is
        // the public runner, writable by its owner only.
        if !BecomeUser.isRoot(request.user), let slash = runner.utf8.lastIndex(of: UInt8(ascii: "/")) {
            let directory = String(runner[..<slash])
            if chmod(directory, 0o711) != 0 || chmod(runner, 0o755) != 0 {
                fail("cannot open \(directory) to user \(request.user): \(errnoText(errno))", status: Status.failed)
            }
        }
        var slave = [CChar](repeating: 0, count: 128)
        let master = mr_open_pty(&slave, slave.count)
        var passwordPipe: [Int32] = [-1, -1]
        if request.readsPassword {
            // The line and its end, written before sudo starts: a pipe holds 64 KiB, the line at most 1 KiB.
            guard mr_pipe_cloexec(&passwordPipe) == 0 else {
                fail("cannot make a pipe: \(errnoText(errno))", status: Status.failed)
            }
            password.append(0x0A)
            _ = try? Sys.writeAll(passwordPipe[1], password)
            for i in password.indices { password[i] = 0 }
            Sys.close(passwordPipe[1])
        }
        announce("micro-runner-become-pid: \(getpid())\n")
        let child = fork()
        if child < 0 { fail("fork failed: \(errnoText(errno))", status: Status.failed) }
        if child == 0 {
            becomeInNewSession(
                request: request,
                sudo: sudo,
                runner: runner,
                slave: master >= 0 ? slave.withUnsafeBufferPointer { String(cString: $0.baseAddress!) } : nil,
                master: master,
                passwordInput: passwordPipe[0]
            )
        }
        if passwordPipe[0] >= 0 { Sys.close(passwordPipe[0]) }
        _ = mr_forward_stop_signals(child)
        let status = (try? Sys.waitForExit(child)) ?? Status.failed
        // The master stays open until here: closing it hangs up the session's terminal (SIGHUP to sudo).
        if master >= 0 { Sys.close(master) }
        exit(status)
    }

    /// In the forked child: a new session with the pty as its controlling terminal, the password checked once
    /// with `sudo -S -v`, then `sudo -n` replaces this process.
    static func becomeInNewSession(
        request: Request,
        sudo: String,
        runner: String,
        slave: String?,
        master: Int32,
        passwordInput: Int32
    ) -> Never {
        _ = setsid()
        // Without a pty (none left, or /dev/pts missing) sudo still works where requiretty is not set.
        if let slave { _ = mr_acquire_controlling_tty(slave) }
        if master >= 0 { Sys.close(master) }
        if passwordInput >= 0 {
            var check = SpawnRequest(executable: sudo, arguments: [sudo, "-S", "-p", "", "-u", request.user, "-v"])
            check.standardInput = .descriptor(passwordInput)
            check.standardOutput = .descriptor(2)  // never onto the protocol channel
            check.standardError = .inherited
            let pid: pid_t
            do throws(SpawnError) {
                pid = try Spawn.start(check).pid
            } catch {
                fail("cannot start sudo: \(errnoText(error.code))", status: Status.failed)
            }
            let status = (try? Sys.waitForExit(pid)) ?? Status.failed
            if status != 0 {
                fail(
                    "sudo did not accept the login user's password to become \(request.user) (one attempt used; sudo exit \(status))",
                    status: Status.refused
                )
            }
            Sys.close(passwordInput)
        }
        let argv = sudoArguments(sudo: sudo, user: request.user, runner: runner, arguments: request.runnerArguments)
        Spawn.withCStringArray(argv) { pointers in
            _ = execv(sudo, pointers)
        }
        fail("cannot run \(sudo): \(errnoText(errno))", status: Status.failed)
    }

    /// The first line of stdin without its newline, read a byte at a time so nothing after it is taken from
    /// the protocol; nil at end of input or past `maxPasswordBytes`.
    static func readPasswordLine() -> [UInt8]? {
        var line: [UInt8] = []
        var byte: UInt8 = 0
        while true {
            let n = withUnsafeMutableBytes(of: &byte) { (try? Sys.read(0, into: $0)) ?? -1 }
            if n <= 0 { return nil }
            if byte == 0x0A { return line }
            guard line.count < maxPasswordBytes else { return nil }
            line.append(byte)
        }
    }

    static func announce(_ text: String) {
        var copy = text
        copy.withUTF8 { _ = writeAll(2, UnsafeRawBufferPointer($0)) }
    }

    /// One line on stderr with the prefix the controller looks for, then exit.
    static func fail(_ message: String, status: Int32) -> Never {
        let text = message.hasPrefix("micro-runner") ? message : "micro-runner-become: \(message)\n"
        announce(text)
        exit(status)
    }

    static func usage(_ message: String) -> RunnerMain.ExitRequest {
        RunnerMain.ExitRequest(code: Status.usage, output: "micro-runner-become: \(message)\n")
    }
}
