import Foundation
import Logging
import Synchronization

/// How the runner is put in place and started on a host that is reached by running one command there with plain
/// pipes: ssh (`SSHTransport`) or a container runtime's exec (`ContainerTransport`). The one copy of the
/// bootstrap script, the choice of runner by architecture, the upload, the failure before READY and the tidy-up
/// after a session that died.
struct RemoteBootstrap: Sendable {
    /// What reports call the host.
    let name: String
    /// What the host's architecture is remembered under for the life of the process (the host as written).
    let key: String
    /// Runners by architecture, or nil: the runner passed to `start` for every host.
    let runners: RunnerSet?
    /// `DIR` for the script; nil: `$TMPDIR` or `/tmp` with the noexec fallback.
    let remoteDirectory: String?
    /// Whom the runner becomes.
    let become: Become?
    /// Where the start is logged.
    let logger: Logger?
    /// Starts `argv` on the host, stdin/stdout/stderr plain pipes (never a pty).
    let launch: @Sendable (_ argv: [String]) throws -> ChildProcess
    /// The error for a start that ended before the runner could be sent, from what the launcher wrote on stderr.
    let failure: @Sendable (_ stderr: String) -> ClientError
    /// With a kept connection (`SSHOptions.Sharing.persistent`): how long the host keeps the runner after its
    /// last use, and the file (in the connection's private directory) that remembers where it is. See `Kept`.
    var kept: Kept? = nil

    /// Each host's architecture once a bootstrap has reported it (by `key`).
    private static let architectures = Mutex<[String: String]>([:])

    /// The directories each host (by `key`) keeps a runner in for this process's sessions: an interrupted run
    /// removes them with the kept connection (`SSHTransport.closeMaster(includingPersistent:)`).
    private static let keptDirectories = Mutex<[String: Set<String>]>([:])

    /// The kept directories this process's sessions used on the host `key`, forgotten as they are returned.
    static func takeKeptDirectories(_ key: String) -> [String] {
        keptDirectories.withLock { $0.removeValue(forKey: key).map { Array($0).sorted() } ?? [] }
    }

