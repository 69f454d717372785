import MicroRunnerClient
import Testing

/// The container runtimes' command lines and host names: pure decisions, no container needed.
@Suite struct ContainerRuntimeTests {
    let argv = ["/bin/sh", "-c", "echo ${x%% *} $1", "bootstrap"]

    @Test func eachRuntimeRunsTheCommandWithPlainPipes() throws {
        #expect(
            try ContainerRuntime.docker.arguments(target: "web", user: nil, argv: argv)
                == ["exec", "-i", "web"] + argv
        )
        #expect(
            try ContainerRuntime.podman.arguments(target: "web", user: "app", argv: argv)
                == ["exec", "-i", "-u", "app", "web"] + argv
        )
        #expect(
            try ContainerRuntime.nsenter.arguments(target: "4242", user: nil, argv: argv)
                == ["-t", "4242", "-a", "-r", "-w", "--"] + argv
        )
        #expect(
            try ContainerRuntime.kubectl.arguments(target: "prod/api-1/app", user: nil, argv: argv)
                == ["exec", "-i", "-n", "prod", "api-1", "-c", "app", "--"] + argv
        )
        #expect(
            try ContainerRuntime.kubectl.arguments(target: "api-1", user: nil, argv: []) == [
                "exec", "-i", "api-1", "--",
            ]
        )
        // Never a pty: a pty would turn the runner's bytes into terminal input (and `\n` into `\r\n`).
        for runtime in [ContainerRuntime.docker, .podman, .kubectl] {
            let args = try runtime.arguments(target: "x", user: nil, argv: ["true"])
            #expect(!args.contains("-t") && !args.contains("--tty") && !args.contains("-it"))
        }
        #expect(!(try ContainerRuntime.nspawn.arguments(target: "x", user: nil, argv: ["true"])).contains("--pty"))
    }

    /// systemd expands `$` in a service's command line: every `$` of the bootstrap is doubled, nothing else.
    @Test func systemdRunGetsItsDollarsEscaped() throws {
        let args = try ContainerRuntime.nspawn.arguments(target: "build1", user: "deploy", argv: argv)
        #expect(
            args == [
                "--machine=build1", "--pipe", "--quiet", "--collect", "--uid=deploy", "--",
                "/bin/sh", "-c", "echo $${x%% *} $$1", "bootstrap",
            ]
        )
    }

    @Test func targetsAndUsersARuntimeCannotTakeAreUsageErrors() {
        for (runtime, target, user) in [
            (ContainerRuntime.nsenter, "web", nil), (.nsenter, "-1", nil), (.nsenter, "42", "root"),
            (.kubectl, "a/b/c/d", nil), (.kubectl, "ns//c", nil), (.kubectl, "pod", "root"),
        ] as [(ContainerRuntime, String, String?)] {
            #expect(throws: ClientError.self) { try runtime.arguments(target: target, user: user, argv: ["true"]) }
        }
    }

    @Test func hostSpecsNameContainers() throws {
        let box = try HostSpec(parsing: "podman:app@web")
        #expect(box.container == .podman && box.user == "app" && box.host == "web" && box.port == nil)
        #expect(box.description == "podman:app@web")
        #expect(try HostSpec(parsing: "nspawn:build1").transport() is ContainerTransport)
        #expect(try HostSpec(parsing: "kubectl:prod/api-1").host == "prod/api-1")
        // An ssh host called like a runtime keeps working, in brackets, and prints back that way.
        let ssh = try HostSpec(parsing: "[docker]:22")
        #expect(ssh.container == nil && ssh.host == "docker" && ssh.port == 22)
        #expect(ssh.description == "[docker]:22")
        #expect(try HostSpec(parsing: ssh.description) == ssh)
        #expect(try HostSpec(parsing: "web1:2222").container == nil)
        for bad in ["docker:", "podman:-x", "docker:@web", "docker:-u@web"] {
            #expect(throws: ClientError.self) { try HostSpec(parsing: bad) }
        }
    }

    @Test func runtimeWordsBecomeKinds() {
        let cases: [(ContainerRuntime, String, ClientError.Kind)] = [
            (.docker, "Error response from daemon: No such container: web", .unreachable),
            (.docker, "Cannot connect to the Docker daemon at unix:///var/run/docker.sock.", .unreachable),
            (.podman, #"Error: no container with name or ID "web" found: no such container"#, .unreachable),
            (
                .podman, "Error: can only create exec sessions on running containers: container state improper",
                .unreachable
            ),
            (.nspawn, "Failed to connect to bus: Host is down", .unreachable),
            (.nsenter, "nsenter: stat of /proc/999/ns/user failed: No such file or directory", .unreachable),
            (.kubectl, #"Error from server (NotFound): pods "api" not found"#, .unreachable),
            (.docker, "micro-runner-bootstrap: checksum mismatch: got a, want b", .bootstrap),
            (.docker, "OCI runtime exec failed: exec failed: unable to start container process", .transport),
        ]
        for (runtime, stderr, kind) in cases {
            #expect(runtime.failureKind(stderr) == kind, "\(stderr)")
        }
    }
}
