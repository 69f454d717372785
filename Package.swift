// swift-tools-version: 6.2
import PackageDescription

/// Targets that ship inside the runner binary must stay Foundation-free (see CONVENTIONS.md);
/// scripts/check-runner-binary enforces it on the built artifact.
///
/// The runner executable itself (Sources/micro-runner/main.swift) is not a SwiftPM product: it is only ever
/// built static, in Embedded Swift against musl, by scripts/build-runner. A `swift build -c release` of the
/// package used to leave a dynamically linked 3.5 MB `micro-runner` in .build/release, one that must never be
/// uploaded.
let package = Package(
    name: "micro-runner",
    products: [
        .executable(name: "mrctl", targets: ["mrctl"]),
        // ssh's ProxyCommand for a connection with Nagle off from its first byte (SSHOptions.connectHelper).
        .executable(name: "mr-connect", targets: ["mr-connect"]),
        .library(name: "MicroRunnerProtocol", targets: ["MicroRunnerProtocol"]),
        .library(name: "MicroRunnerClient", targets: ["MicroRunnerClient"]),
        // `swift package --allow-writing-to-package-directory build-runners`, from a dependent package's root:
        // the static runners, where the client's default lookup finds them.
        .plugin(name: "build-runners", targets: ["BuildRunners"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        // `swift package generate-documentation --target MicroRunnerClient` (DocC).
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.5.0"),
    ],
    targets: [
        .systemLibrary(
            name: "CSodium",
            pkgConfig: "libsodium",
            providers: [.apt(["libsodium-dev"])]
        ),
        .plugin(
            name: "BuildRunners",
            capability: .command(
                intent: .custom(
                    verb: "build-runners",
                    description: "Builds the static micro-runner runners into this package's .build/runner"
                ),
                permissions: [
                    .writeToPackageDirectory(reason: "The runners go in .build/runner, where the client looks for them")
                ]
            )
        ),
        .target(name: "CMicroRunnerShims"),
        .executableTarget(name: "mr-connect"),
        .target(name: "MicroRunnerProtocol"),
        // The platform layer: libc declarations, each syscall wrapped once, clocks, write loops, locks.
        .target(name: "MicroRunnerSystem", dependencies: ["CMicroRunnerShims", "MicroRunnerProtocol"]),
        // SHA-256 (SHA-NI shim), hex, base64: shared by runner and client, no libsodium.
        .target(name: "MicroRunnerCrypto", dependencies: ["CMicroRunnerShims", "MicroRunnerProtocol"]),
        // Ed25519 by libsodium: the runner's verification (and signing, for tests to check the client's own
        // Ed25519 byte for byte).
        .target(name: "MicroRunnerSignatures", dependencies: ["CSodium", "MicroRunnerCrypto"]),
        .target(
            name: "MicroRunnerHandlers",
            dependencies: [
                "MicroRunnerProtocol",
                "MicroRunnerCrypto",
                "MicroRunnerSystem",
                "CMicroRunnerShims",
            ]
        ),
        .target(
            name: "MicroRunnerAgent",
            dependencies: [
                "MicroRunnerProtocol", "MicroRunnerSystem", "MicroRunnerHandlers", "MicroRunnerCrypto",
                "MicroRunnerSignatures", "CMicroRunnerShims",
            ]
        ),
        .target(
            name: "MicroRunnerClient",
            dependencies: [
                "MicroRunnerProtocol", "MicroRunnerCrypto", "MicroRunnerSystem", "CMicroRunnerShims",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // Ansible inventories (INI and YAML) and host patterns, for mrctl.
        .target(
            name: "MicroRunnerInventory",
            dependencies: ["MicroRunnerClient", .product(name: "Yams", package: "Yams")]
        ),
        .executableTarget(
            name: "mrctl",
            dependencies: [
                "MicroRunnerClient",
                "MicroRunnerInventory",
                "MicroRunnerProtocol",
                "MicroRunnerSystem",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(
            name: "micro-runner-fuzz-agent",
            dependencies: ["MicroRunnerAgent", "MicroRunnerSystem", "MicroRunnerHandlers", "MicroRunnerProtocol"],
            path: "Fuzz/Agent"
        ),
        // The README's library example, compiled as an @main executable (scripts/test builds it).
        .executableTarget(
            name: "readme-example",
            dependencies: ["MicroRunnerClient"],
            path: "Examples/ReadmeExample"
        ),
        .executableTarget(
            name: "micro-runner-bench",
            dependencies: ["MicroRunnerProtocol", "MicroRunnerSystem", "MicroRunnerHandlers"]
        ),
        // Test-process set-up that must happen before any test runs (SIGPIPE ignored), in C for its constructor.
        .target(name: "CTestSupport", path: "Tests/CTestSupport"),
        // Shared by the test targets: the shell helper, the runner-process driver, the built runner's path.
        .target(
            name: "MicroRunnerTestSupport",
            dependencies: ["MicroRunnerProtocol", "CTestSupport"],
            path: "Tests/MicroRunnerTestSupport"
        ),
        .testTarget(
            name: "MicroRunnerProtocolTests",
            dependencies: ["MicroRunnerProtocol", "MicroRunnerTestSupport"]
        ),
        .testTarget(
            name: "MicroRunnerSystemTests",
            dependencies: ["MicroRunnerSystem", "CMicroRunnerShims", "MicroRunnerTestSupport"]
        ),
        .testTarget(
            name: "MicroRunnerInventoryTests",
            dependencies: ["MicroRunnerInventory", "MicroRunnerClient"]
        ),
        .testTarget(
            name: "MicroRunnerHandlersTests",
            dependencies: [
                "MicroRunnerHandlers", "MicroRunnerSystem", "MicroRunnerProtocol", "MicroRunnerCrypto",
                "MicroRunnerSignatures",
                "MicroRunnerTestSupport",
            ]
        ),
        .testTarget(
            name: "MicroRunnerAgentTests",
            dependencies: [
                "MicroRunnerAgent", "MicroRunnerSystem", "MicroRunnerHandlers", "MicroRunnerProtocol",
                "MicroRunnerTestSupport",
            ]
        ),
        .testTarget(
            name: "MicroRunnerClientTests",
            dependencies: [
                "MicroRunnerClient", "MicroRunnerInventory", "MicroRunnerProtocol", "MicroRunnerCrypto",
                "MicroRunnerSignatures", "MicroRunnerTestSupport", .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "IntegrationTests",
            dependencies: [
                "MicroRunnerProtocol", "MicroRunnerClient", "MicroRunnerCrypto", "MicroRunnerSignatures",
                "MicroRunnerTestSupport",
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