    /// Reads the gzip'd runner from stdin into a fresh private directory (decompressing while the bytes
    /// arrive), checks the SHA-256 of the decompressed runner against the runner's own (so what runs is
    /// exactly what was sent, whatever gzip did), runs it on the rest of stdin, and removes the directory when
    /// it exits.
    ///
    /// Arguments: `DIR SIZE SHA256 KEEP RUNNER-ARGS...`. An empty `DIR` means `$TMPDIR` or `/tmp`, falling back to
    /// `~/.cache/micro-runner` when that is mounted noexec (`test -x` fails there: no extra program runs to
    /// find out). Given `-` instead of `SIZE`, it first reports `uname -m` on stderr and reads `SIZE SHA256`
    /// from stdin (the client then sends the runner for that architecture over the same session: one round
    /// trip, no second connection). An empty line goes to stdout before the runner starts, so text a login rc
    /// printed without a newline cannot run into READY.
    ///
    /// `KEEP` > 0 (a kept connection): the checked runner gets a second name in its directory, its SHA-256, and
    /// the directory stays when the runner exits (the runner deletes only the name it was started by, as every
    /// runner does, ours or the Go one); a sweeper removes it once `KEEP` seconds pass with no session starting
    /// and none running there (the first by its shell's pid, later ones by their directories' names, which are
    /// their shells' pids) (`micro-runner-kept: new DIR`). A later session gives `@DIR` as `SIZE`: when DIR is still a directory of
    /// this user (not a link) holding that name, the runner is linked into a directory of the session's own
    /// (`DIR/PID`, removed when it ends, so sessions at once never share a name) and started with no upload
    /// (`micro-runner-kept: DIR`); otherwise the bootstrap says `micro-runner-kept: no` and reads `SIZE SHA256`
    /// from stdin as with `-`. Only this user (or root) can write in that directory (0711, so a become user can
    /// reach its session's directory), and the SHA-256 tool the upload's check uses would run with the same trust.
    ///
    /// One line of `;`-separated commands, with no `!`, no backslash and no newline: over ssh the login shell
    /// parses it before `/bin/sh` does, and csh/tcsh refuse a newline inside quotes, fish reads backslashes in
    /// single quotes, and csh expands `!` even there. Each external program costs a fork and exec per host, so
    /// there are as few as POSIX sh allows (mktemp, head, gzip, the hash tool, chmod).
    static let script = [
        "set -u",
        "dir=$1; size=$2; sum=$3; keep=$4; shift 4",
        "umask 077",
        #"if [ "${size#@}" != "$size" ]; then c=${size#@}; if [ -d "$c" ] && [ ! -h "$c" ] && [ -O "$c" ] && [ -f "$c/$sum" ] && mkdir "$c/$$" 2>/dev/null; then d=$c/$$; trap 'rm -rf "$d"' EXIT; trap 'exit 129' HUP; trap 'exit 130' INT; trap 'exit 143' TERM; if ln "$c/$sum" "$d/micro-runner"; then : > "$c/used"; echo "micro-runner-dir: $d" >&2; echo "micro-runner-kept: $c" >&2; echo; "$d/micro-runner" "$@"; exit; fi; rm -rf "$d"; trap - EXIT; fi; echo "micro-runner-kept: no" >&2; read -r size sum || { echo "micro-runner-bootstrap: no runner was sent" >&2; exit 93; }; fi"#,
        #"if [ "$size" = - ]; then echo "micro-runner-arch: $(uname -m)" >&2; read -r size sum || { echo "micro-runner-bootstrap: no runner was sent" >&2; exit 93; }; fi"#,
        "base=${dir:-${TMPDIR:-/tmp}}",
        #"d=$(mktemp -d "$base/micro-runner.XXXXXXXX") || { echo "micro-runner-bootstrap: cannot create a directory in $base (mktemp failed)" >&2; exit 90; }"#,
        #"echo "micro-runner-dir: $d" >&2"#,
        #"trap 'rm -rf "$d"' EXIT"#,
        "trap 'exit 129' HUP",
        "trap 'exit 130' INT",
        "trap 'exit 143' TERM",
        #"head -c "$size" | gzip -dc > "$d/micro-runner" || { echo "micro-runner-bootstrap: upload failed" >&2; exit 91; }"#,
        #"if command -v sha256sum >/dev/null 2>&1; then got=$(sha256sum "$d/micro-runner"); elif command -v shasum >/dev/null 2>&1; then got=$(shasum -a 256 "$d/micro-runner"); elif command -v openssl >/dev/null 2>&1; then got=$(openssl dgst -sha256 -r "$d/micro-runner"); else echo "micro-runner-bootstrap: this host has no SHA-256 tool (sha256sum, shasum or openssl), so the runner cannot be verified" >&2; exit 94; fi"#,
        "got=${got%% *}",
        #"[ "$got" = "$sum" ] || { echo "micro-runner-bootstrap: checksum mismatch: got $got, want $sum" >&2; exit 92; }"#,
        #"chmod 700 "$d/micro-runner""#,
        #"[ -x "$d/micro-runner" ] || [ -n "$dir" ] || { f=${HOME:-/nonexistent}/.cache/micro-runner; mkdir -p "$f" && chmod 700 "$f" && e=$(mktemp -d "$f/run.XXXXXXXX") && mv "$d/micro-runner" "$e/" && rm -rf "$d" && d=$e && echo "micro-runner-dir: $d" >&2 && echo "micro-runner-note: $base is mounted noexec; the runner runs from $d" >&2; }"#,
        #"[ -x "$d/micro-runner" ] || { echo "micro-runner-bootstrap: cannot run programs from $base (mounted noexec?); choose a directory with --remote-tmp DIR" >&2; exit 95; }"#,
        #"if [ "$keep" -gt 0 ] && ln "$d/micro-runner" "$d/$sum"; then chmod 711 "$d"; : > "$d/used"; trap - EXIT; (trap '' HUP INT TERM; p=$$; while sleep "$keep"; do b=; kill -0 "$p" 2>/dev/null && b=1; for e in "$d"/[0-9]*; do [ -d "$e" ] && kill -0 "${e##*/}" 2>/dev/null && b=1; done; [ -n "$b" ] || [ -e "$d/used" ] || break; rm -f "$d/used"; done; rm -rf "$d") < /dev/null > /dev/null 2>&1 & echo "micro-runner-kept: new $d" >&2; fi"#,
        "echo",
        #""$d/micro-runner" "$@""#,
    ].joined(separator: "; ")

