import Foundation

/// A bookworm container booted with systemd-nspawn (scripts/systemd-container), the runner inside it.
package final class SystemdContainer: @unchecked Sendable {
    /// The scratch directory (the nspawn log, the bind-mounted runner).
    package let dir: String
    /// The container's init, as the host sees it (`nsenter -t PID`).
    package let pid: String
    /// The machine name.
    package let name: String
    private var registered = false

    /// Whether this machine can boot one: root and systemd-nspawn.
    package static var available: Bool {
        geteuid() == 0 && FileManager.default.isExecutableFile(atPath: "/usr/bin/systemd-nspawn")
    }

    /// Boots a container with the built runner at /mr/micro-runner (read-only).
    package init() throws {
        dir = "/tmp/mr-ct-\(UUID().uuidString.prefix(8))"
        name = "mr-\(UUID().uuidString.prefix(6).lowercased())"
        try FileManager.default.createDirectory(atPath: dir + "/bind", withIntermediateDirectories: true)
        try BuiltRunner.copy(to: dir + "/bind/micro-runner")
        let script = BuiltRunner.repo.appendingPathComponent("scripts/systemd-container").path
        let boot = shell("bash \(script) boot \(name) \(dir) \(dir)/bind 2>&1")
        let lines = boot.output.split(separator: "\n")
        guard boot.status == 0, let last = lines.last, Int(last) != nil else {
            throw TestFailure("container did not boot: \(boot.output.suffix(2000))")
        }
        pid = String(last)
    }

    deinit {
        if registered { try? FileManager.default.removeItem(atPath: "/run/systemd/machines/\(name)") }
        let script = BuiltRunner.repo.appendingPathComponent("scripts/systemd-container").path
        shell("bash \(script) stop \(dir)")
        try? FileManager.default.removeItem(atPath: dir)
    }

    /// A runner inside the container (`--keep`: its binary is a read-only bind mount).
    package func runner() throws -> RunnerProcess {
        try RunnerProcess(arguments: ["-t", pid, "-a", "/mr/micro-runner", "--keep"], binary: "/usr/bin/nsenter")
    }

    /// Runs `command` in the container (sh -c); its stdout and stderr together.
    @discardableResult
    package func run(_ command: String) -> (status: Int32, output: String) {
        shell("nsenter -t \(pid) -a /bin/sh -c \(shellQuoted(command))")
    }

    /// Registers the machine the way systemd-machined does (`/run/systemd/machines/NAME`, which
    /// `systemd-run --machine` reads), since machined cannot run on a host whose PID 1 is not systemd
    /// (../shared/CONTAINER-FACTS.md); removed when the container goes.
    package func register() throws {
        try FileManager.default.createDirectory(atPath: "/run/systemd/machines", withIntermediateDirectories: true)
        try "NAME=\(name)\nCLASS=container\nLEADER=\(pid)\n".write(
            toFile: "/run/systemd/machines/\(name)",
            atomically: true,
            encoding: .utf8
        )
        registered = true
    }
}

/// A podman container from the same bookworm root as `SystemdContainer`, with every bit of podman's state in a
/// scratch directory (`environment` points podman there). Podman on this kind of machine needs runc (crun
/// refuses hybrid cgroups) and rlimits at or below the hard ones (../shared/CONTAINER-FACTS.md).
package final class PodmanContainer: @unchecked Sendable {
    /// The scratch directory (storage, run state, the two config files).
    package let dir: String
    /// The container's name.
    package let name: String
    /// CONTAINERS_STORAGE_CONF and CONTAINERS_CONF for every podman call, mrctl's included.
    package let environment: [String: String]

    /// Whether this machine can run one: root, podman and runc.
    package static var available: Bool {
        geteuid() == 0 && FileManager.default.isExecutableFile(atPath: "/usr/bin/podman")
            && FileManager.default.isExecutableFile(atPath: "/usr/sbin/runc")
    }

    /// Imports the root (built once by scripts/systemd-container) and starts `sleep infinity` in it.
    package init() throws {
        dir = "/tmp/mr-pm-\(UUID().uuidString.prefix(8))"
        name = "mr-\(UUID().uuidString.prefix(6).lowercased())"
        environment = ["CONTAINERS_STORAGE_CONF": dir + "/storage.conf", "CONTAINERS_CONF": dir + "/containers.conf"]
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try """
        [storage]
        driver = "overlay"
        runroot = "\(dir)/run"
        graphroot = "\(dir)/root"
        """.write(toFile: dir + "/storage.conf", atomically: true, encoding: .utf8)
        try """
        [engine]
        cgroup_manager = "cgroupfs"
        events_logger = "file"
        events_logfile_path = "\(dir)/events.log"
        tmp_dir = "\(dir)/tmp"
        runtime = "runc"
        [containers]
        netns = "none"
        """.write(toFile: dir + "/containers.conf", atomically: true, encoding: .utf8)
        let script = BuiltRunner.repo.appendingPathComponent("scripts/systemd-container").path
        let root =
            ProcessInfo.processInfo.environment["MR_CONTAINER_ROOT"]
            ?? "/var/cache/micro-runner-tests/bookworm-systemd-ssh"
        // nproc: podman's default (1048576) and even the hard limit itself are refused without CAP_SYS_RESOURCE.
        let start = shell(
            "bash -c "
                + shellQuoted(
                    """
                    set -e
                    # conmon stays in the background with whatever descriptors podman had: not Foundation's (its Process
                    # reaps a child only once every holder of a socket it passed on has closed it).
                    for fd in /proc/$$/fd/*; do n=${fd##*/}; [ "$n" -gt 2 ] && eval "exec $n>&-" 2>/dev/null || true; done
                    bash \(script) build
                    tar -C \(root) -c . | \(podman) import -q - localhost/\(name) >/dev/null
                    n=$(ulimit -Hn); u=$(ulimit -Hu); [ "$u" = unlimited ] || [ "$u" -gt 32768 ] && u=32768
                    \(podman) run -d --ulimit nofile=$n:$n --ulimit nproc=$u:$u --name \(name) localhost/\(name) sleep infinity
                    """
                )
                // Into a file: podman's conmon stays in the background with the output it was given, and a pipe
                // would never reach its end.
                + " >\(dir)/start.log 2>&1"
        )
        guard start.status == 0 else {
            let log = (try? String(contentsOfFile: dir + "/start.log", encoding: .utf8)) ?? ""
            shell("\(podman) rm -f -t 0 \(name) >/dev/null 2>&1; rm -rf \(dir)")
            throw TestFailure("podman container did not start: \(log.suffix(2000))")
        }
    }

    deinit {
        shell("{ \(podman) rm -f -t 0 \(name); \(podman) rmi -f localhost/\(name); } >/dev/null 2>&1; rm -rf \(dir)")
    }

    /// `podman` with this container's state.
    var podman: String {
        "CONTAINERS_STORAGE_CONF=\(dir)/storage.conf CONTAINERS_CONF=\(dir)/containers.conf podman"
    }

    /// Runs `command` in the container (sh -c); its stdout and stderr together.
    @discardableResult
    package func run(_ command: String) -> (status: Int32, output: String) {
        shell("\(podman) exec \(name) /bin/sh -c \(shellQuoted(command))")
    }
}