    /// The command that runs the bootstrap: `/bin/sh -c SCRIPT micro-runner-bootstrap DIR SIZE SHA256 ARGS...`.
    static func command(
        directory: String?,
        size: String,
        sha256: String,
        keep: Int = 0,
        arguments: [String]
    ) -> [String] {
        ["/bin/sh", "-c", script, "micro-runner-bootstrap", directory ?? "", size, sha256, String(keep)] + arguments
    }

    /// Chooses the runner (by the host's architecture when there are several), starts the bootstrap through
    /// `launch`, and sends the runner's bytes and the become password.
    func start(runner: RunnerBinary, arguments: [String], describe: Logger.Metadata) async throws -> RunnerSession {
        var chosen = runner
        var learnArchitecture = false
        if let runners {
            if let known = Self.architectures.withLock({ $0[key] }) {
                chosen = try runners.runner(for: known)
            } else if runners.runners.count == 1, let only = runners.runners.values.first {
                chosen = only
            } else {
                learnArchitecture = true
            }
        }
        for candidate in runners.map({ Array($0.runners.values) }) ?? [chosen] where candidate.isDynamicallyLinked {
            throw ClientError(
                .usage,
                "\(candidate.path) is dynamically linked (a normal-mode Swift build): a host may lack its "
                    + "libraries, so it is not uploaded; use the static runner scripts/build-runner makes"
            )
        }
        let runnerArguments = (try become?.runnerArguments() ?? []) + arguments
        // A runner this host keeps from an earlier session of the kept connection: no upload, no check, no
        // gzip there (half of a kept 50-host fan-out's CPU went to them). The record names the runner by its hash,
        // which also says which architecture's it is.
        var keptDirectory: String?
        if let kept, let record = kept.load(), remoteDirectory.map({ record.directory.hasPrefix($0 + "/") }) ?? true {
            if !learnArchitecture, chosen.sha256 == record.sha256 {
                keptDirectory = record.directory
            } else if learnArchitecture,
                let match = runners?.runners.values.first(where: { $0.sha256 == record.sha256 })
            {
                chosen = match
                learnArchitecture = false
                keptDirectory = record.directory
            }
        }
        // Size and hash come after the host has said what it is, when it has to. Otherwise the cache entry's size
        // goes in argv and its check overlaps the connection; a copy of another size means the entry was replaced,
        // and the host is started again with the checked one's.
        let checked: Task<Data, any Error>? =
            learnArchitecture || keptDirectory != nil ? nil : Task { [chosen] in try await chosen.gzippedChecked() }
        var size = keptDirectory.map { "@" + $0 } ?? "-"
        if let checked {
            if let expected = chosen.expectedGzipSize() {
                size = String(expected)
            } else {
                size = String(try await checked.value.count)
            }
        }
        let sum = learnArchitecture ? "-" : chosen.sha256
        let child = try launch(
            Self.command(
                directory: remoteDirectory,
                size: size,
                sha256: sum,
                keep: kept?.seconds ?? 0,
                arguments: runnerArguments
            )
        )
        var metadata = describe
        metadata["host"] = "\(name)"
        metadata["runner"] = learnArchitecture ? "by architecture" : "\(chosen.path)"
        metadata["become"] = "\(become.map { "\($0.method.rawValue) \($0.user)" } ?? "no")"
        logger?.debug("connecting", metadata: metadata)
        do {
            var header: [UInt8] = []
            if keptDirectory != nil {
                guard let answer = await child.stderrLine(prefix: "micro-runner-kept: ", timeout: .seconds(60)) else {
                    throw ClientError(.transport, "\(name): the host did not say whether it kept the runner")
                }
                if answer != "no" {
                    logger?.debug("runner kept on the host", metadata: ["host": "\(name)", "directory": "\(answer)"])
                    try await child.send(become?.passwordLine() ?? [])
                    return RunnerSession(child: child, remoteDirectory: nil, become: become)
                }
                // Gone (swept, rebooted, replaced): sent as with an unknown architecture, and kept again.
                header = Array("\(try await chosen.gzippedChecked().count) \(chosen.sha256)\n".utf8)
            } else if learnArchitecture, let runners {
                guard let uname = await child.stderrLine(prefix: "micro-runner-arch: ", timeout: .seconds(60)) else {
                    throw ClientError(.transport, "\(name): the host did not report its architecture")
                }
                let architecture = RunnerSet.architecture(uname: uname)
                Self.architectures.withLock { $0[key] = architecture }
                logger?.info(
                    "host architecture learned",
                    metadata: ["host": "\(name)", "uname": "\(uname)", "architecture": "\(architecture)"]
                )
                do {
                    chosen = try runners.runner(for: architecture)
                } catch {
                    child.terminate()
                    throw ClientError(.usage, "\(name): \(error)")
                }
                header = Array("\(try await chosen.gzippedChecked().count) \(chosen.sha256)\n".utf8)
            }
            // The become password, if any, is the line right after the runner's bytes (BecomeLauncher reads it).
            let payload: Data
            if let checked { payload = try await checked.value } else { payload = try await chosen.gzippedChecked() }
            if checked != nil && String(payload.count) != size {
                child.terminate()
                logger?.debug("runner cache entry replaced while connecting; starting again", metadata: metadata)
                return try await start(runner: runner, arguments: arguments, describe: describe)
            }
            try await child.send(header + [UInt8](payload) + (become?.passwordLine() ?? []))
            logger?.debug(
                "runner sent",
                metadata: ["host": "\(name)", "bytes": "\(payload.count)", "sha256": "\(chosen.sha256)"]
            )
        } catch is CancellationError {
            // Interrupted during the upload: the launcher goes, and with it the bootstrap (SIGHUP, or its stdin's
            // end, ends it and its EXIT trap removes the directory).
            child.terminate()
            throw CancellationError()
        } catch let error as ClientError where error.kind == .usage {
            throw error
        } catch {
            // The launcher exited before reading: its stderr says why (refused key, unreachable host, no such
            // container...).
            _ = await child.waitForExit(timeout: .seconds(5))
            let stderr = await child.stderrTextAtEOF(timeout: .seconds(5))
            // A host that refuses in its own words (ForceCommand, nologin) says so on stdout, often before the
            // upload could be written: those words are the reason, not "ssh failed".
            let said = await child.lastLines(3, timeout: .seconds(2)).filter { !$0.hasPrefix("{") }
            if !said.isEmpty {
                throw ClientError(
                    .refusedByHost,
                    "\(name): the session ended before the runner started: the host said: \(said.joined(separator: " / "))"
                )
            }
            throw failure(stderr)
        }
        return RunnerSession(
            child: child,
            remoteDirectory: nil,
            become: become,
            keptSHA256: kept != nil ? chosen.sha256 : nil
        )
    }

    /// Waits for the session's end; stops the runner and removes its directory when the bootstrap could not.
    func cleanup(_ session: RunnerSession) async {
        let status = await session.child.waitForExit(timeout: .seconds(10))
        if let kept, let sha256 = session.keptSHA256 {
            // Printed before the runner started, so in by now; a session that ended badly is not remembered.
            let stderr = session.child.stderrText()
            let said = stderr.split(separator: "\n").last { $0.hasPrefix("micro-runner-kept: new ") }
            if status == 0, let said, let dir = Self.runnerDirectory(said.dropFirst("micro-runner-kept: new ".count)) {
                kept.save(sha256: sha256, directory: dir)
            }
            for line in stderr.split(separator: "\n") where line.hasPrefix("micro-runner-kept: /") || said == line {
                let words = line.split(separator: " ")
                if let last = words.last, let dir = Self.runnerDirectory(last) {
                    Self.keptDirectories.withLock { _ = $0[key, default: []].insert(dir) }
                }
            }
        }
        // The bootstrap's EXIT trap removes the directory whenever its shell ends by itself (any status
        // below 128); only a killed shell or a lost connection (255) needs the extra round trip.
        if let status, status < 128 { return }
        session.child.terminate()
        // After READY, every line the bootstrap prints is in: no need to wait for stderr's end, which a
        // ControlPersist master forked from this ssh holds open (2 s lost on every such tidy-up, measured).
        let readyPID = session.runnerPID.withLock { $0 }
        let stderr = readyPID != nil ? session.child.stderrText() : await session.child.stderrTextAtEOF()
        guard let dir = Self.remoteDirectory(in: stderr) else { return }
        logger?.info(
            "session ended uncleanly; removing the runner's directory",
            metadata: ["host": "\(name)", "status": "\(status.map(String.init) ?? "none")", "directory": "\(dir)"]
        )
        // A runner of another user (become) cannot be signalled by the login user, but the launcher that waits
        // for it can, and it sends the signal on through sudo.
        let pid = Self.launcherPID(in: stderr) ?? readyPID
        if let rm = try? launch(Self.cleanupCommand(directory: dir, runnerPID: pid)) {
            rm.closeStdin()
            _ = await rm.waitForExit(timeout: .seconds(15))
        }
    }

    /// Where a kept connection's runner stays on its host between sessions (`script`'s KEEP), remembered in a
    /// file beside the connection's control socket, in the controller's private directory for them.
    struct Kept: Sendable {
        /// How long the host keeps the runner after its last session (the connection's ControlPersist).
        var seconds: Int
        /// The file that remembers `SHA256 DIRECTORY`.
        var recordPath: String

        /// The runner and directory remembered, when the record is well formed.
        func load() -> (sha256: String, directory: String)? {
            guard let data = FileManager.default.contents(atPath: recordPath), data.count < 4096,
                let text = String(data: data, encoding: .utf8)
            else { return nil }
            let words = text.split(separator: " ", maxSplits: 1).map { $0.trimmingCharacters(in: .newlines) }
            guard words.count == 2, words[0].count == 64, words[0].allSatisfy({ $0.isHexDigit && !$0.isUppercase }),
                let dir = RemoteBootstrap.runnerDirectory(words[1]),
                dir.hasPrefix("/"), !dir.contains("\n")
            else { return nil }
            return (words[0], dir)
        }

        /// Remembers where the host keeps the runner (written whole, then renamed into place).
        func save(sha256: String, directory: String) {
            let staging = recordPath + ".\(getpid()).tmp"
            unlink(staging)
            guard LocalTransport.write(Data("\(sha256) \(directory)\n".utf8), to: staging) else { return }
            if rename(staging, recordPath) != 0 { unlink(staging) }
        }
    }

    /// The command that tidies up after a session whose launcher was killed (a runner too slow to exit after
    /// an interrupt) or lost: the runner, which would finish its command now that only its stdin closed, is
    /// stopped with SIGTERM (it then stops the command's process group) and given 5 s to go, and its directory
    /// is removed. The pid is used only while it still names this runner's executable (or, where that cannot be
    /// read because the runner made itself non-dumpable, while the process is named micro-runner), never a
    /// process that took the number over. The script has no `!` or backslashes (see `script`); the directory
    /// is its argument.
    static func cleanupCommand(directory: String, runnerPID: Int?) -> [String] {
        var script = "d=$1; "
        if let pid = runnerPID {
            // The runner is not dumpable (its /proc/PID/exe is unreadable to its own user), the become launcher is:
            // the executable's path when it can be read, else the process's name.
            script +=
                "p=\(pid); e=$(readlink /proc/$p/exe 2>/dev/null); c=$(cat /proc/$p/comm 2>/dev/null); "
                + "if [ \"$e\" = \"$d/micro-runner\" ] || { [ -z \"$e\" ] && [ \"$c\" = micro-runner ]; }; then kill -TERM $p; "
                + "i=0; while [ $i -lt 50 ] && kill -0 $p 2>/dev/null; do sleep 0.1; i=$((i + 1)); done; fi; "
        }
        script += "rm -rf -- \"$d\""
        return ["/bin/sh", "-c", script, "micro-runner-cleanup", directory]
    }

    /// Whether a stderr line is the bootstrap's own bookkeeping, not a message for people.
    static func isBookkeeping(_ line: some StringProtocol) -> Bool {
        [
            "micro-runner-dir:", "micro-runner-arch:", "micro-runner-note:", "micro-runner-become-pid:",
            "micro-runner-kept:",
        ].contains {
            line.hasPrefix($0)
        }
    }

    /// The last non-empty lines of a launcher's stderr, without the bootstrap's bookkeeping; `fallback` when none.
    static func lastLines(of stderr: String, fallback: String) -> String {
        // ssh ends its lines with \r\n when it has a terminal: split on both.
        let lines = stderr.split(whereSeparator: { $0 == "\n" || $0 == "\r\n" || $0 == "\r" }).map {
            $0.trimmingCharacters(in: .whitespacesAndNewlines)
        }.filter { !$0.isEmpty && !isBookkeeping($0) && !SSHTransport.isDirectConnectNoise($0[...]) }
        return lines.isEmpty ? fallback : lines.suffix(3).joined(separator: "; ")
    }

    /// The private directory the bootstrap made, as it reported on stderr.
    static func remoteDirectory(in stderr: String) -> String? {
        // The last one: after a noexec fallback the runner moved to a second directory.
        var found: String?
        for line in stderr.split(separator: "\n") where line.hasPrefix("micro-runner-dir: ") {
            if let dir = runnerDirectory(line.dropFirst("micro-runner-dir: ".count)) { found = dir }
        }
        return found
    }

    /// `text` when it names a directory the bootstrap makes (`…/micro-runner.X`, `…/micro-runner/run.X`, or a
    /// session's directory inside a kept one), with no quote in it.
    static func runnerDirectory(_ text: some StringProtocol) -> String? {
        let dir = String(text)
        return (dir.contains("/micro-runner.") || dir.contains("/micro-runner/run.")) && !dir.contains("'") ? dir : nil
    }

    /// The become launcher's pid, as it reported on stderr.
    static func launcherPID(in stderr: String) -> Int? {
        stderr.split(separator: "\n").last { $0.hasPrefix("micro-runner-become-pid: ") }
            .flatMap { Int($0.dropFirst("micro-runner-become-pid: ".count)) }
    }

    /// The full path of `program` (a name looked up in `PATH`, or a path as given).
    /// - Throws: `ClientError` `.usage` naming the program and `install` when it is not found.
    static func executable(_ program: String, install: String) throws -> String {
        if program.contains("/") { return program }
        for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":") {
            let candidate = "\(dir)/\(program)"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        throw ClientError(.usage, "\(program) not found in PATH (\(install))")
    }
}
